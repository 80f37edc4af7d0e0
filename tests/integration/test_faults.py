"""Fault injection (issue 18): bad data x 6, bad params x 4, kill -9 in embed, train, register and serve.

On a copy of the tiny build, every case runs the real `dvc repro` (or `ragops serve`) and checks that no
previous output changed by a byte, that the error is one line naming the file:line or the params key,
that `dvc status` tells the truth, and that the next good run continues. The mechanism: every output is
`persist: true` (DVC does not delete it first) and every stage replaces its outputs atomically.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from ragops.registry.blobstore import local_path

from .conftest import clone_build, run
from .test_serve import Server

pytestmark = pytest.mark.integration
OUTPUT_DIRS = ("data/processed", "models", "reports")
MODEL = "ragops-retriever"


@pytest.fixture(scope="module")
def project(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the tiny build (its DVC cache and MLflow store included): these tests break it."""
    dest = tmp_path_factory.mktemp("faults") / "project"
    clone_build(built_project, dest)
    assert "Running stage" not in run(["dvc", "repro"], dest).stdout
    return dest


# sha256 by (path, inode, size, mtime, ctime): a file whose stat is unchanged is not read again (~0.7 s for the
# ~0.9 GB of outputs, three snapshots a test). Any write or replacement changes the ctime (which no program can
# set back), so a cached digest is always the file's.
_DIGESTS: dict[tuple[str, int, int, int, int], str] = {}


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file the pipeline wrote (and dvc.lock)."""
    files = [root / "dvc.lock", *(p for d in OUTPUT_DIRS for p in sorted((root / d).rglob("*")) if p.is_file())]
    out = {}
    for p in files:
        st = p.stat()
        key = (str(p), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if key not in _DIGESTS:
            _DIGESTS[key] = hashlib.sha256(p.read_bytes()).hexdigest()
        out[str(p.relative_to(root))] = _DIGESTS[key]
    return out


def replace_file(path: Path, data: bytes) -> None:
    """Write by replacing (the file may be a link into DVC's cache: never write through it)."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The stage's one error line; no traceback anywhere."""
    text = proc.stdout + proc.stderr
    assert "Traceback" not in text, text[-3000:]
    lines = [line for line in text.splitlines() if line.startswith("error: ") and "failed to reproduce" not in line]
    assert len(lines) == 1, text[-3000:]
    return lines[0]


def status(root: Path) -> str:
    return run(["dvc", "status"], root).stdout


def edit_params(root: Path, change: Callable[[dict], None]) -> bytes:
    original = (root / "params.yaml").read_bytes()
    params = yaml.safe_load(original)
    change(params)
    replace_file(root / "params.yaml", yaml.safe_dump(params, sort_keys=False).encode())
    return original


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def bad_queries_json(raw: Path) -> tuple[Path, bytes]:
    lines = _lines(raw / "queries.jsonl")
    lines[4] = b'{"_id": "x", "text": \n'
    return raw / "queries.jsonl", b"".join(lines)


def duplicate_query(raw: Path) -> tuple[Path, bytes]:
    lines = _lines(raw / "queries.jsonl")
    return raw / "queries.jsonl", b"".join([*lines, lines[0]])


def non_utf8_query(raw: Path) -> tuple[Path, bytes]:
    lines = _lines(raw / "queries.jsonl")
    lines[2] = lines[2].replace(b'"text": "', b'"text": "\xff\xfe', 1)
    return raw / "queries.jsonl", b"".join(lines)


def unknown_doc_in_qrels(raw: Path) -> tuple[Path, bytes]:
    lines = _lines(raw / "qrels/test.tsv")
    qid = lines[1].split(b"\t")[0]
    return raw / "qrels/test.tsv", b"".join([*lines, qid + b"\tno-such-doc\t1\n"])


def fractional_score(raw: Path) -> tuple[Path, bytes]:
    lines = _lines(raw / "qrels/train.tsv")
    lines[3] = lines[3].rstrip(b"\n").rsplit(b"\t", 1)[0] + b"\t0.5\n"
    return raw / "qrels/train.tsv", b"".join(lines)


def truncated_corpus(raw: Path) -> tuple[Path, bytes]:
    data = (raw / "corpus.jsonl.gz").read_bytes()
    return raw / "corpus.jsonl.gz", data[: len(data) // 2]


BAD_DATA = [
    (bad_queries_json, r"queries\.jsonl:5: malformed JSON"),
    (duplicate_query, r"queries\.jsonl:\d+: duplicate _id"),
    (non_utf8_query, r"queries\.jsonl:3: not valid UTF-8"),
    (unknown_doc_in_qrels, r"test\.tsv:\d+: corpus-id 'no-such-doc' is not in the corpus"),
    (fractional_score, r"train\.tsv:4: score '0\.5' is not an integer"),
    (truncated_corpus, r"corpus\.jsonl\.gz:\d+: corrupt gzip data"),
]


@pytest.mark.parametrize(("corrupt", "expected"), BAD_DATA, ids=[f.__name__ for f, _ in BAD_DATA])
def test_bad_data_keeps_every_output(project: Path, corrupt, expected: str) -> None:
    before = snapshot(project)
    pointer = (project / "data/raw/scifact.dvc").read_bytes()
    path, data = corrupt(project / "data/raw/scifact")
    original = path.read_bytes()
    replace_file(path, data)
    try:
        proc = run(["dvc", "repro"], project, check=False)
        assert proc.returncode != 0
        assert re.search(expected, error_line(proc)), error_line(proc)
        assert snapshot(project) == before  # nothing lost, nothing half-written
        assert "ingest:" in status(project)  # the truth: the data changed and ingest has not run on it
        repointed = (project / "data/raw/scifact.dvc").read_bytes() != pointer
    finally:
        replace_file(path, original)
    assert "Running stage" not in run(["dvc", "repro"], project).stdout  # back to the last good state
    assert snapshot(project) == before
    # the failed repro had re-pointed the source's .dvc file at the broken folder (DVC commits a changed data
    # source before it runs the stages: README, "bad input"); the good repro points it back, byte for byte
    assert repointed and (project / "data/raw/scifact.dvc").read_bytes() == pointer


BAD_PARAMS = [
    (lambda p: p["fusion"].update(alpha=2), "rag", "fusion.alpha: Input should be less than or equal to 1"),
    (lambda p: p["chunk"].update(overlap=999), "chunk", "chunk: overlap (999) must be smaller than max_tokens"),
    (lambda p: p["retrieve"].update(dept=50), "train_embedder",
     "unknown key 'retrieve.dept' (did you mean 'retrieve.depth'?)"),
    (lambda p: p["index"]["bm25"].update(k1="high"), "index_bm25", "index.bm25.k1: Input should be a valid number"),
]


@pytest.mark.parametrize(("change", "stage", "expected"), BAD_PARAMS, ids=["range", "overlap", "typo", "type"])
def test_bad_params_keep_every_output(project: Path, change, stage: str, expected: str) -> None:
    before = snapshot(project)
    original = edit_params(project, change)
    try:
        proc = run(["dvc", "repro"], project, check=False)
        assert proc.returncode != 0
        line = error_line(proc)
        assert expected in line and "params.yaml" in line, line
        assert f"Running stage '{stage}'" in proc.stdout, proc.stdout[-2000:]
        assert snapshot(project) == before
        assert f"{stage}:" in status(project)
    finally:
        replace_file(project / "params.yaml", original)
    assert "Running stage" not in run(["dvc", "repro"], project).stdout
    assert snapshot(project) == before


def kill_when(cmd: list[str], cwd: Path, marker: str, delay_s: float = 0.0, env: dict[str, str] | None = None,
              timeout: float = 300) -> str:
    """Run ``cmd`` in its own process group; SIGKILL the whole group ``delay_s`` after ``marker`` appears in
    its output. Returns the output. Fails if the command ends first."""
    log_path = cwd / f"kill-{time.monotonic_ns()}.log"
    full_env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    full_env = {k: v for k, v in full_env.items() if not k.startswith("MLFLOW_")}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = time.monotonic() + timeout
        try:
            while marker not in log_path.read_text(errors="replace"):
                assert proc.poll() is None, f"ended before {marker!r}:\n{log_path.read_text()[-3000:]}"
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.1)
            time.sleep(delay_s)
            assert proc.poll() is None, f"ended before the kill:\n{log_path.read_text()[-3000:]}"
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    out = log_path.read_text(errors="replace")
    log_path.unlink()
    return out


def test_kill_9_in_embed(project: Path, tmp_path: Path) -> None:
    """Killed while encoding (a cold cache): the embeddings and everything else stay as they were."""
    before = snapshot(project)
    original = edit_params(project, lambda p: p["embed"].update(cache_dir=str(tmp_path / "cold")))  # no stage reads it
    try:
        kill_when(["dvc", "repro", "--single-item", "--force", "embed"], project, "embed:", delay_s=1.0)
        assert snapshot(project) == before
        assert "up to date" in status(project)  # nothing changed: no stage is stale
    finally:
        replace_file(project / "params.yaml", original)
    assert "Running stage" not in run(["dvc", "repro"], project).stdout


def test_kill_9_in_training(project: Path) -> None:
    before = snapshot(project)
    original = edit_params(project, lambda p: p["train"]["reranker"].update(max_steps=400))
    try:
        kill_when(["dvc", "repro", "train_reranker"], project, "ragops.train_reranker:", delay_s=3.0)
        assert snapshot(project) == before  # the last trained reranker is still there
        assert "train_reranker:" in status(project)  # its params changed and it has not finished
    finally:
        replace_file(project / "params.yaml", original)
    assert "Running stage" not in run(["dvc", "repro"], project).stdout
    assert snapshot(project) == before


def registry_state(project: Path) -> tuple[list, list]:
    code = ("import json, mlflow; c = mlflow.MlflowClient('sqlite:///mlflow.db', 'sqlite:///mlflow.db');"
            f"a = {{str(v): k for k, v in c.get_registered_model('{MODEL}').aliases.items()}};"
            f"vs = [(str(v.version), v.tags.get('gate.decision'), a.get(str(v.version)), "
            f"c.get_model_version_download_uri('{MODEL}', v.version)) "
            f"for v in c.search_model_versions(\"name='{MODEL}'\")];"
            "runs = [r.info.status for e in c.search_experiments() for r in c.search_runs([e.experiment_id])];"
            "print(json.dumps([vs, runs]))")
    import json

    return json.loads(run([sys.executable, "-c", code], project).stdout.strip().splitlines()[-1])


def test_kill_9_in_register_leaves_no_orphan(project: Path, tmp_path: Path) -> None:
    """Killed (SIGKILL, at a failpoint) after its version is created, before the gate: the rerun marks the run
    KILLED, deletes the ungated version and its files, registers and gates a new one; the dead one's temporary
    folder goes."""
    before = snapshot(project)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = run(["dvc", "repro", "--single-item", "--force", "register"], project, check=False,
               env={"TMPDIR": str(tmp), "RAGOPS_FAILPOINT": "register:versioned"})  # SIGKILLs itself there
    assert proc.returncode != 0 and "failpoint register:versioned" in proc.stdout + proc.stderr
    assert snapshot(project) == before  # registry.json is the last good one
    versions, runs = registry_state(project)
    dead = [local_path(uri) for _, decision, alias, uri in versions if decision is None and alias is None]
    assert "RUNNING" in runs and len(dead) == 1 and (dead[0] / "MLmodel").is_file()
    assert any(p.name.startswith("ragops-package-") for p in tmp.iterdir())
    out = run(["dvc", "repro", "--single-item", "--force", "register"], project, env={"TMPDIR": str(tmp)})
    assert "recovered from an interrupted register" in out.stdout + out.stderr
    versions, runs = registry_state(project)
    assert "RUNNING" not in runs
    assert all(decision is not None or alias is not None for _, decision, alias, _ in versions), versions
    assert not dead[0].parent.exists()  # the dead version's files (links to the build's outputs) went with it
    assert not any(p.name.startswith("ragops-") for p in tmp.iterdir()), list(tmp.iterdir())
    assert "up to date" in status(project)


def test_kill_9_of_the_server_leaves_nothing_after_the_next_start(project: Path, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    args = ["--model", f"models:/{MODEL}@champion"]
    first = Server(project, args, {"TMPDIR": str(tmp)})
    try:
        assert httpx.post(f"{first.url}/search", json={"query": "vitamin D"}, timeout=30).status_code == 200
    finally:
        first.service.stop(signal.SIGKILL, timeout=30)  # the process (and its group) get no chance to clean up
    assert [p for p in tmp.iterdir() if p.name.startswith("ragops-serve-")]  # SIGKILL runs no cleanup
    second = Server(project, args, {"TMPDIR": str(tmp)})
    try:
        assert [p.name for p in tmp.iterdir() if p.name.startswith("ragops-serve-")] == [
            p.name for p in tmp.iterdir() if f"-{second.proc.pid}-" in p.name]
    finally:
        second.stop()
    assert not any(p.name.startswith("ragops-") for p in tmp.iterdir()), list(tmp.iterdir())


def test_gzip_helper_is_really_truncated(project: Path) -> None:
    """The corrupt-corpus case above is a real gzip error, not an empty file."""
    path, data = truncated_corpus(project / "data/raw/scifact")
    with pytest.raises((EOFError, OSError)):
        gzip.decompress(data)
    assert len(data) > 1000
