"""One embedder's retrieval over the indexes: ``bm25``, ``dense`` and ``hybrid`` (fusion by name).

:class:`Retriever` is a part: :class:`ragops.retrieval.pipeline.SearchPipeline` composes a base and a fine-tuned
one with the reranker, and is what callers search through. Dense search runs over chunks; chunk
scores are aggregated to documents by max (MaxP, Dai & Callan 2019). Every list is ranked score desc, then id asc.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ragops.errors import unknown_name
from ragops.retrieval.fusion import fuse
from ragops.retrieval.index.dense import search_dense
from ragops.retrieval.index.sparse import BM25Index
from ragops.retrieval.records import Hits

MODES = ("bm25", "dense", "hybrid")


def max_by_doc(row_scores: np.ndarray, row_ids: np.ndarray, row_doc: Sequence[str], k: int) -> Hits:
    """Aggregate chunk hits to documents by their best chunk; top ``k`` documents."""
    best: dict[str, float] = {}
    for score, row in zip(row_scores.tolist(), row_ids.tolist(), strict=True):
        if row < 0:
            continue
        doc = row_doc[row]
        if doc not in best or score > best[doc]:
            best[doc] = score
    return Hits.from_dict(best, k)


@dataclass(frozen=True)
class FusionConfig:
    method: str = "convex"
    alpha: float = 0.5
    norm: str = "minmax"
    rrf_k: int = 60
    # Dense pseudo-relevance feedback (Rocchio): q' = q + prf_beta * mean vector of the first fused list's
    # top prf_docs documents; the dense side is searched again with q' and fused again. 0 = off.
    prf_docs: int = 0
    prf_beta: float = 0.0

    @property
    def feedback(self) -> bool:
        return self.prf_docs > 0 and self.prf_beta > 0


@dataclass
class Retriever:
    """Holds the loaded indexes; ``encode`` turns query texts into normalized vectors."""

    bm25: BM25Index | None
    dense_index: object | None
    encode: Callable[[list[str]], np.ndarray] | None
    row_doc: Sequence[str] = field(default_factory=list)  # FAISS row -> doc id
    depth: int = 100
    dense_chunk_k: int = 400
    fusion: FusionConfig = field(default_factory=FusionConfig)
    bm25_row_doc: dict[str, str] | None = None  # chunk id -> doc id when BM25 indexes chunks
    _doc_rows: dict[str, list[int]] | None = field(default=None, init=False, repr=False)

    def bm25_search(self, queries: Sequence[str]) -> list[Hits]:
        """BM25 document lists (chunk hits aggregated by MaxP when BM25 indexes chunks)."""
        hits = self.bm25.search_batch(queries, self.depth if self.bm25_row_doc is None else self.dense_chunk_k)
        if self.bm25_row_doc is None:
            return hits
        return [
            max_by_doc(h.scores, np.arange(len(h.ids)), [self.bm25_row_doc[i] for i in h.ids], self.depth) for h in hits
        ]

    def dense_search(self, query_vecs: np.ndarray) -> list[Hits]:
        """Dense document lists for encoded queries (MaxP over ``dense_chunk_k`` chunk hits)."""
        scores, rows = search_dense(self.dense_index, query_vecs, self.dense_chunk_k)
        return [max_by_doc(scores[i], rows[i], self.row_doc, self.depth) for i in range(len(rows))]

    def components(self, queries: Sequence[str]) -> tuple[list[Hits], list[Hits]]:
        """(dense, bm25) document lists per query, before fusion (used to tune fusion)."""
        queries = list(queries)
        return self.dense_search(self.encode(queries)), self.bm25_search(queries)

    def with_encoder(self, encode: Callable[[list[str]], np.ndarray] | None) -> Retriever:
        """The same indexes behind another query encoder (a cache, a memo, another backend)."""
        return replace(self, encode=encode)

    @property
    def has_dense(self) -> bool:
        return self.dense_index is not None and self.encode is not None

    def doc_vector(self, doc: str) -> np.ndarray:
        """Mean of a document's chunk vectors, read back from the FAISS index."""
        if self._doc_rows is None:
            rows: dict[str, list[int]] = {}
            for i, d in enumerate(self.row_doc):
                rows.setdefault(d, []).append(i)
            self._doc_rows = rows
        return np.mean([self.dense_index.reconstruct(i) for i in self._doc_rows[doc]], axis=0)

    def feedback_vectors(self, query_vecs: np.ndarray, first: Sequence[Hits], docs: int, beta: float) -> np.ndarray:
        """Rocchio: each query vector moved towards its first list's top ``docs`` documents, renormalized."""
        out = np.array(query_vecs, dtype=np.float32)
        for i, hits in enumerate(first):
            top = hits.ids[:docs]
            if top:
                v = out[i] + beta * np.mean([self.doc_vector(d) for d in top], axis=0)
                out[i] = v / max(float(np.linalg.norm(v)), 1e-12)
        return out

    def hybrid(
        self, query_vecs: np.ndarray, dense: list[Hits], sparse: list[Hits], f: FusionConfig, k: int
    ) -> list[Hits]:
        """Fused lists under ``f``; with feedback on, the dense side is searched again from the fused top."""
        fused = [
            fuse(f.method, [d, s], alpha=f.alpha, norm=f.norm, rrf_k=f.rrf_k, k=k)
            for d, s in zip(dense, sparse, strict=True)
        ]
        if not f.feedback:
            return fused
        dense = self.dense_search(self.feedback_vectors(query_vecs, fused, f.prf_docs, f.prf_beta))
        return self.hybrid(query_vecs, dense, sparse, replace(f, prf_docs=0), k)

    def search_batch(self, queries: Sequence[str], mode: str = "hybrid", k: int | None = None) -> list[Hits]:
        if mode not in MODES:
            raise unknown_name("mode", mode, MODES)
        k = k or self.depth
        queries = list(queries)
        if not queries:
            return []
        sparse = self.bm25_search(queries) if mode in ("bm25", "hybrid") else None
        vecs = self.encode(queries) if mode in ("dense", "hybrid") else None
        dense = self.dense_search(vecs) if vecs is not None else None
        if mode == "bm25":
            return [h.top(k) for h in sparse]
        if mode == "dense":
            return [h.top(k) for h in dense]
        return self.hybrid(vecs, dense, sparse, self.fusion, k)

    def search(self, query: str, mode: str = "hybrid", k: int | None = None) -> Hits:
        return self.search_batch([query], mode, k)[0]

    def timed_search(self, query: str, mode: str, k: int | None = None) -> tuple[Hits, float]:
        """One query, end to end (encoding included): (hits, milliseconds)."""
        t0 = time.perf_counter()
        hits = self.search(query, mode, k)
        return hits, (time.perf_counter() - t0) * 1000.0
