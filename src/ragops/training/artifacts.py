"""What the training stages left: a trained model folder, or a marker saying why there is none.

Both stages always write their output folder (DVC needs it); ``training.json`` inside says
``trained: true|false``. Everything downstream asks here, so a dataset without train judgments (or
``enabled: false``) falls back to the base models in one place.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragops.errors import unknown_name
from ragops.io import atomic_dir, read_json, write_json

MARKER = "training.json"
# When a training stage runs (DVC saw a dependency change), `always` retrains; `on_train_change` keeps
# the model in place when its training key is unchanged: a corpus edit alone then costs re-embedding,
# not retraining. RAGOPS_RETRAIN=1 forces retraining under either policy (the scheduled retrain).
RETRAIN_POLICIES = ("always", "on_train_change")


def training_key(params: dict[str, Any], cfg: dict[str, Any], code: Sequence[str | Path]) -> str:
    """Hash of what a trained model depends on apart from the corpus: the train and dev queries and their
    judgments, the stage's params, the seed, the base model, the training code."""
    import pandas as pd

    qrels = pd.read_parquet(params["paths"]["qrels"])
    qrels = qrels[qrels["split"].isin(["train", "dev"])].sort_values(["split", "query_id", "doc_id"])
    queries = pd.read_parquet(params["paths"]["queries"]).set_index("query_id")["text"]
    h = hashlib.sha256()
    for row in qrels[["split", "query_id", "doc_id", "score"]].itertuples(index=False):
        h.update(f"{row.split}\t{row.query_id}\t{row.doc_id}\t{row.score}\n".encode())
    for q in sorted(set(qrels["query_id"])):
        h.update(f"{q}\t{queries.get(q, '')}\n".encode())
    settings = {"cfg": cfg, "seed": params.get("seed"), "model": params["embed"]["model"]}
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for f in sorted(str(c) for c in code):
        h.update(code_digest(f))
    return h.hexdigest()


def code_digest(path: str | Path) -> bytes:
    """What a code file gives a training key: a Python file's syntax tree without its docstrings (comments
    and layout never reach the tree), so rewording a docstring or a comment, or reformatting, does not
    retrain a model; any other file, its bytes. The tree's form is Python's (``ast.dump``): another Python
    minor version may retrain once."""
    path = Path(path)
    data = path.read_bytes()
    if path.suffix != ".py":
        return data
    tree = ast.parse(data, filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and \
                    isinstance(first.value.value, str):
                node.body = node.body[1:] or ([] if isinstance(node, ast.Module) else [ast.Pass()])
    return ast.dump(tree, include_attributes=False).encode()


def content_key(settings: dict[str, Any], files: Sequence[str | Path], code: Sequence[str | Path]) -> str:
    """Hash of ``settings`` (JSON), the bytes of ``files`` (data, in the given order) and ``code`` (as
    :func:`code_digest` reads it)
    (sorted): the training key of a model whose data are whole files (the grounding scorer)."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for f in files:
        h.update(Path(f).name.encode() + b"\0" + Path(f).read_bytes())
    for f in sorted(str(c) for c in code):
        h.update(code_digest(f))
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def reusable(folder: str | Path, key: str, policy: str) -> bool:
    """True when ``policy`` allows keeping the trained model in ``folder`` and it was trained under ``key``."""
    if policy not in RETRAIN_POLICIES:
        raise unknown_name("train.retrain policy", policy, RETRAIN_POLICIES)
    if policy == "always" or os.environ.get("RAGOPS_RETRAIN", "") not in ("", "0"):
        return False
    record = training_record(folder)
    return bool(record.get("trained")) and record.get("train_key") == key


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
