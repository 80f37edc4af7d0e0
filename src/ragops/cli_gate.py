"""`ragops gate`: the evaluation gate for pull requests (and anyone, locally)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def gate_command(
    baseline: Annotated[Path, typer.Option(help="per_query.csv of the base (`git show main:reports/per_query.csv`)")],
    candidate: Annotated[Path, typer.Option(help="per_query.csv of this change")] = Path("reports/per_query.csv"),
    baseline_metrics: Annotated[Path | None, typer.Option(help="metrics.json of the base, for the full table")] = None,
    candidate_metrics: Annotated[Path, typer.Option(help="metrics.json of this change")] = Path("reports/metrics.json"),
    report: Annotated[Path | None, typer.Option(help="also write the markdown report here (for a PR comment)")] = None,
    top: Annotated[int, typer.Option(min=0, help="how many of the worst-hit queries to list")] = 10,
    params_file: Annotated[Path, typer.Option("--params", help="params file (registry: tolerance, alpha, …)")] = Path(
        "params.yaml"),
) -> None:
    """Compare this change with a baseline on per-query scores; exit 1 when it regresses.

    The rule is the registry's promotion gate (params `registry:`): the mean may not drop by more
    than `tolerance`, and a paired significance test may not show a drop (p < alpha).
    """
    import pandas as pd

    from ragops.ci_report import load_per_query, metrics_table, read_metrics, render, scores, top_drops
    from ragops.config import load_params
    from ragops.gate import gate
    from ragops.io import atomic_path

    params = load_params(params_file)
    reg = params.get("registry", {})
    metric, split, mode = reg.get("metric", "ndcg@10"), reg.get("split", "test"), reg.get("mode", "hybrid")
    base_df, head_df = load_per_query(baseline, metric), load_per_query(candidate, metric, "candidate")
    base, head = scores(base_df, split, mode, metric, baseline), scores(head_df, split, mode, metric, candidate)
    decision = gate(head, base, tolerance=float(reg.get("tolerance", 0.01)), alpha=float(reg.get("alpha", 0.05)),
                    method=reg.get("test", "randomization"), n_resamples=int(reg.get("n_resamples", 10000)))
    texts: dict[str, str] = {}
    queries = Path(params["paths"]["queries"])
    if queries.exists():
        q = pd.read_parquet(queries)
        texts = dict(zip(q["query_id"].astype(str), q["text"], strict=True))
    head_metrics = read_metrics(candidate_metrics) if candidate_metrics.exists() else {}
    md = render(decision, metric, split, mode, metrics_table(read_metrics(baseline_metrics), head_metrics),
                top_drops(base, head, texts, top))
    if report is not None:
        with atomic_path(report) as tmp:
            tmp.write_text(md, encoding="utf-8")
    typer.echo(md)  # plain text: markdown tables must not be re-wrapped
    if not decision.promote:
        typer.echo(f"gate: FAIL: {decision.reason}")
        raise typer.Exit(1)
    typer.echo(f"gate: PASS: {decision.reason}")
