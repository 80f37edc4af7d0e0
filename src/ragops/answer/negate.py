"""Synthetic contradictions: flip the meaning of a claim while keeping almost all of its words.

SciFact's CONTRADICT claims were written by annotators negating supported claims ("X does not
cause Y", "X decreases Y"), so they share the evidence's words: word overlap and embedding
similarity cannot tell them apart. Training pairs made by flipping supported claims (and
un-flipping contradicted ones) teach the trained scorer to look at exactly those few words.
"""

from __future__ import annotations

import re

# Antonym swaps, applied to the first match only (whole words, case kept for the first letter).
_SWAPS = [
    ("increases", "decreases"),
    ("increased", "decreased"),
    ("increase", "decrease"),
    ("increasing", "decreasing"),
    ("higher", "lower"),
    ("more", "less"),
    ("greater", "smaller"),
    ("enhances", "reduces"),
    ("enhanced", "reduced"),
    ("promotes", "inhibits"),
    ("promoted", "inhibited"),
    ("activates", "inhibits"),
    ("improves", "worsens"),
    ("improved", "worsened"),
    ("positive", "negative"),
    ("positively", "negatively"),
    ("upregulates", "downregulates"),
    ("up-regulates", "down-regulates"),
    ("induces", "prevents"),
    ("raises", "lowers"),
    ("elevated", "reduced"),
    ("beneficial", "harmful"),
    ("protects", "harms"),
    ("accelerates", "slows"),
    ("stimulates", "suppresses"),
    ("efficacious", "ineffective"),
    ("effective", "ineffective"),
    ("associated", "unassociated"),
    ("required", "dispensable"),
    ("necessary", "unnecessary"),
    ("sufficient", "insufficient"),
    ("common", "rare"),
    ("high", "low"),
    ("gain", "loss"),
    ("present", "absent"),
    ("before", "after"),
]
_SWAP = {a: b for a, b in _SWAPS} | {b: a for a, b in _SWAPS}
_AUX = re.compile(r"\b(is|are|was|were|can|could|may|might|will|would|should|must|has|have|had|does|do|did)\b", re.I)
_REMOVE = [
    (re.compile(r"\b(does|do|did) not (\w+)", re.I), None),  # "does not reduce" -> "reduces" (handled below)
    (re.compile(r"\b(is|are|was|were|can|could|may|might|will|would|should|must|has|have|had) not\b", re.I), r"\1"),
    (re.compile(r"\bno longer\b", re.I), "still"),
    (re.compile(r"\bcannot\b", re.I), "can"),
    (re.compile(r"\b(\w+)n't\b", re.I), r"\1"),
    (re.compile(r"\bnot\s+", re.I), ""),
    (re.compile(r"\bno\s+", re.I), "a "),
]
_DO_VERB = re.compile(r"\b(\w+?)(es|s)\b")


def _third_person(verb: str, aux: str) -> str:
    if aux.lower() == "did":
        return verb if verb.endswith("ed") else (verb + "d" if verb.endswith("e") else verb + "ed")
    if aux.lower() == "do":
        return verb
    if verb.endswith(("s", "sh", "ch", "x", "z")):
        return verb + "es"
    if verb.endswith("y") and len(verb) > 2 and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def _match_case(word: str, like: str) -> str:
    return word[:1].upper() + word[1:] if like[:1].isupper() else word


def remove_negation(claim: str) -> str | None:
    """The claim with its negation removed, or None when it has none."""
    m = re.search(r"\b(does|do|did) not (\w+)", claim, re.I)
    if m:
        return claim[: m.start()] + _third_person(m.group(2), m.group(1)) + claim[m.end() :]
    for pattern, repl in _REMOVE[1:]:
        out, n = pattern.subn(repl, claim, count=1)
        if n:
            return out
    return None


def swap_direction(claim: str) -> str | None:
    """The claim with its first direction word replaced by the opposite one, or None."""
    for m in re.finditer(r"[A-Za-z-]+", claim):
        word = m.group(0)
        swap = _SWAP.get(word.lower())
        if swap:
            return claim[: m.start()] + _match_case(swap, word) + claim[m.end() :]
    return None


def swap_aligned(evidence: str, claim: str) -> str | None:
    """``evidence`` with its first direction word that the claim shares (the word or its antonym, in
    either text) replaced by the opposite one, or None: a flip of the evidence where it meets the claim,
    not of an unrelated clause."""
    claim_words = {w.lower() for w in re.findall(r"[A-Za-z-]+", claim)}
    for m in re.finditer(r"[A-Za-z-]+", evidence):
        word = m.group(0)
        swap = _SWAP.get(word.lower())
        if swap and (word.lower() in claim_words or swap in claim_words):
            return evidence[: m.start()] + _match_case(swap, word) + evidence[m.end() :]
    return None


def add_negation(claim: str) -> str:
    """Insert "not" after the first auxiliary verb, else "does not" before the first -s verb, else a prefix."""
    m = _AUX.search(claim)
    if (
        m
        and m.group(1).lower() not in ("has", "have", "had")
        or (m and claim[m.end() :].lstrip().split(" ")[0].endswith(("ed", "en", "n")))
    ):
        return claim[: m.end()] + " not" + claim[m.end() :]
    return "It is not the case that " + claim[:1].lower() + claim[1:]


def negate(claim: str) -> str:
    """A claim that contradicts ``claim``: remove a negation, else swap a direction word, else add "not"."""
    for flip in (remove_negation, swap_direction):
        out = flip(claim)
        if out and out != claim:
            return out
    return add_negation(claim)
