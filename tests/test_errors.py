"""Errors print one line and exit non-zero; the traceback only with --debug / RAGOPS_DEBUG=1 (issue 18).

Real processes: a stage entry point (``ragops.timing.run_stage``, what every ``python -m
ragops.stages.<stage>`` runs) and the ``ragops`` command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ragops.errors import DataError, one_line
from ragops.orchestration import stage_error_message

REPO = Path(__file__).resolve().parents[1]
STAGE = """
import sys
from ragops.errors import DataError
from ragops.timing import run_stage
def main(params):
    if sys.argv[1] == "data":
        raise DataError("data/raw/x/corpus.jsonl", "not JSON", line=3)
    if sys.argv[1] == "bug":
        return params["no such section"]["key"]
    print("ok")
run_stage("probe", main)
"""


def run(args: list[str], cwd: Path, debug: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAGOPS_DEBUG"} | ({"RAGOPS_DEBUG": "1"} if debug else {})
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


def test_a_stage_error_is_one_line_with_where_and_an_exit_code(project: Path) -> None:
    data = run([sys.executable, "-c", STAGE, "data"], project)
    assert data.returncode == 2 and "Traceback" not in data.stderr
    assert data.stderr.strip().splitlines()[-1] == "error: data/raw/x/corpus.jsonl:3: not JSON"
    bug = run([sys.executable, "-c", STAGE, "bug"], project)
    assert bug.returncode == 1 and "Traceback" not in bug.stderr
    last = bug.stderr.strip().splitlines()[-1]
    assert last == "error: KeyError: 'no such section' (RAGOPS_DEBUG=1 shows the traceback)"
    # the flow reports the stage's own line (what DVC prints around it is not the error)
    dvc_output = f"Running stage 'probe':\n{bug.stderr}ERROR: failed to reproduce 'probe': exited with 1\n"
    assert stage_error_message(dvc_output).startswith("KeyError: 'no such section'")
    traced = run([sys.executable, "-c", STAGE, "data"], project, debug=True)
    assert traced.returncode == 1 and "Traceback (most recent call last)" in traced.stderr
    assert "ragops.errors.DataError: data/raw/x/corpus.jsonl:3: not JSON" in traced.stderr
    assert run([sys.executable, "-c", STAGE, "fine"], project).stdout.strip() == "ok"


def test_a_params_error_is_one_line_before_any_work(project: Path) -> None:
    (project / "params.yaml").write_text("paths: [not, a, mapping\n")
    bad = run([sys.executable, "-c", STAGE, "fine"], project)
    assert bad.returncode == 2 and "ok" not in bad.stdout and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and bad.stderr.startswith("error: params.yaml: not valid YAML")


def test_the_command_prints_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    ragops = str(Path(sys.executable).parent / "ragops")
    args = [ragops, "data", "fetch", "--mirror", str(tmp_path / "nowhere"), "--dest", str(tmp_path / "d")]
    plain = run(args, tmp_path)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert len(plain.stderr.strip().splitlines()) == 1 and plain.stderr.startswith("error: ")
    assert "nowhere" in plain.stderr
    debug = run([ragops, "--debug", *args[1:]], tmp_path)
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
    # a usage error stays typer's own (its usage line, exit 2), not an "unexpected" error
    usage = run([ragops, "search", "x", "--mode", "nope"], tmp_path)
    assert usage.returncode == 2 and "Invalid value for --mode" in usage.stderr and "RAGOPS_DEBUG" not in usage.stderr


def test_one_line() -> None:
    assert one_line(DataError("a.jsonl", "bad\nrow", line=2)) == "a.jsonl:2: bad row"
    assert one_line(ValueError()) == "ValueError (RAGOPS_DEBUG=1 shows the traceback)"
