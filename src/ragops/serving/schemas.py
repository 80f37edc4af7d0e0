"""Request and response bodies of the API. Limits come from ``serve:`` in params, so the models are
built per app (:func:`request_models`) and the OpenAPI docs show the limits actually enforced."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ragops.serving.config import ServeConfig

Mode = Literal["bm25", "dense", "hybrid", "dense_ft", "hybrid_ft", "hybrid_rerank", "hybrid_ft_rerank"]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty or only whitespace")
    return value


def request_models(cfg: ServeConfig) -> tuple[type[BaseModel], type[BaseModel]]:
    """(SearchRequest, AskRequest) with the configured limits. Types are strict: ``"5"`` is not a top_k."""
    Text = Annotated[str, Field(strict=True, max_length=cfg.max_query_chars)]
    TopK = Annotated[
        int, Field(strict=True, ge=1, le=cfg.top_k_max, description=f"results to return, 1..{cfg.top_k_max}")
    ]

    class SearchRequest(BaseModel):
        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={
                "examples": [{"query": "vitamin D deficiency and bone fractures", "top_k": 5, "mode": "hybrid"}]
            },
        )
        query: Text
        top_k: TopK = cfg.top_k_default
        # None: the served model's default (its registered mode); a mode it does not carry gets 422
        mode: Mode | None = None if cfg.mode == "default" else cfg.mode  # type: ignore[assignment]

        _blank = field_validator("query")(_not_blank)

    class AskRequest(BaseModel):
        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={"examples": [{"question": "Does vitamin D reduce the risk of fractures?", "top_k": 5}]},
        )
        question: Text
        top_k: TopK | None = None  # None: the answerer's own default (answer.k in params)

        _blank = field_validator("question")(_not_blank)

    return SearchRequest, AskRequest


def judge_request_model(cfg: ServeConfig) -> type[BaseModel]:
    """JudgeRequest: one relevance judgment of a search result (POST /judge), with the configured limits."""

    class JudgeRequest(BaseModel):
        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={"examples": [{"query": "vitamin D deficiency and bone fractures", "doc_id": "4983",
                                             "relevant": True, "mode": "hybrid"}]},
        )
        query: Annotated[str, Field(strict=True, max_length=cfg.max_query_chars)]
        doc_id: Annotated[str, Field(strict=True, min_length=1, max_length=1000)]
        relevant: Annotated[bool, Field(strict=True, description="true: relevant to the query; false: not")]
        mode: Mode | None = Field(None, description="the search mode that showed the result (recorded only)")
        by: Literal["api", "page"] = Field("api", description="who judged: the search page or another client")

        _blank = field_validator("query")(_not_blank)

    return JudgeRequest


class JudgeResponse(BaseModel):
    query_id: str
    doc_id: str
    relevant: bool
    judgments: int  # lines in the judgments file after this one



class Result(BaseModel):
    doc_id: str
    title: str
    snippet: str
    score: float


class ModelRef(BaseModel):
    name: str
    version: str
    alias: str | None = None


class SearchResponse(BaseModel):
    query: str
    mode: Mode
    top_k: int
    results: list[Result]
    model: ModelRef
    took_ms: float


class ClaimOut(BaseModel):
    text: str
    score: float
    supported: bool
    citations: list[str]
    where: dict[str, str] = {}  # cited doc id -> "p. 2, Methods" (documents with pages or headings)


class AskResponse(BaseModel):
    """``ragops.answer.Answer.to_dict()`` plus the model that answered."""

    question: str
    text: str
    generator: str
    scorer: str
    citations: list[str]
    claims: list[ClaimOut]
    hits: list[dict[str, Any]]
    support_rate: float
    found: bool = True  # false: "not found in the documents" (answer.min_relevance), no claims
    relevance: float | None = None
    model: ModelRef
    took_ms: float


class Health(BaseModel):
    status: Literal["ok", "degraded", "loading"]  # degraded: serving, with a fallback named in model.degraded
    ready: bool
    model: dict[str, Any] | None
    watching: dict[str, Any] | None
    auth: bool
    judgments: bool = False  # POST /judge records judgments (serve.judgments_path is set)


class ErrorBody(BaseModel):
    detail: str
    request_id: str | None = None
