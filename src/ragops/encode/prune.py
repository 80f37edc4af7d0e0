"""`ragops cache prune`: drop the embedding cache's vectors that the built pipeline no longer reads.

The cache (``embed.cache_dir``) is append-only: every retrain of the embedder leaves a folder of vectors under
a model nobody serves, every edited chunk or sentence leaves its old vector, every backend switch leaves the
other backend's. Pruning keeps exactly what the current outputs were built from — the chunks under the
``embed`` and ``embed_ft`` model ids (their ``embed_stats``), the answer sentences under the sentence store's
(its ``meta.json``) — so the next ``dvc repro`` that changes nothing still encodes nothing.

Crash-safe: a kept folder's live vectors are first written as one new segment (atomically, as the cache writes
any segment), only then are its old segments deleted; an interruption leaves duplicates, never a loss. Not
while a build runs (a stage reading a folder being compacted would encode again what it missed): `ragops cache
prune` holds DVC's lock of the project, and refuses while a `dvc repro` holds it (ragops.cli.cache).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ragops.encode.encoder import EmbeddingCache, cache_keys
from ragops.errors import ConfigError
from ragops.io import read_json

IDENTITIES = "identities"  # ragops.encode.identity's records: a few bytes per model, kept


@dataclass
class PruneReport:
    removed_folders: list[str] = field(default_factory=list)
    compacted_folders: list[str] = field(default_factory=list)
    vectors_kept: int = 0
    vectors_dropped: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    dry_run: bool = False


def live_texts(params: dict[str, Any]) -> dict[str, list[str]]:
    """``{model_id: texts}`` the built outputs were encoded from."""
    import pandas as pd

    from ragops.answer.vectors import STORE_META, sentence_texts

    paths = params["paths"]
    if not Path(paths["embed_stats"]).is_file():
        raise ConfigError(f"nothing is built ({paths['embed_stats']} missing): run `dvc repro` first; prune keeps "
                          "what the built pipeline reads")
    chunks = pd.read_parquet(paths["chunks"], columns=["text"])["text"].tolist()
    live: dict[str, list[str]] = {}
    for key in ("embed_stats", "embed_stats_ft"):
        if key in paths and Path(paths[key]).is_file():
            live.setdefault(read_json(paths[key])["model_id"], []).extend(chunks)
    meta = Path(paths.get("sentences", "")) / STORE_META
    model_id = read_json(meta).get("model_id") if meta.is_file() else None
    if model_id:
        docs = pd.read_parquet(paths["docs"], columns=["title", "text"])
        live.setdefault(model_id, []).extend(sentence_texts(docs["title"].tolist(), docs["text"].tolist()))
    return live


def _keys_and_dim(folder: Path) -> tuple[set[bytes], int]:
    """The distinct keys of a folder's readable segments and their vectors' width (0 when empty). Read from
    the files: EmbeddingCache has no listing, and ragops.encode.encoder is part of the trained models' keys
    (a method there would retrain them)."""
    keys: set[bytes] = set()
    dim = 0
    for keys_file in sorted(folder.glob("seg-*.keys.npy")):
        vecs_file = keys_file.with_name(keys_file.name.replace(".keys.", ".vecs."))
        try:
            vecs = np.load(vecs_file, mmap_mode="r", allow_pickle=False)
            seg = np.load(keys_file, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            continue  # missing or damaged: its vectors are not kept (the cache itself skips such a segment)
        if seg.ndim == 1 and vecs.ndim == 2 and len(seg) == len(vecs) and vecs.shape[1] == (dim or vecs.shape[1]):
            keys.update(seg.tolist())
            dim = int(vecs.shape[1])
    return keys, dim


def folder_size(folder: Path) -> int:
    """Bytes of the files under ``folder`` (also the ONNX export prune's measure, ragops.encode.export_prune)."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def prune(cache_dir: str | Path, live: dict[str, list[str]], dry_run: bool = False) -> PruneReport:
    """Keep the vectors of ``live`` texts under their model ids in ``cache_dir``; drop every other vector."""
    root = Path(cache_dir)
    report = PruneReport(dry_run=dry_run)
    if not root.is_dir():
        return report
    wanted: dict[str, set[bytes]] = {}
    for model_id, texts in live.items():  # one folder per model_id[:16]: backends of one model share it
        wanted.setdefault(model_id[:16], set()).update(cache_keys(model_id, texts).tolist())
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != IDENTITIES):
        size = folder_size(folder)
        report.bytes_before += size
        keys, dim = _keys_and_dim(folder)
        if folder.name not in wanted:
            report.removed_folders.append(folder.name)
            report.vectors_dropped += len(keys)
            if not dry_run:
                shutil.rmtree(folder)
            continue
        keep = sorted(k for k in keys if k in wanted[folder.name])
        old = sorted(f for f in folder.iterdir() if f.is_file())
        report.vectors_kept += len(keep)
        report.vectors_dropped += len(keys) - len(keep)
        if len(keep) == len(keys) and len(old) <= 2:
            report.bytes_after += size  # one segment, every vector live: nothing to do
            continue
        report.compacted_folders.append(folder.name)
        if dry_run:
            report.bytes_after += int(size * len(keep) / max(len(keys), 1))  # an estimate: vectors dominate
            continue
        cache = EmbeddingCache(root, folder.name)  # reads the readable segments (sets a damaged one aside)
        old = sorted(f for f in folder.iterdir() if f.is_file())  # a damaged one under its new name
        array = np.asarray(keep, dtype="S32")
        cache.add(array, cache.get(array, dim))  # a new segment in the folder, written as the cache writes one
        for f in old:
            f.unlink(missing_ok=True)
        report.bytes_after += folder_size(folder)
    return report
