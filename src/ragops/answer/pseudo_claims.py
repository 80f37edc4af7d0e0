"""Pseudo-claims from the corpus itself, no labels (``grounding.cross_encoder.corpus_claims``, off by default):
finding-style titles and the clauses after "we show that…", supported by their abstract's most similar
sentences, their negations contradicted (docs/grounding.md, "What did not help")."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from ragops.answer.grounding_data import LABELS
from ragops.answer.negate import negate
from ragops.errors import unknown_name

CORPUS_SOURCES = ("titles", "clauses", "both")


_THAT = re.compile(
    r"\b(?:show|shows|showed|shown|demonstrate|demonstrates|demonstrated|suggest|suggests|suggested|indicate|"
    r"indicates|indicated|reveal|reveals|revealed|find|found|conclude|concluded|establish|established)\s+that\s+(.+)",
    re.I,
)


def _flippable(claim: str) -> bool:
    return len(claim.split()) >= 4 and not negate(claim).startswith("It is not the case")


def corpus_claims(
    titles: dict[str, str],
    sentences: dict[str, list[str]],
    source: str,
    limit: int,
    seed: int,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> list[tuple[str, str]]:
    """Up to ``limit`` (doc_id, pseudo-claim) pairs from the corpus itself (no labels; a seeded sample):
    ``titles`` — a title that states a finding; ``clauses`` — the clause after "we show that",
    "these results suggest that"… in an abstract sentence; ``both``. Only claims ragops.answer.negate can
    flip (a claim only its "It is not the case that" fallback negates is a topic, not a finding).
    Documents in ``exclude`` (those the evaluation claims cite) give none."""
    if source not in CORPUS_SOURCES:
        raise unknown_name("grounding.cross_encoder.corpus_source", source, CORPUS_SOURCES)
    out: list[tuple[str, str]] = []
    if source in ("titles", "both"):
        out += [(d, t.strip().rstrip(".")) for d, t in titles.items() if len(sentences.get(d, [])) >= 3]
    if source in ("clauses", "both"):
        for d, sents in sentences.items():
            for sent in sents:
                m = _THAT.search(sent)
                if m:
                    clause = m.group(1).strip().rstrip(".")
                    out.append((d, clause[:1].upper() + clause[1:]))
    out = sorted({x for x in out if x[0] not in exclude and _flippable(x[1])})
    random.Random(seed).shuffle(out)
    return sorted(out[: max(0, limit)])


def pseudo_examples(
    claims: Sequence[tuple[str, str]],
    sentences: dict[str, list[str]],
    order: Sequence[Sequence[int]],
    top_k: int,
    nei: bool = True,
) -> list[tuple[str, str, int]]:
    """Training pairs from ``corpus_claims``: the pseudo-claim is supported by its abstract's ``top_k``
    sentences most similar to it (joined as at answer time), its negation (ragops.answer.negate) is
    contradicted by them; with ``nei``, the claim against its abstract's least similar sentence is NEI.
    ``order[i]``: claim i's document's sentence indices, most similar first."""
    nei_i, sup, con = (LABELS.index(x) for x in ("NEI", "SUPPORT", "CONTRADICT"))
    out: list[tuple[str, str, int]] = []
    for (d, claim), ranked in zip(claims, order, strict=True):
        sents = sentences[d]
        text = " ".join(sents[i] for i in ranked[:top_k])
        out += [(claim, text, sup), (negate(claim), text, con)]
        if nei and len(ranked) > top_k:
            out.append((claim, sents[ranked[-1]], nei_i))
    return out
