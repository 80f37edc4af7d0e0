"""The search pipeline: every retrieval mode by name, over the parts it composes.

- ``bm25``, ``dense``, ``hybrid``: the base embedder's :class:`~ragops.retrieval.retriever.Retriever`;
- ``dense_ft``, ``hybrid_ft``: the fine-tuned embedder's (its own FAISS index and fusion settings
  ``fusion_ft``), BM25 unchanged;
- ``hybrid_rerank``, ``hybrid_ft_rerank``: that hybrid list with its top ``n`` documents rescored by the
  :class:`Reranker` (the trained cross-encoder).

:class:`SearchPipeline` is the one object every caller searches through: evaluate, the tuning commands,
``ragops search``, the server, the MLflow pyfunc model, the answerer and the rag stage. The built project
and a packaged model assemble it by the same function (``ragops.retrieval.load.assemble_pipeline``), so a
registered version ranks exactly as the evaluation that gated it.

A pipeline *carries* the modes whose models it holds (:attr:`SearchPipeline.modes`); a mode it does not
carry is an error naming the ones it does. Without train judgments nothing is trained, so a pipeline
carries the base modes only (evaluate then reports, and the registry chooses among, what exists).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ragops.errors import ConfigError, unknown_name
from ragops.retrieval.records import Hits
from ragops.retrieval.rerank import rerank_hits
from ragops.retrieval.retriever import MODES as BASE_MODES
from ragops.retrieval.retriever import Retriever

FT_MODES = ("dense_ft", "hybrid_ft")
RERANK_MODES = ("hybrid_rerank", "hybrid_ft_rerank")
MODES = BASE_MODES + FT_MODES + RERANK_MODES

Scorer = Callable[[str, Sequence[str]], np.ndarray]  # (query, passages) -> one score per passage


def check_mode(mode: str, valid: Sequence[str] = MODES, what: str = "mode") -> str:
    if mode not in valid:
        raise unknown_name(what, mode, tuple(valid))
    return mode


def first_stage(mode: str) -> str:
    """The mode whose list a rerank mode rescores (``hybrid_ft_rerank`` -> ``hybrid_ft``)."""
    return mode.removesuffix("_rerank")


@dataclass(frozen=True)
class Reranker:
    """The trained cross-encoder over the top ``n`` of a list: final score =
    ``weight * z(cross-encoder) + (1 - weight) * z(first stage)`` (:func:`ragops.retrieval.rerank.rerank_hits`).

    ``score`` scores fresh; ``cached_score``, when set, gives the same scores through a cache (batch
    evaluation) and is used unless ``fresh`` is asked for (latency is always timed fresh).
    """

    score: Scorer
    passages: Mapping[str, str]  # doc id -> the text the cross-encoder reads
    n: int = 10
    weight: float = 1.0
    model: Any = None  # the scoring model (rerank.CrossEncoderScorer): its fingerprint keys score caches
    cached_score: Scorer | None = None

    def rerank(self, query: str, hits: Hits, fresh: bool = True) -> Hits:
        if self.n <= 0 or not hits.ids:
            return hits
        scorer = self.score if fresh or self.cached_score is None else self.cached_score
        top = hits.ids[: self.n]
        return rerank_hits(hits, scorer(query, [self.passages[d] for d in top]), self.weight)

    def with_cache(self, cached_score: Scorer | None) -> Reranker:
        return replace(self, cached_score=cached_score)


@dataclass(frozen=True)
class SearchPipeline:
    """``search_batch(queries, mode, k)`` over every mode it carries (module docstring)."""

    base: Retriever
    ft: Retriever | None = None
    reranker: Reranker | None = None
    default_mode: str = "hybrid"

    def __post_init__(self) -> None:
        if self.default_mode not in self.modes:
            raise ConfigError(
                f"default mode {self.default_mode!r} is not one this pipeline carries: {', '.join(self.modes)}"
            )

    @property
    def modes(self) -> tuple[str, ...]:
        """The modes whose models this pipeline holds, in the canonical order."""
        carried = ["bm25"]
        if self.base.has_dense:
            carried += ["dense", "hybrid"]
        if self.ft is not None and self.ft.has_dense:
            carried += list(FT_MODES)
        if self.reranker is not None:
            carried += [m for m in RERANK_MODES if first_stage(m) in carried]
        return tuple(m for m in MODES if m in carried)

    @property
    def encode(self):
        """The base sentence encoder (answers and the grounding scorer read with it), or None."""
        return self.base.encode

    def resolve(self, mode: str | None) -> str:
        """``mode`` checked against what this pipeline serves (None: the default mode)."""
        return check_mode(self.default_mode if mode is None else mode, self.modes)

    def retriever(self, mode: str) -> Retriever:
        """The retriever that serves ``mode``'s first stage (the fine-tuned one for ``*_ft*``)."""
        return self.ft if "_ft" in mode else self.base

    def search_batch(
        self, queries: Sequence[str], mode: str | None = None, k: int | None = None, fresh: bool = False
    ) -> list[Hits]:
        mode = self.resolve(mode)
        queries = list(queries)
        if mode in RERANK_MODES:
            first = self.search_batch(queries, first_stage(mode), None, fresh)
            return [self.reranker.rerank(q, h, fresh).top(k or len(h)) for q, h in zip(queries, first, strict=True)]
        return self.retriever(mode).search_batch(queries, mode.removesuffix("_ft"), k)

    def search(self, query: str, mode: str | None = None, k: int | None = None) -> Hits:
        return self.search_batch([query], mode, k)[0]

    def timed_search(self, query: str, mode: str | None = None, k: int | None = None) -> tuple[Hits, float]:
        """One query, end to end (encoding and fresh reranking included): (hits, milliseconds)."""
        t0 = time.perf_counter()
        hits = self.search_batch([query], mode, k, fresh=True)[0]
        return hits, (time.perf_counter() - t0) * 1000.0

    def map_encoders(self, wrap: Callable[[Any], Any]) -> SearchPipeline:
        """The same pipeline with each query encoder replaced by ``wrap(encoder)`` (a cache, a memo)."""
        ft = None
        if self.ft is not None:
            ft = self.ft.with_encoder(wrap(self.ft.encode) if self.ft.encode is not None else None)
        base = self.base.with_encoder(wrap(self.base.encode) if self.base.encode is not None else None)
        return replace(self, base=base, ft=ft)

    def with_reranker(self, reranker: Reranker | None) -> SearchPipeline:
        return replace(self, reranker=reranker)
