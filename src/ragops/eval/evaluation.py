"""Evaluation of retrieval modes on a split: metrics per query and on average, and latency.

Metrics are computed on batched retrieval; latency is timed one query at a time through the
same code path on a fixed sample (the batch and single-query paths rank identically: tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ragops.eval.metrics import mean_metrics, per_query
from ragops.retrieval.records import Hits

DEFAULT_METRICS = ("ndcg@10", "mrr@10", "p@10", "recall@100", "map@100")


@dataclass(frozen=True)
class ModeResult:
    mean: dict[str, float]
    per_query: dict[str, dict[str, float]]
    latency_ms: list[float]


def qrels_for_split(qrels: pd.DataFrame, split: str) -> dict[str, dict[str, int]]:
    sub = qrels[qrels["split"] == split]
    out: dict[str, dict[str, int]] = {}
    for qid, did, score in zip(sub["query_id"], sub["doc_id"], sub["score"], strict=True):
        out.setdefault(str(qid), {})[str(did)] = int(score)
    return out


def as_run(query_ids: Sequence[str], hits: Sequence[Hits]) -> dict[str, dict[str, float]]:
    return {q: h.as_dict() for q, h in zip(query_ids, hits, strict=True)}


def latency_sample(query_ids: Sequence[str], n: int, seed: int) -> list[int]:
    """Positions of a fixed, seeded sample of ``n`` queries (all when n >= len)."""
    if n <= 0:
        return []
    if n >= len(query_ids):
        return list(range(len(query_ids)))
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(len(query_ids), size=n, replace=False).tolist())


def evaluate_mode(
    pipeline,
    query_ids: Sequence[str],
    query_texts: Sequence[str],
    qrels: dict[str, dict[str, int]],
    mode: str,
    metrics: Sequence[str] = DEFAULT_METRICS,
    n_latency: int = 100,
    seed: int = 42,
) -> ModeResult:
    hits = pipeline.search_batch(query_texts, mode)
    run = as_run(query_ids, hits)
    latencies = [pipeline.timed_search(query_texts[i], mode)[1] for i in latency_sample(query_ids, n_latency, seed)]
    return ModeResult(
        mean=mean_metrics(qrels, run, list(metrics)),
        per_query=per_query(qrels, run, list(metrics)),
        latency_ms=latencies,
    )


def summarize(result: ModeResult) -> dict[str, float]:
    """Mean metrics (rounded for stable diffs) plus latency mean and p95 in ms."""
    out = {name: round(float(v), 4) for name, v in result.mean.items()}
    if result.latency_ms:
        lat = np.asarray(result.latency_ms)
        out["latency_ms"] = round(float(lat.mean()), 2)
        out["latency_p95_ms"] = round(float(np.percentile(lat, 95)), 2)
    return out
