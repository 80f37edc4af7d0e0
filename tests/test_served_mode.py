"""ragops.registry.served_mode: which mode a version serves, chosen on dev within the latency budget (by hand)."""

from __future__ import annotations

import pytest

from ragops.errors import ConfigError
from ragops.registry.served_mode import choose_mode


def m(ndcg: float, p95: float | None = None) -> dict:
    out = {"ndcg@10": ndcg}
    if p95 is not None:
        out["latency_p95_ms"] = p95
    return out


METRICS = {
    "dev": {"bm25": m(0.71, 0.2), "hybrid": m(0.77, 6.0), "hybrid_ft": m(0.80, 6.1),
            "hybrid_ft_rerank": m(0.81, 130.0)},
    "test": {"bm25": m(0.68, 0.2), "hybrid": m(0.73, 5.8), "hybrid_ft": m(0.76, 5.9),
             "hybrid_ft_rerank": m(0.99, 131.0)},  # test is never what chooses
    "grounding": {"trained": {"auroc": 0.78}},  # other sections of metrics.json are ignored
}


def test_auto_takes_the_best_dev_mode_within_the_budget() -> None:
    c = choose_mode(METRICS, "auto", max_p95_ms=50)
    assert c.mode == "hybrid_ft"
    assert c.reason.startswith("best dev ndcg@10 0.8000 with p95 6.1 ms <= 50 ms")
    assert "better but slower: hybrid_ft_rerank 0.8100 at 130.0 ms" in c.reason
    assert [r["mode"] for r in c.candidates] == ["bm25", "hybrid", "hybrid_ft", "hybrid_ft_rerank"]
    assert choose_mode(METRICS, "auto", max_p95_ms=200).mode == "hybrid_ft_rerank"
    # only what the build carries
    assert choose_mode(METRICS, "auto", carried=["bm25", "hybrid"]).mode == "hybrid"


def test_ties_go_to_the_simpler_mode_and_latency_falls_back_to_another_split() -> None:
    tie = {"dev": {"hybrid": m(0.8), "hybrid_ft": m(0.8)},
           "test": {"hybrid": m(0.7, 5.0), "hybrid_ft": m(0.7, 5.0)}}
    c = choose_mode(tie, "auto")
    assert c.mode == "hybrid" and c.candidates[0]["latency_split"] == "test"


def test_nothing_within_budget_serves_the_fastest() -> None:
    c = choose_mode(METRICS, "auto", carried=["hybrid", "hybrid_ft_rerank"], max_p95_ms=1.0)
    assert c.mode == "hybrid" and "no mode within p95 1 ms" in c.reason


def test_without_dev_judgments_what_exists() -> None:
    only_test = {"test": METRICS["test"]}
    c = choose_mode(only_test, "auto")
    assert c.mode == "hybrid" and c.reason == "no dev judgments to choose on: hybrid (what exists)"
    assert choose_mode(only_test, "auto", carried=["bm25"]).mode == "bm25"


def test_an_explicit_mode_is_served_as_named() -> None:
    assert choose_mode(METRICS, "bm25").mode == "bm25"
    with pytest.raises(ConfigError, match="unknown registry.mode 'dense_ft'; valid: bm25, hybrid"):
        choose_mode(METRICS, "dense_ft", carried=["bm25", "hybrid"])
    with pytest.raises(ConfigError, match="no retrieval mode to choose from"):
        choose_mode({}, "auto")
