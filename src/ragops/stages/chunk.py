"""Stage `chunk`: docs.parquet -> chunks.parquet (token-aware, title with every chunk)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from ragops.chunking import chunk_documents
from ragops.io import write_parquet
from ragops.models import load_tokenizer
from ragops.timing import run_stage

log = logging.getLogger("ragops.chunk")


def main(params: dict[str, Any]) -> None:
    paths, cfg = params["paths"], params["chunk"]
    docs = pd.read_parquet(paths["docs"])
    chunks = chunk_documents(
        docs["doc_id"].tolist(),
        docs["title"].tolist(),
        docs["text"].tolist(),
        load_tokenizer(params["embed"]["model"]),
        max_tokens=int(cfg["max_tokens"]),
        overlap=int(cfg["overlap"]),
    )
    write_parquet(paths["chunks"], chunks)
    log.info("%d documents -> %d chunks, %d tokens", len(docs), len(chunks), int(chunks["n_tokens"].sum()))


if __name__ == "__main__":
    run_stage("chunk", main)
