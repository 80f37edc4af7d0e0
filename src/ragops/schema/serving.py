"""The sections of params.yaml for what runs after the build: the registry and its gate, orchestration, the
server, answers (extractive and Anthropic), the grounding scorer and the rag evaluation."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ragops.schema.base import Device, Dropout, Mode, NonNeg, NonNegF, Pos, Precision, Section, Unit


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
    package: Literal["serving", "full"] = "serving"


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
    grounding_backend: Literal["onnx", "torch"] = "onnx"  # how the trained scorer's cross-encoder runs
    min_relevance: Annotated[float, Field(ge=0, le=1)]
    relevance_docs: Pos
    sentence_vectors: bool = True  # stage sentences encodes the corpus's sentences once (false: each answer does)
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
    device: Device
    precision: Precision
    corpus_claims: NonNeg
    corpus_source: Literal["titles", "clauses", "both"]
    corpus_nei: bool
    negate_evidence: bool
    group_by_length: bool
    attention_dropout: Dropout
    hidden_dropout: Dropout


class Pretrain(Section):
    enabled: bool
    data: str
    sources: Annotated[list[Literal["healthver", "covidfact", "covidfact_rte", "fever"]], Field(min_length=1)]
    max_pairs: dict[Literal["healthver", "covidfact", "covidfact_rte", "fever"], NonNeg]
    holdout: Annotated[float, Field(ge=0, lt=1)]
    epochs: Pos
    lr: Annotated[float, Field(gt=0)]
    head_lr: Annotated[float, Field(gt=0)]
    batch_size: Pos


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
    stacker: Literal["sum", "logistic"]
    stack_weights: Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=1)]
    cross_encoder: CrossEncoder
    pretrain: Pretrain


class Rag(Section):
    split: Literal["train", "dev", "test"]
    scorer: Literal["lexical", "embedding", "trained"]
    max_queries: NonNeg
