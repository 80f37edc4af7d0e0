"""The promotion gate: may a challenger replace the champion? A pure function over per-query scores.

Rule (both must hold for a challenger that scores lower on average):

1. the mean drop on the common queries is at most ``tolerance``:
   ``mean(champion) - mean(challenger) <= tolerance``;
2. the drop is not significant: NOT (challenger mean < champion mean AND p < alpha), where p is a
   two-sided paired test on the per-query scores (:func:`ragops.eval.metrics.paired_test`: sign-flip
   randomization, Smucker et al. 2007, or paired t-test).

A challenger whose mean is equal or higher is never blocked; with no champion it is promoted. With no
query in common, nothing can be compared and the gate blocks (``--force`` is the way round it).
The pipeline's register stage and a CI gate call this same function.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ragops.errors import ConfigError, unknown_name
from ragops.eval.metrics import PAIRED_TESTS, paired_test

# Float slack when comparing a drop with the tolerance, so 0.3 - 0.29 vs 0.01 is not a coin toss.
_EPS = 1e-12


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided and why. Means are over the queries both systems were scored on."""

    promote: bool
    reason: str
    challenger: float  # mean per-query score of the challenger (on the common queries)
    champion: float | None  # the champion's mean on the same queries; None: no champion
    delta: float | None  # challenger - champion
    p_value: float | None  # two-sided paired test; None when there was nothing to test
    n_queries: int
    tolerance: float
    alpha: float
    method: str

    def as_dict(self) -> dict:
        return asdict(self)


def _check(tolerance: float, alpha: float, method: str) -> None:
    if method not in PAIRED_TESTS:
        raise unknown_name("paired test", method, PAIRED_TESTS)
    if not tolerance >= 0:
        raise ConfigError(f"gate tolerance must be >= 0, got {tolerance}")
    if not 0 < alpha < 1:
        raise ConfigError(f"gate significance level alpha must be in (0, 1), got {alpha}")


def _mean(scores: dict[str, float]) -> float:
    return float(sum(scores.values()) / len(scores)) if scores else 0.0


def gate(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    tolerance: float,
    alpha: float = 0.05,
    method: str = "randomization",
    n_resamples: int = 10000,
    seed: int = 0,
) -> GateDecision:
    """Decide on promotion from ``{query_id: score}`` of both systems (see the module docstring).

    ``champion=None`` means there is no champion yet: the challenger is promoted. Inputs are not
    mutated; the randomization test is seeded, so the decision is reproducible.
    """
    _check(tolerance, alpha, method)
    common = sorted(set(challenger) & set(champion or {}))
    base = {"tolerance": float(tolerance), "alpha": float(alpha), "method": method}
    if champion is None:
        return GateDecision(True, "first version: no champion yet", _mean(challenger), None, None, None,
                            len(challenger), **base)
    if not common:
        return GateDecision(False, "no query in common with the champion: nothing to compare (use --force)",
                            _mean(challenger), _mean(champion), None, None, 0, **base)
    a = {q: float(champion[q]) for q in common}
    b = {q: float(challenger[q]) for q in common}
    test = paired_test(a, b, method=method, n_resamples=n_resamples, seed=seed)
    delta, p = test["mean_diff"], float(test["p_value"])
    if math.isnan(p):  # a t-test on constant differences; a constant non-zero shift is as significant as it gets
        p = 1.0 if delta == 0 else 0.0
    scores = {"challenger": test["mean_b"], "champion": test["mean_a"], "delta": delta, "p_value": p,
              "n_queries": len(common)}
    if delta >= 0:
        return GateDecision(True, f"not lower than the champion ({delta:+.4f})", **scores, **base)
    within = -delta <= tolerance + _EPS
    significant = p < alpha
    if within and not significant:
        reason = f"drop {-delta:.4f} within tolerance {tolerance:g} and not significant (p={p:.3g} >= {alpha:g})"
    elif not within and significant:
        reason = f"drop {-delta:.4f} exceeds tolerance {tolerance:g} and is significant (p={p:.3g} < {alpha:g})"
    elif not within:
        reason = f"drop {-delta:.4f} exceeds tolerance {tolerance:g} (p={p:.3g})"
    else:
        reason = f"drop {-delta:.4f} is significant (p={p:.3g} < {alpha:g})"
    return GateDecision(within and not significant, reason, **scores, **base)
