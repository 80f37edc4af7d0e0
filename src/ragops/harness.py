"""Processes on loopback, for the tests and the benchmarks alike: a free port, a service started in its own
process group and waited for until it answers, and stopped gracefully (then killed, with whatever it spawned).

The one harness both import (issue 19): a server started by a benchmark is started, waited for and
stopped exactly as the integration tests do it, and a project copy is made of the same files. Nothing
here runs at import time; nothing in the pipeline imports it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any


def copy_files(repo: Path, names: Sequence[str], dest: Path) -> None:
    """``names`` (files and folders of ``repo``) copied to the same places under ``dest``, without bytecode caches
    or egg-info: a project copy made of what a clone holds (the tests' and the benchmarks' project copies)."""
    for name in names:
        src, target = repo / name, dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, target)


class ServiceError(RuntimeError):
    """A service did not start, or a wait timed out: the message ends with the tail of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """``cmd`` started in its own session (so its children share its process group), output to ``log``."""

    def __init__(self, cmd: Sequence[str], cwd: Path, env: dict[str, str] | None, log: Path) -> None:
        self.log = Path(log)
        self._out = open(self.log, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=self._out, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        """Send ``sig``, wait up to ``timeout``, then SIGKILL the process group and any descendant left.
        Returns the exit code (negative: the signal that ended it)."""
        import psutil

        try:
            family = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            family = []
        if self.alive():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for child in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        if not self._out.closed:
            self._out.close()
        return self.proc.returncode


def wait_for(check: Callable[[], Any], timeout: float, what: str, service: Service | None = None,
             interval: float = 0.3) -> Any:
    """Call ``check`` until it returns something truthy (an HTTP error or a non-JSON body counts as not
    yet) and return it; :class:`ServiceError` when ``service`` exits first or ``timeout`` passes."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if service is not None and not service.alive():
            raise ServiceError(f"{what}: the process exited ({service.proc.returncode}):\n{service.tail()}")
        try:
            value = check()
        except (httpx.HTTPError, ValueError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            tail = f":\n{service.tail()}" if service is not None else ""
            raise ServiceError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")
        time.sleep(interval)


def status_ok(response) -> bool:
    """Ready when the URL answers 200 (``mlflow models serve``'s /ping)."""
    return response.status_code == 200


def health_ready(response) -> bool:
    """Ready when ``/health`` says so (``ragops serve``: the model is loaded, not just the socket open)."""
    return response.status_code == 200 and bool(response.json().get("ready"))


def start(cmd: Sequence[str], cwd: Path, env: dict[str, str] | None, log: Path, ready_url: str,
          ready: Callable[[Any], bool] = status_ok, what: str = "server", timeout: float = 240) -> Service:
    """Start ``cmd`` and wait until GET ``ready_url`` satisfies ``ready``; a service that exits or does not
    get ready in ``timeout`` is stopped and reported with its log."""
    import httpx

    service = Service(cmd, cwd, env, log)
    try:
        wait_for(lambda: ready(httpx.get(ready_url, timeout=2)), timeout, f"{what} to answer {ready_url}", service)
    except BaseException:
        service.stop()
        raise
    return service


@contextlib.contextmanager
def background(cmd: Sequence[str], cwd: Path, env: dict[str, str] | None, log: Path, ready_url: str,
               ready: Callable[[Any], bool] = status_ok, what: str = "server", timeout: float = 240) -> Iterator[str]:
    """:func:`start` as a context: yields the base URL (``ready_url`` less its last segment), stops on exit."""
    service = start(cmd, cwd, env, log, ready_url, ready, what, timeout)
    try:
        yield ready_url.rsplit("/", 1)[0]
    finally:
        service.stop(timeout=30)
