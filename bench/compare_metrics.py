"""A build's quality figures against the committed ones of other commits (latency and times left out).

    python bench/compare_metrics.py [--metrics reports/metrics.json] REV [REV ...]

For each REV: how many of ``git show REV:reports/metrics.json``'s figures the build's file equals to the last
digit, and every one that differs (REV's value -> the build's). `bench/stage_times.py` compares a build from
scratch with the checkout's own metrics; this names the commit to compare with, e.g. the last build made on the
same kind of CPU (fine-tuned models round differently on AVX-512 and AVX2: README, "Measured").
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("revs", nargs="+", help="commits whose reports/metrics.json to compare with")
    ap.add_argument("--metrics", type=Path, default=REPO / "reports/metrics.json", help="the build's metrics file")
    args = ap.parse_args()
    built = json.loads(args.metrics.read_text())
    for rev in args.revs:
        n, diffs = compare(built, rev)
        print(f"{rev}: {n - len(diffs)} of {n} figures equal")
        for key, (was, now) in sorted(diffs.items()):
            print(f"  {key}: {was} -> {now}")


if __name__ == "__main__":
    main()
