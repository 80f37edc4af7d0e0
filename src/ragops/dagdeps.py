"""A stage's code dependencies, derived from what it imports (issue 19).

``dvc.yaml`` lists each stage's code in ``deps`` so a code change re-runs exactly the stages it affects.
Kept by hand, those lists drifted from the imports, and an up-to-date pipeline no longer was what the
code computes. Here they come from the code itself: the transitive closure of ``ragops`` modules the
stage module imports (every ``import``/``from ... import`` anywhere in a file, function-level ones
included, plus the packages' ``__init__`` files the import system runs), read with :mod:`ast`, never by
importing. Two file references count as well: ``Path(__file__).with_name("x.py")`` (a sibling file
the module hands to a library: the pyfunc model's code) and ``ragops.__file__`` (the module ships the
whole package, as the registered model's ``code/`` does: the stage then depends on ``src/ragops``).
The training stages hash the same list, less the plumbing modules (:data:`PLUMBING`), into their
training key, so a changed training loop retrains under ``on_train_change``.

``python -m ragops.dagdeps --write`` rewrites the code entries of every stage in ``dvc.yaml``;
``--check`` (and a test) fails when they differ from the imports.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from functools import cache
from pathlib import Path

PACKAGE = "ragops"
SRC_ROOT = Path(__file__).resolve().parent.parent   # the folder holding ragops/ (src/)
STAGE_CMD = re.compile(r"python -m ragops\.stages\.(\w+)")
CODE_MARK = "# code: python -m ragops.dagdeps --write (from the imports)"


def module_file(name: str, root: Path = SRC_ROOT) -> Path | None:
    """``ragops.a.b`` -> ``root/ragops/a/b.py`` or ``root/ragops/a/b/__init__.py`` (None if neither)."""
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _module_name(path: Path, root: Path) -> tuple[str, bool]:
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    is_pkg = parts[-1] == "__init__"
    if is_pkg:
        parts = parts[:-1]
    return ".".join(parts), is_pkg


def direct_imports(path: Path, root: Path = SRC_ROOT, package: str = PACKAGE) -> set[str]:
    """Names of the ``package`` modules ``path`` imports (absolute or relative, at any depth), plus
    ``file:<path>`` for a sibling file it names and ``tree:<package>`` when it ships the package's source."""
    name, is_pkg = _module_name(path, root)
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    refs: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                mod = ".".join([*base, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            found.add(mod)
            # `from ragops.answer import scorers` imports the submodule ragops.answer.scorers
            found.update(f"{mod}.{alias.name}" for alias in node.names if alias.name != "*")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "with_name"
              and node.args and isinstance(node.args[0], ast.Constant) and str(node.args[0].value).endswith(".py")):
            refs.add(f"file:{path.with_name(str(node.args[0].value))}")
        elif (isinstance(node, ast.Attribute) and node.attr == "__file__" and isinstance(node.value, ast.Name)
              and node.value.id == package):
            refs.add(f"tree:{package}")
    return refs | {m for m in found if m == package or m.startswith(package + ".")}


def with_parents(name: str) -> list[str]:
    """``a.b.c`` -> ``[a, a.b, a.b.c]``: importing a module runs every enclosing package's __init__."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def closure(module: str, root: Path = SRC_ROOT, package: str = PACKAGE) -> list[Path]:
    """Every file of ``package`` that importing ``module`` executes (or names, see above), sorted; the
    package folder itself when one of them ships the whole source."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        item = todo.pop()
        if item.startswith("tree:"):
            return [root / package]
        if item.startswith("file:"):
            paths = [Path(item[5:])] if Path(item[5:]).is_file() else []
        else:
            paths = [p for p in (module_file(n, root) for n in with_parents(item)) if p is not None]
        for path in paths:  # None above: a name imported from a module (a function, a class)
            if path not in seen:
                seen.add(path)
                todo.extend(direct_imports(path, root, package))
    return sorted(seen)


@cache
def stage_code(stage: str) -> tuple[Path, ...]:
    """The source files stage ``stage`` (module ``ragops.stages.<stage>``) runs, absolute paths."""
    return tuple(closure(f"{PACKAGE}.stages.{stage}"))


# Modules that cannot change what a stage computes: the params schema and loader (a valid file gives the
# same dict), error classes, logging, stage timing, this scanner and the empty package markers. DVC still
# re-runs a stage when they change (they are in its deps), but the trained models' keys leave them out,
# so adding a params key or rewording an error does not retrain for an hour. A test checks that these
# modules import nothing but each other (so no computing code can hide behind them).
PLUMBING = frozenset({
    "__init__.py", "config.py", "errors.py", "logs.py", "timing.py", "dagdeps.py", "stages/__init__.py",
    "schema/__init__.py", "schema/base.py", "schema/pipeline.py", "schema/serving.py",
})


def training_code(stage: str) -> tuple[Path, ...]:
    """``stage_code`` less :data:`PLUMBING`: the files a trained model's key hashes."""
    root = SRC_ROOT / PACKAGE
    return tuple(p for p in stage_code(stage) if p.relative_to(root).as_posix() not in PLUMBING)


def relative_code(stage: str) -> list[str]:
    """``stage_code`` as the project-relative paths dvc.yaml lists (``src/ragops/...``)."""
    return [f"{SRC_ROOT.name}/{p.relative_to(SRC_ROOT).as_posix()}" for p in stage_code(stage)]


# --- dvc.yaml ------------------------------------------------------------------------------------------

def _stage_blocks(lines: list[str]) -> dict[str, tuple[int, int]]:
    """``{stage: (first line, end line)}`` of each stage under ``stages:`` (2-space indented names)."""
    starts = [(i, m.group(1)) for i, line in enumerate(lines) if (m := re.match(r"^  (\w+):\s*$", line))]
    out: dict[str, tuple[int, int]] = {}
    for j, (i, name) in enumerate(starts):
        out[name] = (i, starts[j + 1][0] if j + 1 < len(starts) else len(lines))
    return out


def declared(dvc_yaml: Path) -> dict[str, tuple[str | None, list[str]]]:
    """``{stage: (module or None, code deps)}`` as dvc.yaml lists them (entries under ``src/``)."""
    import yaml

    doc = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}
    out: dict[str, tuple[str | None, list[str]]] = {}
    for name, stage in (doc.get("stages") or {}).items():
        m = STAGE_CMD.search(str(stage.get("cmd", "")))
        deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
        out[name] = (m.group(1) if m else None, [d for d in deps if d.startswith("src/")])
    return out


def problems(dvc_yaml: Path) -> list[str]:
    """What differs between dvc.yaml's code deps and the imports: one line per stage and file."""
    lines: list[str] = []
    for name, (module, listed) in declared(dvc_yaml).items():
        if module is None:
            continue
        want = relative_code(module)
        covered = {w for w in want if any(w == d or w.startswith(d.rstrip("/") + "/") for d in listed)}
        lines += [f"{dvc_yaml}: stage {name} imports {w}, not in its deps" for w in want if w not in covered]
        lines += [f"{dvc_yaml}: stage {name} lists {d}, which it does not import" for d in listed if d not in want]
    return lines


def rewrite(dvc_yaml: Path) -> bool:
    """Replace each stage's ``src/`` deps in dvc.yaml with the derived list (comments elsewhere kept).
    Returns whether the file changed."""
    from ragops.io import atomic_path

    text = dvc_yaml.read_text(encoding="utf-8")
    lines = text.splitlines()
    modules = {name: module for name, (module, _) in declared(dvc_yaml).items()}
    out: list[str] = []
    blocks = _stage_blocks(lines)
    cursor = 0
    for name, (start, end) in blocks.items():
        out += lines[cursor:start]
        block = lines[start:end]
        module = modules.get(name)
        if module is not None:
            block = _rewrite_block(block, relative_code(module))
        out += block
        cursor = end
    out += lines[cursor:]
    new = "\n".join(out) + "\n"
    if new == text:
        return False
    with atomic_path(dvc_yaml) as tmp:
        tmp.write_text(new, encoding="utf-8")
    return True


def _rewrite_block(block: list[str], code: list[str]) -> list[str]:
    try:
        d = next(i for i, line in enumerate(block) if line.strip() == "deps:")
    except StopIteration:
        return block
    e = d + 1
    while e < len(block) and (block[e].startswith("      -") or block[e].strip().startswith("#")
                              and block[e].startswith("      ")):
        e += 1
    kept = [line for line in block[d + 1:e]
            if not line.strip().startswith("- src/") and line.strip() != CODE_MARK]
    return [*block[: d + 1], *kept, f"      {CODE_MARK}", *(f"      - {c}" for c in code), *block[e:]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ragops.dagdeps", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dvc-yaml", type=Path, default=Path("dvc.yaml"))
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="rewrite the stages' code deps from the imports")
    group.add_argument("--check", action="store_true", help="exit 1 when a stage's deps differ from its imports")
    args = ap.parse_args(argv)
    if args.write:
        changed = rewrite(args.dvc_yaml)
        print(f"{args.dvc_yaml}: {'rewritten' if changed else 'already up to date'}")
        return 0
    found = problems(args.dvc_yaml)
    for line in found:
        print(line)
    if not found:
        print(f"{args.dvc_yaml}: every stage's code deps are its imports")
    return 1 if found and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
