"""Choosing fusion settings on the dev split (never on test)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pandas as pd

from ragops.errors import ConfigError
from ragops.evaluation import as_run, qrels_for_split
from ragops.fusion import fuse
from ragops.io import atomic_path
from ragops.metrics import mean_metrics


def fusion_grid() -> list[dict[str, Any]]:
    grid = [
        {"method": "convex", "norm": norm, "alpha": round(a, 2), "rrf_k": 60}
        for norm, a in itertools.product(("minmax", "zscore"), [i / 20 for i in range(4, 17)])
    ]
    grid += [{"method": "rrf", "norm": "minmax", "alpha": 0.5, "rrf_k": k} for k in (10, 20, 40, 60, 100)]
    return grid


def tune_fusion_on_split(params: dict[str, Any], split: str, metric: str, grid: list[dict]) -> list[dict]:
    """Every grid setting scored on ``split``; best first (ties: the order of the grid)."""
    from ragops.artifacts import load_retriever

    paths = params["paths"]
    qrels = qrels_for_split(pd.read_parquet(paths["qrels"]), split)
    if not qrels:
        raise ConfigError(f"split {split!r} has no judgments: nothing to tune on (a dataset without train data?)")
    queries = pd.read_parquet(paths["queries"]).set_index("query_id")["text"]
    qids = sorted(qrels)
    retriever = load_retriever(params)
    dense, sparse = retriever.components([queries[q] for q in qids])
    depth = retriever.depth
    results = []
    for setting in grid:
        hits = [fuse(setting["method"], [d, s], alpha=setting["alpha"], norm=setting["norm"],
                     rrf_k=setting["rrf_k"], k=depth) for d, s in zip(dense, sparse, strict=True)]
        score = mean_metrics(qrels, as_run(qids, hits), [metric])[metric]
        results.append({**setting, metric: round(score, 5)})
    order = sorted(range(len(results)), key=lambda i: (-results[i][metric], i))
    return [results[i] for i in order]


def write_fusion_params(params_file: str | Path, best: dict[str, Any], command: str) -> None:
    """Rewrite the keys of the ``fusion:`` block in place, keeping every comment, and record
    the command that chose them."""
    lines = Path(params_file).read_text(encoding="utf-8").splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip() == "fusion:")
    except StopIteration:
        raise ConfigError(f"{params_file}: no top-level `fusion:` block") from None
    out = lines[: start + 1]
    out.append(f"  # chosen on dev by: {command}\n")
    i = start + 1
    while i < len(lines) and (lines[i].startswith(" ") or not lines[i].strip()):
        line = lines[i]
        if line.strip().startswith("# chosen on dev by:"):
            i += 1
            continue
        m = re.match(r"^(\s+)(method|alpha|norm|rrf_k):\s*([^#\n]*?)(\s*#.*)?$", line.rstrip("\n"))
        if m:
            line = f"{m.group(1)}{m.group(2)}: {best[m.group(2)]}{m.group(4) or ''}\n"
        out.append(line)
        i += 1
    out += lines[i:]
    with atomic_path(params_file) as tmp:
        tmp.write_text("".join(out), encoding="utf-8")
