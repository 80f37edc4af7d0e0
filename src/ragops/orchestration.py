"""Running the DVC pipeline one stage at a time, for the Prefect flow in ``flows/pipeline.py``.

DVC stays the judge of what is stale and the keeper of every output:

- the stages and their order come from DVC's own index of ``dvc.yaml`` (so a stage added there is
  picked up without touching the flow);
- ``dvc status`` says which stages are stale before the run; a stage that is not stale, and none of
  whose upstream stages ran, is up to date and DVC is not asked again;
- every other stage goes through ``dvc repro --single-item``, and DVC's own output says whether it
  ran, found nothing changed, or restored its outputs from the DVC cache.

Nothing here imports Prefect: the flow passes a logging callback and adds retries. Failures come
back as :class:`StageError` (the stage's own message, not worth retrying) or
:class:`TransientDvcError` (another DVC process holds the lock; retrying can succeed).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ragops.config import flatten, load_params
from ragops.dvc_run import (  # noqa: F401 - re-exported: the flow and its tests use them as orchestration.*
    DvcResult,
    LineFn,
    Outcome,
    Stage,
    StageError,
    StageRecord,
    TransientDvcError,
    check_result,
    dvc_env,
    is_transient,
    repro_outcome,
    run_dvc,
    stage_error_message,
)
from ragops.errors import ConfigError


@dataclass(frozen=True)
class OrchestrationConfig:
    """The ``orchestration`` section of params.yaml (no stage reads it, so editing it re-runs nothing)."""

    deployment: str = "nightly"
    cron: str = "0 2 * * *"
    retrain_cron: str = ""  # a second schedule whose runs retrain the models ("" = none)
    timezone: str = "UTC"
    push: bool = True
    pause_on_shutdown: bool = False
    retries: int = 2
    retry_delay_s: float = 10.0

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> OrchestrationConfig:
        section = params.get("orchestration") or {}
        unknown = set(section) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"orchestration: unknown keys {sorted(unknown)}; valid: "
                              f"{', '.join(cls.__dataclass_fields__)}")
        return cls(**section)


# Stages that train models: `retrain` forces them and sets RAGOPS_RETRAIN=1, which overrides
# train.retrain: on_train_change (ragops.training.artifacts.reusable). Only these two keep a model across a
# change of what they read (a corpus edit); grounding_pretrain and grounding retrain whenever anything they
# read changes, so forcing them would only repeat the same training (docs/DECISIONS.md).
TRAIN_STAGES = ("train_embedder", "train_reranker")


# ------------------------------------------------------------------ the pipeline as DVC sees it


def list_stages(root: Path) -> list[Stage]:
    """Every pipeline stage of the project in dependency order (ties in dvc.yaml order)."""
    import networkx as nx
    from dvc.repo import Repo
    from dvc.stage import PipelineStage

    root = Path(root).resolve()

    def address(stage: PipelineStage) -> str:  # DVC's own `addressing` is relative to the process cwd
        dvcfile = Path(stage.dvcfile.path).resolve()
        return stage.name if dvcfile == root / "dvc.yaml" else f"{dvcfile.relative_to(root)}:{stage.name}"

    with warnings.catch_warnings(), Repo(str(root)) as repo:
        warnings.simplefilter("ignore", DeprecationWarning)  # DVC internals, not ours to fix
        graph = repo.index.graph  # edges: stage -> a stage it depends on
        order = {stage: i for i, stage in enumerate(repo.index.stages)}
        pipeline = [s for s in nx.lexicographical_topological_sort(graph.reverse(), key=lambda s: order[s])
                    if isinstance(s, PipelineStage)]
        out = []
        for stage in pipeline:
            upstream = tuple(address(dep) for dep in graph.successors(stage) if isinstance(dep, PipelineStage))
            metrics = tuple(os.path.relpath(Path(stage.wdir) / o.def_path, root) for o in stage.outs if o.metric)
            out.append(Stage(address(stage), upstream, metrics))
    return out


def stale_stages(root: Path, on_line: LineFn | None = None) -> set[str]:
    """Stages that ``dvc status`` reports as changed (deps, params, code or outputs)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=root, env=dvc_env(),
                          capture_output=True, text=True, check=False)
    check_result(DvcResult(proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - t0), "dvc status")
    stale = set(json.loads(proc.stdout or "{}"))
    if on_line is not None:
        on_line(f"dvc status: {', '.join(sorted(stale)) or 'everything up to date'}")
    return stale


def must_check(stage: Stage, stale: set[str], ran: set[str]) -> bool:
    """Whether DVC must look at ``stage``: it was stale, or a stage it depends on has just run."""
    return stage.name in stale or any(up in ran for up in stage.upstream)


def read_metrics(root: Path, stage: Stage) -> dict[str, float]:
    """The numbers in a stage's metrics files, flattened (``test.hybrid.ndcg@10``)."""
    values: dict[str, float] = {}
    for rel in stage.metrics:
        path = root / rel
        if path.is_file():  # JSON is YAML, so one reader serves both formats DVC accepts here
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            flat = flatten(data) if isinstance(data, dict) else {}
            values.update({k: v for k, v in flat.items() if isinstance(v, int | float) and not isinstance(v, bool)})
    return values


def reproduce(root: Path, stage: Stage, check: bool = True, on_line: LineFn | None = None,
              force: bool = False) -> StageRecord:
    """Bring one stage up to date through DVC and say what happened.

    With ``check=False`` (not stale, nothing upstream ran) DVC is not called again: the stage is
    up to date. ``force`` runs it even when up to date, with RAGOPS_RETRAIN=1 (a training stage then
    retrains). Raises :class:`StageError` or :class:`TransientDvcError` when DVC fails.
    """
    if not check and not force:
        return StageRecord(stage.name, "skipped", 0.0, "up to date (dvc status)", read_metrics(root, stage))
    args = ["repro", "--single-item", *(["--force"] if force else []), stage.name]
    result = run_dvc(root, args, on_line, {"RAGOPS_RETRAIN": "1"} if force else None)
    check_result(result, stage.name)
    outcome, message = repro_outcome(result.output, stage.name)
    if outcome == "ran" and stage.name == "register":
        message = registry_note(root)
    return StageRecord(stage.name, outcome, round(result.seconds, 2), message, read_metrics(root, stage))


def registry_note(root: Path) -> str:
    """What `register` did (register, gate, promote) in one line, from ``paths.registry``; or ""."""
    path = load_params(root / "params.yaml", validate=False).get("paths", {}).get("registry")
    if not path or not (root / path).is_file():
        return ""
    info = json.loads((root / path).read_text(encoding="utf-8"))
    if info.get("registered") is False:
        return str(info.get("reason", "not registered"))
    verdict = "promoted to champion" if info.get("promoted") else f"champion stays v{info.get('previous_champion')}"
    reason = (info.get("decision") or {}).get("reason", "")
    mode = f" serving {info['served_mode']}" if info.get("served_mode") else ""
    return f"v{info.get('version')}{mode} registered as challenger; gate: {verdict} ({reason})"


def not_run(stage: Stage, failed: str) -> StageRecord:
    return StageRecord(stage.name, "not_run", 0.0, f"not run: stage '{failed}' failed")


# ------------------------------------------------------------------ publishing to a DVC remote


def default_remote(root: Path) -> str | None:
    """The default DVC remote (``core.remote`` in .dvc/config or config.local), or None."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return repo.config.get("core", {}).get("remote") or None


def push(root: Path, on_line: LineFn | None = None) -> StageRecord:
    """``dvc push`` to the default remote, so ``dvc pull`` elsewhere gets exactly these outputs."""
    remote = default_remote(root)
    if remote is None:
        message = "no default DVC remote (add one: `dvc remote add -d NAME URL`)"
        if on_line is not None:
            on_line(message)
        return StageRecord("dvc push", "skipped", 0.0, message)
    result = run_dvc(root, ["push"], on_line)
    check_result(result, "dvc push")
    pushed = re.search(r"(\d+) files? pushed", result.output)
    n = int(pushed.group(1)) if pushed else 0
    return StageRecord("dvc push", "ran", round(result.seconds, 2), f"{n} files pushed to remote '{remote}'")
