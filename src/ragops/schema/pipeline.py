"""The sections of params.yaml that the build reads: data and its paths, ingest, prepare, embed, chunk, the
indexes, retrieval and fusion, training, rerank and evaluate."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ragops.schema.base import Device, Dropout, Mode, NonNeg, NonNegF, Pos, Precision, Section, Unit


class Data(Section):
    source: str       # a BEIR folder or a folder of documents (the ingest stage tells them apart)
    judgments: str    # a folder of judgment files (*.jsonl: the page's and `ragops judge`'s, generated ones)


class Ingest(Section):
    strict: bool
    workers: Pos
    timeout_s: Annotated[float, Field(gt=0)]
    max_mb: Annotated[float, Field(gt=0)]


class Paths(Section):
    """Where each stage reads and writes, relative to the project root (dvc.yaml names the same files)."""

    corpus: str
    docs: str
    queries: str
    qrels: str
    prepare_stats: str
    claims: str
    chunks: str
    embeddings: str
    embed_stats: str
    faiss: str
    bm25: str
    embedder: str
    reranker: str
    embeddings_ft: str
    embed_stats_ft: str
    faiss_ft: str
    metrics: str
    per_query: str
    plots: str
    registry: str
    grounding_model: str
    grounding_report: str
    grounding_pretrained: str
    grounding_pretrain_report: str
    rag_report: str
    sentences: str = "models/sentences"  # stage sentences: the answers' sentence vectors (ragops.answer.vectors)
    stage_times: str


class Prepare(Section):
    dev_fraction: Annotated[float, Field(ge=0, lt=1)]
    max_docs: NonNeg


class Embed(Section):
    model: str
    batch_size: Pos
    block_size: Pos
    cache_dir: str
    device: Device
    dask: str
    backend: Literal["torch", "onnx", "onnx-int8"]
    query_backend: Literal["same", "torch", "onnx", "onnx-int8"]
    onnx_dir: str


class Chunk(Section):
    max_tokens: Annotated[int, Field(ge=16)]
    overlap: NonNeg
    max_chunks_per_doc: NonNeg

    @model_validator(mode="after")
    def _overlap(self) -> Chunk:
        if self.overlap >= self.max_tokens:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than max_tokens ({self.max_tokens})")
        return self


class Dense(Section):
    kind: Literal["flat", "ivf", "hnsw"]
    ivf_nlist: Pos
    ivf_nprobe: Pos
    hnsw_m: Pos
    hnsw_ef_construction: Pos
    hnsw_ef_search: Pos


class BM25(Section):
    method: Literal["lucene", "robertson", "atire", "bm25l", "bm25+"]
    k1: NonNegF
    b: Unit
    stemmer: Literal["english", "none"]
    stopwords: Literal["en", "none"]
    unit: Literal["doc", "chunk"]


class Index(Section):
    dense: Dense
    bm25: BM25


class Retrieve(Section):
    depth: Pos
    dense_chunk_k: Pos


class Fusion(Section):
    method: Literal["convex", "rrf"]
    alpha: Unit
    norm: Literal["minmax", "zscore", "none"]
    rrf_k: Pos
    prf_docs: NonNeg
    prf_beta: NonNegF


class TrainEmbedder(Section):
    enabled: bool
    epochs: Pos
    lr: Annotated[float, Field(gt=0)]
    batch_size: Pos
    warmup: Unit
    negatives: NonNeg
    skip_top: NonNeg
    neg_pool: Pos
    max_seq_length: Pos
    dev_pool: Pos
    attention_dropout: Dropout
    hidden_dropout: Dropout
    max_steps: NonNeg
    device: Device
    precision: Precision


class TrainReranker(Section):
    enabled: bool
    layers: NonNeg
    epochs: Pos
    lr: Annotated[float, Field(gt=0)]
    head_lr: Annotated[float, Field(gt=0)]
    batch_size: Pos
    warmup: Unit
    negatives: Pos
    skip_top: NonNeg
    neg_pool: Pos
    title_queries: NonNeg
    max_length: Annotated[int, Field(ge=8)]
    dev_n: Pos
    attention_dropout: Dropout
    hidden_dropout: Dropout
    max_steps: NonNeg
    device: Device
    precision: Precision


class Tune(Section):
    n: Annotated[list[Pos], Field(min_length=1)]
    max_length: Annotated[list[Annotated[int, Field(ge=8)]], Field(min_length=1)]
    weight: Annotated[list[Unit], Field(min_length=1)]
    budget_tokens: Pos


class Train(Section):
    retrain: Literal["always", "on_train_change"]
    embedder: TrainEmbedder
    reranker: TrainReranker
    tune: Tune


class Rerank(Section):
    n: Pos
    max_length: Annotated[int, Field(ge=8)]
    weight: Unit
    batch_size: Pos
    backend: Literal["torch", "onnx-int8"]


class Evaluate(Section):
    splits: Annotated[list[Literal["train", "dev", "test"]], Field(min_length=1)]
    modes: Annotated[list[Mode], Field(min_length=1)]
    latency_sample: NonNeg
    latency_splits: list[Literal["train", "dev", "test"]]
