"""Deterministic splitting and sampling: the same ids and seed always give the same result."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from ragops.errors import ConfigError


def hash_unit(seed: int, key: str) -> float:
    """Map ``(seed, key)`` to a uniform number in [0, 1): ``int(sha256(f"{seed}:{key}")) / 2**256``.

    Depends on nothing but the key, so adding or removing other keys never moves this one.
    """
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest, "big") / 2**256


def carve_dev(train_query_ids: Iterable[str], fraction: float, seed: int) -> set[str]:
    """The train queries that go to dev: those with ``hash_unit(seed, qid) < fraction``.

    Stable: a query's split depends only on its own id and the seed, so adding queries to the
    dataset never moves an existing query between train and dev.
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"prepare.dev_fraction must be in [0, 1), got {fraction!r}")
    return {qid for qid in set(train_query_ids) if hash_unit(seed, qid) < fraction}


@dataclass(frozen=True)
class Sample:
    """A document sample and the qrels that still point into it."""

    docs: pd.DataFrame
    qrels: pd.DataFrame


def _pick(ids: Iterable[str], n: int, seed: int) -> list[str]:
    """The ``n`` ids with the smallest seeded hash (a seeded, order-independent sample)."""
    return sorted(ids, key=lambda i: (hash_unit(seed, i), i))[:n]


def sample_docs(docs: pd.DataFrame, qrels: pd.DataFrame, max_docs: int, seed: int) -> Sample:
    """Keep at most ``max_docs`` documents, about half of them relevant (score > 0 in any split).

    The rest is filled with other documents; if either pool is short the other fills the gap.
    Qrels whose document was dropped are dropped too (callers then drop queries with no qrels).
    ``max_docs == 0`` keeps everything.
    """
    if max_docs < 0:
        raise ConfigError(f"prepare.max_docs must be >= 0, got {max_docs!r}")
    if max_docs == 0 or max_docs >= len(docs):
        return Sample(docs=docs, qrels=qrels)
    relevant = set(qrels.loc[qrels["score"] > 0, "doc_id"]) & set(docs["doc_id"])
    others = set(docs["doc_id"]) - relevant
    n_other = min(len(others), max_docs - min(len(relevant), max_docs // 2))
    n_relevant = min(len(relevant), max_docs - n_other)
    keep = set(_pick(relevant, n_relevant, seed)) | set(_pick(others, n_other, seed))
    kept_docs = docs[docs["doc_id"].isin(keep)].reset_index(drop=True)
    kept_qrels = qrels[qrels["doc_id"].isin(keep)].reset_index(drop=True)
    return Sample(docs=kept_docs, qrels=kept_qrels)
