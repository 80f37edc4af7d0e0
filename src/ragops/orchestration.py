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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ragops.config import flatten, load_params
from ragops.errors import ConfigError, RagopsError

Outcome = Literal["ran", "skipped", "failed", "not_run"]
LineFn = Callable[[str], None]

# DVC's messages for a repository or stage locked by another DVC process (dvc/lock.py, dvc/rwlock.py),
# and for transfers to a remote that failed (network, remote briefly unavailable).
TRANSIENT_PATTERNS = ("Unable to acquire lock", "is busy, it is being blocked by",
                      "failed to push data to the cloud")
_PROGRESS = re.compile(r"\d+%\|")  # tqdm bars: kept out of the logs, the last one is enough


@dataclass(frozen=True)
class Stage:
    """A pipeline stage as DVC sees it. ``name`` is DVC's address (``prepare``, ``sub/dvc.yaml:x``)."""

    name: str
    upstream: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()  # metrics files, relative to the project root


@dataclass(frozen=True)
class StageRecord:
    """What happened to one step of a flow run: the row the flow publishes for it."""

    stage: str
    outcome: Outcome
    seconds: float = 0.0
    message: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class StageError(RagopsError):
    """A stage failed for a reason retrying will not fix. ``str()`` is the stage's own message."""

    def __init__(self, record: StageRecord) -> None:
        self.record = record
        super().__init__(f"stage '{record.stage}' failed: {record.message}")


class TransientDvcError(RagopsError):
    """DVC could not take its lock (another DVC process is running) or a transfer to the remote
    failed: worth retrying."""

    def __init__(self, record: StageRecord) -> None:
        self.record = record
        super().__init__(f"{record.stage}: {record.message}")


def is_transient(exc: BaseException) -> bool:
    """Whether a failed step is worth retrying (the flow's retry condition)."""
    return isinstance(exc, TransientDvcError)


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


# ------------------------------------------------------------------ running DVC


@dataclass(frozen=True)
class DvcResult:
    returncode: int
    output: str
    seconds: float


# Stages that train models: `retrain` forces them and sets RAGOPS_RETRAIN=1, which overrides
# train.retrain: on_train_change (ragops.training.artifacts.reusable).
TRAIN_STAGES = ("train_embedder", "train_reranker")


def dvc_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for DVC: this interpreter's bin first, so a stage's ``python`` is ours."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "DVC_NO_ANALYTICS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(extra or {})}


def run_dvc(root: Path, args: list[str], on_line: LineFn | None = None,
            extra_env: dict[str, str] | None = None) -> DvcResult:
    """Run ``dvc <args>`` in ``root``; stream each output line (progress bars left out) to ``on_line``."""
    t0 = time.perf_counter()
    lines: list[str] = []
    with subprocess.Popen([sys.executable, "-m", "dvc", *args], cwd=root, env=dvc_env(extra_env), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=1) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            lines.append(line)
            if on_line is not None and line.strip() and not _PROGRESS.search(line):
                on_line(line)
    return DvcResult(proc.returncode, "\n".join(lines), time.perf_counter() - t0)


def _check(result: DvcResult, step: str) -> None:
    """Raise the right error for a failed DVC command."""
    if result.returncode == 0:
        return
    record = StageRecord(step, "failed", round(result.seconds, 2), stage_error_message(result.output))
    dvc_errors = [ln for ln in result.output.splitlines() if ln.startswith("ERROR:")]  # DVC's, not the stage's
    if any(p in ln for ln in dvc_errors for p in TRANSIENT_PATTERNS):
        raise TransientDvcError(record)
    raise StageError(record)


def stage_error_message(output: str) -> str:
    """The stage's own error from DVC's output: its one-line ``error: ...``, else the last exception line
    of the last traceback (``RAGOPS_DEBUG=1``).

    ``ragops.errors.DataError: data/raw/x/corpus.jsonl:3: malformed JSON`` becomes
    ``data/raw/x/corpus.jsonl:3: malformed JSON`` (our errors already say what and where); other
    exceptions keep their type (``KeyError: 'paths'``). Without a traceback: DVC's last ``ERROR:``.
    """
    lines = output.splitlines()
    ours = [ln.removeprefix("error: ").strip() for ln in lines if ln.startswith("error: ")]
    if ours:  # a stage's one-line error (ragops.timing.run_stage)
        return ours[-1]
    starts = [i for i, ln in enumerate(lines) if ln.startswith("Traceback (most recent call last)")]
    if starts:
        for line in lines[starts[-1] + 1:]:
            if line.strip() and not line.startswith((" ", "\t")):
                kind, sep, message = line.partition(": ")
                if not sep:
                    return kind.strip()
                return message.strip() if kind.startswith("ragops.") else f"{kind.rsplit('.', 1)[-1]}: {message}"
    errors = [ln.removeprefix("ERROR: ").strip() for ln in lines if ln.startswith("ERROR:")]
    if errors:
        return errors[-1]
    rest = [ln.strip() for ln in lines if ln.strip()]
    return rest[-1] if rest else "failed without output"


def repro_outcome(output: str, stage: str) -> tuple[Outcome, str]:
    """Read ``dvc repro --single-item`` output: did the stage run, or why not."""
    if f"Running stage '{stage}'" in output:
        return "ran", ""
    if f"Stage '{stage}' is cached - skipping run" in output:
        return "skipped", "restored from the DVC run cache"
    if f"Stage '{stage}' didn't change" in output:
        return "skipped", "inputs unchanged"
    return "skipped", "dvc reported nothing to do"


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
    _check(DvcResult(proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - t0), "dvc status")
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
    _check(result, stage.name)
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
    _check(result, "dvc push")
    pushed = re.search(r"(\d+) files? pushed", result.output)
    n = int(pushed.group(1)) if pushed else 0
    return StageRecord("dvc push", "ran", round(result.seconds, 2), f"{n} files pushed to remote '{remote}'")
