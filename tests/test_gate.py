"""ragops.registry.gate: the promotion rule on hand-worked per-query scores."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from ragops.errors import ConfigError
from ragops.registry.gate import gate

TESTS = ["randomization", "ttest"]


def scores(values) -> dict[str, float]:
    return {f"q{i:03d}": float(v) for i, v in enumerate(values)}


@pytest.fixture
def champion() -> dict[str, float]:
    return scores(np.random.default_rng(7).uniform(0.3, 0.9, 40))


def test_first_version_is_promoted() -> None:
    d = gate(scores([0.2, 0.4]), None, tolerance=0.01)
    assert d.promote and "first version" in d.reason
    assert d.champion is None and d.p_value is None and d.delta is None
    assert d.challenger == pytest.approx(0.3) and d.n_queries == 2


@pytest.mark.parametrize("method", TESTS)
def test_equal_is_promoted_with_p_one(champion: dict[str, float], method: str) -> None:
    d = gate(dict(champion), champion, tolerance=0.0, method=method)
    assert d.promote and d.delta == 0.0 and d.p_value == pytest.approx(1.0)
    assert d.challenger == d.champion and d.n_queries == 40


@pytest.mark.parametrize("method", TESTS)
def test_better_is_promoted_even_when_significant(champion: dict[str, float], method: str) -> None:
    rng = np.random.default_rng(2)
    better = {q: v + 0.04 + 0.02 * rng.random() for q, v in champion.items()}
    d = gate(better, champion, tolerance=0.0, alpha=0.05, method=method)
    assert d.promote and d.delta == pytest.approx(0.05, abs=0.011) and d.p_value < 0.01
    assert "not lower" in d.reason


@pytest.mark.parametrize("method", TESTS)
def test_clear_significant_drop_is_blocked(champion: dict[str, float], method: str) -> None:
    rng = np.random.default_rng(3)
    worse = {q: v - 0.2 - 0.02 * rng.random() for q, v in champion.items()}
    d = gate(worse, champion, tolerance=0.01, alpha=0.05, method=method)
    assert not d.promote
    assert d.delta == pytest.approx(-0.21, abs=0.011) and d.p_value < 0.001
    assert "exceeds tolerance" in d.reason and "significant" in d.reason


@pytest.mark.parametrize("method", TESTS)
def test_small_drop_within_tolerance_and_not_significant_is_promoted(champion, method: str) -> None:
    # One query of 40 loses 0.2: mean drop 0.005 <= 0.01. Every sign flip of a single non-zero
    # difference has the same |mean|, so the randomization p is 1; the t-test gives p = 0.32.
    worse = dict(champion)
    worse["q000"] -= 0.2
    d = gate(worse, champion, tolerance=0.01, alpha=0.05, method=method)
    assert d.promote and d.delta == pytest.approx(-0.005) and d.p_value > 0.3
    assert "within tolerance" in d.reason


@pytest.mark.parametrize("method", TESTS)
def test_drop_within_tolerance_but_significant_is_blocked(champion, method: str) -> None:
    # Every query loses 0.004-0.006: tiny on average, but consistent, so significant.
    rng = np.random.default_rng(5)
    worse = {q: v - 0.004 - 0.002 * rng.random() for q, v in champion.items()}
    d = gate(worse, champion, tolerance=0.01, alpha=0.05, method=method)
    assert not d.promote and -d.delta <= 0.01 and d.p_value < 0.05
    assert "is significant" in d.reason


def test_drop_beyond_tolerance_but_not_significant_is_blocked() -> None:
    # Differences (0, 0, 0, -0.2): mean drop 0.05 > 0.01; one non-zero difference -> randomization p = 1.
    champ = scores([0.5, 0.6, 0.7, 0.8])
    chal = scores([0.5, 0.6, 0.7, 0.6])
    d = gate(chal, champ, tolerance=0.01, alpha=0.05)
    assert not d.promote and d.p_value == 1.0
    assert d.delta == pytest.approx(-0.05) and "exceeds tolerance" in d.reason


def test_ttest_hand_worked_p_decides() -> None:
    # Differences (-0.1, -0.2, -0.3): mean -0.2, sd 0.1, t = -0.2 / (0.1 / sqrt 3) = -3.464 on 2 df.
    # For 2 df the two-sided p has a closed form: 1 - |t| / sqrt(2 + t^2) = 0.07418.
    champ = scores([0.5, 0.5, 0.5])
    chal = scores([0.4, 0.3, 0.2])
    t = -0.2 / (0.1 / math.sqrt(3))
    expected = 1 - abs(t) / math.sqrt(2 + t * t)
    loose = gate(chal, champ, tolerance=0.25, alpha=0.05, method="ttest")
    assert loose.p_value == pytest.approx(expected, abs=1e-9)
    assert loose.promote  # drop 0.2 <= 0.25 and p = 0.074 >= 0.05
    strict = gate(chal, champ, tolerance=0.25, alpha=0.1, method="ttest")
    assert not strict.promote  # the same drop is significant at 0.1


def test_randomization_hand_worked_p() -> None:
    # Differences (-1, -1, -1): 2 of the 8 sign patterns reach |mean| 1, so p = 0.25.
    d = gate(scores([0, 0, 0]), scores([1, 1, 1]), tolerance=1.0, alpha=0.3, n_resamples=20000, seed=1)
    assert d.p_value == pytest.approx(0.25, abs=0.015)
    assert not d.promote  # within a (silly) tolerance of 1, but p < 0.3


def test_only_common_queries_count() -> None:
    champ = {"a": 0.5, "b": 0.5, "old": 0.0}
    chal = {"a": 0.5, "b": 0.5, "new": 1.0}
    d = gate(chal, champ, tolerance=0.0)
    assert d.n_queries == 2 and d.challenger == 0.5 and d.champion == 0.5 and d.promote


def test_no_common_query_blocks() -> None:
    d = gate({"a": 1.0}, {"b": 0.0}, tolerance=0.01)
    assert not d.promote and d.n_queries == 0 and d.p_value is None
    assert "no query in common" in d.reason and "--force" in d.reason


def test_inputs_are_not_mutated_and_the_decision_is_reproducible(champion) -> None:
    worse = {q: v - 0.01 for q, v in champion.items()}
    before = (copy.deepcopy(worse), copy.deepcopy(champion))
    first = gate(worse, champion, tolerance=0.02, seed=4)
    assert (worse, champion) == before
    assert gate(worse, champion, tolerance=0.02, seed=4) == first
    assert set(first.as_dict()) >= {"promote", "reason", "challenger", "champion", "p_value"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "wilcoxon"}, "valid: randomization, ttest"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 1.5}, "alpha"),
        ({"tolerance": -0.1}, "tolerance"),
        ({"tolerance": float("nan")}, "tolerance"),
    ],
)
def test_bad_settings_fail_loudly(kwargs: dict, message: str) -> None:
    args = {"tolerance": 0.01, **kwargs}
    with pytest.raises(ConfigError, match=message):
        gate({"a": 1.0}, {"a": 1.0}, **args)
