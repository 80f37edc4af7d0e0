"""Embedding with a content-hash cache keyed by (model fingerprint, text), so re-running after a
small data change embeds only the new chunks.

The core (``embed_with_cache``) takes an ``encode`` function, not a model: tests, the Dask path
and the pipeline all pass their own. ``Encoder`` is the short wrapper that holds the model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ragops.encode.models import DEFAULT_ONNX_DIR
from ragops.io import atomic_path, read_npy

log = logging.getLogger("ragops.embedding")

EncodeFn = Callable[[list[str]], np.ndarray]
# Many blocks at once, vectors yielded block by block in order (the Dask path overlaps the blocks).
MapBlocksFn = Callable[[Iterable[list[str]]], Iterable[np.ndarray]]


def cache_keys(model_id: str, texts: Sequence[str]) -> np.ndarray:
    """sha256(model_id, text) per text, as fixed-width bytes (``S32``), storable without pickle."""
    prefix = hashlib.sha256(model_id.encode()).digest()
    return np.asarray([hashlib.sha256(prefix + t.encode("utf-8")).digest() for t in texts], dtype="S32")


class EmbeddingCache:
    """Append-only segments in ``root/<model_id[:16]>/``: ``seg-*.keys.npy`` + ``seg-*.vecs.npy``.

    Each segment is written atomically (vectors first, keys last: a segment is only read when its
    keys file exists), so an interrupted run keeps every finished block. A damaged segment (truncated,
    overwritten, not an array of the right shape) is never fatal: it is named in a warning, renamed to
    ``*.damaged`` beside the others, and its texts are simply encoded again (``damaged`` lists them).
    """

    def __init__(self, root: str | Path, model_id: str) -> None:
        self.dir = Path(root) / model_id[:16]
        self.model_id = model_id
        self._index: dict[bytes, tuple[int, int]] = {}
        self._segments: list[np.ndarray] = []
        self.damaged: list[Path] = []
        if self.dir.exists():
            for keys_file in sorted(self.dir.glob("seg-*.keys.npy")):
                vecs_file = keys_file.with_name(keys_file.name.replace(".keys.", ".vecs."))
                if vecs_file.exists():
                    try:
                        keys, vecs = read_npy(keys_file), read_npy(vecs_file, mmap=True)
                        self._check_segment(keys, vecs)
                    except (OSError, ValueError, EOFError) as exc:
                        self._set_aside(keys_file, vecs_file, exc)
                        continue
                    self._add_segment(keys, vecs)

    def _check_segment(self, keys: np.ndarray, vecs: np.ndarray) -> None:
        if keys.ndim != 1 or keys.dtype != np.dtype("S32"):
            raise ValueError(f"keys are {keys.dtype} {keys.shape}, not 32-byte keys")
        if vecs.ndim != 2 or vecs.dtype != np.float32 or len(vecs) != len(keys):
            raise ValueError(f"vectors are {vecs.dtype} {vecs.shape} for {len(keys)} keys")
        if self._segments and vecs.shape[1] != self._segments[0].shape[1]:
            raise ValueError(f"{vecs.shape[1]}-d vectors beside {self._segments[0].shape[1]}-d ones")

    def _set_aside(self, keys_file: Path, vecs_file: Path, exc: Exception) -> None:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        log.warning("embedding cache: %s is damaged (%s); set aside as *.damaged, its texts will be encoded again",
                    vecs_file, reason)
        for f in (keys_file, vecs_file):
            try:
                f.rename(f.with_name(f.name + ".damaged"))
            except OSError:
                pass  # a read-only cache: skipping the segment is enough
        self.damaged.append(vecs_file)

    def _add_segment(self, keys: np.ndarray, vecs: np.ndarray) -> None:
        seg = len(self._segments)
        self._segments.append(vecs)
        for row, key in enumerate(keys.tolist()):
            self._index.setdefault(key, (seg, row))

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: bytes) -> bool:
        return key in self._index

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """(found mask, positions of missing keys)."""
        found = np.asarray([k in self._index for k in keys.tolist()], dtype=bool)
        return found, [i for i, f in enumerate(found) if not f]

    def get(self, keys: np.ndarray, dim: int) -> np.ndarray:
        out = np.empty((len(keys), dim), dtype=np.float32)
        for i, key in enumerate(keys.tolist()):
            seg, row = self._index[key]
            out[i] = self._segments[seg][row]
        return out

    def add(self, keys: np.ndarray, vecs: np.ndarray) -> None:
        if len(keys) == 0:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"seg-{time.time_ns():020d}-{os.getpid()}"
        for suffix, arr in ((".vecs.npy", vecs.astype(np.float32)), (".keys.npy", keys)):
            with atomic_path(self.dir / f"{name}{suffix}") as tmp, open(tmp, "wb") as f:
                np.save(f, arr, allow_pickle=False)
        self._add_segment(keys, vecs.astype(np.float32))


@dataclass(frozen=True)
class EmbedStats:
    total: int
    cached: int
    encoded: int
    seconds: float
    tokens_encoded: int = 0


def embed_with_cache(
    texts: Sequence[str],
    encode: EncodeFn,
    cache: EmbeddingCache | None,
    dim: int,
    block_size: int = 2048,
    lengths: Sequence[int] | None = None,
    progress: Callable[[int], None] | None = None,
    map_blocks: MapBlocksFn | None = None,
) -> tuple[np.ndarray, EmbedStats]:
    """Embeddings for ``texts`` (row i for text i), encoding only what the cache lacks.

    Missing texts are encoded longest-first in blocks of ``block_size`` (similar lengths batch
    with little padding) and each block is added to the cache as soon as it is done. By default
    each block is one ``encode`` call; ``map_blocks`` (e.g. ``DaskEncoder.map_blocks``) takes all
    blocks and yields their vectors in order, so it can encode the next blocks meanwhile. Either
    way this function is the only writer of the cache.
    """
    t0 = time.perf_counter()
    keys = cache_keys(cache.model_id if cache is not None else "", texts)  # an empty cache is falsy (__len__)
    if cache is not None:
        _, missing = cache.lookup(keys)
    else:
        missing = list(range(len(texts)))
    # Identical texts are encoded once.
    first: dict[bytes, int] = {}
    for i in missing:
        first.setdefault(keys[i].tobytes(), i)
    todo = list(first.values())
    if lengths is not None:
        todo.sort(key=lambda i: -lengths[i])
    new: dict[bytes, np.ndarray] = {}
    blocks = [todo[start : start + block_size] for start in range(0, len(todo), block_size)]
    block_texts = ([texts[i] for i in block] for block in blocks)
    encoded = map_blocks(block_texts) if map_blocks is not None else map(encode, block_texts)
    for block, block_vecs in zip(blocks, encoded, strict=True):
        vecs = np.asarray(block_vecs, dtype=np.float32)
        block_keys = keys[block]
        if cache is not None:
            cache.add(block_keys, vecs)
        for key, vec in zip(block_keys.tolist(), vecs, strict=True):
            new[key] = vec
        if progress is not None:
            progress(len(block))
    out = np.empty((len(texts), dim), dtype=np.float32)
    for i, key in enumerate(keys.tolist()):
        out[i] = new[key] if key in new else cache.get(keys[i : i + 1], dim)[0]
    stats = EmbedStats(
        total=len(texts),
        cached=len(texts) - len(missing),
        encoded=len(todo),
        seconds=time.perf_counter() - t0,
        tokens_encoded=int(sum(lengths[i] for i in todo)) if lengths is not None else 0,
    )
    return out, stats


class Encoder:
    """A SentenceTransformer behind ``encode(texts) -> float32 [n, dim]``, L2-normalized.

    ``backend`` (``embed.backend``): ``torch`` runs sentence-transformers; ``onnx`` / ``onnx-int8``
    run the model exported to ONNX (ragops.encode.onnx_encoder; exported once into ``onnx_dir``). The
    backend is part of ``model_id`` (the cache key): int8 vectors never mix with fp32 ones. ``packaged``:
    ``onnx_dir`` is a registered package's, whose export is served whatever its int8 recipe.
    """

    def __init__(self, model_name: str, device: str = "cpu", batch_size: int = 64, backend: str = "torch",
                 onnx_dir: str | Path = DEFAULT_ONNX_DIR, packaged: bool = False) -> None:
        from ragops.encode.models import checked_device, load_sentence_transformer, model_fingerprint, resolve_model
        from ragops.encode.onnx_encoder import OnnxModel, check_backend, ensure_export

        self.model_name = model_name
        self.backend = check_backend(backend)
        if backend == "torch":  # a GPU the machine lacks: one line naming the setting, not a torch traceback
            checked_device(device, "embed.device")
        elif device != "cpu":
            log.warning("embed.device %s is not used: the %s backend runs on the CPU (embed.backend: torch runs "
                        "on the device)", device, backend)
        self.path = resolve_model(model_name)
        self.batch_size = batch_size
        fingerprint = model_fingerprint(self.path)
        if backend == "torch":
            self.model = load_sentence_transformer(model_name, device=device)
            self.dim = int(self.model.get_embedding_dimension())
            self.model_id = f"{fingerprint}:{self.model.max_seq_length}"
        else:
            folder = ensure_export(self.path, fingerprint, Path(onnx_dir).expanduser(), packaged)
            self.model = OnnxModel(folder, backend)
            self.dim = self.model.dim
            self.model_id = f"{fingerprint}:{self.model.max_seq_length}:{self.model.cache_tag}"

    def __call__(self, texts: list[str]) -> np.ndarray:
        return self.encode(texts)

    def encode(self, texts: list[str], show_progress: bool = False) -> np.ndarray:
        if self.backend != "torch":
            return self.model.encode(list(texts), batch_size=self.batch_size)
        return self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        ).astype(np.float32, copy=False)


class CachedEncoder:
    """``encoder`` behind the embedding cache for stages that encode many small batches (the `rag`
    stage's answers): known texts come from the cache, new ones are encoded and kept in memory until
    :meth:`flush` writes them as one segment. A rerun after a small corpus edit encodes only new text.
    Other attributes (``model``, ``dim``, ``model_id``) are the wrapped encoder's."""

    def __init__(self, encoder: Any, cache_dir: str | Path) -> None:
        self.encoder = encoder
        self.cache = EmbeddingCache(cache_dir, encoder.model_id)
        self._new: dict[bytes, np.ndarray] = {}
        self.hits = self.misses = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.encoder, name)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        keys = cache_keys(self.encoder.model_id, texts).tolist()
        out = np.empty((len(texts), self.encoder.dim), dtype=np.float32)
        missing = [i for i, k in enumerate(keys) if k not in self._new and k not in self.cache]
        if missing:
            vecs = self.encoder([texts[i] for i in missing])
            for i, v in zip(missing, vecs, strict=True):
                self._new[keys[i]] = np.asarray(v, dtype=np.float32)
        known = [i for i, k in enumerate(keys) if k not in self._new]
        if known:
            out[known] = self.cache.get(np.asarray([keys[i] for i in known], dtype="S32"), self.encoder.dim)
        for i, k in enumerate(keys):
            if k in self._new:
                out[i] = self._new[k]
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        return out

    def flush(self) -> None:
        """Write the vectors encoded since the last flush into the cache (one atomic segment)."""
        if self._new:
            keys = np.asarray(list(self._new), dtype="S32")
            self.cache.add(keys, np.stack(list(self._new.values())))
            self._new = {}
