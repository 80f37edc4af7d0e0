"""Reranking the top of a ranked list with a cross-encoder, optionally interpolated with the
first-stage (fused) score.

The ordering is a pure function (:func:`rerank_hits`) over a :class:`Hits` and the cross-encoder's
scores of its first ``n`` documents; :class:`CrossEncoderScorer` is the short wrapper holding the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ragops.retrieval.fusion import normalize
from ragops.retrieval.records import Hits, rank_order


def rerank_hits(hits: Hits, ce_scores: np.ndarray, weight: float = 1.0) -> Hits:
    """Reorder the first ``len(ce_scores)`` documents of ``hits`` by
    ``weight * z(ce) + (1 - weight) * z(first stage)`` (z-scores over those documents; weight 1 =
    the cross-encoder alone). The documents below keep their order, after the reranked ones."""
    n = len(ce_scores)
    if n == 0:
        return hits
    ids = hits.ids[:n]
    combined = weight * normalize(np.asarray(ce_scores, dtype=np.float64), "zscore")
    if weight < 1.0:
        combined = combined + (1.0 - weight) * normalize(np.asarray(hits.scores[:n], dtype=np.float64), "zscore")
    order = rank_order(ids, combined)
    top_scores = combined[order]
    floor = float(top_scores.min()) if n else 0.0
    # Scores below the reranked block keep the rank order, strictly below it.
    tail = floor - 1.0 - np.arange(len(hits) - n, dtype=np.float64)
    return Hits([ids[i] for i in order] + hits.ids[n:], np.concatenate([top_scores, tail]))


def doc_passage(title: str, text: str) -> str:
    """The document as the reranker reads it: title, then the abstract (truncated by the tokenizer)."""
    title = (title or "").strip()
    return f"{title}. {text}" if title else str(text)


class CrossEncoderScorer:
    """A sequence-classification model (one logit) scoring (query, passage) pairs.

    ``max_length`` bounds query + passage in tokens; the passage is truncated first. The folder is
    a standard Hugging Face one, loadable by sentence-transformers' ``CrossEncoder`` as well.
    """

    def __init__(self, path: str | Path, max_length: int = 192, batch_size: int = 32) -> None:
        from ragops.encode.models import offline_env

        offline_env()
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.path = Path(path)
        self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(str(path), local_files_only=True)
        self.model.eval()
        self.max_length = max_length
        self.batch_size = batch_size

    def features(self, queries: Sequence[str], passages: Sequence[str]):
        return self.tokenizer(
            list(queries),
            list(passages),
            truncation="longest_first",
            max_length=self.max_length,
            padding=True,
            return_tensors="pt",
        )

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        return self.score_pairs([query] * len(passages), passages)

    def score_pairs(self, queries: Sequence[str], passages: Sequence[str]) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for i in range(0, len(passages), self.batch_size):
                feats = self.features(queries[i : i + self.batch_size], passages[i : i + self.batch_size])
                out.append(self.model(**feats).logits[:, 0].float().numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


class PairEncoder:
    """A cross-encoder seen as an encoder of joined (query, passage) texts into one-value vectors, so
    that ``ragops.encode.encoder.CachedEncoder`` can keep its scores (the `evaluate` stage: a rerun after a
    small corpus edit scores only the pairs it has not seen)."""

    SEP = "\x00"
    dim = 1

    def __init__(self, scorer: CrossEncoderScorer) -> None:
        from ragops.encode.models import model_fingerprint

        self.scorer = scorer
        self.model_id = f"cross-encoder:{model_fingerprint(scorer.path)}:{scorer.max_length}"

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        queries, passages = zip(*(t.split(self.SEP, 1) for t in texts), strict=True)
        return self.scorer.score_pairs(list(queries), list(passages))[:, None]

    @classmethod
    def join(cls, query: str, passages: Sequence[str]) -> list[str]:
        return [f"{query}{cls.SEP}{p}" for p in passages]
