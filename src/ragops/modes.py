"""Every retrieval mode by name, over the base and the trained models.

- ``bm25``, ``dense``, ``hybrid``: the base models (``ragops.retrieval``);
- ``dense_ft``, ``hybrid_ft``: the fine-tuned embedder (``models/embedder``, its own FAISS index
  and fusion settings ``fusion_ft``), BM25 unchanged;
- ``hybrid_rerank``, ``hybrid_ft_rerank``: that hybrid list with its top ``rerank.n`` documents
  rescored by the trained cross-encoder (``models/reranker``).

Untrained models (a marker instead of a folder) fall back to the base: ``*_ft`` = base mode,
``*_rerank`` = the list without reranking.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ragops.errors import unknown_name
from ragops.records import Hits
from ragops.rerank import rerank_hits
from ragops.retrieval import MODES as BASE_MODES
from ragops.retrieval import Retriever

FT_MODES = ("dense_ft", "hybrid_ft")
RERANK_MODES = ("hybrid_rerank", "hybrid_ft_rerank")
ALL_MODES = BASE_MODES + FT_MODES + RERANK_MODES


@dataclass
class Router:
    """``search_batch(queries, mode, k)`` over every mode; the same interface as ``Retriever``."""

    base: Retriever
    ft: Retriever | None = None
    scorer: Callable[[str, list[str]], Any] | None = None  # (query, passages) -> scores
    passages: dict[str, str] | None = None  # doc id -> reranker input
    rerank_n: int = 10
    rerank_weight: float = 1.0
    # the same scores through a cache (evaluate); search_batch uses it, timed_search never does
    batch_scorer: Callable[[str, list[str]], Any] | None = None

    def search_batch(
        self, queries: Sequence[str], mode: str = "hybrid", k: int | None = None, fresh: bool = False
    ) -> list[Hits]:
        if mode not in ALL_MODES:
            raise unknown_name("mode", mode, ALL_MODES)
        if mode in RERANK_MODES:
            first = self.search_batch(queries, mode.removesuffix("_rerank"))
            scorer = self.scorer if fresh or self.batch_scorer is None else self.batch_scorer
            return [self.rerank(q, h, scorer).top(k or len(h)) for q, h in zip(queries, first, strict=True)]
        if mode in FT_MODES:
            return (self.ft or self.base).search_batch(queries, mode.removesuffix("_ft"), k)
        return self.base.search_batch(queries, mode, k)

    def rerank(self, query: str, hits: Hits, scorer: Callable[[str, list[str]], Any] | None = None) -> Hits:
        scorer = scorer or self.scorer
        if scorer is None or self.rerank_n <= 0:
            return hits
        top = hits.ids[: self.rerank_n]
        return rerank_hits(hits, scorer(query, [self.passages[d] for d in top]), self.rerank_weight)

    def search(self, query: str, mode: str = "hybrid", k: int | None = None) -> Hits:
        return self.search_batch([query], mode, k)[0]

    def timed_search(self, query: str, mode: str, k: int | None = None) -> tuple[Hits, float]:
        t0 = time.perf_counter()
        hits = self.search_batch([query], mode, k, fresh=True)[0]
        return hits, (time.perf_counter() - t0) * 1000.0


def load_router(params: dict[str, Any], modes: Sequence[str]) -> Router:
    """The built pipeline's models for ``modes`` (only what they need is loaded)."""
    import pandas as pd

    from ragops.artifacts import load_retriever
    from ragops.rerank import CrossEncoderScorer, doc_passage
    from ragops.training.artifacts import effective_reranker, ft_params

    for m in modes:
        if m not in ALL_MODES:
            raise unknown_name("mode", m, ALL_MODES)
    base = load_retriever(params, need_dense=any(m not in ("bm25",) for m in modes))
    router = Router(base=base)
    if any("_ft" in m for m in modes):
        # the fine-tuned embedder, its FAISS index and fusion_ft (the base ones while untrained)
        router.ft = load_retriever(ft_params(params))
    cfg = params.get("rerank", {})
    folder = effective_reranker(params)
    if folder is not None and any(m in RERANK_MODES for m in modes):
        scorer = CrossEncoderScorer(folder, int(cfg.get("max_length", 160)), int(cfg.get("batch_size", 32)))
        router.scorer = scorer.score
        docs = pd.read_parquet(params["paths"]["docs"])
        router.passages = {
            d: doc_passage(t, x) for d, t, x in zip(docs["doc_id"], docs["title"], docs["text"], strict=True)
        }
        router.rerank_n, router.rerank_weight = int(cfg.get("n", 10)), float(cfg.get("weight", 1.0))
    return router
