"""`ragops models`, `ragops promote` and `ragops search --model`: the model registry from the command line.

The tracking store is the project's (params ``registry:``, relative to the params file) unless
``MLFLOW_TRACKING_URI`` names another. Registered in ragops.cli.main (which turns RagopsError into one line).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ragops.errors import RagopsError

console = Console()
ParamsOpt = Annotated[Path, typer.Option("--params", help="params file to read.")]


def model_hits(uri: str, query: str, k: int, mode: str | None,
               params_file: Path) -> tuple[str, list[tuple[str, float, str, str]]]:
    """(mode, [(doc_id, score, title, text)]) from a packaged pipeline (``models:/...``, ``runs:/...`` or a
    folder); ``mode`` None: the package's registered mode; a mode it does not carry lists those it does."""
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from ragops.pyfunc import load_model

    project_registry(params_file, need_params=False)  # a models:/ URI is resolved in the project's store
    try:
        model = load_model(uri)
    except (MlflowException, OSError) as exc:
        raise RagopsError(f"cannot load {uri}: {str(exc).splitlines()[0]}") from None
    mode = model.unwrap_python_model().pipeline.resolve(mode)
    frame = model.predict(pd.DataFrame({"query": [query], "k": [k], "mode": [mode]}))
    return mode, list(zip(frame["doc_id"], frame["score"].astype(float), frame["title"], frame["text"], strict=True))


def project_registry(params_file: Path, need_params: bool = True):
    """(registry config, MLflow client, store) for the project of ``params_file``."""
    from ragops.config import load_params
    from ragops.registry.tracking import RegistryConfig, connect, resolve_store

    if params_file.exists() or need_params:
        cfg = RegistryConfig.from_params(load_params(params_file).get("registry"))
    else:
        cfg = RegistryConfig()
    store = resolve_store(cfg, params_file.resolve().parent)
    return cfg, connect(store), store


def _num(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def models_command(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    params_file: ParamsOpt = Path("params.yaml"),
) -> None:
    """List the registered retriever's versions with their aliases, scores and gate decisions."""
    import dataclasses

    from ragops.registry.versions import list_versions

    cfg, client, store = project_registry(params_file)
    rows = list_versions(client, cfg.model_name)
    if as_json:
        sys.stdout.write(json.dumps({"model": cfg.model_name, "tracking_uri": store.display_uri,
                                     "versions": [dataclasses.asdict(r) for r in rows]}, indent=2) + "\n")
        return
    if not rows:
        console.print(f"{cfg.model_name}: no version registered in {store.display_uri} (run `dvc repro`)")
        return
    table = Table(title=f"{cfg.model_name} ({cfg.split} {cfg.metric} of each version's mode) in {store.display_uri}")
    for col in ("version", "aliases", "created", "mode", "score", "champion then", "p", "decision", "reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(str(r.version), ", ".join(r.aliases), r.created, r.mode, _num(r.score), _num(r.champion_score),
                      _num(r.p_value, 3), r.decision or "", r.reason or "")
    console.print(table)


def promote_command(
    version: Annotated[int | None, typer.Option(help="version to promote (default: the challenger)")] = None,
    force: Annotated[bool, typer.Option("--force", help="promote even if the gate says no")] = False,
    params_file: ParamsOpt = Path("params.yaml"),
) -> None:
    """Make a version champion if the gate allows it (or with --force). Exit code 1 when the gate blocks."""
    from ragops.recovery import lock_path, registry_lock
    from ragops.registry.versions import promote as promote_version

    cfg, client, store = project_registry(params_file)
    # the lock `register` holds: a promotion never interleaves with a registration and its gate
    with registry_lock(lock_path(store.tracking_uri, params_file.resolve().parent), "ragops promote"):
        result = promote_version(client, cfg, version, force)
    d = result.decision
    if d is None:
        console.print(f"{cfg.model_name} v{result.version} is already champion")
        return
    champ = "none" if d.champion is None else f"{d.champion:.4f} (v{result.previous})"
    console.print(f"{cfg.model_name} v{result.version}: challenger {d.challenger:.4f}, champion {champ}, "
                  f"p={_num(d.p_value, 4) or 'n/a'}; {d.reason}")
    if not result.promoted:
        console.print(f"not promoted: champion stays v{result.previous} (--force to override)")
        raise typer.Exit(1)
    console.print(f"v{result.version} is now champion" + (f" (was v{result.previous})" if result.previous else ""))
