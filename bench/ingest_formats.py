"""What conversion costs, per format: N documents of each format written by real writers, converted by
`ragops ingest`'s worker pool.

    python bench/ingest_formats.py [--n 50] [--paragraphs 6] [--workers 2]

The documents come from the tests' fixture builders (tests/ingest_fixtures.py: fpdf2 PDFs, python-docx
DOCX, HTML with page chrome, Markdown, text; JSONL is one file of N rows). All files go through one
``convert_all`` call, as an ingest does; per format it prints the files and documents, their size, the
worker-seconds spent on them (each file's hand-over to result) and the rate one worker converts at (files/s,
MB/s); then the wall clock of the whole call with its pool start-up. Prints only (nothing written).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    from _common import machine, machine_line
    from ingest_fixtures import sample_folder

    from ragops.ingest.worker import convert_all

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50, help="documents per format")
    ap.add_argument("--paragraphs", type=int, default=6, help="paragraphs of ~60 words per document")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ragops-bench-ingest-") as tmp:
        t0 = time.perf_counter()
        files = sample_folder(Path(tmp), args.n, paragraphs=args.paragraphs)
        write_s = time.perf_counter() - t0
        fmt_of = {p: fmt for fmt, paths in files.items() for p in paths}
        size = {p: p.stat().st_size for p in fmt_of}
        stats: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        t0 = time.perf_counter()
        for outcome in convert_all(list(fmt_of), workers=args.workers):
            if outcome.error is not None:
                raise SystemExit(f"{outcome.path.name}: {outcome.error}")
            s = stats[fmt_of[outcome.path]]
            s["files"] += 1
            s["docs"] += len(outcome.docs)
            s["mb"] += size[outcome.path] / 2**20
            s["chars"] += sum(len(d.text) for d in outcome.docs)
            s["seconds"] += outcome.seconds
        wall = time.perf_counter() - t0
    print(f"{'format':7} {'files':>6} {'docs':>6} {'MB':>7} {'kchars':>8} {'worker s':>9} {'files/s':>9} "
          f"{'MB/s':>7}   (per worker)")
    for fmt, s in stats.items():
        print(f"{fmt:7} {s['files']:6.0f} {s['docs']:6.0f} {s['mb']:7.2f} {s['chars'] / 1e3:8.0f} "
              f"{s['seconds']:9.2f} {s['files'] / s['seconds']:9.1f} {s['mb'] / s['seconds']:7.2f}")
    total = sum(s["files"] for s in stats.values())
    print(f"all {total:.0f} files in {wall:.2f} s wall with {args.workers} workers, pool start-up included "
          f"({total / wall:.1f} files/s); writing them took {write_s:.1f} s")
    print(machine_line(machine()))


if __name__ == "__main__":
    main()
