"""The SciFact claim files as grounding data: (claim, cited document, label) pairs.

``claims_*.csv`` has one row per (claim, evidence set): ``id, claim, evidence_doc_id, evidence_label
(SUPPORT / CONTRADICT / empty), evidence_sentences ("[2, 5]"), cited_doc_ids ("[123 456]")``. A pair is
a claim and one document it cites; its label is the evidence label for that document, or NEI when the
document holds no evidence. Sentence indices refer to ``corpus_sentences.jsonl.gz``.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from ragops.errors import DataError

_T = TypeVar("_T")
LABELS = ("NEI", "SUPPORT", "CONTRADICT")  # class index = position (the cross-encoder's labels)
_INTS = re.compile(r"-?\d+")
_COLUMNS = ("id", "claim", "evidence_doc_id", "evidence_label", "evidence_sentences", "cited_doc_ids")


@dataclass
class Pair:
    claim_id: str
    claim: str
    doc_id: str
    label: str  # one of LABELS
    rationales: list[list[int]] = field(default_factory=list)  # evidence sentence sets (indices)


def _read_field(path: str | Path, get: Callable[[dict[str, Any]], _T]) -> dict[str, _T]:
    """doc_id -> ``get(record)`` for each ``{"_id","title","sentences"}`` line; a bad line names its number."""
    out: dict[str, _T] = {}
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                out[str(rec["_id"])] = get(rec)
            except (ValueError, KeyError, TypeError) as exc:
                raise DataError(path, f"not a sentences record ({exc})", n) from None
    return out


def read_sentences(path: str | Path) -> dict[str, list[str]]:
    """doc_id -> the abstract's sentences (``{"_id","title","sentences"}`` per line)."""
    return _read_field(path, lambda rec: [str(s).strip() for s in rec["sentences"]])


def read_titles(path: str | Path) -> dict[str, str]:
    """doc_id -> the abstract's title (the same file as ``read_sentences``)."""
    return _read_field(path, lambda rec: str(rec.get("title") or "").strip())


def read_pairs(path: str | Path, sentences: dict[str, list[str]] | None = None) -> list[Pair]:
    """One Pair per (claim, cited document), in file order; labels checked for consistency."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError) as exc:
        raise DataError(path, f"cannot read claims ({exc})") from None
    missing = [c for c in _COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(path, f"missing columns {missing}", 1)
    pairs: dict[tuple[str, str], Pair] = {}
    for n, row in enumerate(frame.itertuples(index=False), 2):  # line 1 is the header
        cid, claim = row.id.strip(), row.claim.strip()
        if not cid or not claim:
            raise DataError(path, "empty id or claim", n)
        for doc in _INTS.findall(row.cited_doc_ids):
            pairs.setdefault((cid, doc), Pair(cid, claim, doc, "NEI"))
        label = row.evidence_label.strip()
        if not label:
            continue
        if label not in LABELS[1:]:
            raise DataError(path, f"unknown evidence_label {label!r}", n)
        doc = str(int(float(row.evidence_doc_id)))
        pair = pairs.setdefault((cid, doc), Pair(cid, claim, doc, label))
        if pair.label not in ("NEI", label):
            raise DataError(path, f"claim {cid} has labels {pair.label} and {label} for document {doc}", n)
        pair.label = label
        idx = [int(i) for i in _INTS.findall(row.evidence_sentences)]
        if sentences is not None and doc in sentences and any(i >= len(sentences[doc]) for i in idx):
            raise DataError(path, f"evidence sentence index out of range for document {doc}", n)
        pair.rationales.append(idx)
    return list(pairs.values())
