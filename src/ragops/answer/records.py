"""The records an answer is made of (the contract with the serving layer: field names are fixed)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Claim:
    text: str
    score: float  # support score in [0, 1] from the grounding scorer
    supported: bool  # score >= the scorer's threshold
    citations: list[str]  # doc ids cited by this claim
    # doc id -> where in it the claim comes from ("p. 2, Methods"), for cited documents that have pages or
    # headings (ingested PDF, DOCX, HTML, Markdown); see ragops.answer.where
    where: dict[str, str] = field(default_factory=dict)


@dataclass
class Answer:
    question: str
    text: str  # the answer with inline citations like [doc_id]
    generator: str  # "extractive" | "anthropic"
    scorer: str  # "lexical" | "embedding" | "trained"
    citations: list[str]  # doc ids cited, in order of first citation
    claims: list[Claim]
    hits: list[dict]  # retrieved docs used as context: {"doc_id", "title", "score", "text"}
    support_rate: float  # share of claims supported (1.0 when no claims)
    # Cited ids that are not in the context (dropped from `citations`); not part of to_dict's contract.
    dropped_citations: list[str] = field(default_factory=list)
    # False: nothing retrieved is close enough to the question (answer.min_relevance), so no answer is made
    found: bool = True
    relevance: float | None = None  # max cosine of the question to a context sentence (None: not checked)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("dropped_citations")
        return out
