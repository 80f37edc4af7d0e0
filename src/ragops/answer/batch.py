"""Batch answering: questions.jsonl in, answers.jsonl out, with bounded concurrency and resumption.

Input lines are ``{"id": ..., "question": ...}`` (``id`` optional: the line number). Each answer is
appended as one line and flushed as soon as it is done, so an interrupted run loses at most the
questions in flight, and a rerun skips the ids already in the output. A question that fails (e.g. the
API gives up after its retries) is reported and not written, so the next run tries it again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ragops.errors import DataError, RagopsError

log = logging.getLogger("ragops.answer.batch")


@dataclass
class BatchResult:
    total: int
    skipped: int  # already in the output
    answered: int
    failed: dict[str, str] = field(default_factory=dict)  # id -> error message


def read_questions(path: str | Path) -> list[tuple[str, str]]:
    """(id, question) per non-empty line; a malformed line raises DataError naming path:line."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DataError(path, f"cannot read ({exc.strerror})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            raise DataError(path, f"not JSON ({exc.msg})", n) from None
        if not isinstance(rec, dict) or not isinstance(rec.get("question"), str) or not rec["question"].strip():
            raise DataError(path, 'expected {"id": ..., "question": "<non-empty text>"}', n)
        qid = str(rec.get("id", n))
        if qid in seen:
            raise DataError(path, f"duplicate id {qid!r}", n)
        seen.add(qid)
        out.append((qid, rec["question"]))
    return out


def answered_ids(path: str | Path) -> set[str]:
    """Ids already in an output file (a torn last line from an interrupted run is ignored)."""
    path = Path(path)
    if not path.exists():
        return set()
    ids = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            ids.add(str(json.loads(line)["id"]))
        except (ValueError, KeyError, TypeError):
            continue
    return ids


async def answer_batch(
    answerer,
    questions: list[tuple[str, str]],
    out: str | Path,
    concurrency: int = 4,
    k: int | None = None,
    progress: bool = True,
) -> BatchResult:
    """Answer every question not yet in ``out``, at most ``concurrency`` at a time."""
    from tqdm import tqdm

    if concurrency < 1:
        raise RagopsError(f"concurrency must be >= 1, got {concurrency}")
    out = Path(out)
    done = answered_ids(out)
    todo = [(q, text) for q, text in questions if q not in done]
    result = BatchResult(len(questions), len(questions) - len(todo), 0)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists() and out.stat().st_size and not out.read_bytes().endswith(b"\n"):
        with open(out, "a", encoding="utf-8") as f:  # a torn last line: start the next one on its own line
            f.write("\n")
    sem = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(todo), desc="answers", unit="q", disable=not progress)

    async def one(qid: str, question: str, sink) -> None:
        async with sem:
            try:
                answer = await answerer.aask(question, k)
            except RagopsError as exc:
                result.failed[qid] = str(exc)
                log.warning("question %s failed: %s", qid, exc)
            else:
                sink.write(json.dumps({"id": qid, **answer.to_dict()}, ensure_ascii=False) + "\n")
                sink.flush()
                result.answered += 1
            bar.update(1)

    try:
        with open(out, "a", encoding="utf-8") as sink:
            await asyncio.gather(*(one(q, text, sink) for q, text in todo))
    finally:
        bar.close()
    return result
