"""A stage whose every vector is in the embedding cache loads no model.

The cache is keyed by the encoder's ``model_id`` (``<fingerprint>:<max_seq_length>`` for the torch backend), and
learning ``max_seq_length`` and the dimension means loading the model: importing sentence-transformers alone
costs ~7 s of CPU a process (bench/process_overhead.py), paid by every `embed` / `embed_ft` re-run that then
encodes nothing. So the first stage that loads a model writes what it learnt beside the cache
(``<cache_dir>/identities/<fingerprint>.<backend>.json``: model id, dimension, and the library versions that
derived them) and later runs read it back: the fingerprint (a hash of the model's files) is cheap, the rest
comes from the record. A record only ever comes from a loaded model; another fingerprint, backend or library
version finds none, and the stage loads the model as before. Only the torch backend is recorded: an ONNX
encoder's id also depends on ragops' own export code, and it loads in well under a second anyway.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from ragops.encode.encoder import EmbeddingCache, EmbedStats, cache_keys
from ragops.encode.models import model_fingerprint, resolve_model
from ragops.io import read_json, write_json

log = logging.getLogger("ragops.embedding")

RECORDED_BACKENDS = ("torch",)
LIBRARIES = ("sentence-transformers", "transformers")  # what turns a model folder into max_seq_length and dim


@dataclass(frozen=True)
class Identity:
    """What the embedding cache knows an encoder by: ``model_id`` (the key prefix) and ``dim``."""

    model_id: str
    dim: int


def _versions() -> dict[str, str]:
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def _record(cache_dir: str | Path, model: str, backend: str) -> Path | None:
    if backend not in RECORDED_BACKENDS:
        return None
    return Path(cache_dir) / "identities" / f"{model_fingerprint(resolve_model(model))}.{backend}.json"


def remember(cache_dir: str | Path, model: str, backend: str, identity: Identity) -> None:
    """Record the identity of a model just loaded (written atomically; a torch backend only). The record is a
    shortcut, not an output: a cache folder it cannot be written to (read-only, shared) costs a warning and the
    next run's model load, never the stage."""
    path = _record(cache_dir, model, backend)
    if path is None:
        return
    try:
        write_json(path, {"model_id": identity.model_id, "dim": int(identity.dim), "versions": _versions()})
    except OSError as exc:
        log.warning("embedding cache: could not record the model's identity in %s (%s); the next run that finds "
                    "every vector cached loads the model anyway", path, exc)


def recall(cache_dir: str | Path, model: str, backend: str) -> Identity | None:
    """The recorded identity of ``model`` under ``backend`` with the installed libraries, or None."""
    path = _record(cache_dir, model, backend)
    if path is None or not path.is_file():
        return None
    try:
        record = read_json(path)
        identity = Identity(str(record["model_id"]), int(record["dim"]))
        same = record["versions"] == _versions()
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("embedding cache: %s is unreadable; the model is loaded instead", path)
        return None
    return identity if same else None


def from_cache(texts: list[str], cache_dir: str | Path, model: str, backend: str
               ) -> tuple[np.ndarray, EmbedStats, Identity] | None:
    """Every text's vector from the cache, without loading the model; None when any is missing (or the model's
    identity is not recorded). The vectors are the bytes ``embed_with_cache`` would return."""
    t0 = time.perf_counter()
    identity = recall(cache_dir, model, backend)
    if identity is None:
        return None
    cache = EmbeddingCache(cache_dir, identity.model_id)
    keys = cache_keys(identity.model_id, texts)
    _, missing = cache.lookup(keys)
    if missing:
        return None
    vecs = cache.get(keys, identity.dim)
    stats = EmbedStats(total=len(texts), cached=len(texts), encoded=0, seconds=time.perf_counter() - t0)
    return vecs, stats, identity
