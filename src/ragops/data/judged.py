"""Judgments made here (``data.judgments``: people's and generated ones) added to a data set's own.

The data set's qrels are *gold* (``source`` column ``gold``); a judgment file's rows keep their own source,
``human`` (the search page, ``ragops judge``) or ``silver`` (``ragops generate-questions``). Each judged
question is a query of its own (id ``j-...`` / ``s-...`` from its text: ``ragops.eval.judgments.query_id``) and
goes to ``dev`` or ``test`` by a hash of its id (``prepare.dev_fraction`` of them to dev, the rest to test:
adding questions never moves an existing one), never to ``train``, so nothing is fitted on what judges it.
A judgment of a document that is no longer in the corpus (deleted since) is dropped and counted; a question
with no relevant document left is dropped too (nDCG is undefined for it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ragops.data.split import hash_unit

log = logging.getLogger("ragops.prepare")

GOLD = "gold"


def judgment_files(folder: str | Path) -> list[Path]:
    """The ``*.jsonl`` files of the judgments folder, sorted (none when it does not exist)."""
    folder = Path(folder)
    return sorted(folder.glob("*.jsonl")) if folder.is_dir() else []


def add_judgments(queries: pd.DataFrame, qrels: pd.DataFrame, doc_ids: Sequence[str], judged: pd.DataFrame,
                  dev_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """``(queries, qrels, stats)`` with ``judged`` (``ragops.eval.judgments.read_many``'s frame) added."""
    qrels = qrels.assign(source=GOLD) if "source" not in qrels else qrels
    stats: dict[str, Any] = {"rows": int(len(judged))}
    if judged.empty:
        return queries, qrels, stats | {"queries": 0, "judgments": 0}
    known = set(doc_ids)
    present = judged["doc_id"].isin(known)
    stats["dropped_missing_docs"] = int((~present).sum())
    judged = judged[present]
    relevant = judged.groupby("query_id")["score"].max()
    keep = set(relevant[relevant > 0].index)
    stats["dropped_no_relevant"] = int(judged["query_id"].nunique() - len(keep))
    judged = judged[judged["query_id"].isin(keep)]
    taken = set(queries["query_id"])
    clash = sorted(set(judged["query_id"]) & taken)
    if clash:  # the data set's own ids never look like j-/s- ids; if one does, the data set's wins
        log.warning("prepare: %d judged question ids are also the data set's query ids; those are skipped", len(clash))
        judged = judged[~judged["query_id"].isin(clash)]
    split = {q: ("dev" if hash_unit(seed, q) < dev_fraction else "test") for q in judged["query_id"].unique()}
    new_q = judged.drop_duplicates("query_id")[["query_id", "query"]].rename(columns={"query": "text"})
    new_qrels = pd.DataFrame({
        "query_id": judged["query_id"].astype(str), "doc_id": judged["doc_id"].astype(str),
        "score": judged["score"].astype("int64"), "split": judged["query_id"].map(split),
        "source": judged["source"].astype(str),
    })
    queries = pd.concat([queries, new_q], ignore_index=True)
    qrels = pd.concat([qrels, new_qrels], ignore_index=True)
    by_source = new_qrels.groupby("source")["query_id"].nunique().to_dict()
    stats.update(queries=len(split), judgments=len(new_qrels), by_source={k: int(v) for k, v in by_source.items()})
    if stats["dropped_missing_docs"]:
        log.warning("prepare: %d judgments name documents no longer in the corpus: dropped",
                    stats["dropped_missing_docs"])
    return queries, qrels, stats


def sources_by_split(qrels: pd.DataFrame) -> dict[str, str]:
    """``{split: gold | human | silver | mixed}``: what a split's judgments are, for every report."""
    if "source" not in qrels:
        return {s: GOLD for s in qrels["split"].unique()}
    out = {}
    for split, part in qrels.groupby("split"):
        kinds = sorted(set(part["source"]))
        out[str(split)] = kinds[0] if len(kinds) == 1 else "mixed (" + ", ".join(kinds) + ")"
    return out
