"""ragops.eval.metrics: hand-worked cases, then agreement with pytrec_eval (trec_eval) on random runs."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from ragops.errors import ConfigError
from ragops.eval.metrics import mean_metrics, paired_test, parse_metric, per_query

ALL = ["ndcg@10", "ndcg@2", "mrr@10", "mrr@2", "p@10", "p@2", "recall@2", "recall@10", "map@2", "map@10"]


def test_binary_hand_worked() -> None:
    # Relevant d1, d3 (2 relevant); ranking d1, d2, d3, d4 -> relevant at ranks 1 and 3.
    qrels = {"q": {"d1": 1, "d3": 1, "d2": 0}}
    run = {"q": {"d1": 0.9, "d2": 0.8, "d3": 0.7, "d4": 0.6}}
    got = per_query(qrels, run, ALL)["q"]
    # DCG@10 = 1/log2(2) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) = 1.6309
    assert got["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)), abs=1e-12)
    # top 2 = d1, d2: DCG@2 = 1, IDCG@2 = 1 + 1/log2(3)
    assert got["ndcg@2"] == pytest.approx(1 / (1 + 1 / math.log2(3)), abs=1e-12)
    assert got["mrr@10"] == 1.0 and got["mrr@2"] == 1.0
    assert got["p@10"] == pytest.approx(2 / 10)  # divides by k, not by the 4 returned
    assert got["p@2"] == pytest.approx(1 / 2)
    assert got["recall@2"] == pytest.approx(1 / 2) and got["recall@10"] == 1.0
    # AP@10 = (P@1 + P@3) / 2 = (1 + 2/3) / 2; AP@2 = P@1 / 2 (d3 is beyond the cut)
    assert got["map@10"] == pytest.approx((1 + 2 / 3) / 2, abs=1e-12)
    assert got["map@2"] == pytest.approx(1 / 2, abs=1e-12)


def test_mrr_first_relevant_beyond_cut() -> None:
    qrels = {"q": {"c": 1}}
    run = {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}  # c at rank 3
    got = per_query(qrels, run, ["mrr@10", "mrr@2", "recall@2", "map@10"])["q"]
    assert got["mrr@10"] == pytest.approx(1 / 3)
    assert got["mrr@2"] == 0.0 and got["recall@2"] == 0.0
    assert got["map@10"] == pytest.approx(1 / 3)  # P@3 / 1


def test_graded_relevance() -> None:
    qrels = {"q": {"a": 2, "b": 1, "c": 0}}
    run = {"q": {"b": 0.9, "a": 0.8, "c": 0.7}}
    got = per_query(qrels, run, ["ndcg@3", "p@3", "recall@3", "mrr@3"])["q"]
    # DCG = 1/log2(2) + 2/log2(3) + 0; IDCG = 2/log2(2) + 1/log2(3) (linear gain = grade)
    dcg, idcg = 1 + 2 / math.log2(3), 2 + 1 / math.log2(3)
    assert got["ndcg@3"] == pytest.approx(dcg / idcg, abs=1e-12)
    assert got["p@3"] == pytest.approx(2 / 3)  # grade 0 is not relevant
    assert got["recall@3"] == 1.0 and got["mrr@3"] == 1.0


def test_negative_grade_is_not_relevant_and_gains_nothing() -> None:
    qrels = {"q": {"a": -1, "b": 1}}
    run = {"q": {"a": 2.0, "b": 1.0}}
    got = per_query(qrels, run, ["ndcg@10", "mrr@10", "p@1"])["q"]
    assert got["ndcg@10"] == pytest.approx(1 / math.log2(3))  # b at rank 2, IDCG = 1
    assert got["mrr@10"] == pytest.approx(1 / 2) and got["p@1"] == 0.0


def test_ties_break_by_doc_id_ascending_whatever_the_insertion_order() -> None:
    qrels = {"q": {"b": 1}}
    first = per_query(qrels, {"q": {"a": 0.5, "b": 0.5}}, ["mrr@10"])["q"]["mrr@10"]
    second = per_query(qrels, {"q": {"b": 0.5, "a": 0.5}}, ["mrr@10"])["q"]["mrr@10"]
    assert first == second == 0.5  # a before b
    assert per_query(qrels, {"q": {"c": 0.5, "b": 0.5}}, ["mrr@10"])["q"]["mrr@10"] == 1.0
    # The tie at the cut decides which doc is inside top 1.
    assert per_query(qrels, {"q": {"c": 0.5, "b": 0.5}}, ["p@1"])["q"]["p@1"] == 1.0


def test_query_sets() -> None:
    qrels = {"q1": {"d": 1}, "q2": {"d": 0}, "q3": {"d": 2}, "q4": {}}
    run = {"q1": {"d": 1.0}, "q2": {"d": 1.0}, "q9": {"d": 1.0}}  # q3 missing, q9 unjudged
    got = per_query(qrels, run, ["ndcg@10", "mrr@10", "p@1", "recall@10", "map@10"])
    assert set(got) == {"q1", "q3"}  # only queries with a relevant doc
    assert all(v == 0.0 for v in got["q3"].values())
    assert all(v == 1.0 for v in got["q1"].values())
    assert mean_metrics(qrels, run, ["ndcg@10", "p@1"]) == {"ndcg@10": 0.5, "p@1": 0.5}
    assert per_query(qrels, {"q3": {}}, ["ndcg@10"])["q3"]["ndcg@10"] == 0.0


def test_mean_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no query to evaluate"):
        mean_metrics({"q": {"d": 0}}, {"q": {"d": 1.0}}, ["ndcg@10"])
    with pytest.raises(ValueError):
        mean_metrics({}, {}, ["ndcg@10"])


def test_inputs_are_not_mutated() -> None:
    qrels = {"q": {"a": 2, "b": 0, "c": 1}, "r": {"x": 1}}
    run = {"q": {"a": 0.1, "b": 0.5, "z": 0.5}, "s": {"x": 1.0}}
    metrics = ["map@10", "ndcg@3"]
    before = copy.deepcopy((qrels, run, metrics))
    per_query(qrels, run, metrics)
    mean_metrics(qrels, run, metrics)
    assert (qrels, run, metrics) == before
    assert list(run["q"]) == ["a", "b", "z"]  # insertion order untouched too


def test_parse_metric_and_unknown_names() -> None:
    assert parse_metric("ndcg@10") == ("ndcg", 10)
    assert parse_metric("recall@100") == ("recall", 100)
    assert parse_metric("P@5") == ("p", 5)
    for bad in ["ndcg", "ndcg@0", "ndcg@k", "bleu@10", "map@-1", "ndcg@10x", ""]:
        with pytest.raises(ConfigError) as err:
            parse_metric(bad)
        for form in ["ndcg@k", "mrr@k", "p@k", "recall@k", "map@k"]:
            assert form in str(err.value)
    with pytest.raises(ConfigError, match="bleu@10"):
        per_query({}, {}, ["ndcg@10", "bleu@10"])  # validated even with no query to score


# --- reference: pytrec_eval (trec_eval 9.x) -------------------------------------------------------


def _random_collection(seed: int = 7) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    docs = [f"d{i:03d}" for i in range(200)]
    qrels, run = {}, {}
    for q in range(50):
        qid = f"q{q:02d}"
        judged = rng.choice(len(docs), size=int(rng.integers(2, 20)), replace=False)
        grades = rng.integers(0, 4, size=judged.size) if q % 2 else rng.integers(0, 2, size=judged.size)
        grades[0] = max(int(grades[0]), 1)  # every query has a relevant doc
        qrels[qid] = {docs[j]: int(g) for j, g in zip(judged, grades, strict=True)}
        retrieved = rng.choice(len(docs), size=int(rng.integers(5, 150)), replace=False)
        # Unique scores: trec_eval breaks ties by doc id descending, ragops ascending.
        scores = rng.random(retrieved.size) + np.array([0.5 * qrels[qid].get(docs[j], 0) for j in retrieved])
        assert len(set(scores.tolist())) == scores.size
        run[qid] = {docs[j]: float(s) for j, s in zip(retrieved, scores, strict=True)}
    return qrels, run


def test_agrees_with_pytrec_eval() -> None:
    import pytrec_eval  # the reference implementation (a dev dependency)

    qrels, run = _random_collection()
    measures = {"ndcg_cut.10", "P.10", "recall.100", "map_cut.100"}
    ref = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    top10 = {q: dict(sorted(d.items(), key=lambda kv: -kv[1])[:10]) for q, d in run.items()}
    ref_rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    ours = per_query(qrels, run, ["ndcg@10", "p@10", "recall@100", "map@100", "mrr@10"])
    assert set(ours) == set(ref) == set(qrels)
    pairs = {"ndcg@10": "ndcg_cut_10", "p@10": "P_10", "recall@100": "recall_100", "map@100": "map_cut_100"}
    nonzero = 0
    for qid, row in ours.items():
        # pytrec-eval-terrier 0.5.x returns full doubles (no 4-decimal rounding), so 1e-9 holds.
        for mine, theirs in pairs.items():
            assert row[mine] == pytest.approx(ref[qid][theirs], abs=1e-9), (qid, mine)
        assert row["mrr@10"] == pytest.approx(ref_rr[qid]["recip_rank"], abs=1e-9), qid
        nonzero += row["ndcg@10"] > 0
    assert 10 < nonzero < len(ours)  # the data exercises both hits and misses


# --- paired tests ---------------------------------------------------------------------------------


def test_paired_identical_inputs_give_p_one() -> None:
    a = {f"q{i}": float(v) for i, v in enumerate(np.random.default_rng(0).random(30))}
    for method in ["randomization", "ttest"]:
        out = paired_test(a, dict(a), method=method)
        assert out["p_value"] == pytest.approx(1.0)
        assert out["n"] == 30 and out["mean_diff"] == 0.0


def test_paired_large_consistent_improvement() -> None:
    rng = np.random.default_rng(1)
    base = rng.random(50) * 0.5
    a = {f"q{i}": float(v) for i, v in enumerate(base)}
    b = {f"q{i}": float(v + 0.1 + 0.01 * rng.random()) for i, v in enumerate(base)}
    for method in ["randomization", "ttest"]:
        out = paired_test(a, b, method=method)
        assert out["p_value"] < 0.01
        assert out["mean_diff"] > 0.1 and out["mean_b"] > out["mean_a"]


def test_randomization_matches_exact_enumeration() -> None:
    # Differences (1, 1, 1): 2 of the 8 sign patterns reach |mean| >= 1, exact two-sided p = 0.25.
    a = {"x": 0.0, "y": 0.0, "z": 0.0}
    b = {"x": 1.0, "y": 1.0, "z": 1.0}
    out = paired_test(a, b, n_resamples=20000, seed=3)
    assert out["p_value"] == pytest.approx(0.25, abs=0.015)
    assert paired_test(a, b, n_resamples=20000, seed=3) == out  # seeded


def test_ttest_agrees_with_scipy_on_common_ids() -> None:
    from scipy import stats

    rng = np.random.default_rng(2)
    xa, xb = rng.random(40), rng.random(40) + 0.05
    a = {f"q{i}": float(v) for i, v in enumerate(xa)} | {"only_a": 9.0}
    b = {f"q{i}": float(v) for i, v in enumerate(xb)} | {"only_b": -9.0}
    out = paired_test(a, b, method="ttest")
    assert out["n"] == 40
    assert out["p_value"] == pytest.approx(stats.ttest_rel(xb, xa).pvalue, rel=1e-12)
    assert out["mean_diff"] == pytest.approx(float(np.mean(xb - xa)))
    # With 40 queries the randomization and t-tests agree closely.
    assert paired_test(a, b)["p_value"] == pytest.approx(out["p_value"], abs=0.03)


def test_paired_test_errors() -> None:
    with pytest.raises(ConfigError, match="randomization"):
        paired_test({"q": 1.0}, {"q": 2.0}, method="wilcoxon")
    with pytest.raises(ValueError, match="share no query"):
        paired_test({"q": 1.0}, {"r": 2.0})
