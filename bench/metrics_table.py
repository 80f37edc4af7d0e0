"""Render reports/metrics.json (written by `dvc repro`) as the quality table of the README and
docs/benchmarks.md, with the published SciFact figures beside it.

    python bench/metrics_table.py
"""

from __future__ import annotations

import json
import re

from _common import REPO, machine, machine_line, write_section

PUBLISHED = [
    ("BM25, Anserini flat", 0.679),
    ("BM25, Anserini multifield (BEIR)", 0.665),
    ("all-MiniLM-L6-v2 (MTEB)", 0.645),
    ("BM25 + ms-marco-MiniLM-L-6-v2 cross-encoder", 0.688),
]
COLS = ["ndcg@10", "mrr@10", "p@10", "recall@100", "map@100", "latency_ms", "latency_p95_ms"]


def render(metrics: dict, m: dict) -> str:
    lines = ["| split | mode | " + " | ".join(COLS) + " |", "|---|---|" + "---|" * len(COLS)]
    for split in ("test", "dev"):
        for mode, vals in metrics.get(split, {}).items():
            cells = ["–" if c not in vals else f"{vals[c]:.1f}" if c.startswith("latency") else f"{vals[c]:.3f}"
                     for c in COLS]
            lines.append(f"| {split} | {mode} | " + " | ".join(cells) + " |")
    published = "; ".join(f"{name} {v:.3f}" for name, v in PUBLISHED)
    return (
        "Full SciFact, `make repro` (`dvc repro`; numbers from `reports/metrics.json`, "
        "table by `python bench/metrics_table.py`). Tuned on dev (carved from train), reported on test.\n"
        f"{machine_line(m)} Latency: mean and p95 ms per query, one query at a time, query encoding included "
        "(a 50-query sample of each split; dev's p95 is what `registry.mode: auto` reads).\n\n"
        + "\n".join(lines)
        + f"\n\nPublished nDCG@10 on the SciFact test split: {published}.\n"
    )


def main() -> None:
    metrics = json.loads((REPO / "reports" / "metrics.json").read_text())
    table = render(metrics, machine())
    write_section("quality", "## Retrieval quality\n\n" + table)
    readme = REPO / "README.md"
    text = readme.read_text()
    new = re.sub(r"<!-- quality:start -->.*<!-- quality:end -->",
                 lambda _: f"<!-- quality:start -->\n{table}<!-- quality:end -->", text, flags=re.S)
    readme.write_text(new)
    print(table)


if __name__ == "__main__":
    main()
