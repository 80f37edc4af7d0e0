"""Training examples from the prepared data: train-split queries only, hard negatives never positive.

Everything here is pure (values in, values out), so the no-leak guarantee is testable on the real
prepared data without a model: :func:`train_positives` is the only door from qrels to training,
and it reads the ``train`` split alone (dev is carved from train; test is SciFact's own).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ragops.retrieval.records import Hits

TRAIN_SPLIT = "train"


@dataclass(frozen=True)
class Example:
    """One training example: a query, one relevant doc and hard negative docs (doc ids)."""

    query_id: str
    positive: str
    negatives: tuple[str, ...]


def train_positives(qrels: pd.DataFrame) -> dict[str, set[str]]:
    """``{query_id: relevant doc ids}`` of the train split only (score > 0)."""
    sub = qrels[(qrels["split"] == TRAIN_SPLIT) & (qrels["score"] > 0)]
    out: dict[str, set[str]] = {}
    for qid, did in zip(sub["query_id"].astype(str), sub["doc_id"].astype(str), strict=True):
        out.setdefault(qid, set()).add(did)
    return out


def mine_negatives(
    positives: set[str], runs: Sequence[Hits], n: int, skip_top: int, pool: int, rng: np.random.Generator
) -> tuple[str, ...]:
    """``n`` hard negatives for one query from ranked ``runs`` (e.g. BM25 and dense).

    Candidates are the runs interleaved rank by rank after dropping each run's first ``skip_top``
    documents (unjudged near-duplicates of a positive are often relevant: false negatives), never a
    positive, each once; ``n`` of the first ``pool`` are drawn with ``rng``.
    """
    seen: set[str] = set()
    cands: list[str] = []
    depth = max((len(r) for r in runs), default=0)
    for rank in range(skip_top, depth):
        for run in runs:
            if rank < len(run):
                doc = run.ids[rank]
                if doc not in positives and doc not in seen:
                    seen.add(doc)
                    cands.append(doc)
    cands = cands[:pool]
    if len(cands) <= n:
        return tuple(cands)
    picked = sorted(rng.choice(len(cands), size=n, replace=False).tolist())
    return tuple(cands[i] for i in picked)


def interleave(runs: Sequence[Hits], k: int) -> list[str]:
    """The first ``k`` distinct doc ids of ``runs`` taken rank by rank (run order breaks ties).

    Candidate pools of the base retrievers without fusion: the training stages then do not depend
    on the fusion settings, so tuning fusion never retrains a model.
    """
    seen: dict[str, None] = {}
    depth = max((len(r) for r in runs), default=0)
    for rank in range(depth):
        for run in runs:
            if rank < len(run) and len(seen) < k:
                seen.setdefault(run.ids[rank])
    return list(seen)


def build_examples(
    positives: Mapping[str, set[str]],
    runs: Mapping[str, Sequence[Hits]],
    n_negatives: int,
    skip_top: int,
    pool: int,
    seed: int,
) -> list[Example]:
    """One example per (train query, positive): multiple positives become separate examples.

    ``runs[qid]`` holds that query's ranked lists to mine from. Order: query id, then doc id (stable).
    """
    rng = np.random.default_rng(seed)
    out: list[Example] = []
    for qid in sorted(positives):
        for pos in sorted(positives[qid]):
            negs = mine_negatives(positives[qid], runs.get(qid, []), n_negatives, skip_top, pool, rng)
            out.append(Example(qid, pos, negs))
    return out


def best_chunk_rows(
    query_vecs: np.ndarray,
    chunk_vecs: np.ndarray,
    doc_rows: Mapping[str, Sequence[int]],
    pairs: Sequence[tuple[int, str]],
) -> list[int]:
    """For each (query position, doc id) the row of the doc's chunk closest to the query (MaxP's chunk)."""
    out = []
    for qpos, doc in pairs:
        rows = np.asarray(doc_rows[doc])
        out.append(int(rows[int(np.argmax(chunk_vecs[rows] @ query_vecs[qpos]))]))
    return out


def batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A seeded shuffle of ``range(n)`` cut into batches (the last one may be short, never empty)."""
    order = rng.permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]
