"""The FastAPI app: POST /search, POST /ask, POST /judge, GET /health, GET /metrics, the OpenAPI docs and the page at /.

Searches are CPU-bound (query encoding, FAISS, BM25), so they run on worker threads (ragops.serving.runner:
a bounded pool, or dynamic batching) and the event loop only parses, validates and answers. There is no
global lock: the indexes are read-only and the encoder is safe to call from several threads.
"""

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ragops.errors import RagopsError, one_line
from ragops.eval.judgments import append, make_row
from ragops.serving.config import ServeConfig
from ragops.serving.guard import Guard, reply
from ragops.serving.holder import ModelHolder
from ragops.serving.metrics import Metrics
from ragops.serving.model import Served
from ragops.serving.runner import make_runner
from ragops.serving.schemas import (
    AskResponse,
    ErrorBody,
    Health,
    JudgeResponse,
    SearchResponse,
    judge_request_model,
    request_models,
)

log = logging.getLogger("ragops.serve")
STATIC = Path(__file__).with_name("static")
ERRORS = {
    401: {"model": ErrorBody, "description": "missing or wrong bearer token (when RAGOPS_API_TOKEN is set)"},
    413: {"model": ErrorBody, "description": "request body larger than serve.max_body_bytes"},
    422: {"model": ErrorBody, "description": "invalid request, with a readable `detail`"},
    500: {"model": ErrorBody, "description": "unexpected error: a generic message and the request id"},
    503: {"model": ErrorBody, "description": "no model loaded yet, answers unavailable, or too many requests in "
          "flight (with Retry-After)"},
}
def _readable(exc: RequestValidationError) -> tuple[str, list[dict]]:
    problems = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "json_invalid":
            loc, msg = [], "the request body is not valid JSON"
        elif err.get("type") == "missing" and not loc:
            msg = "a JSON body is required"
        problems.append({"field": ".".join(loc) or "body", "message": msg})
    return "; ".join(f"{p['field']}: {p['message']}" for p in problems), problems


def create_app(
    holder: ModelHolder, cfg: ServeConfig, token: str | None = None, metrics: Metrics | None = None
) -> FastAPI:
    """The app over ``holder`` (started here when nothing is loaded yet; stopped with the app)."""
    metrics = metrics or Metrics()
    SearchRequest, AskRequest = request_models(cfg)
    JudgeRequest = judge_request_model(cfg)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.runner = make_runner(cfg.workers, cfg.batch_max, cfg.snippet_chars, cfg.encoder_threads)
        if holder.current is None:
            await asyncio.to_thread(holder.start)
        try:
            yield
        finally:
            holder.stop()
            app.state.runner.close()

    app = FastAPI(
        title="ragops",
        version="1",
        lifespan=lifespan,
        responses=ERRORS,
        description="Hybrid search over the registry's champion (or the local build), and grounded "
        "answers with citations. With RAGOPS_API_TOKEN set, every endpoint but /health and the page "
        "needs `Authorization: Bearer <token>`.",
    )
    app.state.metrics, app.state.holder, app.state.cfg = metrics, holder, cfg
    app.add_middleware(Guard, metrics=metrics, token=token, max_body_bytes=cfg.max_body_bytes,
                       limits={"/search": cfg.max_inflight_search, "/ask": cfg.max_inflight_ask})
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        detail, problems = _readable(exc)
        return reply(422, {"detail": detail, "errors": problems, "request_id": request.state.request_id})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return reply(exc.status_code, {"detail": exc.detail, "request_id": request.state.request_id}, exc.headers)

    def current(request: Request, mode: str | None = None) -> Served:
        served = holder.current
        request.state.mode = mode or (served.default_mode if served else "none")
        if served is None:
            raise HTTPException(503, "no model loaded yet")
        return served

    def model_ref(served: Served) -> dict:
        return {"name": served.name, "version": served.version, "alias": served.alias}

    @app.post("/search", response_model=SearchResponse, summary="Ranked documents for a query")
    async def search(body: SearchRequest, request: Request) -> Response:  # type: ignore[valid-type]
        served = current(request, body.mode)  # this request keeps this version, whatever the watcher does
        mode = body.mode or served.default_mode
        if mode not in served.modes:
            raise HTTPException(422, f"mode {mode!r} is not served by {served.name} v{served.version}; "
                                     f"valid: {', '.join(served.modes)}")
        results, took = await request.app.state.runner.search(served, body.query, mode, body.top_k)
        return reply(
            200,
            {
                "query": body.query,
                "mode": mode,
                "top_k": body.top_k,
                "results": results,
                "model": model_ref(served),
                "took_ms": round(took, 3),
            },
        )

    @app.post("/ask", response_model=AskResponse, summary="A grounded answer with citations")
    async def ask(body: AskRequest, request: Request) -> Response:  # type: ignore[valid-type]
        served = current(request)
        if served.answerer is None:
            raise HTTPException(503, f"answers are not available: {served.answer_error}")
        t0 = time.perf_counter()
        try:
            answer = await served.answerer.aask(body.question, body.top_k)
        except RagopsError as exc:  # a configuration the operator can fix (e.g. the generator's key)
            raise HTTPException(503, f"cannot answer: {str(exc).splitlines()[0]}") from None
        took = (time.perf_counter() - t0) * 1000.0
        return reply(200, {**answer.to_dict(), "model": model_ref(served), "took_ms": round(took, 3)})

    @app.post("/judge", response_model=JudgeResponse, status_code=201, summary="Record a relevance judgment")
    async def judge(body: JudgeRequest, request: Request) -> Response:  # type: ignore[valid-type]
        """Appends to serve.judgments_path (ragops.eval.judgments): the next `dvc repro` evaluates on it."""
        if cfg.judgments_path is None:
            raise HTTPException(503, "judgments are not enabled on this server (serve.judgments_path)")
        served = current(request, body.mode)
        if body.doc_id not in served.docs.index:
            raise HTTPException(422, f"doc_id {body.doc_id!r} is not a document of {served.name} v{served.version}")
        row = make_row(body.query, body.doc_id, body.relevant, by=body.by, mode=body.mode)
        try:
            total = await asyncio.to_thread(append, cfg.judgments_path, [row])
        except (OSError, RagopsError) as exc:  # a full disk, a read-only folder: the operator's to fix
            log.error("judgment not recorded: %s", exc)
            raise HTTPException(503, f"the judgment was not recorded: {one_line(exc)}") from None
        return reply(201, {"query_id": row["query_id"], "doc_id": body.doc_id, "relevant": body.relevant,
                           "judgments": total})

    @app.get("/health", response_model=Health, summary="Liveness, readiness and the served model (no auth)")
    async def health() -> Response:
        served = holder.current
        watching = None
        if served is not None and served.alias and holder.poll_s > 0:
            watching = {
                "alias": served.alias,
                "poll_s": holder.poll_s,
                "swaps": holder.swaps,
                "last_error": holder.last_error,
            }
        body = {
            "status": ("degraded" if served.describe()["degraded"] else "ok") if served else "loading",
            "ready": served is not None,
            "model": served.describe() if served else None,
            "watching": watching,
            "auth": token is not None,
            "judgments": cfg.judgments_path is not None,
        }
        return reply(200 if served else 503, body)

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        data, content_type = metrics.render()
        return Response(data, media_type=content_type)

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return FileResponse(STATIC / "index.html")

    return app
