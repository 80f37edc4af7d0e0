"""Stage wall times. DVC records hashes, not durations, so each stage records its own.

``run_stage`` is every stage module's entry point: it loads params, runs ``main(params)`` and
writes ``<paths.stage_times>/<stage>.json`` (wall seconds and when it finished). A stage that DVC
skipped keeps the record of its last execution in this workspace: the ``finished`` time tells.
The folder is a cache (git-ignored, not a DVC output), like the embedding cache.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ragops.io import read_json, write_json

DEFAULT_DIR = ".cache/stage_times"


def record_stage_time(directory: str | Path, stage: str, seconds: float) -> None:
    finished = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_json(Path(directory) / f"{stage}.json", {"stage": stage, "seconds": round(seconds, 3), "finished": finished})


def read_stage_times(directory: str | Path) -> dict[str, dict[str, Any]]:
    """``{stage: {"stage", "seconds", "finished"}}`` for every stage that recorded a time."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(directory).glob("*.json")):
        try:
            record = read_json(path)
        except (OSError, ValueError):
            continue  # a record is a convenience: a damaged one is skipped, not fatal
        if isinstance(record, dict) and "seconds" in record:
            out[path.stem] = record
    return out


def run_stage(stage: str, main: Callable[[dict[str, Any]], None]) -> None:
    """Entry point of ``python -m ragops.stages.<stage>``: logging, params, main, timing record.

    A failure prints one line, ``error: <message>`` (the file:line or params key our errors name), and
    exits 2 for an error the user can fix (``RagopsError``), 1 for any other, 130 on Ctrl-C; the traceback
    only with ``RAGOPS_DEBUG=1``."""
    from ragops.config import load_params
    from ragops.errors import RagopsError, debug_enabled, one_line
    from ragops.logs import setup

    setup()
    t0 = time.perf_counter()
    try:
        params = load_params()
        main(params)
    except KeyboardInterrupt:
        if debug_enabled():
            raise
        print(f"error: stage {stage} interrupted", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    except Exception as exc:
        if debug_enabled():
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr, flush=True)
        raise SystemExit(2 if isinstance(exc, RagopsError) else 1) from None
    record_stage_time(params.get("paths", {}).get("stage_times", DEFAULT_DIR), stage, time.perf_counter() - t0)
