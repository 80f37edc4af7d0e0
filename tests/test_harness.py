"""The loopback harness the integration tests and the benchmarks share (ragops.harness)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import httpx
import pytest

from ragops.harness import ServiceError, background, copy_files, free_port, start


def test_a_service_is_ready_when_it_answers_and_stops_with_its_children(tmp_path: Path) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    service = start(cmd, tmp_path, None, tmp_path / "http.log", f"http://127.0.0.1:{port}/", timeout=60)
    assert service.alive() and httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
    code = service.stop(signal.SIGTERM)
    assert not service.alive() and code is not None and code == service.returncode
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)


def test_background_yields_the_base_url_and_stops_on_exit(tmp_path: Path) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    with background(cmd, tmp_path, None, tmp_path / "http.log", f"http://127.0.0.1:{port}/", timeout=60) as url:
        assert url == f"http://127.0.0.1:{port}"
    with pytest.raises(httpx.HTTPError):
        httpx.get(url, timeout=2)


def test_a_service_that_exits_is_reported_with_its_log(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "import sys; print('listening nowhere'); sys.exit(3)"]
    with pytest.raises(ServiceError, match=r"(?s)exited \(3\).*listening nowhere"):
        start(cmd, tmp_path, None, tmp_path / "x.log", f"http://127.0.0.1:{free_port()}/", timeout=60)


def test_a_service_that_never_answers_times_out(tmp_path: Path) -> None:
    cmd = [sys.executable, "-c", "import time; print('sleeping'); time.sleep(60)"]
    with pytest.raises(ServiceError, match=r"(?s)timed out after 1s.*sleeping"):
        start(cmd, tmp_path, None, tmp_path / "x.log", f"http://127.0.0.1:{free_port()}/", timeout=1)


def test_a_project_copy_holds_the_named_files_without_build_leftovers(tmp_path: Path) -> None:
    repo, dest = tmp_path / "repo", tmp_path / "copy"
    for rel in ("dvc.yaml", ".dvc/config", "src/pkg/mod.py", "src/pkg/__pycache__/mod.pyc", "src/pkg.egg-info/PKG",
                "data/raw/big.bin"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(rel)
    copy_files(repo, ["dvc.yaml", ".dvc/config", "src"], dest)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        ".dvc/config", "dvc.yaml", "src/pkg/mod.py"]
    assert (dest / "src/pkg/mod.py").read_text() == "src/pkg/mod.py"
