"""Strict, streaming reader for BEIR-layout folders.

A BEIR folder holds ``corpus.jsonl[.gz]`` (``_id``, ``title``, ``text``), ``queries.jsonl[.gz]``
(``_id``, ``text``) and ``qrels/<split>.tsv`` (header ``query-id<TAB>corpus-id<TAB>score``).
Every problem is a :class:`~ragops.errors.DataError` naming the file and the 1-based line, so a
user can open the file at the right place. Query ``metadata`` is dropped on read: in SciFact it
holds the gold evidence, which no retriever may see. A corpus row's ``metadata.sections`` (written by
``ragops ingest``: ``[start, page, heading]`` where a page or heading starts) is kept as a JSON column,
so an answer can say where in a document a claim comes from.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ragops.errors import DataError

SPLITS = ("train", "dev", "test")
QRELS_HEADER = ("query-id", "corpus-id", "score")


@dataclass(frozen=True)
class BeirData:
    """A validated BEIR dataset.

    ``docs``: doc_id, title, text; ``queries``: query_id, text; ``qrels``: query_id, doc_id, score
    (int64), split. ``hashes`` maps each input file (path relative to the folder) to its sha256.
    """

    docs: pd.DataFrame
    queries: pd.DataFrame
    qrels: pd.DataFrame
    hashes: dict[str, str] = field(default_factory=dict)


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each non-blank line, decoding each line strictly as UTF-8.

    ``.gz`` files are decompressed on the fly. A UTF-8 byte-order mark on line 1 is ignored.
    """
    opener = gzip.open if path.name.endswith(".gz") else open
    lineno = 0
    try:
        with opener(path, "rb") as f:
            for lineno, raw in enumerate(f, start=1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(path, f"not valid UTF-8 (byte {exc.start})", lineno) from exc
                if lineno == 1:
                    text = text.removeprefix("\ufeff")
                if text.strip():
                    yield lineno, text
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(path, f"corrupt gzip data: {exc}", lineno + 1) from exc


def _find(folder: Path, stem: str) -> Path:
    """``<stem>.jsonl`` if present (preferred), else ``<stem>.jsonl.gz``."""
    for name in (f"{stem}.jsonl", f"{stem}.jsonl.gz"):
        if (folder / name).is_file():
            return folder / name
    expected = f"expected {stem}.jsonl or {stem}.jsonl.gz"
    raise DataError(folder / f"{stem}.jsonl", f"missing {stem} file ({expected})")


def _record_id(obj: dict[str, Any], path: Path, lineno: int) -> str:
    raw = obj.get("_id")
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        what = "missing" if raw is None else f"not a string or integer ({type(raw).__name__})"
        raise DataError(path, f"'_id' is {what}", lineno)
    rid = str(raw)
    if not rid.strip():
        raise DataError(path, "'_id' is empty", lineno)
    return rid


def json_objects(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON-lines file (see :func:`iter_lines`);
    a line that is not JSON, or not a JSON object, is a :class:`DataError` naming the file and line."""
    for lineno, line in iter_lines(path):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"malformed JSON: {exc.msg} (column {exc.colno})", lineno) from exc
        if not isinstance(obj, dict):
            raise DataError(path, f"expected a JSON object, got {type(obj).__name__}", lineno)
        yield lineno, obj


def _read_records(path: Path, with_title: bool) -> dict[str, list[str]]:
    """Parse a BEIR jsonl file into columns ``ids``, ``texts`` (and ``titles``), checking every line."""
    ids: list[str] = []
    texts: list[str] = []
    titles: list[str] = []
    sections: list[str] = []
    first_line: dict[str, int] = {}
    for lineno, obj in json_objects(path):
        rid = _record_id(obj, path, lineno)
        if rid in first_line:
            raise DataError(path, f"duplicate _id {rid!r} (first on line {first_line[rid]})", lineno)
        first_line[rid] = lineno
        text = obj.get("text")
        if not isinstance(text, str):
            what = "missing" if "text" not in obj else f"not a string ({type(text).__name__})"
            raise DataError(path, f"'text' is {what}", lineno)
        if with_title:
            title = obj.get("title")
            if title is None:
                title = ""
            elif not isinstance(title, str):
                raise DataError(path, f"'title' is not a string ({type(title).__name__})", lineno)
            titles.append(title)
            sections.append(_sections(obj, path, lineno))
        ids.append(rid)
        texts.append(text)
    return {"ids": ids, "texts": texts, "titles": titles, "sections": sections}


def _sections(obj: dict[str, Any], path: Path, lineno: int) -> str:
    """A corpus row's ``metadata.sections`` as compact JSON ("" when it has none), checked."""
    meta = obj.get("metadata")
    rows = meta.get("sections") if isinstance(meta, dict) else None
    if not rows:
        return ""
    ok = isinstance(rows, list) and all(
        isinstance(r, list) and len(r) == 3 and isinstance(r[0], int) and not isinstance(r[0], bool)
        and (r[1] is None or isinstance(r[1], int)) and (r[2] is None or isinstance(r[2], str)) for r in rows)
    if not ok:
        raise DataError(path, "'metadata.sections' must be a list of [start, page or null, heading or null]", lineno)
    return json.dumps(rows, separators=(",", ":"), ensure_ascii=False)


def read_corpus(path: Path) -> pd.DataFrame:
    """Documents as ``doc_id, title, text`` in file order, plus ``sections`` (JSON text, "" for none) when
    any document has pages or headings; an empty corpus is an error."""
    cols = _read_records(path, with_title=True)
    if not cols["ids"]:
        raise DataError(path, "no documents (the corpus is empty)")
    frame = {"doc_id": cols["ids"], "title": cols["titles"], "text": cols["texts"]}
    if any(cols["sections"]):
        frame["sections"] = cols["sections"]
    return pd.DataFrame(frame)


def read_queries(path: Path) -> pd.DataFrame:
    """Queries as ``query_id, text``; every other field (``metadata``: gold answers) is dropped."""
    cols = _read_records(path, with_title=False)
    return pd.DataFrame({"query_id": cols["ids"], "text": cols["texts"]})


def _qrels_row(path: Path, lineno: int, line: str) -> tuple[str, str, int]:
    parts = line.rstrip("\r\n").split("\t")
    if len(parts) != 3:
        raise DataError(path, f"expected 3 tab-separated columns, got {len(parts)}", lineno)
    qid, did, score = (p.strip() for p in parts)
    if not qid or not did:
        raise DataError(path, "empty query-id or corpus-id", lineno)
    try:
        return qid, did, int(score)
    except ValueError:
        raise DataError(path, f"score {score!r} is not an integer", lineno) from None


def read_qrels(path: Path, split: str, doc_ids: set[str], query_ids: set[str]) -> pd.DataFrame:
    """One qrels file as ``query_id, doc_id, score, split``; every id must exist in corpus/queries."""
    rows: list[tuple[str, str, int]] = []
    first_line: dict[tuple[str, str], int] = {}
    header_seen = False
    for lineno, line in iter_lines(path):
        if not header_seen:
            header = tuple(p.strip() for p in line.rstrip("\r\n").split("\t"))
            if header != QRELS_HEADER:
                raise DataError(path, f"expected header {'<TAB>'.join(QRELS_HEADER)!r}, got {line.strip()!r}",
                                lineno)
            header_seen = True
            continue
        qid, did, score = _qrels_row(path, lineno, line)
        if did not in doc_ids:
            raise DataError(path, f"corpus-id {did!r} is not in the corpus", lineno)
        if qid not in query_ids:
            raise DataError(path, f"query-id {qid!r} is not in the queries", lineno)
        if (qid, did) in first_line:
            first = first_line[qid, did]
            raise DataError(path, f"duplicate judgment ({qid!r}, {did!r}) (first on line {first})", lineno)
        first_line[qid, did] = lineno
        rows.append((qid, did, score))
    if not rows:
        raise DataError(path, "no judgments")
    df = pd.DataFrame(rows, columns=["query_id", "doc_id", "score"])
    df["score"] = df["score"].astype("int64")
    df["split"] = split
    return df


def _check_disjoint(frames: dict[str, pd.DataFrame], folder: Path) -> None:
    """A query judged in two splits would leak test or dev labels into training."""
    owner: dict[str, str] = {}
    for split, df in frames.items():
        for qid in df["query_id"].unique():
            if qid in owner:
                raise DataError(folder / "qrels" / f"{split}.tsv",
                                f"query-id {qid!r} is also judged in split {owner[qid]!r}")
            owner[qid] = split


def empty_qrels() -> pd.DataFrame:
    """A qrels table with no rows and the columns (and dtypes) of a read one."""
    return pd.DataFrame({"query_id": pd.Series([], dtype=str), "doc_id": pd.Series([], dtype=str),
                         "score": pd.Series([], dtype="int64"), "split": pd.Series([], dtype=str)})


def load_beir(folder: str | Path, require_qrels: bool = True) -> BeirData:
    """Read and validate a BEIR folder; qrels splits are those of train/dev/test present.

    ``require_qrels=False``: a corpus alone is valid (your own documents: no queries, no judgments yet), and
    so is a corpus with queries but no qrels."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "dataset folder not found")
    corpus_path = _find(folder, "corpus")
    candidates = {s: folder / "qrels" / f"{s}.tsv" for s in SPLITS}
    qrels_paths = {s: p for s, p in candidates.items() if p.is_file()}
    if not qrels_paths and require_qrels:
        names = ", ".join(p.name for p in candidates.values())
        raise DataError(folder / "qrels", f"no qrels: expected one of {names}")
    has_queries = bool(qrels_paths) or any((folder / n).is_file() for n in ("queries.jsonl", "queries.jsonl.gz"))
    queries_path = _find(folder, "queries") if has_queries else None
    docs = read_corpus(corpus_path)
    queries = read_queries(queries_path) if queries_path else pd.DataFrame({"query_id": [], "text": []}, dtype=str)
    doc_ids, query_ids = set(docs["doc_id"]), set(queries["query_id"])
    frames = {s: read_qrels(p, s, doc_ids, query_ids) for s, p in qrels_paths.items()}
    _check_disjoint(frames, folder)
    qrels = pd.concat(list(frames.values()), ignore_index=True) if frames else empty_qrels()
    inputs = [corpus_path, *([queries_path] if queries_path else []), *qrels_paths.values()]
    hashes = {p.relative_to(folder).as_posix(): sha256_file(p) for p in inputs}
    return BeirData(docs=docs, queries=queries, qrels=qrels, hashes=hashes)
