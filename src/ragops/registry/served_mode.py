"""Which retrieval mode a registered version serves: chosen on dev, within a latency budget.

``registry.mode: auto`` takes, among the modes the build carries, the best ``metric`` (nDCG@10) on the
``select_split`` (dev: test is reported, never chosen on) whose p95 latency — one query at a time, end to
end, as the evaluate stage measures it — is within ``max_p95_ms``. Ties go to the simpler mode (the
earlier one in ``ragops.retrieval.pipeline.MODES``). Without dev judgments (a data set with no train split) there
is nothing to choose on: ``hybrid`` is served if it exists, else the first mode that does. An explicit
mode name is served as it is. The register stage and the CI gate both call :func:`choose_mode`, so the
pull-request report compares the same modes the registry would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ragops.errors import ConfigError
from ragops.retrieval.pipeline import MODES, check_mode

AUTO = "auto"


@dataclass(frozen=True)
class ModeChoice:
    mode: str
    reason: str
    candidates: list[dict[str, Any]] = field(default_factory=list)  # mode, metric, p95_ms, within budget

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def latency_p95(metrics: Mapping[str, Any], mode: str, split: str) -> tuple[float | None, str | None]:
    """(p95 ms, the split it was measured on): ``split`` first, else any split that timed ``mode``."""
    splits = [split] + [s for s in metrics if s != split]
    for s in splits:
        value = (metrics.get(s) or {}).get(mode, {}) if isinstance(metrics.get(s), Mapping) else {}
        if isinstance(value, Mapping) and "latency_p95_ms" in value:
            return float(value["latency_p95_ms"]), s
    return None, None


def choose_mode(metrics: Mapping[str, Any], requested: str, carried: Sequence[str] | None = None,
                metric: str = "ndcg@10", split: str = "dev", max_p95_ms: float = 50.0) -> ModeChoice:
    """The served mode for ``requested`` (a mode name or ``auto``) given an evaluation's metrics.json.

    ``carried``: the modes the build has models for (default: those evaluated on any split)."""
    evaluated = [m for m in MODES if any(isinstance(v, Mapping) and m in v for v in metrics.values())]
    carried = [m for m in MODES if m in (carried if carried is not None else evaluated)]
    if requested != AUTO:
        check_mode(requested, tuple(carried) or MODES, "registry.mode")
        return ModeChoice(requested, f"registry.mode is {requested!r}")
    if not carried:
        raise ConfigError("registry.mode auto: the evaluation holds no retrieval mode to choose from")
    table = metrics.get(split) if isinstance(metrics.get(split), Mapping) else None
    if not table:
        fallback = "hybrid" if "hybrid" in carried else carried[0]
        return ModeChoice(fallback, f"no {split} judgments to choose on: {fallback} (what exists)")
    rows = []
    for mode in carried:
        if mode not in table or metric not in table[mode]:
            continue
        p95, where = latency_p95(metrics, mode, split)
        rows.append({"mode": mode, metric: float(table[mode][metric]), "p95_ms": p95, "latency_split": where,
                     "within_budget": p95 is not None and p95 <= max_p95_ms})
    if not rows:
        raise ConfigError(f"registry.mode auto: metrics.json has no {metric} on {split} for {', '.join(carried)}")
    eligible = [r for r in rows if r["within_budget"]]
    if not eligible:
        timed = [r for r in rows if r["p95_ms"] is not None] or rows
        pick = min(timed, key=lambda r: (r["p95_ms"] if r["p95_ms"] is not None else float("inf")))
        return ModeChoice(pick["mode"], f"no mode within p95 {max_p95_ms:g} ms: the fastest, {pick['mode']}", rows)
    best = max(eligible, key=lambda r: r[metric])  # max keeps the first of equals: the simpler mode
    others = [r for r in rows if r[metric] > best[metric]]
    why = f"best {split} {metric} {best[metric]:.4f} with p95 {best['p95_ms']:.1f} ms <= {max_p95_ms:g} ms"
    if others:
        why += "; better but slower: " + ", ".join(f"{r['mode']} {r[metric]:.4f} at {r['p95_ms']:.1f} ms"
                                                    if r["p95_ms"] is not None else f"{r['mode']} (not timed)"
                                                    for r in others)
    return ModeChoice(best["mode"], why, rows)
