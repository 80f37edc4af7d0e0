"""Context packing: retrieved documents, best first, into a token budget (BASELINES.md #6 counts
words; here the count is the embedding model's tokenizer, a close stand-in for an LLM's).

A document that does not fit whole is cut at a sentence boundary when at least ``min_tokens`` of it
fit, otherwise packing stops: later (lower-ranked) documents never displace earlier ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ragops.answer.text import split_sentences

CountFn = Callable[[list[str]], list[int]]


@dataclass(frozen=True)
class ContextDoc:
    doc_id: str
    title: str
    text: str
    score: float
    tokens: int
    truncated: bool = False

    def sentences(self) -> list[str]:
        return split_sentences(self.text)


def word_count(texts: list[str]) -> list[int]:
    """The fallback counter: whitespace words."""
    return [len(t.split()) for t in texts]


def pack_context(
    docs: Sequence[tuple[str, str, str, float]], budget: int, count: CountFn = word_count, min_tokens: int = 32
) -> list[ContextDoc]:
    """(doc_id, title, text, score) in rank order -> the documents that fit into ``budget`` tokens.

    A document costs count(title + text); the first document is always kept (cut if needed), so an
    answer never has an empty context when retrieval found something.
    """
    out: list[ContextDoc] = []
    used = 0
    sizes = count([f"{title}\n{text}" for _, title, text, _ in docs]) if docs else []
    for (doc_id, title, text, score), size in zip(docs, sizes, strict=True):
        left = budget - used
        if size <= left:
            out.append(ContextDoc(doc_id, title, text, float(score), size))
            used += size
            continue
        if left < min_tokens and out:
            break
        cut = _cut_to(title, text, max(left, min_tokens if not out else left), count)
        if cut is None:
            break
        text_cut, n = cut
        out.append(ContextDoc(doc_id, title, text_cut, float(score), n, truncated=True))
        break
    return out


def _cut_to(title: str, text: str, budget: int, count: CountFn) -> tuple[str, int] | None:
    """The longest prefix of whole sentences whose count fits ``budget`` (None when not even one)."""
    sents = split_sentences(text)
    prefixes = [" ".join(sents[: i + 1]) for i in range(len(sents))]
    sizes = count([f"{title}\n{p}" for p in prefixes]) if prefixes else []
    best = None
    for p, n in zip(prefixes, sizes, strict=True):
        if n > budget:
            break
        best = (p, n)
    return best
