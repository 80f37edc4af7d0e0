"""A source folder -> a BEIR folder the DAG reads: ``corpus.jsonl``, ``manifest.jsonl``, ``summary.json``.

A BEIR folder (``corpus.jsonl[.gz]`` at its top) is checked by the same loader as ``prepare`` and copied as it
is. Any other folder is a tree of documents: every file is hashed, each supported file becomes one document
(a JSONL file one per row) whose id is its path relative to the source (stable across runs: a citation keeps
pointing at the same file), and the previous output's conversions are re-used by content hash, so only
added or edited files are converted again. What happened to every file is one manifest row: path, sha256,
bytes, pages, chars, status (``ok``, ``reused``, ``duplicate``, ``unsupported`` or the converter's failure:
``empty``, ``no_text``, ``encrypted``, ``corrupt``, ``binary``, ``too_large``, ``timeout``, ``error``),
reason. Identical content under two paths is converted once: the first path (in sorted order) keeps it, the
others are listed as ``duplicate`` of it. ``summary.json`` counts the statuses and names what changed
against the previous output: added, changed, removed and renamed documents.

The output folder is replaced atomically (``ragops.io.atomic_dir``): an ingest that fails or is killed midway
leaves the previous corpus as it was. Conversion runs in worker processes with a per-file time limit
(``ragops.ingest.worker``).
"""

from __future__ import annotations

import gzip
import json
import logging
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragops.data.beir import sha256_file
from ragops.errors import DataError
from ragops.io import atomic_dir, write_json

log = logging.getLogger("ragops.ingest")

CORPUS, MANIFEST, SUMMARY = "corpus.jsonl", "manifest.jsonl", "summary.json"
# Bump when a converter's output changes: the previous output's conversions are then not re-used.
CONVERTER_VERSION = 4  # 2: PDF running heads and broken words, DOCX notes; 3: DOCX text boxes;
# 4: DOCX table cells whole (nested tables, text boxes in cells)


@dataclass(frozen=True)
class IngestConfig:
    workers: int = 2
    timeout_s: float = 60.0
    max_mb: float = 50.0
    strict: bool = False

    @staticmethod
    def from_params(p: dict[str, Any]) -> IngestConfig:
        return IngestConfig(int(p["workers"]), float(p["timeout_s"]), float(p["max_mb"]), bool(p["strict"]))


def is_beir(folder: Path) -> bool:
    """A BEIR folder holds ``corpus.jsonl`` or ``corpus.jsonl.gz`` at its top."""
    return (folder / "corpus.jsonl").is_file() or (folder / "corpus.jsonl.gz").is_file()


def source_files(source: Path) -> list[Path]:
    """Every file under ``source``, sorted, without hidden files and folders (``.git``, ``.DS_Store``)."""
    return sorted(p for p in source.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(source).parts))


def ingest(source: str | Path, out: str | Path, cfg: IngestConfig = IngestConfig()) -> dict[str, Any]:
    """Convert ``source`` into the BEIR folder ``out`` (replaced atomically); returns the summary."""
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise DataError(source, "source folder not found")
    if is_beir(source):
        return _copy_beir(source, out)
    return _ingest_documents(source, out, cfg)


def _copy_beir(source: Path, out: Path) -> dict[str, Any]:
    """A BEIR folder: validated by prepare's own loader (errors name file and line), then copied."""
    from ragops.data.beir import load_beir

    data = load_beir(source, require_qrels=False)
    files = source_files(source)
    rows = [{"path": p.relative_to(source).as_posix(), "sha256": sha256_file(p), "bytes": p.stat().st_size,
             "status": "copied"} for p in files]
    summary = {"kind": "beir", "source": str(source), "files": len(files), "documents": len(data.docs),
               "queries": len(data.queries), "judgments": len(data.qrels)}
    with atomic_dir(out) as tmp:
        for p in files:
            dest = tmp / p.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dest)
        _write_jsonl(tmp / MANIFEST, rows)
        write_json(tmp / SUMMARY, summary)
    log.info("ingest: BEIR folder %s copied (%d documents, %d queries, %d judgments)", source,
             summary["documents"], summary["queries"], summary["judgments"])
    return summary


def _previous(out: Path) -> tuple[dict[str, list[dict]], dict[str, str]]:
    """From the last output: ``{sha256: its documents}`` (re-usable conversions) and ``{path: sha256}``."""
    summary_path, manifest_path, corpus_path = out / SUMMARY, out / MANIFEST, out / CORPUS
    if not (summary_path.is_file() and manifest_path.is_file() and corpus_path.is_file()):
        return {}, {}
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    if summary.get("kind") != "documents" or summary.get("converter_version") != CONVERTER_VERSION:
        return {}, {}
    by_path: dict[str, list[dict]] = {}
    for row in _read_jsonl(corpus_path):
        by_path.setdefault(row["metadata"]["path"], []).append(row)
    by_sha: dict[str, list[dict]] = {}
    paths: dict[str, str] = {}
    for row in _read_jsonl(manifest_path):
        if row.get("status") in ("ok", "reused") and row["path"] in by_path:
            by_sha[row["sha256"]] = by_path[row["path"]]
            paths[row["path"]] = row["sha256"]
    return by_sha, paths


def _doc_rows(rel: str, sha: str, docs) -> list[dict[str, Any]]:
    """Corpus rows of one file's converted documents (``ragops.ingest.formats.Doc``)."""
    rows = []
    for d in docs:
        sections = [[s.start, s.page, s.heading] for s in d.sections]
        meta = {"path": rel, "sha256": sha, "pages": d.pages, "sections": sections}
        rows.append({"_id": rel + (f"#{d.key}" if d.key else ""), "title": d.title, "text": d.text,
                     "metadata": meta})
    return rows


def _moved(rows: list[dict], rel: str) -> list[dict]:
    """Re-used rows of identical content now found at ``rel`` (a rename): ids and paths follow the file."""
    out = []
    for row in rows:
        key = row["_id"].split("#", 1)[1] if "#" in row["_id"] else ""
        out.append({**row, "_id": rel + (f"#{key}" if key else ""), "metadata": {**row["metadata"], "path": rel}})
    return out


def _ingest_documents(source: Path, out: Path, cfg: IngestConfig) -> dict[str, Any]:
    from ragops.ingest.formats import SUPPORTED
    from ragops.ingest.worker import convert_all

    reuse, old_paths = _previous(out)
    manifest: list[dict[str, Any]] = []
    corpus: list[dict[str, Any]] = []
    first_of: dict[str, str] = {}  # sha256 -> the first path holding it
    todo: list[tuple[Path, str, dict[str, Any]]] = []
    for path in source_files(source):
        rel = path.relative_to(source).as_posix()
        row: dict[str, Any] = {"path": rel, "bytes": path.stat().st_size, "pages": None, "chars": 0}
        manifest.append(row)
        if path.suffix.lower() not in SUPPORTED:
            row.update(sha256=None, status="unsupported", reason=f"no converter for {path.suffix or 'no extension'}")
            continue
        sha = row["sha256"] = sha256_file(path)
        if sha in first_of:
            row.update(status="duplicate", reason=f"same content as {first_of[sha]}")
            continue
        first_of[sha] = rel
        if sha in reuse:
            rows = _moved(reuse[sha], rel)
            corpus += rows
            row.update(status="reused", reason="", chars=sum(len(r["text"]) for r in rows),
                       pages=rows[0]["metadata"].get("pages") if rows else None)
            continue
        todo.append((path, rel, row))
    for (path, rel, row), outcome in zip(todo, convert_all([t[0] for t in todo], workers=cfg.workers,
                                                           timeout_s=cfg.timeout_s,
                                                           max_bytes=int(cfg.max_mb * 2**20)), strict=True):
        row["seconds"] = round(outcome.seconds, 3)
        if outcome.error is not None:
            row.update(status=outcome.error.status, reason=outcome.error.reason)
            if cfg.strict:
                raise DataError(path, f"{outcome.error.status}: {outcome.error.reason} (ingest.strict is on; "
                                      "nothing was written)")
            log.warning("ingest: %s: %s: %s", rel, outcome.error.status, outcome.error.reason)
            continue
        rows = _doc_rows(rel, row["sha256"], outcome.docs)
        corpus += rows
        row.update(status="ok", reason="", chars=sum(len(r["text"]) for r in rows),
                   pages=outcome.docs[0].pages if outcome.docs else None)
    _check_ids(corpus, source)
    corpus.sort(key=lambda r: r["_id"])
    summary = _summary(source, manifest, corpus, old_paths)
    with atomic_dir(out) as tmp:
        _write_jsonl(tmp / CORPUS, corpus)
        _write_jsonl(tmp / MANIFEST, manifest)
        write_json(tmp / SUMMARY, summary)
    log.info("ingest: %s", describe(summary))
    return summary


def _check_ids(corpus: list[dict], source: Path) -> None:
    seen: dict[str, str] = {}
    for row in corpus:
        if row["_id"] in seen:
            raise DataError(source / row["metadata"]["path"], f"document id {row['_id']!r} appears twice")
        seen[row["_id"]] = row["metadata"]["path"]


def _summary(source: Path, manifest: list[dict], corpus: list[dict], old_paths: dict[str, str]) -> dict[str, Any]:
    new_paths = {r["path"]: r["sha256"] for r in manifest if r["status"] in ("ok", "reused")}
    removed = sorted(set(old_paths) - set(new_paths))
    added = sorted(set(new_paths) - set(old_paths))
    old_by_sha = {sha: p for p, sha in old_paths.items()}
    renamed = [{"from": old_by_sha[new_paths[p]], "to": p} for p in added
               if new_paths[p] in old_by_sha and old_by_sha[new_paths[p]] in removed]
    moved_from = {r["from"] for r in renamed}
    moved_to = {r["to"] for r in renamed}
    failed = [{"path": r["path"], "status": r["status"], "reason": r["reason"]} for r in manifest
              if r["status"] not in ("ok", "reused", "duplicate")]
    return {
        "kind": "documents", "source": str(source), "converter_version": CONVERTER_VERSION,
        "files": len(manifest), "documents": len(corpus),
        "status": dict(sorted(Counter(r["status"] for r in manifest).items())),
        "added": [p for p in added if p not in moved_to],
        "changed": sorted(p for p in set(new_paths) & set(old_paths) if new_paths[p] != old_paths[p]),
        "removed": [p for p in removed if p not in moved_from],
        "renamed": renamed,
        "duplicates": [{"path": r["path"], "same_as": r["reason"].removeprefix("same content as ")}
                       for r in manifest if r["status"] == "duplicate"],
        "failed": failed,
    }


def describe(summary: dict[str, Any]) -> str:
    """One line: what the ingest did."""
    if summary.get("kind") == "beir":
        return f"BEIR folder: {summary['documents']} documents, {summary['queries']} queries"
    counts = ", ".join(f"{n} {s}" for s, n in summary["status"].items())
    delta = ", ".join(f"{len(summary[k])} {k}" for k in ("added", "changed", "removed", "renamed") if summary[k])
    return f"{summary['files']} files -> {summary['documents']} documents ({counts})" + (
        f"; since last time: {delta}" if delta else "")


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
