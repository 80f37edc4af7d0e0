"""Relevance judgments made here: the one module that reads and appends the judgments files.

A team with its own documents has no judged data set; it builds one by marking search results relevant or
not (the search page, ``ragops judge``, ``POST /judge``) and by generated "silver" questions
(``ragops generate-questions``). Both write the same format, JSON Lines, one judgment a line::

    {"query": "...", "query_id": "j-...", "doc_id": "...", "relevant": 1, "source": "human",
     "time": "2025-01-01T12:00:00+00:00", "by": "page", "mode": "hybrid"}

The files are appended, never rewritten (they are small text, committed or DVC-tracked, and several
writers, the server and a CLI, may append at once): :func:`append` writes whole lines under an exclusive
lock in one ``os.write`` and syncs them, so a crash never leaves half a judgment, and a half line left by
an older crash is skipped by :func:`read` with a warning. A user can change their mind: the latest
judgment of a (question, document) pair wins. The ``prepare`` stage reads them with :func:`read_many`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ragops.errors import DataError

log = logging.getLogger(__name__)

COLUMNS = ["query_id", "query", "doc_id", "score", "source", "time", "by", "mode"]
SOURCES = ("human", "silver")
PREFIX = {"human": "j", "silver": "s"}  # the query id's prefix says where a question came from
DEFAULT_FILE = "data/judgments/judgments.jsonl"


def query_id(text: str, prefix: str = "j") -> str:
    """``<prefix>-`` + 12 hex digits of sha1 of the lower-cased, whitespace-collapsed text: the same question
    asked twice (or with other spacing or case) gets one id, in every run and every file."""
    norm = " ".join(str(text).lower().split())
    return f"{prefix}-{hashlib.sha1(norm.encode('utf-8')).hexdigest()[:12]}"


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def default_path(params: Mapping[str, Any] | None) -> Path:
    """``<data.judgments>/judgments.jsonl`` when params name the folder, else :data:`DEFAULT_FILE`."""
    folder = ((params or {}).get("data") or {}).get("judgments")
    return Path(folder) / "judgments.jsonl" if folder else Path(DEFAULT_FILE)


def make_row(query: str, doc_id: str, relevant: bool | int, by: str, mode: str | None = None,
             source: str = "human", time: str | None = None) -> dict[str, Any]:
    """One judgment in the file's format; the query id comes from the text (prefix by ``source``)."""
    return {"query": query, "query_id": query_id(query, PREFIX.get(source, "j")), "doc_id": str(doc_id),
            "relevant": int(bool(relevant)), "source": source, "time": time or now_utc(), "by": by, "mode": mode}


def _utc(value: Any) -> str:
    """``value`` as an ISO-8601 UTC time string; a time without an offset is taken as UTC."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("'time' must be an ISO-8601 string")
    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"'time' {value!r} is not an ISO-8601 time") from None
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    return t.isoformat(timespec="seconds")


def validate(row: Any) -> dict[str, Any]:
    """The row checked and normalised (a missing query id is computed); ``ValueError`` says what is wrong."""
    if not isinstance(row, Mapping):
        raise ValueError(f"a judgment is a JSON object, got {type(row).__name__}")
    missing = [k for k in ("query", "doc_id", "relevant", "source", "time", "by") if k not in row]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    query, doc_id, by, source = row["query"], row["doc_id"], row["by"], row["source"]
    if not isinstance(query, str) or not query.strip():
        raise ValueError("'query' must be a non-empty string")
    if not isinstance(doc_id, str) or not doc_id:
        raise ValueError("'doc_id' must be a non-empty string")
    rel = row["relevant"]
    if isinstance(rel, bool):
        rel = int(rel)
    if not isinstance(rel, int) or rel not in (0, 1):
        raise ValueError(f"'relevant' must be 1 or 0 (or true/false), got {row['relevant']!r}")
    if source not in SOURCES:
        raise ValueError(f"'source' must be one of {', '.join(SOURCES)}, got {source!r}")
    if not isinstance(by, str) or not by:
        raise ValueError("'by' must be a non-empty string")
    mode = row.get("mode")
    if mode is not None and not isinstance(mode, str):
        raise ValueError(f"'mode' must be a string or null, got {mode!r}")
    qid = row.get("query_id") or query_id(query, PREFIX[source])
    if not isinstance(qid, str):
        raise ValueError(f"'query_id' must be a string, got {qid!r}")
    return {"query": query, "query_id": qid, "doc_id": doc_id, "relevant": rel, "source": source,
            "time": _utc(row["time"]), "by": by, "mode": mode}


@contextlib.contextmanager
def _locked(path: Path, flags: int, lock: int) -> Iterator[int]:
    fd = os.open(path, flags, 0o666)
    try:
        fcntl.flock(fd, lock)
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


def _torn_tail(fd: int, path: Path) -> bytes:
    """What to write before new lines when the file does not end in a newline: a complete judgment left
    unterminated (an editor) gets its newline; a crash's half line is cut off, with a warning (read skips it)."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return b""
    data = os.pread(fd, size, 0)
    start = data.rfind(b"\n") + 1
    try:
        validate(json.loads(data[start:]))
        return b"\n"
    except (ValueError, UnicodeDecodeError):
        log.warning("%s: an unfinished last line (%d bytes, a writer stopped midway) was removed before appending",
                    path, size - start)
        os.ftruncate(fd, start)
        return b""


def append(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> int:
    """Validate ``rows``, then append them as whole lines under an exclusive lock and sync them to disk.
    Returns the number of judgment lines in the file afterwards. Nothing is written if any row is bad."""
    path = Path(path)
    checked = []
    for i, row in enumerate(rows, 1):
        try:
            checked.append(validate(row))
        except ValueError as exc:
            raise DataError(path, f"judgment {i} to append: {exc}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in checked).encode("utf-8")
    with _locked(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, fcntl.LOCK_EX) as fd:
        if data:
            data = _torn_tail(fd, path) + data
            if os.write(fd, data) != len(data):  # a regular file takes it whole or raises (disk full)
                raise DataError(path, "short write while appending judgments")
            os.fsync(fd)
        total = _count_lines(fd)
    if created:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new file's name survives a crash too
        finally:
            os.close(dir_fd)
    return total


# (device, inode) of a judgments file -> (bytes counted, lines in them): an append reads only what was added
# since this process last counted, not the whole file (a server appends one judgment a request)
_COUNTED: dict[tuple[int, int], tuple[int, int]] = {}


def _count_lines(fd: int) -> int:
    """Non-blank whole lines in the file; called under the lock, after a write that ended with a newline."""
    st = os.fstat(fd)
    key = (st.st_dev, st.st_ino)
    done, lines = _COUNTED.get(key, (0, 0))
    if done > st.st_size or (done and os.pread(fd, 1, done - 1) != b"\n"):  # truncated or rewritten: recount
        done, lines = 0, 0
    data = os.pread(fd, st.st_size - done, done)
    lines += sum(1 for line in data.split(b"\n")[:-1] if line.strip())
    _COUNTED[key] = (st.st_size, lines)
    return lines


def _raw(path: Path, order: int) -> pd.DataFrame:
    """Every judgment line of ``path`` in file order (``_file``, ``_line`` kept for latest-wins ties)."""
    try:
        with _locked(path, os.O_RDONLY, fcntl.LOCK_SH) as fd:
            data = os.pread(fd, os.fstat(fd).st_size, 0)
    except FileNotFoundError:
        return pd.DataFrame(columns=[*COLUMNS, "_file", "_line"])
    lines = data.split(b"\n")
    if lines[-1].strip():
        log.warning("%s:%d: the last line has no newline (a writer stopped midway?): ignored", path, len(lines))
    records = []
    for n, raw in enumerate(lines[:-1], 1):
        if not raw.strip():
            continue
        try:
            row = validate(json.loads(raw.decode("utf-8")))
        except UnicodeDecodeError:
            raise DataError(path, "not UTF-8 text", line=n) from None
        except json.JSONDecodeError as exc:
            raise DataError(path, f"not valid JSON ({exc.msg}, column {exc.colno})", line=n) from None
        except ValueError as exc:
            raise DataError(path, f"bad judgment: {exc}", line=n) from None
        records.append((row["query_id"], row["query"], row["doc_id"], row["relevant"], row["source"], row["time"],
                        row["by"], row["mode"], order, n))
    return pd.DataFrame.from_records(records, columns=[*COLUMNS, "_file", "_line"])


def _latest(raw: pd.DataFrame) -> pd.DataFrame:
    """The latest judgment per (query_id, doc_id): by time, then by file and line order (appends)."""
    if raw.empty:
        return empty()
    raw = raw.sort_values(["time", "_file", "_line"], kind="stable")
    out = raw.drop_duplicates(["query_id", "doc_id"], keep="last").sort_values(["_file", "_line"], kind="stable")
    out = out[COLUMNS].reset_index(drop=True).astype({"score": "int64", "mode": object})
    out["mode"] = out["mode"].where(out["mode"].notna(), None)  # JSON null stays None (pandas reads NaN)
    return out


def empty() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "score" else "object") for c in COLUMNS})


def read(path: str | Path) -> pd.DataFrame:
    """The judgments of one file (columns :data:`COLUMNS`, ``score`` 0/1), the latest per (query_id, doc_id);
    an empty frame when the file does not exist; :class:`DataError` naming the line for a malformed one."""
    return _latest(_raw(Path(path), 0))


def read_many(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Several files (people's and silver ones) as one frame; the latest judgment of a pair wins across them."""
    frames = [_raw(Path(p), i) for i, p in enumerate(paths)]
    frames = [f for f in frames if not f.empty]
    return _latest(pd.concat(frames, ignore_index=True)) if frames else empty()


def summary(df: pd.DataFrame) -> dict[str, Any]:
    """Counts for a person deciding whether the set is big enough: questions, judgments, relevant ones,
    and the same per source (human / silver)."""

    def counts(part: pd.DataFrame) -> dict[str, int]:
        return {"queries": int(part["query_id"].nunique()), "judgments": int(len(part)),
                "relevant": int(part["score"].sum())}

    by_source = {str(s): counts(part) for s, part in df.groupby("source", sort=True)} if len(df) else {}
    return counts(df) | {"by_source": by_source}
