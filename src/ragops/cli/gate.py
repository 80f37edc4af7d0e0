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
    than `tolerance`, and a paired significance test may not show a drop (p < alpha). Each side is
    judged in the mode it would serve (`registry.mode`; `auto` chooses on each side's own dev metrics
    within `registry.max_p95_ms`, as the register stage does).
    """
    import pandas as pd

    from ragops.config import load_params
    from ragops.io import atomic_path
    from ragops.registry.ci_report import load_per_query, metrics_table, read_metrics, render, scores, top_drops
    from ragops.registry.gate import gate
    from ragops.registry.served_mode import choose_mode
    from ragops.registry.tracking import RegistryConfig

    params = load_params(params_file)
    cfg = RegistryConfig.from_params(params.get("registry"))
    metric, split = cfg.metric, cfg.split
    head_metrics = read_metrics(candidate_metrics) if candidate_metrics.exists() else {}
    base_metrics = read_metrics(baseline_metrics) or {}

    def served(metrics: dict, df) -> tuple[str, str]:
        if cfg.mode != "auto":
            return cfg.mode, f"registry.mode is {cfg.mode!r}"
        if not metrics:
            return "hybrid", "no metrics.json to choose on: hybrid"
        carried = sorted(set(df["mode"]))
        c = choose_mode(metrics, "auto", carried, metric, cfg.select_split, cfg.max_p95_ms)
        return c.mode, c.reason

    base_df, head_df = load_per_query(baseline, metric), load_per_query(candidate, metric, "candidate")
    (base_mode, base_why), (mode, head_why) = served(base_metrics, base_df), served(head_metrics, head_df)
    base = scores(base_df, split, base_mode, metric, baseline)
    head = scores(head_df, split, mode, metric, candidate)
    decision = gate(head, base, tolerance=cfg.tolerance, alpha=cfg.alpha, method=cfg.test, n_resamples=cfg.n_resamples)
    texts: dict[str, str] = {}
    queries = Path(params["paths"]["queries"])
    if queries.exists():
        q = pd.read_parquet(queries)
        texts = dict(zip(q["query_id"].astype(str), q["text"], strict=True))
    why = f"\nServed mode — base: `{base_mode}` ({base_why}); head: `{mode}` ({head_why}).\n"
    md = render(decision, metric, split, mode, metrics_table(base_metrics or None, head_metrics),
                top_drops(base, head, texts, top), base_mode, why)
    if report is not None:
        with atomic_path(report) as tmp:
            tmp.write_text(md, encoding="utf-8")
    typer.echo(md)  # plain text: markdown tables must not be re-wrapped
    if not decision.promote:
        typer.echo(f"gate: FAIL: {decision.reason}")
        raise typer.Exit(1)
    typer.echo(f"gate: PASS: {decision.reason}")
