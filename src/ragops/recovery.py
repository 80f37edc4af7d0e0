"""Crash safety of the registry and the server (issue 18): one writer at a time, and what a killed one
left behind is found and finished on the next start.

- :func:`registry_lock`: `register` and `ragops promote` hold an exclusive lock on the store (a file beside
  a SQLite store, else in the project's ``.cache``), so a promotion cannot interleave with a registration.
- :func:`reconcile`: under that lock, before it registers, `register` marks runs of a killed `register`
  (``RUNNING``, its process gone) ``KILLED`` and deletes the model versions such a run created but never
  gated (no ``gate.decision`` tag, no alias), with their logged models: no orphan version stays behind.
- :func:`private_tempdir` / :func:`clean_stale_temp`: temporary folders carry their process id, so a
  process started later removes those of processes that no longer exist (``kill -9`` runs no cleanup).
- :func:`failpoint`: fault injection for the tests. ``RAGOPS_FAILPOINT=<name>`` makes the process SIGKILL
  itself at that named point (``register:versioned``: the version exists, its gate has not run), so a
  crash lands exactly where a race would be hardest to hit from outside.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ragops.errors import RagopsError
from ragops.io import pid_alive
from ragops.registry.blobstore import local_path

log = logging.getLogger("ragops.recovery")
PID_TAG, HOST_TAG = "ragops.pid", "ragops.host"
DECISION_TAG = "gate.decision"
_TEMP = re.compile(r"^(ragops-[a-z]+)-(\d+)-")


def lock_path(tracking_uri: str, root: Path) -> Path:
    """The lock file of a store: beside a SQLite database, else ``<root>/.cache/registry.lock``."""
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri[len("sqlite:///"):])
        return db.with_name(db.name + ".lock")
    return Path(root) / ".cache" / "registry.lock"


@contextlib.contextmanager
def registry_lock(path: Path, what: str, timeout_s: float = 900.0, poll_s: float = 0.5) -> Iterator[None]:
    """Hold the exclusive registry lock at ``path`` (waiting up to ``timeout_s``); the holder's pid and
    ``what`` are written into the file for whoever waits. The kernel drops the lock when the process dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline, said = time.monotonic() + timeout_s, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                holder = _read(path)
                if time.monotonic() > deadline:
                    raise RagopsError(f"{path}: the registry is locked by {holder or 'another process'}; "
                                      f"gave up after {timeout_s:.0f}s") from None
                if not said:
                    log.info("waiting for the registry lock (%s)", holder or "held")
                    said = True
                time.sleep(poll_s)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({what})\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def run_tags() -> dict[str, str]:
    """Tags that let a later process tell whether the run's process still exists."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def reconcile(client, experiment_id: str, model_name: str) -> dict[str, Any]:
    """Finish what a killed `register` left: its runs ``KILLED``, its ungated versions deleted.
    Call with the registry lock held. Returns what it did (also logged)."""
    host = socket.gethostname()
    killed: list[str] = []
    runs = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000)
    for run in runs:
        tags = run.data.tags
        pid = tags.get(PID_TAG, "")
        if tags.get(HOST_TAG) == host and pid.isdigit() and not pid_alive(int(pid)):
            client.set_terminated(run.info.run_id, status="KILLED")
            killed.append(run.info.run_id)
    deleted: list[str] = []
    try:
        versions = client.search_model_versions(f"name='{model_name}'")
        aliased = {str(v) for v in client.get_registered_model(model_name).aliases.values()}
    except Exception:  # noqa: BLE001 - no registered model yet
        versions, aliased = [], set()
    for v in versions:
        if DECISION_TAG in (v.tags or {}) or str(v.version) in aliased:
            continue
        run = _run(client, v.run_id)  # only a version a `register` run made and did not finish
        if run is not None and run.data.tags.get("ragops.stage") == "register" and run.info.status in ("KILLED",
                                                                                                    "FAILED"):
            drop_version(client, model_name, v)
            deleted.append(str(v.version))
    done = {"runs_marked_killed": killed, "versions_deleted": deleted}
    if killed or deleted:
        log.warning("recovered from an interrupted register: runs %s marked KILLED, versions %s deleted "
                    "(created but never gated)", killed or "none", deleted or "none")
    return done


def drop_version(client, model_name: str, version) -> None:
    """Delete ``version`` and the logged model a `register` made for it (MLflow 3: the version's source is
    ``models:/<model id>``; search results leave ``model_id`` empty). Deleting a logged model only marks it,
    and its files, hard links to the build's outputs until `register` gives the store its own copies, would
    stay until `mlflow gc`: in a local store its folder goes now (only a folder laid out as a logged model's,
    ``.../<model id>/artifacts``, never a path someone registered by hand)."""
    folder = None
    with contextlib.suppress(Exception):
        folder = local_path(client.get_model_version_download_uri(model_name, version.version))
    client.delete_model_version(model_name, version.version)
    model_id = getattr(version, "model_id", None) or logged_model_id(version.source)
    if not model_id:
        return
    with contextlib.suppress(Exception):
        client.delete_logged_model(model_id)
    if folder is not None and folder.name == "artifacts" and folder.parent.name == model_id:
        shutil.rmtree(folder.parent, ignore_errors=True)


def logged_model_id(source: str | None) -> str | None:
    """``m-...`` of a ``models:/m-...`` source (a logged model's), else None."""
    m = re.fullmatch(r"models:/(m-[0-9a-f]+)/?", source or "")
    return m.group(1) if m else None


def _run(client, run_id: str | None):
    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except Exception:  # noqa: BLE001 - a run deleted by hand
        return None


def private_tempdir(kind: str) -> tempfile.TemporaryDirectory:
    """``tempfile.TemporaryDirectory`` named ``ragops-<kind>-<pid>-...`` (see :func:`clean_stale_temp`)."""
    return tempfile.TemporaryDirectory(prefix=f"ragops-{kind}-{os.getpid()}-")


def private_mkdtemp(kind: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"ragops-{kind}-{os.getpid()}-"))


def clean_stale_temp(directory: str | Path | None = None) -> list[Path]:
    """Remove ``ragops-<kind>-<pid>-*`` folders in the temp directory whose process no longer exists."""
    root = Path(directory or tempfile.gettempdir())
    removed = []
    for path in root.glob("ragops-*-*-*"):
        m = _TEMP.match(path.name)
        if m and path.is_dir() and not pid_alive(int(m.group(2))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    if removed:
        log.info("removed %d temporary folder(s) of processes that no longer exist", len(removed))
    return removed


def failpoint(name: str) -> None:
    """SIGKILL this process here when ``RAGOPS_FAILPOINT`` names this point (fault-injection tests only)."""
    if os.environ.get("RAGOPS_FAILPOINT", "") == name:
        log.warning("failpoint %s: killing this process (RAGOPS_FAILPOINT)", name)
        os.kill(os.getpid(), signal.SIGKILL)
