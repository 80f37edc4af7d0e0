"""Text helpers shared by generators and scorers: sentence splitting, citations, claims, negation.

No model here: everything is a pure function over strings, tested by hand-worked cases.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# A sentence ends at . ! or ? followed by whitespace (BASELINES.md #5); "e.g. " and "et al. "
# would split too, which only makes claims shorter.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# `[123]`, `[123, 456]`, `[123; 456]`: ids are any run of characters without brackets or separators.
_CITATION = re.compile(r"\[([^\[\]\n]{1,200})\]")
_ID_SPLIT = re.compile(r"[,;]\s*|\s+")
_LEADING_CITATIONS = re.compile(r"^(\s*\[[^\[\]\n]{1,200}\])+")
MIN_CLAIM_CHARS = 10  # BASELINES.md #5: shorter pieces ("Yes.", "[1].") are not claims


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` split on ``.!?`` followed by whitespace; empty pieces dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text or "") if s.strip()]


def parse_citations(text: str) -> list[str]:
    """Cited ids in order of first appearance: ``"a [1] b [2, 3] c [1]"`` -> ``["1", "2", "3"]``."""
    out: list[str] = []
    for m in _CITATION.finditer(text):
        for cid in _ID_SPLIT.split(m.group(1).strip()):
            cid = cid.strip()
            if cid and cid not in out:
                out.append(cid)
    return out


def strip_citations(text: str) -> str:
    """``text`` without its ``[id]`` markers (what the scorers compare with the documents)."""
    return re.sub(r"\s+([.,;:!?])", r"\1", re.sub(r"\s+", " ", _CITATION.sub("", text))).strip()


def split_claims(answer: str) -> list[tuple[str, list[str]]]:
    """(claim text without markers, its cited ids) per sentence of ``answer``.

    Citation markers that follow a sentence end (``"... rises. [12] Next ..."``) belong to the sentence
    before them. Pieces shorter than MIN_CLAIM_CHARS once the markers are removed are not claims.
    """
    merged: list[str] = []
    for piece in split_sentences(answer):
        lead = _LEADING_CITATIONS.match(piece)
        if merged and lead:  # "[12]" right after the full stop cites the sentence before it
            merged[-1] = f"{merged[-1]} {lead.group(0).strip()}"
            piece = piece[lead.end() :].strip()
        if piece:
            merged.append(piece)
    out = []
    for piece in merged:
        text = strip_citations(piece)
        if len(text) > MIN_CLAIM_CHARS:
            out.append((text, parse_citations(piece)))
    return out


def unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)


_WORD = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
NEGATION_CUES = frozenset(
    {
        "not",
        "no",
        "never",
        "none",
        "neither",
        "nor",
        "cannot",
        "without",
        "lack",
        "lacks",
        "lacking",
        "absence",
        "absent",
        "fail",
        "fails",
        "failed",
        "unable",
        "n't",
        "nothing",
        "nobody",
    }
)
# Direction words: a claim and its evidence that disagree on these often contradict.
DECREASE_CUES = frozenset(
    {
        "decrease",
        "decreases",
        "decreased",
        "decreasing",
        "reduce",
        "reduces",
        "reduced",
        "reduction",
        "lower",
        "lowers",
        "less",
        "fewer",
        "inhibit",
        "inhibits",
        "inhibited",
        "suppress",
        "suppresses",
        "suppressed",
        "downregulates",
        "down-regulates",
        "impairs",
        "impaired",
        "worse",
        "worsens",
        "negative",
        "negatively",
        "decline",
        "declines",
        "smaller",
        "loss",
        "prevents",
        "prevent",
        "blocks",
        "attenuates",
    }
)


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters/digits, inner hyphens and apostrophes kept)."""
    return _WORD.findall(text.lower().replace("n't", " n't"))


def negation_count(text: str) -> int:
    toks = text.lower().replace("n't", " not").split()
    return sum(t.strip(".,;:()[]") in NEGATION_CUES for t in toks)


def decrease_count(text: str) -> int:
    return sum(w in DECREASE_CUES for w in words(text))
