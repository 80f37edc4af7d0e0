"""Placing a data set from a published archive (BEIR's ``scifact.zip``, or a .tar.gz), checked by content.

A user without the mirror can download BEIR's zip, but its ``corpus.jsonl`` is stored uncompressed, and
re-gzipping it gives other bytes than the mirror's ``corpus.jsonl.gz``: a byte hash would refuse good data.
So each file is checked by the sha256 of its *uncompressed* content against a committed list
(``data/<name>.content.sha256``), then written under its canonical name, re-compressed where that name
ends in ``.gz`` (byte for byte like the mirror's when a matching gzip recipe exists here), and the folder is
swapped in atomically: a failed or interrupted fetch leaves the previous copy as it was.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO

from ragops.data.archive_io import MAX_MEMBER_BYTES, Member, download, members, unsafe_name
from ragops.data.beir import sha256_file
from ragops.errors import DataError
from ragops.io import atomic_dir

DEFAULT_MAX_BYTES = 512 << 20  # BEIR's scifact.zip is 2.8 MB; a cap stops a wrong URL filling the disk
# Without these a BEIR folder cannot be prepared and evaluated (ragops.data.beir.load_beir).
REQUIRED = ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv")
# What a missing optional file disables (the stages degrade instead of failing).
_NO_SCORER = "the grounding stage trains no claim scorer: rag and ask check claims with the embedding scorer"
NEEDED_FOR = {
    "qrels/train.tsv": "no dev split (fusion tuning, the served-mode choice) and no trained embedder or reranker",
    "corpus_sentences.jsonl.gz": _NO_SCORER,
    "claims_train.csv": _NO_SCORER,
    "claims_dev.csv": "no grounding report; reports/grounding.json lists the files as missing",
}


@dataclass(frozen=True)
class Expected:
    """One file of the data set: the sha256 of its content (gunzipped for .gz) and of its canonical bytes."""

    content: str
    placed: str


@dataclass
class ArchiveResult:
    """What a fetch did: files placed (empty when already in place), optional files the archive lacked
    (with what their absence disables), and placed files whose content is right but whose bytes differ
    from the mirror's (no gzip here reproduces them), which makes the folder's DVC hash differ too."""

    placed: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)
    bytes_differ: list[str] = field(default_factory=list)

    @property
    def mirror_identical(self) -> bool:
        """True when the folder is the mirror's, byte for byte: the committed DVC pointer can then match."""
        return not self.missing and not self.bytes_differ

    def report(self, dest: Path, sums: Path) -> list[str]:
        """Lines for the user: what was placed, what is missing and what that disables."""
        lines = [f"{dest}: {len(self.placed)} files placed, content verified against {sums}" if self.placed
                 else f"{dest}: already in place, content verified against {sums}"]
        for rel, why in sorted(self.missing.items()):
            lines.append(f"{dest}: {rel} is not in the archive (optional); without it: {why}")
        for rel in self.bytes_differ:
            lines.append(f"{dest}: {rel}: content verified; its bytes differ from the mirror's (no matching gzip here)")
        if not self.mirror_identical:
            lines.append(f"{dest}: not the mirror's exact folder, so its DVC pointer is not checked; `dvc repro` "
                         f"records the new folder hash in {dest}.dvc (do not commit that change)")
        return lines


def read_content_sums(path: str | Path, name: str) -> dict[str, Expected]:
    """``{relpath: Expected}`` from lines ``<content sha256>  <file sha256>  <name>/<relpath>`` (``#`` comments)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "content checksum file not found")
    out: dict[str, Expected] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 3 or any(len(h) != 64 for h in fields[:2]):
            raise DataError(path, "expected '<content sha256>  <file sha256>  <name>/<path>'", lineno)
        listed = PurePosixPath(fields[2])
        if unsafe_name(fields[2]):
            raise DataError(path, f"path {fields[2]!r} leaves the data set folder", lineno)
        if listed.parts[0] == name and len(listed.parts) > 1:
            out[PurePosixPath(*listed.parts[1:]).as_posix()] = Expected(fields[0].lower(), fields[1].lower())
    if not out:
        raise DataError(path, f"no files listed under {name}/")
    return out


def plain_name(rel: str) -> str:
    """The name of a file's content: ``corpus.jsonl.gz`` -> ``corpus.jsonl``."""
    return rel.removesuffix(".gz")


def is_required(rel: str) -> bool:
    return plain_name(rel) in REQUIRED


def content_sha256(path: Path) -> str:
    """sha256 of the file's content: of what it gunzips to when its name ends in .gz."""
    digest = hashlib.sha256()
    with (gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")) as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _in_place(dest: Path, sums: dict[str, Expected]) -> list[str] | None:
    """If ``dest`` holds exactly the listed files, each with the listed bytes or content: those whose bytes
    differ (content only). None when it does not hold them."""
    if not dest.is_dir():
        return None
    present = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
    if present != set(sums):
        return None
    differ = [r for r, e in sorted(sums.items()) if sha256_file(dest / r) != e.placed]
    try:
        return differ if all(content_sha256(dest / r) == sums[r].content for r in differ) else None
    except (OSError, EOFError, zlib.error):  # a damaged .gz: not in place
        return None


def match_members(found: list[Member], name: str, sums: dict[str, Expected], source: str) -> dict[str, Member]:
    """``{relpath: member}``: a member matches a listed file by its path below the last ``<name>/`` folder
    (or the archive root), compressed (``.gz``) or not. Two members for one file are refused."""
    by_form = {form: rel for rel in sums for form in (plain_name(rel), plain_name(rel) + ".gz")}
    matched: dict[str, Member] = {}
    for member in found:
        parts = PurePosixPath(member.name.replace("\\", "/")).parts
        if name in parts:
            parts = parts[len(parts) - parts[::-1].index(name):]
        rel = by_form.get(PurePosixPath(*parts).as_posix()) if parts else None
        if rel is None:
            continue
        if rel in matched:
            raise DataError(source, f"two members for {name}/{rel}: {matched[rel].name!r} and {member.name!r}")
        matched[rel] = member
    return matched


def _unpack(member: Member, out: Path, source: str) -> str:
    """Write the member's content (gunzipped when its name ends in .gz) to ``out``; return its sha256."""
    digest, total = hashlib.sha256(), 0
    with member.open() as raw, open(out, "wb") as fout:
        stream: IO[bytes] = gzip.GzipFile(fileobj=raw, mode="rb") if member.name.endswith(".gz") else raw
        while block := stream.read(1 << 20):
            total += len(block)
            if total > MAX_MEMBER_BYTES:
                raise DataError(source, f"member {member.name!r} unpacks to more than {MAX_MEMBER_BYTES} bytes")
            digest.update(block)
            fout.write(block)
    return digest.hexdigest()


def _gzip_recipes(plain: Path) -> list[tuple[str, Callable[[Path], None]]]:
    """Ways to gzip deterministically, most likely first: GNU ``gzip -9 -n`` (no name, no time: the mirror's
    corpus.jsonl.gz), then Python's gzip at level 9 with mtime 0, with and without the file name."""
    recipes: list[tuple[str, Callable[[Path], None]]] = []
    exe = shutil.which("gzip")
    if exe:
        def gnu(dst: Path) -> None:
            with open(plain, "rb") as fin, open(dst, "wb") as fout:
                subprocess.run([exe, "-9", "-n", "-c"], stdin=fin, stdout=fout, check=True)
        recipes.append(("gzip -9 -n", gnu))

    def python(named: bool) -> Callable[[Path], None]:
        def write(dst: Path) -> None:
            with open(plain, "rb") as fin, open(dst, "wb") as raw, gzip.GzipFile(
                    plain.name if named else "", "wb", 9, raw, mtime=0) as fout:
                shutil.copyfileobj(fin, fout, 1 << 20)
        return write
    recipes += [("python gzip, named", python(True)), ("python gzip", python(False))]
    return recipes


def _write_canonical(plain: Path, dst: Path, expected: str) -> bool:
    """Place ``plain``'s content at ``dst`` in its canonical form; True when the bytes equal ``expected``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.name.endswith(".gz"):
        shutil.copyfile(plain, dst)
        return sha256_file(dst) == expected
    for _, recipe in _gzip_recipes(plain):
        try:
            recipe(dst)
        except (OSError, subprocess.CalledProcessError):  # a gzip that is not GNU's, or fails: the next recipe
            continue
        if sha256_file(dst) == expected:
            return True
    return False  # the last recipe's output stays: right content, other bytes


def place_from_archive(
    source: str | Path, name: str, dest: str | Path, sums_path: str | Path,
    max_bytes: int = DEFAULT_MAX_BYTES, timeout: float = 300.0,
) -> ArchiveResult:
    """Download ``source`` (http/https/file URL or a path), check each listed file's content and place them.

    Every file of ``sums_path`` under ``<name>/`` is looked up in the archive; the required ones (corpus,
    queries, test qrels) must be there, the others are reported missing with what that disables. A content
    mismatch raises :class:`DataError` naming the member and both hashes, before anything is placed.
    """
    dest, sums_path, source = Path(dest), Path(sums_path), str(source)
    sums = read_content_sums(sums_path, name)
    if (differ := _in_place(dest, sums)) is not None:
        return ArchiveResult(bytes_differ=differ)
    with tempfile.TemporaryDirectory(prefix="ragops-archive-") as work:  # private (0700): the download, unpacked
        archive = download(source, Path(work) / "archive", max_bytes, timeout)
        with members(archive, source) as found:
            matched = match_members(found, name, sums, source)
            absent = sorted(rel for rel in sums if is_required(rel) and rel not in matched)
            if absent:
                raise DataError(source, f"no {', '.join(f'{name}/{plain_name(r)}' for r in absent)} in the archive "
                                        f"({len(found)} files; expected BEIR's layout {name}/corpus.jsonl, ...)")
            unpacked = Path(work) / "unpacked"  # named by content (the gzip header holds the name)
            for rel, member in sorted(matched.items()):
                (unpacked / rel).parent.mkdir(parents=True, exist_ok=True)
                actual = _unpack(member, unpacked / plain_name(rel), source)
                if actual != sums[rel].content:
                    raise DataError(source, f"member {member.name!r} ({name}/{rel}): content sha256 {actual}, "
                                            f"{sums_path} expects {sums[rel].content}")
        missing = {r: NEEDED_FOR.get(r, "the data set lacks it") for r in sums if r not in matched}
        result = ArchiveResult(missing=missing)
        with atomic_dir(dest) as tmp:
            for rel in sorted(matched):
                if not _write_canonical(unpacked / plain_name(rel), tmp / rel, sums[rel].placed):
                    result.bytes_differ.append(rel)
                result.placed.append(rel)
    return result
