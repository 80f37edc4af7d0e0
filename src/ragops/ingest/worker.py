"""File conversion in worker processes with a per-file time limit (issue 16, item 6).

A converter runs third-party parsers on files nobody checked: a crafted PDF can loop for ever, a huge one can
exhaust memory, a C extension can crash. So :func:`convert_all` runs :func:`~ragops.ingest.formats.convert_file`
in a fixed number of long-lived worker processes (``spawn`` context: never ``fork``, the parent may hold
threads), one file at a time each. A file that takes longer than ``timeout_s`` is reported as ``timeout``; its
worker is stopped (SIGTERM, then SIGKILL) and replaced. A worker that dies mid-file (a segfault, the kernel's
OOM killer) costs that file an ``error``; a ``MemoryError`` inside it too. Every other file still converts.
The deadline starts when a file is handed to a worker that has finished starting, so a slow start on a busy
machine is never mistaken for a slow file.

No process is left behind: the pool is torn down in a ``finally`` (the consumer stopping early, Ctrl-C, an
exception), workers ignore SIGINT (the parent decides), are daemonic, and exit on their own when the parent
dies (even by SIGKILL) unless stuck in a converter.

Test hooks, read by the worker from its environment (fault injection, like ``ragops.recovery.failpoint``):

- ``RAGOPS_INGEST_HANG=<file name>``: the worker sleeps for ever on the file of that name (its base name);
  the timeout path is then exercised by a real hang.
- ``RAGOPS_INGEST_CRASH=<file name>``: the worker SIGKILLs itself on that file, as the OOM killer would.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path

from ragops.errors import ConfigError, RagopsError
from ragops.ingest.formats import ConversionError, Doc

log = logging.getLogger("ragops.ingest")
HANG_ENV, CRASH_ENV = "RAGOPS_INGEST_HANG", "RAGOPS_INGEST_CRASH"
START_TIMEOUT_S = 120.0  # a worker that cannot even import its libraries in this long is broken
GRACE_S = 2.0  # between SIGTERM and SIGKILL


@dataclass(frozen=True)
class Outcome:
    path: Path
    docs: list[Doc]  # empty on failure
    error: ConversionError | None
    seconds: float  # wall time from hand-over to the result (or to the kill)


def _serve(conn: Connection) -> None:
    """The worker: announce readiness once the converters are imported, then convert until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # a damaged file's warnings: the manifest says it
    parent = multiprocessing.parent_process()
    if parent is not None:  # the parent's end gone: stop, even when busy in a converter's loop
        threading.Thread(target=lambda: (parent.join(), os._exit(1)), daemon=True).start()
    preload()
    conn.send(("ready", os.getpid()))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        index, path, max_bytes = task
        conn.send((index, *_convert(Path(path), max_bytes)))


def preload() -> None:
    """Import every converter's library, before the worker says it is ready: the first file's deadline is
    its own, not the imports'. None of them imports torch (a test holds that)."""
    import bs4  # noqa: F401
    import charset_normalizer  # noqa: F401
    import docx  # noqa: F401
    import pypdf  # noqa: F401

    from ragops.ingest import formats, readers  # noqa: F401


def _convert(path: Path, max_bytes: int) -> tuple[list[Doc], ConversionError | None]:
    if os.environ.get(HANG_ENV) == path.name:
        while True:
            time.sleep(3600)
    if os.environ.get(CRASH_ENV) == path.name:
        os.kill(os.getpid(), signal.SIGKILL)
    from ragops.ingest.formats import convert_file

    try:
        return convert_file(path, max_bytes), None
    except ConversionError as exc:
        return [], exc
    except MemoryError:
        return [], ConversionError("error", "ran out of memory while converting")
    except Exception as exc:  # noqa: BLE001 - a converter's bug costs this file, not the ingest
        return [], ConversionError("error", f"the converter failed ({type(exc).__name__}: {exc})")


class _Worker:
    """One worker process, the parent's end of its pipe, and the file it is converting (if any)."""

    def __init__(self, ctx) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child,), name="ragops-ingest", daemon=True)
        self.proc.start()
        child.close()
        self.born = time.monotonic()
        self.ready = False
        self.task: int | None = None
        self.since = 0.0

    def give(self, index: int, path: Path, max_bytes: int) -> None:
        self.conn.send((index, str(path), max_bytes))
        self.task, self.since = index, time.monotonic()

    def stop(self, now: bool = False) -> None:
        """Ask an idle worker to exit; a busy (or stubborn) one gets SIGTERM, then SIGKILL."""
        if not now and self.ready and self.task is None and self.proc.is_alive():
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.proc.join(GRACE_S)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(GRACE_S)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(GRACE_S)
        self.conn.close()
        with contextlib.suppress(ValueError):
            self.proc.close()


def convert_all(paths: Sequence[Path], workers: int = 2, timeout_s: float = 60.0,
                max_bytes: int = 50 * 2**20) -> Iterator[Outcome]:
    """Convert in worker processes; a file that takes longer than timeout_s is reported as status
    "timeout" and its worker is killed and replaced; a worker that crashes (segfault, MemoryError) gives
    status "error" for that file; every other file still converts. Yields one Outcome per path, in input order."""
    if workers < 1:
        raise ConfigError(f"ingest workers must be at least 1, got {workers}")
    if not timeout_s > 0:
        raise ConfigError(f"ingest timeout_s must be positive, got {timeout_s}")
    paths = [Path(p) for p in paths]
    if not paths:
        return
    ctx = multiprocessing.get_context("spawn")
    pool: list[_Worker] = []
    todo, done, emitted = deque(range(len(paths))), {}, 0
    try:
        pool = [_Worker(ctx) for _ in range(min(workers, len(paths)))]
        while emitted < len(paths):
            for w in pool:
                if w.ready and w.task is None and todo:
                    w.give(todo[0], paths[todo[0]], max_bytes)
                    todo.popleft()
            while emitted in done:
                yield done.pop(emitted)
                emitted += 1
            if emitted < len(paths):
                _step(ctx, pool, paths, done, timeout_s)
    finally:
        for w in pool:
            w.stop(now=w.task is not None)


def _step(ctx, pool: list[_Worker], paths: list[Path], done: dict[int, Outcome], timeout_s: float) -> None:
    """Wait for a result, a death or the nearest deadline, and deal with what happened."""
    deadlines = [w.since + timeout_s if w.ready else w.born + START_TIMEOUT_S for w in pool
                 if w.task is not None or not w.ready]
    left = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
    wait([w.conn for w in pool] + [w.proc.sentinel for w in pool], timeout=left)
    now = time.monotonic()
    for i, w in enumerate(pool):
        message = None
        try:
            if w.conn.poll():
                message = w.conn.recv()
        except (EOFError, OSError):
            pass  # died: its sentinel says so below
        if message is not None and message[0] == "ready":
            w.ready = True
        elif message is not None:
            index, docs, error = message
            done[index] = Outcome(paths[index], docs, error, now - w.since)
            w.task = None
        elif not w.proc.is_alive():
            if not w.ready:
                raise RagopsError(f"an ingest worker could not start ({_exit(w.proc.exitcode)}); "
                                  "its error is printed above")
            if w.task is not None:
                reason = f"the converter crashed ({_exit(w.proc.exitcode)}); its worker was replaced"
                done[w.task] = Outcome(paths[w.task], [], ConversionError("error", reason), now - w.since)
                log.debug("ingest: %s: %s", paths[w.task], reason)  # the caller reports failures
            w.stop(now=True)
            pool[i] = _Worker(ctx)
        elif w.task is not None and now - w.since >= timeout_s:
            reason = f"conversion took longer than {timeout_s:g} s (ingest.timeout_s); its worker was stopped"
            done[w.task] = Outcome(paths[w.task], [], ConversionError("timeout", reason), now - w.since)
            log.debug("ingest: %s: %s", paths[w.task], reason)
            w.stop(now=True)
            pool[i] = _Worker(ctx)
        elif not w.ready and now - w.born >= START_TIMEOUT_S:
            raise RagopsError(f"an ingest worker did not start within {START_TIMEOUT_S:g} s")


def _exit(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"
