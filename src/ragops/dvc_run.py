"""Running DVC for the flow: ``dvc`` in a subprocess with this interpreter first on PATH, its output streamed
line by line, and read back — did a stage run, was it skipped, and if it failed, the stage's own message
and whether retrying can help (another DVC process holds the lock: :class:`TransientDvcError`) or not
(:class:`StageError`). The records a flow publishes per step are here too; ``ragops.orchestration`` uses them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ragops.errors import RagopsError

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
class DvcResult:
    returncode: int
    output: str
    seconds: float



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


def check_result(result: DvcResult, step: str) -> None:
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
