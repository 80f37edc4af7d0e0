"""Loading the built pipeline (the DVC outputs named in params.yaml) back into a Retriever."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ragops.errors import ConfigError
from ragops.index.dense import load_dense
from ragops.index.sparse import BM25Index
from ragops.retrieval import FusionConfig, Retriever


def fusion_config(params: dict[str, Any]) -> FusionConfig:
    f = params.get("fusion", {})
    return FusionConfig(
        method=f.get("method", "convex"),
        alpha=float(f.get("alpha", 0.5)),
        norm=f.get("norm", "minmax"),
        rrf_k=int(f.get("rrf_k", 60)),
        prf_docs=int(f.get("prf_docs", 0)),
        prf_beta=float(f.get("prf_beta", 0.0)),
    )


def query_backend(embed: dict[str, Any]) -> str:
    """``embed.query_backend``, where ``same`` (the default) means ``embed.backend``."""
    backend = str(embed.get("query_backend", "same"))
    return str(embed.get("backend", "torch")) if backend == "same" else backend


def query_batch_size(backend: str, batch_size: int) -> int:
    """1 for int8: its activations are quantized with one scale per batch, so a query's vector would
    depend on the queries batched with it and batched evaluation would not rank like one-query search.
    One at a time, a short query costs ~1.5 ms (docs/benchmarks.md)."""
    return 1 if backend == "onnx-int8" else batch_size


def load_retriever(params: dict[str, Any], need_dense: bool = True, encoder=None) -> Retriever:
    """Indexes from ``params['paths']``; the query encoder is loaded only when dense is needed."""
    paths = params["paths"]
    for key in ("chunks", "bm25") + (("faiss",) if need_dense else ()):
        if not Path(paths[key]).exists():
            raise ConfigError(f"{paths[key]} is missing: build the pipeline first (`dvc repro`)")
    if need_dense and encoder is None:
        from ragops.embedding import Encoder

        emb = params["embed"]
        backend = query_backend(emb)
        encoder = Encoder(emb["model"], device=emb.get("device", "cpu"), backend=backend,
                          batch_size=query_batch_size(backend, int(emb.get("batch_size", 64))),
                          onnx_dir=emb.get("onnx_dir", "~/.cache/ragops/onnx"))
    return assemble_retriever(paths["chunks"], paths["bm25"], paths["faiss"] if need_dense else None, encoder,
                              params.get("retrieve", {}), fusion_config(params))


def assemble_retriever(
    chunks_path: str | Path,
    bm25_path: str | Path,
    faiss_path: str | Path | None,
    encoder,
    retrieve: dict[str, Any],
    fusion: FusionConfig,
) -> Retriever:
    """A Retriever over saved indexes (the built pipeline, or a packaged model's copy of them).

    ``faiss_path=None`` loads no dense index (BM25 only).
    """
    chunks = pd.read_parquet(chunks_path, columns=["chunk_id", "doc_id"])
    bm25 = BM25Index.load(bm25_path)
    bm25_row_doc = None
    if bm25.cfg.unit == "chunk":
        bm25_row_doc = dict(zip(chunks["chunk_id"], chunks["doc_id"], strict=True))
    return Retriever(
        bm25=bm25,
        dense_index=load_dense(faiss_path) if faiss_path is not None else None,
        encode=encoder,
        row_doc=chunks["doc_id"].tolist(),
        depth=int(retrieve.get("depth", 100)),
        dense_chunk_k=int(retrieve.get("dense_chunk_k", 400)),
        fusion=fusion,
        bm25_row_doc=bm25_row_doc,
    )
