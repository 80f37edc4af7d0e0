"""The pull-request report: what a change did to every metric, which queries it hurt most, and
the gate's decision (the same :func:`ragops.registry.gate.gate` that promotion in the registry uses)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ragops.errors import DataError
from ragops.registry.gate import GateDecision

PER_QUERY_COLUMNS = ("split", "mode", "query_id")


def load_per_query(path: str | Path, metric: str, role: str = "baseline") -> pd.DataFrame:
    """A per_query.csv written by `evaluate`, checked: clear errors for missing or malformed files."""
    path = Path(path)
    if not path.is_file():
        hint = "the per_query.csv of the base branch" if role == "baseline" else "run `dvc repro` first"
        raise DataError(path, f"{role} file not found ({hint})")
    try:
        df = pd.read_csv(path, dtype={"query_id": str, "split": str, "mode": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not a per-query CSV: {exc}") from None
    missing = [c for c in (*PER_QUERY_COLUMNS, metric) if c not in df.columns]
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(missing)}; expected {', '.join(PER_QUERY_COLUMNS)}, "
                              f"{metric}, … as written by `dvc repro` (reports/per_query.csv)")
    bad = pd.to_numeric(df[metric], errors="coerce").isna()
    if bad.any():
        line = int(bad.to_numpy().nonzero()[0][0]) + 2  # 1-based, after the header line
        raise DataError(path, f"{metric} is not a number", line=line)
    return df


def scores(df: pd.DataFrame, split: str, mode: str, metric: str, path: str | Path = "per_query.csv") -> dict:
    sub = df[(df["split"] == split) & (df["mode"] == mode)]
    if sub.empty:
        have = sorted({f"{s}/{m}" for s, m in zip(df["split"], df["mode"], strict=True)})
        raise DataError(path, f"no rows for split {split!r} and mode {mode!r}; it has {', '.join(have)}")
    return dict(zip(sub["query_id"].astype(str), sub[metric].astype(float), strict=True))


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.4f}"


def metrics_table(base: dict | None, head: dict) -> str:
    """Markdown: every split x mode x metric, base vs head, with the change."""
    lines = ["| split | mode | metric | base | head | change |", "|---|---|---|---|---|---|"]
    for split, modes in head.items():
        if not isinstance(modes, dict):
            continue
        for mode, values in modes.items():
            if not isinstance(values, dict):
                continue
            for name, new in values.items():
                old = (base or {}).get(split, {}).get(mode, {}).get(name)
                change = "" if old is None else f"{new - old:+.4f}"
                lines.append(f"| {split} | {mode} | {name} | {_fmt(old)} | {_fmt(new)} | {change} |")
    return "\n".join(lines)


def top_drops(base: dict[str, float], head: dict[str, float], texts: dict[str, str], n: int = 10) -> str:
    """Markdown: the ``n`` queries whose score fell most (query text shortened)."""
    drops = sorted((head[q] - base[q], q) for q in set(base) & set(head) if head[q] < base[q])[:n]
    if not drops:
        return "No query got worse."
    lines = ["| query | text | base | head | change |", "|---|---|---|---|---|"]
    for delta, q in drops:
        text = texts.get(q, "").replace("|", "\\|")
        text = text if len(text) <= 90 else text[:87] + "…"
        lines.append(f"| {q} | {text} | {base[q]:.4f} | {head[q]:.4f} | {delta:+.4f} |")
    return "\n".join(lines)


def render(decision: GateDecision, metric: str, split: str, mode: str, table: str, drops: str,
           base_mode: str | None = None, modes_why: str = "") -> str:
    """The PR comment. ``mode`` is the head's served mode, ``base_mode`` the base's (default: the same)."""
    verdict = "✅ passes" if decision.promote else "❌ fails"
    base_mode = base_mode or mode
    what = f"`{mode}`" if base_mode == mode else f"the served modes (base `{base_mode}` → head `{mode}`)"
    return f"""## ragops evaluation gate: {verdict}

{metric} of {what} on the `{split}` split: base {_fmt(decision.champion)} → head {_fmt(decision.challenger)} \
over {decision.n_queries} queries; p = {_fmt(decision.p_value)} ({decision.method}, α = {decision.alpha:g}, \
tolerance {decision.tolerance:g}).
**{decision.reason}**
{modes_why}
### Queries whose {metric} dropped most

{drops}

<details><summary>Every metric, base vs head</summary>

{table}

</details>
"""


def read_metrics(path: str | Path | None) -> dict | None:
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "metrics file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(path, f"not valid JSON: {exc.msg}", line=exc.lineno) from None
