"""The schema of params.yaml: every key, its type and its range, checked before any work starts (issue 19).

``ragops.config.load_params`` validates the file against :class:`Params` whenever a stage, a flow or a
command loads it, so a typo (``fusion.alpah``) names the file, the key and the closest valid key; a wrong
type or a value out of range (``fusion.alpha: 2``, ``chunk.overlap >= chunk.max_tokens``) is an error
before a stage writes anything. The values themselves live in params.yaml (DVC's templating and its
params tracking read that file); the schema declares no defaults except for keys that may be null.
Everything here is pure pydantic: no ragops module but ``errors``, so the stages' code deps stay small.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ragops.errors import ConfigError

Unit = Annotated[float, Field(ge=0, le=1)]
Pos = Annotated[int, Field(ge=1)]
NonNeg = Annotated[int, Field(ge=0)]
NonNegF = Annotated[float, Field(ge=0)]
Mode = Literal["bm25", "dense", "hybrid", "dense_ft", "hybrid_ft", "hybrid_rerank", "hybrid_ft_rerank"]


class Section(BaseModel):
    # strict: YAML gives typed values, so "5" for an int or true for a number is a mistake, not a cast
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Data(Section):
    source: str       # a BEIR folder or a folder of documents (the ingest stage tells them apart)
    judgments: str    # a folder of judgment files (*.jsonl: the page's and `ragops judge`'s, generated ones)


class Ingest(Section):
    workers: Pos
    timeout_s: Annotated[float, Field(gt=0)]
    max_mb: Annotated[float, Field(gt=0)]
    strict: bool


class Paths(Section):
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
    rag_report: str
    stage_times: str


class Prepare(Section):
    dev_fraction: Annotated[float, Field(ge=0, lt=1)]
    max_docs: NonNeg


class Embed(Section):
    model: str
    batch_size: Pos
    block_size: Pos
    cache_dir: str
    device: str
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
    max_steps: NonNeg


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
    max_steps: NonNeg


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


class Registry(Section):
    model_name: Annotated[str, Field(min_length=1)]
    experiment: Annotated[str, Field(min_length=1)]
    tracking_uri: str
    artifact_root: str
    mode: Mode | Literal["auto"]
    select_split: Literal["train", "dev", "test"]
    max_p95_ms: Annotated[float, Field(gt=0)]
    experiments: Literal["skip", "register"]
    split: Literal["train", "dev", "test"]
    metric: str
    tolerance: NonNegF
    alpha: Annotated[float, Field(gt=0, lt=1)]
    test: Literal["randomization", "ttest"]
    n_resamples: Pos
    k: Pos


class Orchestration(Section):
    deployment: Annotated[str, Field(min_length=1)]
    cron: str
    retrain_cron: str
    timezone: str
    push: bool
    pause_on_shutdown: bool
    retries: NonNeg
    retry_delay_s: NonNegF


class Serve(Section):
    host: str
    port: Annotated[int, Field(gt=0, lt=65536)]
    model: str
    poll_s: NonNegF
    cache_size: NonNeg
    max_query_chars: Pos
    top_k_default: Pos
    top_k_max: Pos
    mode: Mode | Literal["default"]
    workers: Pos
    batch_max: Pos
    encoder_threads: NonNeg
    snippet_chars: Pos
    access_log: bool
    max_body_bytes: Pos
    max_inflight_search: Pos
    max_inflight_ask: Pos

    @model_validator(mode="after")
    def _top_k(self) -> Serve:
        if self.top_k_default > self.top_k_max:
            raise ValueError(f"top_k_default ({self.top_k_default}) must be <= top_k_max ({self.top_k_max})")
        return self


class Extractive(Section):
    sentences: Pos
    max_docs: Pos
    lexical_weight: Unit
    mmr_lambda: Unit
    min_chars: NonNeg


class Anthropic(Section):
    model: Annotated[str, Field(min_length=1)]
    max_tokens: Pos
    temperature: Annotated[float, Field(ge=0, le=1)] | None = None
    timeout_s: Annotated[float, Field(gt=0)]
    max_retries: NonNeg
    base_url: str | None = None


class Answer(Section):
    k: Pos
    mode: Mode | Literal["default"]
    context_tokens: Pos
    generator: Literal["auto", "extractive", "anthropic"]
    scorer: Literal["lexical", "embedding", "trained"]
    min_relevance: Annotated[float, Field(ge=0, le=1)]
    relevance_docs: Pos
    extractive: Extractive
    anthropic: Anthropic


class CrossEncoder(Section):
    enabled: bool
    epochs: Pos
    lr: Annotated[float, Field(gt=0)]
    head_lr: Annotated[float, Field(gt=0)]
    batch_size: Pos
    max_length: Annotated[int, Field(ge=8)]
    top_k: Pos
    threads: NonNeg
    device: str
    corpus_claims: NonNeg
    corpus_source: Literal["titles", "clauses", "both"]
    corpus_nei: bool
    negate_evidence: bool


class Grounding(Section):
    train_file: str
    eval_file: str
    sentences_file: str
    augment: bool
    folds: Annotated[int, Field(ge=2)]
    c_grid: Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=1)]
    max_train_pairs: NonNeg
    max_eval_pairs: NonNeg
    embedding_threshold: Annotated[float, Field(ge=-1, le=1)]
    cross_encoder: CrossEncoder


class Rag(Section):
    split: Literal["train", "dev", "test"]
    scorer: Literal["lexical", "embedding", "trained"]
    max_queries: NonNeg


class Params(Section):
    seed: int
    data: Data
    paths: Paths
    ingest: Ingest
    prepare: Prepare
    embed: Embed
    chunk: Chunk
    index: Index
    retrieve: Retrieve
    fusion: Fusion
    train: Train
    fusion_ft: Fusion
    rerank: Rerank
    evaluate: Evaluate
    registry: Registry
    orchestration: Orchestration
    serve: Serve
    answer: Answer
    grounding: Grounding
    rag: Rag


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The section model holding the key at ``loc`` (for suggestions), or None."""
    model: type[BaseModel] | None = Params
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if model else None
        if field is None:
            return None
        ann = field.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return model


# keys that moved: an old params.yaml gets the new name, not a guess
RENAMED = {"data.dataset": "data.source"}


def describe(exc: ValidationError, source: str) -> list[str]:
    """One readable line per problem: ``params.yaml: fusion.alpha: ... (got 2)``."""
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        key = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden" and key in RENAMED:
            lines.append(f"{source}: '{key}' was renamed to '{RENAMED[key]}'")
        elif err["type"] == "extra_forbidden":
            model = _model_at(loc)
            names = list(model.model_fields) if model else []
            close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
            hint = f" (did you mean '{'.'.join(map(str, loc[:-1] + (close[0],)))}'?)" if close else (
                f" (valid here: {', '.join(names)})" if names else "")
            lines.append(f"{source}: unknown key '{key}'{hint}")
        elif err["type"] == "missing":
            lines.append(f"{source}: missing key '{key}'")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            got = err.get("input")
            lines.append(f"{source}: {key}: {msg}" + ("" if isinstance(got, dict) else f" (got {got!r})"))
    return lines


def validate(params: dict[str, Any], source: str = "params.yaml") -> None:
    """Raise :class:`ConfigError` listing every problem of ``params`` (nothing when it is valid)."""
    try:
        Params.model_validate(params)
    except ValidationError as exc:
        lines = describe(exc, source)
        raise ConfigError(lines[0] if len(lines) == 1 else f"{len(lines)} problems: " + "; ".join(lines)) from None
