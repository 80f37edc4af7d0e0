"""Fusion of ranked lists as functions over ``list[Hits]`` (ARCHITECTURE style rule 6, after pyserini).

Every result is a :class:`Hits` ranked by fused score descending, ties by doc id ascending. A doc's
fused score is the exactly rounded sum of its per-run contributions (``math.fsum``), so it does not
depend on the order of the runs and equal sums really tie, leaving the order to the id.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from ragops.errors import ConfigError, unknown_name
from ragops.retrieval.records import Hits

FUSION_METHODS = ("convex", "rrf")
NORMALIZATIONS = ("minmax", "zscore", "none")


def normalize(scores: np.ndarray, method: str = "minmax") -> np.ndarray:
    """Rescale one run's scores; returns a new array.

    - ``minmax``: (s - min) / (max - min); all equal -> ones (every doc is that run's best);
    - ``zscore``: (s - mean) / std (population std); std 0 -> zeros;
    - ``none``: the scores unchanged.
    """
    if method not in NORMALIZATIONS:
        raise unknown_name("normalization", method, NORMALIZATIONS)
    s = np.array(scores, dtype=np.float64)  # a copy: the caller's array is never touched
    if method == "none" or s.size == 0:
        return s
    if method == "minmax":
        span = s.max() - s.min()
        return np.ones_like(s) if span == 0 else (s - s.min()) / span
    std = s.std()
    return np.zeros_like(s) if std == 0 else (s - s.mean()) / std


def _check_weights(weights: list[float], n_runs: int) -> list[float]:
    if len(weights) != n_runs:
        raise ConfigError(f"fusion: {len(weights)} weights for {n_runs} runs")
    bad = [w for w in weights if not (math.isfinite(w) and w >= 0)]
    if bad:
        raise ConfigError(f"fusion: weights must be finite and >= 0, got {list(weights)}")
    return [float(w) for w in weights]


def _check_k(k: int | None) -> None:
    if k is not None and k < 1:
        raise ConfigError(f"fusion: k must be >= 1 (or None for all), got {k}")


def _check_unique(run: Hits) -> None:
    if len(set(run.ids)) != len(run.ids):
        raise ValueError("fusion: a run lists the same doc id twice")


def _ranked(parts: dict[str, list[float]], k: int | None) -> Hits:
    return Hits.from_dict({doc: math.fsum(p) for doc, p in parts.items()}, k)


def convex(runs: list[Hits], weights: list[float], norm: str = "minmax", k: int | None = None) -> Hits:
    """Convex combination: fused(d) = sum_i w_i * norm_i(d) (Bruch, Gai & Ingber 2023).

    Each run is normalized over its own list. A doc that a run did not return gets that run's floor:
    0 for ``minmax`` (its worst returned doc) and ``none``; for ``zscore`` the run's lowest
    normalized score, since 0 there is the run's *mean* and would rank a missing doc above half of
    the docs the run did return.
    """
    weights = _check_weights(weights, len(runs))
    if norm not in NORMALIZATIONS:
        raise unknown_name("normalization", norm, NORMALIZATIONS)
    _check_k(k)
    for run in runs:
        _check_unique(run)
    every_id = {doc for run in runs for doc in run.ids}
    parts: dict[str, list[float]] = defaultdict(list)
    for run, w in zip(runs, weights, strict=True):
        s = normalize(run.scores, norm)
        floor = float(s.min()) if norm == "zscore" and s.size else 0.0
        mine = dict(zip(run.ids, s.tolist(), strict=True))
        for doc in every_id:
            parts[doc].append(w * mine.get(doc, floor))
    return _ranked(parts, k)


def rrf(runs: list[Hits], k_rrf: int = 60, weights: list[float] | None = None, k: int | None = None) -> Hits:
    """Reciprocal rank fusion: fused(d) = sum_i w_i / (k_rrf + rank_i(d)), rank from 1.

    A doc missing from a run contributes nothing for it (Cormack, Clarke & Buettcher 2009).
    Each ``Hits`` is taken as already ranked, best first.
    """
    weights = _check_weights([1.0] * len(runs) if weights is None else weights, len(runs))
    if k_rrf < 0:
        raise ConfigError(f"rrf: k_rrf must be >= 0, got {k_rrf}")
    _check_k(k)
    parts: dict[str, list[float]] = defaultdict(list)
    for run, w in zip(runs, weights, strict=True):
        _check_unique(run)
        for rank, doc in enumerate(run.ids, start=1):
            parts[doc].append(w / (k_rrf + rank))
    return _ranked(parts, k)


def fuse(
    method: str,
    runs: list[Hits],
    *,
    alpha: float = 0.5,
    norm: str = "minmax",
    rrf_k: int = 60,
    k: int | None = None,
) -> Hits:
    """Fuse runs by strategy name, with the knobs of params.yaml's ``fusion`` section.

    ``convex`` takes two runs, weighted ``alpha`` (runs[0]) and ``1 - alpha`` (runs[1]); call
    :func:`convex` directly for more. ``rrf`` weighs every run equally and ignores ``alpha``.
    An empty run is fine: the other run's order comes through alone.
    """
    if method not in FUSION_METHODS:
        raise unknown_name("fusion method", method, FUSION_METHODS)
    if norm not in NORMALIZATIONS:
        raise unknown_name("normalization", norm, NORMALIZATIONS)
    if not 0.0 <= alpha <= 1.0:  # also rejects nan
        raise ConfigError(f"fusion: alpha must be in [0, 1], got {alpha}")
    if method == "rrf":
        return rrf(runs, k_rrf=rrf_k, k=k)
    if len(runs) != 2:
        raise ConfigError(f"convex fusion by alpha needs 2 runs, got {len(runs)}; use convex() with weights")
    return convex(runs, [alpha, 1.0 - alpha], norm=norm, k=k)
