"""Where in a document a claim comes from: the page and heading of the sentence that best matches it.

Ingested documents keep their sections (``[start, page, heading]``: a character offset into the text
where a page or a heading starts) in the corpus metadata; ``prepare`` carries them into docs.parquet as
a JSON column. A claim is located at the document sentence sharing the most words with it, so an
extractive claim (a sentence of the document) lands on its own sentence, and a generated one on its
closest source sentence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from ragops.answer.text import split_sentences

_WORD = re.compile(r"\w+")


def parse_sections(raw: object) -> list[tuple[int, int | None, str | None]]:
    """docs.parquet's ``sections`` cell (JSON text, or empty) -> ``[(start, page, heading)]`` by start."""
    if not isinstance(raw, str) or not raw:
        return []
    return sorted((int(s), p, h) for s, p, h in json.loads(raw))


def label(sections: Sequence[tuple[int, int | None, str | None]], offset: int) -> str:
    """"p. 2", "Methods" or "p. 2, Methods": the last section starting at or before ``offset``."""
    page, heading = None, None
    for start, p, h in sections:
        if start > offset:
            break
        page, heading = p, h
    return ", ".join(x for x in (f"p. {page}" if page is not None else None, heading) if x)


def locate(claim: str, text: str) -> int:
    """Character offset in ``text`` of the sentence sharing the most words with ``claim`` (0 if none)."""
    words = {w.lower() for w in _WORD.findall(claim)}
    best, best_at, pos = 0, 0, 0
    for sentence in split_sentences(text):
        at = text.find(sentence, pos)
        if at < 0:
            continue
        pos = at + len(sentence)
        overlap = len(words & {w.lower() for w in _WORD.findall(sentence)})
        if overlap > best:
            best, best_at = overlap, at
    return best_at


def where(claim: str, text: str, sections_raw: object) -> str:
    """The label of the place in a document ``claim`` comes from ("" for a document without sections)."""
    sections = parse_sections(sections_raw)
    return label(sections, locate(claim, text)) if sections else ""
