"""Stage `chunk`: docs.parquet -> chunks.parquet (token-aware, title with every chunk)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from ragops.data.chunking import chunk_documents, load_chunk_tokenizer
from ragops.io import write_parquet
from ragops.timing import run_stage

log = logging.getLogger("ragops.chunk")


def main(params: dict[str, Any]) -> None:
    paths, cfg = params["paths"], params["chunk"]
    docs = pd.read_parquet(paths["docs"])
    ids, titles, texts = docs["doc_id"].tolist(), docs["title"].tolist(), docs["text"].tolist()
    max_chunks = int(cfg.get("max_chunks_per_doc", 0))
    report: dict[str, list[str]] = {}
    tokenizer = load_chunk_tokenizer(params["embed"]["model"])
    chunks = chunk_documents(ids, titles, texts, tokenizer, max_tokens=int(cfg["max_tokens"]),
                             overlap=int(cfg["overlap"]), max_chunks=max_chunks, report=report)
    empty, capped = report["empty"], report["capped"]
    if empty:
        log.warning("%d empty or whitespace-only documents skipped (no chunk, never retrieved): %s",
                    len(empty), ", ".join(empty[:10]) + (" ..." if len(empty) > 10 else ""))
    if capped:
        log.warning("%d documents cut at chunk.max_chunks_per_doc = %d chunks (the rest is not indexed): %s",
                    len(capped), max_chunks, ", ".join(capped[:10]) + (" ..." if len(capped) > 10 else ""))
    write_parquet(paths["chunks"], chunks)
    log.info("%d documents -> %d chunks, %d tokens", len(docs), len(chunks), int(chunks["n_tokens"].sum()))


if __name__ == "__main__":
    run_stage("chunk", main)
