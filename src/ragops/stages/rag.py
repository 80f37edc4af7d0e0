"""Stage `rag`: answer every test query with the extractive generator and the configured scorer;
citation precision against the qrels and the mean support rate -> reports/rag.json."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from ragops.answer.answerer import build_answerer
from ragops.answer.rag_eval import rag_metrics
from ragops.encode.encoder import CachedEncoder
from ragops.errors import ConfigError
from ragops.eval.evaluation import qrels_for_split
from ragops.io import write_json
from ragops.retrieval.load import load_pipeline
from ragops.timing import run_stage

log = logging.getLogger("ragops.rag")


def main(params: dict[str, Any]) -> None:
    from tqdm import tqdm

    paths, cfg = params["paths"], params["rag"]
    pipeline, docs = load_pipeline(params, ["hybrid"])
    # sentences and queries through the embedding cache: a rerun after a small corpus edit encodes only new text
    memo = CachedEncoder(pipeline.encode, params["embed"]["cache_dir"])
    pipeline = pipeline.map_encoders(lambda _encode: memo)
    queries = pd.read_parquet(paths["queries"])
    text_of = dict(zip(queries["query_id"].astype(str), queries["text"], strict=True))
    qrels = qrels_for_split(pd.read_parquet(paths["qrels"]), cfg["split"])
    try:
        answerer = build_answerer(pipeline, docs, params, generator="extractive", scorer=cfg.get("scorer"))
    except ConfigError as exc:  # no labelled claims in this data set: the trained scorer does not exist
        log.warning("%s; the rag evaluation uses the embedding scorer", exc)
        answerer = build_answerer(pipeline, docs, params, generator="extractive", scorer="embedding")
    qids = sorted(qrels)
    if int(cfg.get("max_queries", 0)) > 0:  # a seeded sample (the tiny test profile)
        import random

        qids = sorted(random.Random(int(params["seed"])).sample(qids, min(len(qids), int(cfg["max_queries"]))))
    try:
        answers = [answerer.ask(text_of[q]) for q in tqdm(qids, desc="rag", unit="q", mininterval=5)]
    finally:
        memo.flush()
    log.info("encoder cache: %d texts found, %d encoded", memo.hits, memo.misses)
    metrics = rag_metrics(answers, [set(qrels[q]) for q in qids])
    metrics.update(split=cfg["split"], generator="extractive", scorer=answerer.scorer.name)
    write_json(paths["rag_report"], metrics)
    log.info("rag on %s: %s", cfg["split"], metrics)


if __name__ == "__main__":
    run_stage("rag", main)
