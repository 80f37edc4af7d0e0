"""The `ragops` command (typer). Every command reads params.yaml from the working directory
(or --params); errors a user can fix print one line, without a traceback."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ragops.errors import RagopsError

app = typer.Typer(
    help="ragops: a versioned, measured retrieval-augmented generation pipeline.\n\n"
    "Build with `dvc repro` (or `make repro`), then search the built index.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Obtain and check the raw data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console()
err = Console(stderr=True)

ParamsOpt = Annotated[Path, typer.Option("--params", help="params file to read.")]


def friendly(fn):
    """Turn RagopsError into a one-line message and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RagopsError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper


@data_app.command("fetch")
@friendly
def data_fetch(
    mirror: Annotated[Path, typer.Option(help="folder holding <name>/ and SHA256SUMS")] = Path("../shared/datasets"),
    name: Annotated[str, typer.Option(help="data set folder inside the mirror")] = "scifact",
    dest: Annotated[Path | None, typer.Option(help="where to place it (default data/raw/<name>)")] = None,
    verify_dvc: Annotated[bool, typer.Option(help="check the placed files against the committed .dvc pointer")] = True,
) -> None:
    """Copy a data set from a mirror folder, verify every sha256, place it atomically under data/raw/."""
    from ragops.data.fetch import place_dataset, verify_with_dvc

    dest = dest or Path("data/raw") / name
    placed = place_dataset(mirror, name, dest)
    console.print(f"{dest}: {len(placed)} files placed and verified against {mirror / 'SHA256SUMS'}"
                  if placed else f"{dest}: already in place, hashes verified")
    pointer = dest.with_name(dest.name + ".dvc")
    if verify_dvc and pointer.exists():
        verify_with_dvc(Path.cwd(), pointer)
        console.print(f"{dest}: matches {pointer}")


@app.command()
@friendly
def search(
    query: Annotated[str, typer.Argument(help="the query text")],
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, max=1000, help="documents to show")] = 10,
    mode: Annotated[str, typer.Option(help="bm25 | dense | hybrid")] = "hybrid",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    params_file: ParamsOpt = Path("params.yaml"),
) -> None:
    """Search the built index and print ranked documents with titles and scores."""
    import pandas as pd

    from ragops.artifacts import load_retriever
    from ragops.config import load_params
    from ragops.retrieval import MODES

    if mode not in MODES:
        raise typer.BadParameter(f"unknown mode {mode!r}; valid: {', '.join(MODES)}", param_hint="--mode")
    if not query.strip():
        raise typer.BadParameter("the query is empty", param_hint="QUERY")
    params = load_params(params_file)
    retriever = load_retriever(params, need_dense=mode != "bm25")
    hits = retriever.search(query, mode, k)
    docs = pd.read_parquet(params["paths"]["docs"]).set_index("doc_id")
    rows = [
        {"rank": r + 1, "doc_id": d, "score": round(float(s), 4), "title": str(docs.at[d, "title"]),
         "snippet": str(docs.at[d, "text"])[:160]}
        for r, (d, s) in enumerate(zip(hits.ids, hits.scores, strict=True))
    ]
    if as_json:
        sys.stdout.write(json.dumps({"query": query, "mode": mode, "results": rows}, indent=2) + "\n")
        return
    table = Table(title=f"{mode}: {query}", show_lines=False)
    for col in ("rank", "doc_id", "score", "title"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(str(row["rank"]), row["doc_id"], f"{row['score']:.4f}", row["title"])
    console.print(table)
    if not rows:
        console.print("no document matched")


@app.command("tune-fusion")
@friendly
def tune_fusion(
    split: Annotated[str, typer.Option(help="split to tune on (never test)")] = "dev",
    metric: Annotated[str, typer.Option(help="metric to maximize")] = "ndcg@10",
    write: Annotated[bool, typer.Option(help="write the best setting into params.yaml")] = False,
    params_file: ParamsOpt = Path("params.yaml"),
) -> None:
    """Grid-search fusion (convex alpha x norm, rrf k) on the dev split; print the table."""
    from ragops.config import load_params
    from ragops.tuning import fusion_grid, tune_fusion_on_split, write_fusion_params

    if split == "test":
        raise RagopsError("refusing to tune on the test split: tune on dev, report on test")
    params = load_params(params_file)
    results = tune_fusion_on_split(params, split, metric, fusion_grid())
    table = Table(title=f"fusion on {split} ({metric})")
    for col in ("method", "norm", "alpha", "rrf_k", metric):
        table.add_column(col)
    for r in results[:15]:
        table.add_row(r["method"], r["norm"], str(r["alpha"]), str(r["rrf_k"]), f"{r[metric]:.4f}")
    console.print(table)
    best = results[0]
    console.print(f"best: {best}")
    if write:
        write_fusion_params(params_file, best, f"ragops tune-fusion --split {split} --metric {metric} --write")
        console.print(f"written to {params_file}")


def main() -> None:  # pragma: no cover - entry point
    app()
