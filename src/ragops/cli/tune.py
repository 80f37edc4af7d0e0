"""`ragops tune-fusion` and `ragops tune-training`: grid searches on the dev split (never test) that print their
table and, with --write, put the best setting into params.yaml. Registered in ragops.cli.main (which turns
RagopsError into one line)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ragops.errors import RagopsError

console = Console()


def tune_fusion_command(
    split: Annotated[str, typer.Option(help="split to tune on (never test)")] = "dev",
    metric: Annotated[str, typer.Option(help="metric to maximize")] = "ndcg@10",
    write: Annotated[bool, typer.Option(help="write the best setting into params.yaml")] = False,
    params_file: Annotated[Path, typer.Option("--params", help="params file to read.")] = Path("params.yaml"),
) -> None:
    """Grid-search fusion (convex alpha x norm, rrf k) on the dev split; print the table."""
    from ragops.config import load_params
    from ragops.retrieval.tuning import tune_fusion_on_split, write_fusion_params

    if split == "test":
        raise RagopsError("refusing to tune on the test split: tune on dev, report on test")
    params = load_params(params_file)
    results = tune_fusion_on_split(params, split, metric)
    table = Table(title=f"fusion on {split} ({metric})")
    cols = ("method", "norm", "alpha", "rrf_k", "prf_docs", "prf_beta")
    for col in (*cols, metric):
        table.add_column(col)
    for r in results[:15]:
        table.add_row(*(str(r[c]) for c in cols), f"{r[metric]:.4f}")
    console.print(table)
    best = results[0]
    console.print(f"best: {best}")
    if write:
        write_fusion_params(params_file, best, f"ragops tune-fusion --split {split} --metric {metric} --write")
        console.print(f"written to {params_file}")


def tune_training_command(
    split: Annotated[str, typer.Option(help="split to tune on (never test)")] = "dev",
    metric: Annotated[str, typer.Option(help="metric to maximize")] = "ndcg@10",
    budget_tokens: Annotated[int | None, typer.Option(help="rerank n x max_length limit (default: train.tune)")] = None,
    write: Annotated[bool, typer.Option(help="write the best settings into params.yaml")] = False,
    params_file: Annotated[Path, typer.Option("--params", help="params file to read.")] = Path("params.yaml"),
) -> None:
    """Tune fusion_ft and rerank (n, max_length, weight) on dev; each trial a nested MLflow run."""
    from ragops.config import load_params
    from ragops.training.tune import mlflow_logger, tune_trained, write_block

    params = load_params(params_file)
    budget_tokens = budget_tokens or int(params["train"].get("tune", {}).get("budget_tokens", 1280))
    parent, log_run = mlflow_logger(params, f"tune-training {split} {metric}")
    with parent():
        res = tune_trained(params, split, metric, budget_tokens, log_run)
    console.print(f"fusion_ft: {res['fusion_ft']} -> {res['fusion_ft_score']:.4f}")
    if "rerank" in res:
        gain = f"{res['rerank_gain']:+.4f} over hybrid_ft; whether reranking is served is registry.mode's choice"
        console.print(f"rerank: {res['rerank']} -> {res['rerank_score']:.4f} ({gain})")
    if write:
        cmd = f"ragops tune-training --split {split} --metric {metric} --budget-tokens {budget_tokens} --write"
        write_block(params_file, "fusion_ft", res["fusion_ft"], cmd)
        if "rerank" in res:
            write_block(params_file, "rerank", res["rerank"], cmd)
        console.print(f"written to {params_file}")
