"""An LRU cache of query embeddings around a query encoder (``texts -> float32 [n, dim]``).

Repeated queries (a page reloaded, a popular question) skip the model: on 2 cores one encode is
most of a hybrid query's time. One cache per loaded model version: another embedder means other vectors.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

EncodeFn = Callable[[list[str]], np.ndarray]


class QueryCache:
    """``QueryCache(encode, size)(texts)`` equals ``encode(texts)``, encoding only texts not cached.

    Thread-safe; the lock is never held while the model runs, so concurrent misses encode in parallel
    (two threads missing the same text both encode it: harmless, and rarer than blocking would cost).
    ``on_lookup(hits, misses)`` is called once per call (the server counts them in /metrics).
    """

    def __init__(self, encode: EncodeFn, size: int, on_lookup: Callable[[int, int], None] | None = None) -> None:
        self.encode = encode
        self.size = int(size)
        self.on_lookup = on_lookup
        self.hits = 0
        self.misses = 0
        self._data: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._data)

    def __call__(self, texts: list[str]) -> np.ndarray:
        texts = list(texts)
        if self.size <= 0:
            self._count(0, len(texts))
            return self.encode(texts)
        rows: list[np.ndarray | None] = [None] * len(texts)
        with self._lock:
            for i, text in enumerate(texts):
                vec = self._data.get(text)
                if vec is not None:
                    self._data.move_to_end(text)
                    rows[i] = vec
        todo = list(dict.fromkeys(t for t, r in zip(texts, rows, strict=True) if r is None))
        self._count(len(texts) - sum(r is None for r in rows), sum(r is None for r in rows))
        if todo:
            vecs = np.asarray(self.encode(todo), dtype=np.float32)
            fresh = {}
            for text, vec in zip(todo, vecs, strict=True):
                vec = vec.copy()
                vec.setflags(write=False)  # shared between requests: nobody may change it
                fresh[text] = vec
            with self._lock:
                for text, vec in fresh.items():
                    self._data[text] = vec
                    self._data.move_to_end(text)
                while len(self._data) > self.size:
                    self._data.popitem(last=False)
            rows = [fresh[t] if r is None else r for t, r in zip(texts, rows, strict=True)]
        return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    def _count(self, hits: int, misses: int) -> None:
        with self._lock:
            self.hits += hits
            self.misses += misses
        if self.on_lookup is not None:
            self.on_lookup(hits, misses)
