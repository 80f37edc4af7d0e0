"""Images of an evaluation for the MLflow UI (DVC renders the CSV plot data itself).

Per split: per-query nDCG@10 of one mode against another (points above the diagonal are queries
the first mode wins), and the mean of every metric per mode.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ragops.io import atomic_path


def render_plots(per_query: pd.DataFrame, out: Path, x: str = "bm25", y: str = "hybrid",
                 metric: str = "ndcg@10") -> list[Path]:
    """Write ``<metric>_<split>.png`` (scatter y vs x) and ``means_<split>.png`` into ``out``."""
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    written: list[Path] = []
    metrics = [c for c in per_query.columns if "@" in c]
    for split, frame in per_query.groupby("split"):
        wide = frame.pivot_table(index="query_id", columns="mode", values=metric)
        if {x, y} <= set(wide.columns):
            fig, ax = plt.subplots(figsize=(5, 5))
            ax.scatter(wide[x], wide[y], s=10, alpha=0.6)
            ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
            ax.set(xlabel=f"{x} {metric}", ylabel=f"{y} {metric}", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02),
                   title=f"{split}: per-query {metric} ({len(wide)} queries)")
            written.append(_save(fig, out / f"{metric.replace('@', '_at_')}_{split}.png"))
        means = frame.groupby("mode")[metrics].mean()
        fig, ax = plt.subplots(figsize=(7, 4))
        means.T.plot.bar(ax=ax, rot=0)
        ax.set(ylim=(0, 1), title=f"{split}: mean per mode")
        written.append(_save(fig, out / f"means_{split}.png"))
    return written


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path
