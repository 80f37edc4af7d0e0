"""Fixtures that run the real tools (dvc, the ragops CLI) in a temporary copy of the project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ragops.config import merge
from ragops.harness import copy_files
from tests.conftest import shared_root, thread_share

REPO = Path(__file__).resolve().parents[2]
# What a clone holds that the pipeline needs (no outputs, no DVC cache, no venv).
PROJECT_FILES = ["dvc.yaml", "params.yaml", "src", ".dvc/config", ".dvc/.gitignore", ".dvcignore",
                 "data/raw/scifact.dvc", "data/raw/nli.dvc", "data/raw/.gitignore", "data/judgments", "tests/profiles",
                 "flows", ".gitignore"]
# Never log into the tracking store of whoever runs the tests: each project copy has its own SQLite store.
_FOREIGN_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def run(cmd: list[str], cwd: Path, check: bool = True, timeout: float = 1200,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``cmd`` in ``cwd`` with this venv first on PATH; ``env`` adds or overrides variables."""
    base = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
    env = {**base, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "DVC_NO_ANALYTICS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        tail = f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{tail}")
    return proc


def copy_project(dest: Path, cache_dir: Path, profile: str = "tiny") -> Path:
    """A project copy at ``dest`` under the test ``profile``, its embedding cache ``cache_dir`` and its ONNX
    exports in ``onnx`` beside that cache (for the tests: the run's folder, tests/conftest.py's onnx_exports, never
    the user's ``~/.cache/ragops/onnx``), committed to a new git repository."""
    copy_files(REPO, PROJECT_FILES, dest)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    override = yaml.safe_load((dest / "tests" / "profiles" / f"{profile}.yaml").read_text())
    params = merge(params, override)
    params["embed"]["cache_dir"] = str(cache_dir)
    params["embed"]["onnx_dir"] = str(cache_dir.parent / "onnx")
    params["grounding"]["cross_encoder"]["threads"] = thread_share()  # its own torch.set_num_threads: the share
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], dest)
    # the repo's own identity: `dvc exp run` commits, and a fresh machine has no ~/.gitconfig
    run(["git", "config", "user.email", "t@t"], dest)
    run(["git", "config", "user.name", "t"], dest)
    run(["git", "commit", "-q", "--allow-empty", "-m", "init"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-q", "-m", "project"], dest)
    return dest


# The registry store of a project copy: dropped by clone_build(fresh_store=True), so the copy's first
# register is its version 1.
STORE = ("mlflow.db", "mlartifacts", "mlruns")


def clone_build(src: Path, dest: Path, fresh_store: bool = False, skip: tuple[str, ...] = ()) -> Path:
    """A private copy of a built project (outputs, dvc.lock, git, the MLflow store), for a test that changes
    it; the shared build stays as the other tests read it. DVC's cache files and the registry's artifacts are
    immutable (DVC replaces, never rewrites, a cache file; MLflow writes an artifact once, and the blob store
    shares its files by hard links already): they are hard-linked (the store's ~0.5 GB a version: ~4 s of
    copying saved per copy), the rest copied; DVC's own temporary state is left behind, and so are the top-level
    entries named in ``skip``."""
    immutable = (f"{os.sep}.dvc{os.sep}cache{os.sep}", f"{src}{os.sep}mlartifacts{os.sep}")

    def link_cache(s: str, d: str) -> None:
        if any(part in s for part in immutable):
            os.link(s, d)
        else:
            shutil.copy2(s, d)

    def ignore(folder: str, names: list[str]) -> set[str]:
        dropped = {"tmp"} if Path(folder) == src / ".dvc" else set()
        if Path(folder) != src:
            return dropped
        return dropped | ({n for n in names if n in STORE} if fresh_store else set()) | (set(skip) & set(names))

    shutil.copytree(src, dest, symlinks=True, ignore=ignore, copy_function=link_cache)
    return dest


@pytest.fixture(scope="session")
def mirror_root() -> Path:
    root = Path(os.environ.get("RAGOPS_MIRROR", REPO.parent / "shared" / "datasets"))
    if not (root / "SHA256SUMS").exists():
        pytest.fail(f"SciFact mirror not found at {root}: run `make test MIRROR=<datasets folder>` "
                    "or set RAGOPS_MIRROR", pytrace=False)
    return root


@pytest.fixture(scope="session")
def embedding_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for every project copy of the run (every worker's): the tiny corpus is encoded
    once. Safe to share: cache blocks are written atomically (tests/test_dask_embed.py fills one from two
    processes)."""
    folder = shared_root(tmp_path_factory) / "embcache"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def built_project(tmp_path_factory: pytest.TempPathFactory, mirror_root: Path, embedding_cache: Path) -> Path:
    """The tiny profile built from scratch: `ragops data fetch` then `dvc repro`, once per run. Shared by the
    integration tests, which only read it (or serve it from their own folders); a test that changes params,
    outputs or the registry works on clone_build() of it. Under pytest-xdist the first worker that needs it
    builds it while holding a file lock; the others wait on the lock and then read the same folder (or fail
    at once with the builder's error)."""
    from filelock import FileLock

    top = shared_root(tmp_path_factory)
    root, built, failed = top / "project", top / "project.built", top / "project.failed"
    with FileLock(str(top / "project.lock")):
        if failed.exists():
            pytest.fail(f"the shared tiny build failed in another test process:\n{failed.read_text()}", pytrace=False)
        if not built.exists():
            if root.exists():  # a partial build of a process that died: start again
                shutil.rmtree(root)
            root.mkdir()
            try:
                copy_project(root, embedding_cache)
                run(["ragops", "data", "fetch", "--mirror", str(mirror_root)], root)
                run(["dvc", "repro"], root)
            except BaseException as exc:
                failed.write_text(str(exc)[-8000:])
                raise
            built.touch()
    return root


