"""The `ragops` command (typer). Every command reads params.yaml from the working directory
(or --params); errors a user can fix print one line, without a traceback."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.table import Table

from ragops.cli.ask import ask_command
from ragops.cli.cache import cache_app, prune_command
from ragops.cli.gate import gate_command
from ragops.cli.ingest import ingest_command
from ragops.cli.judge import judge_command
from ragops.cli.registry import model_hits, models_command, promote_command
from ragops.cli.silver import generate_questions_command
from ragops.cli.tune import tune_fusion_command, tune_training_command
from ragops.encode.models import offline_env
from ragops.errors import DEBUG_ENV, ConfigError, RagopsError, debug_enabled, one_line

app = typer.Typer(
    help="ragops: a versioned, measured retrieval-augmented generation pipeline.\n\n"
    "Build with `dvc repro` (or `make repro`), then search the built index.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Obtain and check the raw data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(cache_app, name="cache")
console = Console()
err = Console(stderr=True)

ParamsOpt = Annotated[Path, typer.Option("--params", help="params file to read.")]


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="show the traceback of an error (or RAGOPS_DEBUG=1)")] = False,
) -> None:
    if debug:
        os.environ[DEBUG_ENV] = "1"  # the stages and servers this command starts inherit it
    # no model hub, and no tokenizers thread pool: a server's request threads and the ONNX runtime's own share
    # the cores (the stages and servers this command starts inherit it)
    offline_env()


def friendly(fn):
    """Errors become one line: a RagopsError (the user can fix it) exits 2, any other error 1 with its type,
    Ctrl-C 130; ``--debug`` / ``RAGOPS_DEBUG=1`` keeps the traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException, click.ClickException):
            raise  # typer's own usage errors (typer vendors click: its exceptions are not click's)
        except KeyboardInterrupt:
            if debug_enabled():
                raise
            err.print("[bold red]error:[/] interrupted", highlight=False)
            raise typer.Exit(130) from None
        except Exception as exc:
            if debug_enabled():
                raise
            # one line, never re-wrapped; no markup: a message may hold [brackets]
            err.print(f"error: {one_line(exc)}", style="bold red", highlight=False, soft_wrap=True, markup=False)
            raise typer.Exit(2 if isinstance(exc, RagopsError) else 1) from None

    return wrapper


@data_app.command("fetch")
@friendly
def data_fetch(
    mirror: Annotated[Path, typer.Option(help="folder holding <name>/ and SHA256SUMS")] = Path("../shared/datasets"),
    name: Annotated[list[str] | None, typer.Option(
        help="data set folder inside the mirror, repeatable (default: scifact and nli, what DVC reads)")] = None,
    dest: Annotated[Path | None, typer.Option(help="where to place it (default data/raw/<name>)")] = None,
    verify_dvc: Annotated[bool, typer.Option(help="check the placed files against the committed .dvc pointer")] = True,
    archive: Annotated[str | None, typer.Option(
        help="instead of the mirror: BEIR's published zip (or a .tar.gz), an http/https/file URL or a path, "
        "checked by content against data/<name>.content.sha256")] = None,
) -> None:
    """Copy data sets from a mirror folder (or --archive), verify every sha256, place each under data/raw/."""
    names = name or (["scifact"] if archive or dest else list(DEFAULT_DATASETS))
    if len(names) > 1 and (dest or archive):
        raise ConfigError("--dest and --archive take one --name")
    for one in names:
        _fetch_one(mirror, one, dest, verify_dvc, archive)


DEFAULT_DATASETS = ("scifact", "nli")  # the corpus and its judgments; the grounding pretraining's pairs


def _fetch_one(mirror: Path, name: str, dest: Path | None, verify_dvc: bool, archive: str | None) -> None:
    from ragops.data.fetch import place_dataset, verify_with_dvc

    dest = dest or Path("data/raw") / name
    if archive:
        from ragops.data.archive import place_from_archive

        sums = Path("data") / f"{name}.content.sha256"
        result = place_from_archive(archive, name, dest, sums)
        for line in result.report(dest, sums):
            console.print(line, markup=False, highlight=False, soft_wrap=True)
        verify_dvc = verify_dvc and result.mirror_identical
    else:
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
    mode: Annotated[str | None, typer.Option(
        help="a retrieval mode the index or model carries: bm25 | dense | hybrid | dense_ft | hybrid_ft | "
        "hybrid_rerank | hybrid_ft_rerank (default: a model's registered mode; locally serve.mode)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    model: Annotated[str | None, typer.Option(
        help="answer from a packaged model instead of the local index, e.g. models:/ragops-retriever@champion "
        "(the tracking store comes from MLFLOW_TRACKING_URI or params registry.tracking_uri)")] = None,
    params_file: ParamsOpt = Path("params.yaml"),
) -> None:
    """Search the built index (or a registered model) and print ranked documents with titles and scores."""
    from ragops.retrieval.pipeline import MODES

    if mode is not None and mode not in MODES:
        raise typer.BadParameter(f"unknown mode {mode!r}; valid: {', '.join(MODES)}", param_hint="--mode")
    if not query.strip():
        raise typer.BadParameter("the query is empty", param_hint="QUERY")
    if model:
        mode, hits = model_hits(model, query, k, mode, params_file)
    else:
        mode, hits = _local_hits(query, k, mode, params_file)
    rows = [
        {"rank": r + 1, "doc_id": d, "score": round(float(s), 4), "title": title, "snippet": text[:160]}
        for r, (d, s, title, text) in enumerate(hits)
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


def _local_hits(query: str, k: int, mode: str | None,
                params_file: Path) -> tuple[str, list[tuple[str, float, str, str]]]:
    """(mode, [(doc_id, score, title, text)]) from the built pipeline named by params."""
    from ragops.config import load_params
    from ragops.retrieval.load import load_pipeline

    params = load_params(params_file)
    mode = mode or local_default_mode(params)
    pipeline, docs = load_pipeline(params, [mode])
    hits = pipeline.search(query, mode, k)
    docs = docs.set_index("doc_id")
    return mode, [(d, float(s), str(docs.at[d, "title"]), str(docs.at[d, "text"]))
                  for d, s in zip(hits.ids, hits.scores, strict=True)]


def local_default_mode(params: dict) -> str:
    """The local build's default mode: ``serve.mode`` when it names one, else hybrid."""
    from ragops.retrieval.pipeline import MODES

    mode = str(params.get("serve", {}).get("mode", "hybrid"))
    return mode if mode in MODES else "hybrid"


def _flows_module(name: str):
    """flows/<name>.py of the project in the working directory (flows/ is not a package)."""
    import importlib.util
    import os

    path = Path.cwd() / "flows" / f"{name}.py"
    if not path.is_file():
        raise RagopsError(f"{path}: not found (run ragops from the project root)")
    # No network here: Prefect's telemetry would only log an error. A busy machine starts slowly.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    spec = importlib.util.spec_from_file_location(f"ragops_flows_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@app.command("run")
@friendly
def run_pipeline(
    push: Annotated[bool | None, typer.Option("--push/--no-push", help="dvc push afterwards "
                                              "(default: orchestration.push)")] = None,
    retrain: Annotated[bool, typer.Option("--retrain", help="retrain the models even when only the corpus "
                                          "changed (train.retrain: on_train_change keeps them otherwise)")] = False,
) -> None:
    """Run the pipeline once as a Prefect flow: each DVC stage a task, then a DVC push.

    Uses the Prefect server in PREFECT_API_URL, or a temporary one when it is unset.
    """
    records = _flows_module("deploy").run_once(Path.cwd(), push, retrain)
    table = Table(title="ragops-pipeline")
    for col in ("stage", "outcome", "seconds", "message"):
        table.add_column(col, overflow="fold")
    for r in records:
        table.add_row(r["stage"], r["outcome"], f"{r['seconds']:.1f}", r["message"])
    console.print(table)


@app.command()
@friendly
def schedule(
    pause_on_shutdown: Annotated[bool | None, typer.Option(
        "--pause-on-shutdown/--keep-schedule", help="pause the schedule when this process stops "
        "(default: orchestration.pause_on_shutdown)")] = None,
    params_file: ParamsOpt = Path("params.yaml"),
) -> None:
    """Serve the pipeline as a Prefect deployment on orchestration.cron (default nightly), until stopped.

    Needs a Prefect server: `prefect server start`, then PREFECT_API_URL=http://127.0.0.1:4200/api.
    """
    import dataclasses

    from ragops.config import load_params
    from ragops.orchestration import OrchestrationConfig

    deploy = _flows_module("deploy")
    from prefect.settings import get_current_settings

    if not get_current_settings().api.url:
        raise RagopsError("PREFECT_API_URL is not set: start a server (`prefect server start`) and "
                          "export PREFECT_API_URL=http://127.0.0.1:4200/api")
    cfg = OrchestrationConfig.from_params(load_params(params_file))
    if pause_on_shutdown is not None:
        cfg = dataclasses.replace(cfg, pause_on_shutdown=pause_on_shutdown)
    deploy.serve(Path.cwd(), cfg)


@app.command()
@friendly
def serve(
    model: Annotated[str | None, typer.Option(
        help="local (the built index) | models:/ragops-retriever@champion (watched: a newly promoted version "
        "is swapped in) | models:/NAME/VERSION. Default: serve.model (auto: the champion if the registry "
        "has one, else local)")] = None,
    host: Annotated[str | None, typer.Option(help="address to bind (default serve.host, 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default serve.port, 8000)")] = None,
    params_file: ParamsOpt = Path("params.yaml"),
) -> None:
    """Serve the HTTP API (/search, /ask, /health, /metrics, /docs) and the search page at /.

    RAGOPS_API_TOKEN set: every endpoint but /health and the page needs `Authorization: Bearer <token>`.
    """
    from ragops.config import load_params
    from ragops.serving.server import serve as run_server

    run_server(load_params(params_file), params_file.resolve().parent, model, host, port)


app.command("gate")(friendly(gate_command))
app.command("ingest")(friendly(ingest_command))
app.command("tune-fusion")(friendly(tune_fusion_command))
app.command("tune-training")(friendly(tune_training_command))
app.command("ask")(friendly(ask_command))
app.command("models")(friendly(models_command))
app.command("promote")(friendly(promote_command))
app.command("generate-questions")(friendly(generate_questions_command))
app.command("judge")(friendly(judge_command))
cache_app.command("prune")(friendly(prune_command))


def main() -> None:  # pragma: no cover - entry point
    app()
