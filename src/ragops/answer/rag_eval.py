"""RAG evaluation: answer each test query and judge the citations against the relevance judgments.

- citation precision: cited documents that are relevant (qrels) / cited documents, over all answers
  (micro) and as the mean of per-answer precision over answers that cite something (macro);
- support rate: the mean over answers of the share of claims the grounding scorer calls supported;
- answered: share of queries with at least one cited document.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ragops.answer.records import Answer


def rag_metrics(answers: Sequence[Answer], relevant: Sequence[set[str]]) -> dict[str, float]:
    cited = relevant_cited = 0
    per_answer, support, answered, claims = [], [], 0, 0
    refused = sum(not getattr(a, "found", True) for a in answers)
    for ans, rel in zip(answers, relevant, strict=True):
        if not getattr(ans, "found", True):
            continue  # "not found in the documents": no claims to support, counted in `refused`
        docs = ans.citations
        hits = sum(d in rel for d in docs)
        cited += len(docs)
        relevant_cited += hits
        if docs:
            answered += 1
            per_answer.append(hits / len(docs))
        support.append(ans.support_rate)
        claims += len(ans.claims)
    n = len(answers)
    return {
        "citation_precision": round(relevant_cited / cited, 4) if cited else 0.0,
        "citation_precision_macro": round(float(np.mean(per_answer)), 4) if per_answer else 0.0,
        "support_rate": round(float(np.mean(support)), 4) if support else 0.0,
        "answered": round(answered / n, 4) if n else 0.0,
        "claims_per_answer": round(claims / n, 3) if n else 0.0,
        # every query of the split has a judged answer in the corpus: each refusal is a false one
        "refused": round(refused / n, 4) if n else 0.0,
        "n_queries": n,
    }


GROUNDING_KEYS = (
    "auroc",
    "auroc_support_vs_contradict",
    "auroc_support_vs_nei",
    "f1",
    "precision",
    "recall",
    "threshold",
)


def answer_metrics(grounding_report: str | None, rag_report: str | None) -> dict[str, dict[str, dict[str, float]]]:
    """The `grounding` and `rag` sections of metrics.json from the grounding and rag stages' reports
    (missing files are skipped): ``{"grounding": {scorer: {metric: value}}, "rag": {"extractive": {...}}}``,
    three levels of numbers like the retrieval metrics, so the tracking code logs them unchanged."""
    from pathlib import Path

    from ragops.io import read_json

    out: dict[str, dict[str, dict[str, float]]] = {}
    scorers = (
        read_json(grounding_report).get("scorers", {}) if grounding_report and Path(grounding_report).is_file() else {}
    )
    if scorers:  # none when the data set has no labelled claims
        out["grounding"] = {name: {k: float(m[k]) for k in GROUNDING_KEYS if k in m} for name, m in scorers.items()}
    if rag_report and Path(rag_report).is_file():
        rag = read_json(rag_report)
        out["rag"] = {
            str(rag.get("generator", "extractive")): {k: float(v) for k, v in rag.items() if isinstance(v, int | float)}
        }
    return out
