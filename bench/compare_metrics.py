"""A build's quality figures against the committed ones of other commits (latency and times left out).

    python bench/compare_metrics.py [--metrics reports/metrics.json] [--per-query reports/per_query.csv] REV [REV ...]

For each REV: how many of ``git show REV:reports/metrics.json``'s figures the build's file equals to the last
digit, and every one that differs (REV's value -> the build's). With ``--per-query``, also each split and mode
whose per-query nDCG@10 differs from REV's ``reports/per_query.csv``: the mean difference, how many queries went
up and down, and the two-sided paired randomization test's p (the registry gate's test, ragops.eval.metrics).
`bench/stage_times.py` compares a build from scratch with the checkout's own metrics; this names the commit to
compare with, e.g. the last build made on the same kind of CPU (fine-tuned models round differently on AVX-512
and AVX2: README, "Measured").
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
from pathlib import Path

from _common import REPO
from stage_times import flatten, volatile


def compare(built: dict, rev: str) -> tuple[int, dict[str, tuple[float, float | None]]]:
    shown = subprocess.run(["git", "show", f"{rev}:reports/metrics.json"], cwd=REPO, capture_output=True, text=True,
                           check=True)
    want = {k: v for k, v in flatten(json.loads(shown.stdout)).items() if not volatile(k)}
    got = flatten(built)
    diffs = {k: (v, got.get(k)) for k, v in want.items() if k not in got or not math.isclose(got[k], v, abs_tol=0)}
    return len(want), diffs


def per_query_changes(built: Path, rev: str, metric: str = "ndcg@10") -> list[str]:
    """One line per (split, mode) whose per-query ``metric`` differs between REV's per_query.csv and ``built``."""
    import io

    import pandas as pd

    from ragops.eval.metrics import paired_test

    shown = subprocess.run(["git", "show", f"{rev}:reports/per_query.csv"], cwd=REPO, capture_output=True,
                           text=True, check=True)
    was, now = pd.read_csv(io.StringIO(shown.stdout)), pd.read_csv(built)
    both = was.merge(now, on=["split", "mode", "query_id"], suffixes=("_was", "_now"))
    lines = []
    for (split, mode), g in both.groupby(["split", "mode"], sort=True):
        d = g[f"{metric}_now"] - g[f"{metric}_was"]
        if not d.any():
            continue
        a = dict(zip(g["query_id"].astype(str), g[f"{metric}_was"], strict=True))
        b = dict(zip(g["query_id"].astype(str), g[f"{metric}_now"], strict=True))
        t = paired_test(a, b)
        lines.append(f"  {split}/{mode}: {metric} {t['mean_a']:.4f} -> {t['mean_b']:.4f} ({t['mean_diff']:+.4f}) over "
                     f"{t['n']} queries, {int((d > 0).sum())} up, {int((d < 0).sum())} down, paired p = "
                     f"{t['p_value']:.3f}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("revs", nargs="+", help="commits whose reports/metrics.json to compare with")
    ap.add_argument("--metrics", type=Path, default=REPO / "reports/metrics.json", help="the build's metrics file")
    ap.add_argument("--per-query", type=Path, default=None,
                    help="the build's per_query.csv: also test each changed mode's per-query nDCG@10 against REV's")
    args = ap.parse_args()
    built = json.loads(args.metrics.read_text())
    for rev in args.revs:
        n, diffs = compare(built, rev)
        print(f"{rev}: {n - len(diffs)} of {n} figures equal")
        for key, (was, now) in sorted(diffs.items()):
            print(f"  {key}: {was} -> {now}")
        if args.per_query is not None:
            print(f"{rev}: per-query nDCG@10 of the modes that changed (paired randomization test, 10,000 resamples)")
            print("\n".join(per_query_changes(args.per_query, rev)) or "  none changed")


if __name__ == "__main__":
    main()
