"""Stage `index_bm25`: documents (title + text) or chunks -> bm25s index."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from ragops.retrieval.index.sparse import BM25Config, BM25Index
from ragops.timing import run_stage

log = logging.getLogger("ragops.index_bm25")


def main(params: dict[str, Any]) -> None:
    paths = params["paths"]
    cfg = BM25Config.from_params(params["index"]["bm25"])
    if cfg.unit == "doc":
        docs = pd.read_parquet(paths["docs"])
        ids, texts = docs["doc_id"].tolist(), (docs["title"] + "\n" + docs["text"]).tolist()
    else:
        chunks = pd.read_parquet(paths["chunks"], columns=["chunk_id", "text"])
        ids, texts = chunks["chunk_id"].tolist(), chunks["text"].tolist()
    index = BM25Index.build(ids, texts, cfg)
    index.save(paths["bm25"])
    log.info("BM25 (%s, k1=%s, b=%s) over %d %ss", cfg.method, cfg.k1, cfg.b, len(ids), cfg.unit)


if __name__ == "__main__":
    run_stage("index_bm25", main)
