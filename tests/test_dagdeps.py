"""dvc.yaml's code deps are what each stage imports (issue 19): derived, and checked here."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from ragops import dagdeps
from ragops.stages import grounding, train_embedder, train_reranker

REPO = Path(__file__).resolve().parents[1]


def test_every_stage_lists_exactly_what_it_imports() -> None:
    assert dagdeps.problems(REPO / "dvc.yaml") == []


def test_check_fails_on_a_missing_dep(tmp_path: Path) -> None:
    """A stage whose deps lack a module it imports is named, with the module."""
    text = (REPO / "dvc.yaml").read_text()
    assert "      - src/ragops/data/chunking.py\n" in text
    (tmp_path / "dvc.yaml").write_text(text.replace("      - src/ragops/data/chunking.py\n", "", 1))
    found = dagdeps.problems(tmp_path / "dvc.yaml")
    assert any("stage chunk imports src/ragops/data/chunking.py, not in its deps" in line for line in found), found
    assert dagdeps.main(["--dvc-yaml", str(tmp_path / "dvc.yaml"), "--check"]) == 1
    # --write puts it back, comments and data deps untouched
    dagdeps.rewrite(tmp_path / "dvc.yaml")
    assert (tmp_path / "dvc.yaml").read_text() == text


def _package(root: Path, files: dict[str, str]) -> None:
    for rel, body in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)


def test_closure_follows_every_kind_of_import(tmp_path: Path) -> None:
    _package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.sub import b\nfrom . import c\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/b.py": "def f():\n    import pkg.lazy  # a function-level import counts\n",
        "pkg/c.py": "from .sub.b import f\nCODE = Path(__file__).with_name('shipped.py')\n",
        "pkg/lazy.py": "import os\n",
        "pkg/shipped.py": "from pkg import d\n",
        "pkg/d.py": "",
        "pkg/unused.py": "",
    })
    got = [p.relative_to(tmp_path).as_posix() for p in dagdeps.closure("pkg.a", tmp_path, "pkg")]
    assert got == ["pkg/__init__.py", "pkg/a.py", "pkg/c.py", "pkg/d.py", "pkg/lazy.py", "pkg/shipped.py",
                   "pkg/sub/__init__.py", "pkg/sub/b.py"]


def test_a_module_shipping_the_package_source_depends_on_all_of_it(tmp_path: Path) -> None:
    _package(tmp_path, {"pkg/__init__.py": "", "pkg/a.py": "import pkg\nPATHS = [pkg.__file__]\n"})
    assert dagdeps.closure("pkg.a", tmp_path, "pkg") == [tmp_path / "pkg"]


@pytest.mark.parametrize("module", [train_embedder, train_reranker, grounding])
def test_training_keys_hash_the_stage_code(module) -> None:
    """The training key covers the files DVC watches but the plumbing: a changed training loop retrains,
    a new params key or a reworded error does not."""
    names = {Path(p).relative_to(REPO).as_posix() for p in module.CODE}
    stage = module.__name__.rsplit(".", 1)[1]
    plumbing = {f"src/ragops/{p}" for p in dagdeps.PLUMBING}
    assert names == set(dagdeps.relative_code(stage)) - plumbing
    assert not any(n.startswith("src/ragops/schema/") for n in names) and "src/ragops/io.py" in names
    if module is not grounding:
        assert "src/ragops/training/embedder.py" in names  # the shared loop (issue 19: it was missing)


def test_plumbing_cannot_compute() -> None:
    """What the training keys leave out imports no computing library and no ragops module but plumbing
    and io: model code cannot hide behind it."""
    allowed = {"yaml", "pydantic", "ragops"} | set(sys.stdlib_module_names)
    root = REPO / "src" / "ragops"
    for rel in dagdeps.PLUMBING:
        tree = ast.parse((root / rel).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else [])
            for name in names:
                assert name.split(".")[0] in allowed, f"{rel} imports {name}"
                if name.startswith("ragops."):
                    target = name.split(".", 1)[1].replace(".", "/")
                    files = {f"{target}.py", f"{target}/__init__.py"}  # a module or a package
                    assert files & (dagdeps.PLUMBING | {"io.py"}) or target in ("stages",), (
                        f"{rel} imports {name}")
