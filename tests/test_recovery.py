"""ragops.recovery: the registry lock, the recovery of a killed `register`, stale temporary folders (issue 18).
Against a real MLflow SQLite store and real processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ragops import recovery
from ragops.errors import RagopsError
from tests.conftest import sqlite_store


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def store(tmp_path: Path):
    with sqlite_store(tmp_path) as s:
        yield s


def version_of(client, exp: str, tmp: Path, name: str, pid: int | None, finish: str | None,
               tags: dict[str, str] | None = None) -> str:
    run = client.create_run(exp, tags={"ragops.stage": "register", **(
        {recovery.PID_TAG: str(pid), recovery.HOST_TAG: socket.gethostname()} if pid else {})})
    if finish:
        client.set_terminated(run.info.run_id, status=finish)
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    mv = client.create_model_version(name, source=(tmp / "model").as_uri(), run_id=run.info.run_id)
    for k, v in (tags or {}).items():
        client.set_model_version_tag(name, mv.version, k, v)
    return str(mv.version)


def test_reconcile_finishes_what_a_killed_register_left(store) -> None:
    client, exp, tmp = store
    name = "toy"
    gated = version_of(client, exp, tmp, name, None, "FINISHED", {recovery.DECISION_TAG: "promote"})
    client.set_registered_model_alias(name, "champion", gated)
    orphan = version_of(client, exp, tmp, name, dead_pid(), None)           # killed: RUNNING, process gone
    failed = version_of(client, exp, tmp, name, None, "FAILED")             # an exception after registering
    live = version_of(client, exp, tmp, name, os.getpid(), None)            # a register still running
    aliased = version_of(client, exp, tmp, name, None, "FAILED")
    client.set_registered_model_alias(name, "challenger", aliased)          # someone relies on it: kept
    done = recovery.reconcile(client, exp, name)
    assert sorted(done["versions_deleted"]) == sorted([orphan, failed])
    assert len(done["runs_marked_killed"]) == 1
    left = {str(v.version) for v in client.search_model_versions(f"name = '{name}'")}
    assert left == {gated, live, aliased}
    statuses = [r.info.status for r in client.search_runs([exp])]
    assert statuses.count("RUNNING") == 1  # only the live one
    assert recovery.reconcile(client, exp, name) == {"runs_marked_killed": [], "versions_deleted": []}


def test_a_dropped_version_takes_its_logged_model_and_its_files(store) -> None:
    """MLflow 3 registers a logged model (source ``models:/m-...``; search results carry no ``model_id``): the
    killed register's logged model is deleted with its version, and in a local store its files go (they would
    stay, linked to the build's outputs, until `mlflow gc`), never the files it was logged from."""
    from ragops.registry.blobstore import local_path

    client, exp, tmp = store
    name = "toy"
    run = client.create_run(exp, tags={"ragops.stage": "register"})
    client.set_terminated(run.info.run_id, status="KILLED")
    model = client.create_logged_model(exp, name="pipeline", source_run_id=run.info.run_id)
    package = tmp / "package"
    package.mkdir()
    (package / "weights.bin").write_bytes(b"w" * 64)
    client.log_model_artifacts(model.model_id, str(package))
    client.create_registered_model(name)
    version = client.create_model_version(name, source=f"models:/{model.model_id}", run_id=run.info.run_id,
                                          model_id=model.model_id)
    folder = local_path(client.get_model_version_download_uri(name, version.version))
    assert folder is not None and (folder / "weights.bin").is_file() and folder.parent.name == model.model_id
    assert recovery.logged_model_id(version.source) == model.model_id
    assert recovery.reconcile(client, exp, name)["versions_deleted"] == [str(version.version)]
    assert not folder.parent.exists() and (package / "weights.bin").read_bytes() == b"w" * 64
    assert model.model_id not in {m.model_id for m in client.search_logged_models([exp])}
    assert recovery.logged_model_id(str(package)) is None and recovery.logged_model_id(None) is None


def test_the_lock_serialises_writers_and_names_the_holder(tmp_path: Path) -> None:
    lock = recovery.lock_path(f"sqlite:///{tmp_path}/mlflow.db", tmp_path)
    assert lock == tmp_path / "mlflow.db.lock"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from ragops.recovery import registry_lock\n"
        f"with registry_lock(Path({str(lock)!r}), 'register'):\n"
        "    print('held', flush=True); time.sleep(30)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RagopsError, match=rf"locked by pid {holder.pid} \(register\)"), \
                recovery.registry_lock(lock, "ragops promote", timeout_s=0.5, poll_s=0.1):
            pass
        holder.kill()  # kill -9: the kernel drops the lock with the process
        holder.wait()
        t0 = time.monotonic()
        with recovery.registry_lock(lock, "ragops promote", timeout_s=10, poll_s=0.1):
            assert lock.read_text().startswith(f"pid {os.getpid()} (ragops promote)")
        assert time.monotonic() - t0 < 5
    finally:
        holder.kill()


def test_stale_temp_folders_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead, alive = tmp_path / f"ragops-serve-{dead_pid()}-x1", tmp_path / f"ragops-package-{os.getpid()}-x2"
    other = tmp_path / "ragops-something"
    for folder in (dead, alive, other):
        (folder / "sub").mkdir(parents=True)
    assert recovery.clean_stale_temp(tmp_path) == [dead]
    assert alive.exists() and other.exists() and not dead.exists()
