"""What the training stages left: a trained model folder, or a marker saying why there is none.

Both stages always write their output folder (DVC needs it); ``training.json`` inside says
``trained: true|false``. Everything downstream asks here, so a dataset without train judgments (or
``enabled: false``) falls back to the base models in one place.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ragops.io import atomic_dir, read_json, write_json

MARKER = "training.json"


def write_skipped(folder: str | Path, reason: str) -> None:
    with atomic_dir(folder) as tmp:
        write_json(tmp / MARKER, {"trained": False, "reason": reason})


def training_record(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / MARKER
    return read_json(path) if path.exists() else {"trained": False, "reason": f"{path} missing"}


def is_trained(folder: str | Path | None) -> bool:
    return folder is not None and bool(training_record(folder).get("trained"))


def effective_embedder(params: dict[str, Any]) -> str:
    """The fine-tuned embedder's folder when it was trained, else the base ``embed.model``."""
    folder = params["paths"].get("embedder")
    return str(folder) if is_trained(folder) else str(params["embed"]["model"])


def effective_reranker(params: dict[str, Any]) -> str | None:
    """The trained reranker's folder, or None (rerank modes then return the first stage unchanged)."""
    folder = params["paths"].get("reranker")
    return str(folder) if is_trained(folder) else None


def ft_params(params: dict[str, Any]) -> dict[str, Any]:
    """params as the base stages and loaders read them, pointed at the fine-tuned embedder, its
    embeddings and FAISS index, and ``fusion_ft`` (the base ``fusion`` while the embedder is untrained)."""
    p = copy.deepcopy(params)
    p["embed"]["model"] = effective_embedder(params)
    p["paths"]["embeddings"] = params["paths"]["embeddings_ft"]
    p["paths"]["embed_stats"] = params["paths"]["embed_stats_ft"]
    p["paths"]["faiss"] = params["paths"]["faiss_ft"]
    if "fusion_ft" in params and is_trained(params["paths"].get("embedder")):
        p["fusion"] = dict(params["fusion_ft"])
    return p
