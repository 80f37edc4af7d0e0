"""Placing a dataset from a read-only mirror folder, verified against its SHA256SUMS, and checking
the placed copy against the committed DVC pointer."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path, PurePosixPath

from ragops.data.beir import sha256_file
from ragops.errors import DataError
from ragops.io import atomic_dir

SUMS = "SHA256SUMS"
UP_TO_DATE = "Data and pipelines are up to date"


def read_sums(path: Path, name: str) -> dict[str, str]:
    """``{relpath: sha256}`` for every line ``<sha256>  <name>/<relpath>`` of a sha256sum file."""
    if not path.is_file():
        raise DataError(path, "checksum file not found")
    out: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, listed = line.partition(" ")
        listed = listed.lstrip(" *")  # sha256sum writes "  name" (text) or " *name" (binary)
        if not sep or len(digest) != 64 or not listed:
            raise DataError(path, "expected '<sha256>  <path>'", lineno)
        parts = PurePosixPath(listed).parts
        if ".." in parts or PurePosixPath(listed).is_absolute():
            raise DataError(path, f"path {listed!r} leaves the mirror", lineno)
        if parts[0] == name and len(parts) > 1:
            out[PurePosixPath(*parts[1:]).as_posix()] = digest.lower()
    if not out:
        raise DataError(path, f"no files listed under {name}/")
    return out


def _holds(dest: Path, sums: dict[str, str]) -> bool:
    """True if ``dest`` holds exactly the listed files with the listed hashes."""
    if not dest.is_dir():
        return False
    present = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    return present == set(sums) and all(sha256_file(dest / rel) == sums[rel] for rel in sums)


def _copy_hashed(src: Path, dst: Path, block: int = 1 << 20) -> str:
    """Copy ``src`` to ``dst`` (default permissions, not the mirror's read-only ones); sha256 of the copy."""
    digest = hashlib.sha256()
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while chunk := fin.read(block):
            digest.update(chunk)
            fout.write(chunk)
    return digest.hexdigest()


def place_dataset(mirror: str | Path, name: str, dest: str | Path) -> list[str]:
    """Copy every file listed under ``<name>/`` in ``mirror/SHA256SUMS`` to ``dest``, verified.

    Files are copied into a temporary folder beside ``dest`` and each copy's sha256 is checked; a
    missing file or a mismatch raises :class:`DataError` naming the file and places nothing.
    Only then is the folder swapped in for ``dest`` (atomically). If ``dest`` already holds exactly
    these files, nothing is done. Returns the relative paths placed (``[]`` when up to date).
    """
    mirror, dest = Path(mirror), Path(dest)
    sums = read_sums(mirror / SUMS, name)
    if _holds(dest, sums):
        return []
    with atomic_dir(dest) as tmp:
        for rel, expected in sorted(sums.items()):
            src = mirror / name / rel
            if not src.is_file():
                raise DataError(src, f"listed in {SUMS} but missing from the mirror")
            actual = _copy_hashed(src, tmp / rel)
            if actual != expected:
                raise DataError(src, f"sha256 mismatch: expected {expected}, got {actual}")
    return sorted(sums)


def dvc_command() -> list[str]:
    """The ``dvc`` installed next to this interpreter, else ``python -m dvc``."""
    exe = Path(sys.executable).parent / ("dvc.exe" if os.name == "nt" else "dvc")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "dvc"]


def verify_with_dvc(repo_root: str | Path, dvc_file: str | Path) -> None:
    """Check the placed data against the hash in the committed DVC pointer, then store it in the
    DVC cache (so `dvc push` can share it). Raise DataError, changing nothing, when it differs.

    A fresh clone has an empty cache, so ``dvc status`` would say "not in cache" even for the
    right files: the hash DVC computes for the workspace is compared with the pointer instead.
    """
    from dvc.repo import Repo

    repo_root, dvc_file = Path(repo_root), Path(dvc_file)
    target = dvc_file if dvc_file.is_absolute() else repo_root / dvc_file
    if not target.is_file():
        raise DataError(target, "DVC pointer file not found")
    with Repo(str(repo_root)) as repo:
        stage = repo.stage.load_one(str(target.resolve()))
        for out in stage.outs:
            expected, actual = out.hash_info, out.get_hash()
            if expected != actual:
                raise DataError(target, f"placed data {out} hashes to {actual.value}, the pointer says "
                                        f"{expected.value}: the mirror holds other files than this commit")
        repo.commit(str(target.resolve()), force=True)
