"""Ranking metrics as pure functions over qrels and runs (ARCHITECTURE style rule 5, after ranx).

A metric is named by a string ``"<kind>@<k>"``: ``ndcg@10``, ``mrr@10``, ``p@10``, ``recall@100``,
``map@100``. Every function here reads its inputs and never mutates them.

Conventions, chosen to match trec_eval (and so pytrec_eval, which ``tests/test_metrics.py`` checks):

- a run is ranked by score descending, ties by doc id ascending (trec_eval breaks ties differently,
  by doc id descending, so the reference test uses unique scores); only the top ``k`` count for ``@k``;
- a judged grade ``> 0`` is relevant; nDCG uses the grade itself as the gain (linear, like trec_eval);
- a query counts when qrels give it at least one relevant doc; a query missing from the run scores 0.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from ragops.errors import unknown_name
from ragops.retrieval.records import Hits

Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]

METRIC_KINDS = ("ndcg", "mrr", "p", "recall", "map")
METRIC_FORMS = tuple(f"{kind}@k" for kind in METRIC_KINDS)
PAIRED_TESTS = ("randomization", "ttest")

_METRIC_RE = re.compile(r"^(?P<kind>[a-z]+)@(?P<k>[1-9][0-9]*)$")


def parse_metric(name: str) -> tuple[str, int]:
    """Split ``"ndcg@10"`` into ``("ndcg", 10)``; anything else raises ConfigError listing the forms."""
    match = _METRIC_RE.match(name.strip().lower()) if isinstance(name, str) else None
    if match is None or match["kind"] not in METRIC_KINDS:
        raise unknown_name("metric", str(name), METRIC_FORMS)
    return match["kind"], int(match["k"])


def _discounts(n: int) -> np.ndarray:
    """``1 / log2(rank + 1)`` for ranks 1..n."""
    return 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))


def _ndcg(gains: np.ndarray, ideal: np.ndarray, k: int) -> float:
    """nDCG@k = DCG@k / IDCG@k, DCG@k = sum_{r<=k} gain_r / log2(r + 1) (linear gain = grade).

    IDCG@k is the DCG of all judged relevant grades of the query sorted descending, cut at k
    (Jarvelin & Kekalainen 2002; trec_eval's ndcg_cut).
    """
    g, ig = gains[:k], ideal[:k]
    return float(g @ _discounts(len(g)) / (ig @ _discounts(len(ig))))


def _mrr(gains: np.ndarray, ideal: np.ndarray, k: int) -> float:
    """MRR@k = 1 / rank of the first relevant doc within the top k, else 0."""
    hits = np.flatnonzero(gains[:k] > 0)
    return 1.0 / (hits[0] + 1) if hits.size else 0.0


def _precision(gains: np.ndarray, ideal: np.ndarray, k: int) -> float:
    """P@k = |relevant in top k| / k (k, not the list length, like trec_eval's P_k)."""
    return float(np.count_nonzero(gains[:k] > 0)) / k


def _recall(gains: np.ndarray, ideal: np.ndarray, k: int) -> float:
    """recall@k = |relevant in top k| / |relevant judged for the query|."""
    return float(np.count_nonzero(gains[:k] > 0)) / len(ideal)


def _map(gains: np.ndarray, ideal: np.ndarray, k: int) -> float:
    """AP@k = (sum over relevant docs at rank r <= k of P@r) / |relevant judged| (trec_eval's map_cut)."""
    rel = gains[:k] > 0
    precision_at = np.cumsum(rel) / np.arange(1, len(rel) + 1)
    return float(precision_at[rel].sum()) / len(ideal)


_METRICS: dict[str, Callable[[np.ndarray, np.ndarray, int], float]] = {
    "ndcg": _ndcg,
    "mrr": _mrr,
    "p": _precision,
    "recall": _recall,
    "map": _map,
}


def _ranked_gains(judged: dict[str, int], scores: dict[str, float], depth: int) -> np.ndarray:
    """Grades (negatives as 0) of the run's top ``depth`` docs, in ragops ranking order."""
    ids = Hits.from_dict(scores, depth).ids
    return np.asarray([max(judged.get(doc, 0), 0) for doc in ids], dtype=np.float64)


def per_query(qrels: Qrels, run: Run, metrics: list[str]) -> dict[str, dict[str, float]]:
    """``{qid: {metric: value}}`` over the qrels queries with at least one relevant doc.

    Each query's run is ranked once, to the largest k asked for. Metric names are validated
    before any work, so a typo fails even when no query counts.
    """
    parsed = {name: parse_metric(name) for name in metrics}
    depth = max((k for _, k in parsed.values()), default=0)
    out: dict[str, dict[str, float]] = {}
    for qid, judged in qrels.items():
        ideal = np.sort(np.asarray([g for g in judged.values() if g > 0], dtype=np.float64))[::-1]
        if ideal.size == 0:
            continue
        gains = _ranked_gains(judged, run.get(qid, {}), depth)
        out[qid] = {name: _METRICS[kind](gains, ideal, k) for name, (kind, k) in parsed.items()}
    return out


def mean_metrics(qrels: Qrels, run: Run, metrics: list[str]) -> dict[str, float]:
    """Mean of :func:`per_query` over the qrels queries with at least one relevant doc."""
    rows = per_query(qrels, run, metrics)
    if not rows:
        raise ValueError(
            f"no query to evaluate: none of the {len(qrels)} qrels queries has a relevant doc (grade > 0)"
        )
    return {name: float(np.mean([row[name] for row in rows.values()])) for name in metrics}


def _sign_flip_p(diffs: np.ndarray, n_resamples: int, seed: int) -> float:
    """Two-sided paired randomization test: flip the sign of each difference at random.

    p = (1 + #{resamples with |mean| >= observed |mean|}) / (n_resamples + 1), the add-one
    estimate that is never 0 (Smucker, Allan & Carterette 2007; Phipson & Smyth 2010).
    """
    rng = np.random.default_rng(seed)
    observed = abs(diffs.mean())
    # A small slack so that float noise in the sums never drops the observed arrangement itself.
    threshold = observed - 1e-12 * max(1.0, float(np.abs(diffs).max(initial=0.0)))
    extreme, block = 0, 1000  # blocks keep memory at block x n, not n_resamples x n
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(size, diffs.size))
        extreme += int(np.count_nonzero(np.abs(signs @ diffs) / diffs.size >= threshold))
    return (1 + extreme) / (n_resamples + 1)


def _ttest_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided paired Student t-test (scipy.stats.ttest_rel); identical inputs give p = 1."""
    try:
        from scipy.stats import ttest_rel
    except ImportError as exc:  # scipy comes with scikit-learn; say what to do if it is gone
        raise ImportError("paired_test(method='ttest') needs scipy; use method='randomization'") from exc
    if np.array_equal(a, b):
        return 1.0  # scipy answers nan for zero variance of zero differences
    return float(ttest_rel(b, a).pvalue)


def paired_test(
    a: dict[str, float],
    b: dict[str, float],
    method: str = "randomization",
    n_resamples: int = 10000,
    seed: int = 0,
) -> dict[str, float]:
    """Is system b different from system a, query by query? Two-sided, on their common query ids.

    Returns ``n``, ``mean_a``, ``mean_b``, ``mean_diff`` (b - a) and ``p_value``. ``method`` is
    ``"randomization"`` (sign-flip test, seeded by ``seed``) or ``"ttest"`` (paired t-test).
    """
    if method not in PAIRED_TESTS:
        raise unknown_name("paired test", method, PAIRED_TESTS)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError("paired_test: the two systems share no query id")
    xa = np.asarray([a[q] for q in common], dtype=np.float64)
    xb = np.asarray([b[q] for q in common], dtype=np.float64)
    if method == "randomization":
        p_value = _sign_flip_p(xb - xa, n_resamples, seed)
    else:
        p_value = _ttest_p(xa, xb)
    return {
        "n": len(common),
        "mean_a": float(xa.mean()),
        "mean_b": float(xb.mean()),
        "mean_diff": float((xb - xa).mean()),
        "p_value": p_value,
    }
