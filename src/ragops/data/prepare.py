"""The prepare stage's core: validate a BEIR folder, optionally sample it, carve dev from train."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ragops.data.beir import SPLITS, load_beir
from ragops.data.judged import add_judgments, sources_by_split
from ragops.data.split import carve_dev, sample_docs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """Validated tables ready to write, and the stats that describe them.

    ``docs``: doc_id, title, text; ``queries``: query_id, text (never metadata);
    ``qrels``: query_id, doc_id, score (int64), split in train/dev/test, source (gold / human / silver).
    """

    docs: pd.DataFrame
    queries: pd.DataFrame
    qrels: pd.DataFrame
    stats: dict[str, Any]


def assign_dev(qrels: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, str]:
    """Move a hash-chosen ``fraction`` of train queries to split ``dev``.

    Returns the new qrels and where dev came from: ``beir`` (the folder's own dev.tsv, kept as is),
    ``carved`` (from train) or ``none`` (no train qrels).
    """
    splits = set(qrels["split"])
    if "dev" in splits:
        return qrels, "beir"
    if "train" not in splits:
        return qrels, "none"
    is_train = qrels["split"] == "train"
    dev_ids = carve_dev(qrels.loc[is_train, "query_id"], fraction, seed)
    out = qrels.copy()
    out.loc[is_train & out["query_id"].isin(dev_ids), "split"] = "dev"
    if fraction > 0 and not dev_ids:
        log.warning("dev_fraction=%s carved no dev queries from %d train queries",
                    fraction, qrels.loc[is_train, "query_id"].nunique())
    return out, "carved"


def split_counts(qrels: pd.DataFrame) -> dict[str, dict[str, int]]:
    """``{split: {"queries": n, "judgments": n}}`` in train/dev/test order, for present splits."""
    out: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        part = qrels[qrels["split"] == split]
        if len(part):
            out[split] = {"queries": int(part["query_id"].nunique()), "judgments": len(part)}
    return out


def source_name(folder: Path) -> str:
    """The name of the folder the ingest stage read (its summary.json), else ``folder``'s own."""
    summary = folder / "summary.json"
    if summary.is_file():
        import json

        return Path(json.loads(summary.read_text(encoding="utf-8")).get("source", folder.name)).name
    return folder.name


def prepare_dataset(folder: str | Path, dev_fraction: float, seed: int, max_docs: int = 0,
                    judged: pd.DataFrame | None = None) -> Prepared:
    """Load and validate ``folder`` (BEIR layout; qrels optional), sample ``max_docs`` documents if > 0,
    carve dev, add the judgments made here (``judged``: ``ragops.eval.judgments.read_many``'s frame).

    Nothing is written here: the stage writes the result only after all of this succeeded.
    """
    folder = Path(folder)
    data = load_beir(folder, require_qrels=False)
    docs, queries, qrels = data.docs, data.queries, data.qrels
    if max_docs:
        sample = sample_docs(docs, qrels, max_docs, seed)
        docs, qrels = sample.docs, sample.qrels
        queries = queries[queries["query_id"].isin(set(qrels["query_id"]))].reset_index(drop=True)
    qrels, dev_source = assign_dev(qrels, dev_fraction, seed)
    judged_stats: dict[str, Any] = {}
    if judged is not None:
        queries, qrels, judged_stats = add_judgments(queries, qrels, docs["doc_id"], judged, dev_fraction, seed)
    else:
        qrels = qrels.assign(source="gold")
    order = {s: i for i, s in enumerate(SPLITS)}
    qrels = qrels.sort_values("split", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)
    stats = {
        "dataset": source_name(folder),
        "seed": seed,
        "dev_fraction": dev_fraction,
        "max_docs": max_docs,
        "dev_source": dev_source,
        "docs": len(docs),
        "queries": len(queries),
        "judgments": len(qrels),
        "splits": split_counts(qrels),
        "judgment_sources": sources_by_split(qrels),
        "judged_here": judged_stats,
        "inputs": data.hashes,
    }
    return Prepared(docs=docs, queries=queries, qrels=qrels, stats=stats)
