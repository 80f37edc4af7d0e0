"""ragops.serving in process: config, model URIs, the query-embedding cache, and the FastAPI app over a
small real retriever (BM25 + FAISS flat over 120 SciFact documents, the real all-MiniLM-L6-v2) driven by
Starlette's TestClient (the real app, its middleware and validation; the real server is in
tests/integration/test_serve.py)."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient

from ragops.errors import ConfigError
from ragops.retrieval.index.dense import DenseConfig, build_dense
from ragops.retrieval.index.sparse import BM25Config, BM25Index
from ragops.retrieval.pipeline import SearchPipeline
from ragops.retrieval.retriever import FusionConfig, Retriever
from ragops.serving.app import create_app
from ragops.serving.cache import QueryCache
from ragops.serving.config import ServeConfig
from ragops.serving.holder import ModelHolder
from ragops.serving.metrics import Metrics
from ragops.serving.model import ModelSource, finish, snippet

REPO = Path(__file__).resolve().parents[1]
TOKEN = "s3cret-token-for-tests"


class Counting:
    """The real encoder, counting the texts it is asked to encode."""

    def __init__(self, encode) -> None:
        self.encode, self.texts = encode, []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.texts.extend(texts)
        return self.encode(texts)


# ---------------------------------------------------------------- config and URIs


def test_params_serve_section_parses_and_binds_loopback() -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    cfg = ServeConfig.from_params(params["serve"])
    assert cfg.host == "127.0.0.1" and cfg.mode == "default" and cfg.top_k_default <= cfg.top_k_max
    assert ServeConfig().host == "127.0.0.1"


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"mode": "fuzzy"}, "unknown serve.mode 'fuzzy'; valid: bm25, default, dense, dense_ft, hybrid, hybrid_ft"),
        ({"cache": 3}, "unknown key(s) cache; valid: access_log, batch_max, cache_size"),
        ({"top_k_default": 50, "top_k_max": 10}, "top_k_default (50) <= top_k_max (10)"),
        ({"port": "eighty"}, "serve: invalid literal"),
    ],
)
def test_bad_serve_params_fail_readably(section: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        ServeConfig.from_params(section)


def test_model_uris() -> None:
    assert ModelSource.parse("local").local
    s = ModelSource.parse("models:/ragops-retriever@champion")
    assert (s.name, s.alias, s.version) == ("ragops-retriever", "champion", None)
    s = ModelSource.parse("models:/ragops-retriever/3")
    assert (s.name, s.alias, s.version) == ("ragops-retriever", None, "3")
    assert ModelSource.parse("runs:/abc/retriever").name is None
    with pytest.raises(ConfigError, match="models:/NAME@ALIAS or models:/NAME/VERSION"):
        ModelSource.parse("models:/ragops-retriever/latest")


def test_snippet_cuts_at_a_word() -> None:
    assert snippet("short text", 50) == "short text"
    assert snippet("alpha beta gamma delta", 13) == "alpha beta…"
    assert len(snippet("x" * 500, 100)) == 101


# ---------------------------------------------------------------- the query cache


def test_cache_repeated_query_skips_the_model(encoder) -> None:
    counting = Counting(encoder)
    seen = []
    cache = QueryCache(counting, size=2, on_lookup=lambda h, m: seen.append((h, m)))
    first = cache(["vitamin D and bone density"])
    again = cache(["vitamin D and bone density"])
    assert counting.texts == ["vitamin D and bone density"]  # the second call never reached the model
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first, encoder(["vitamin D and bone density"]), atol=1e-6)
    assert seen == [(0, 1), (1, 0)] and (cache.hits, cache.misses) == (1, 1)
    # A batch: duplicates encoded once, cached rows reused, order kept.
    both = cache(["statins and cancer", "vitamin D and bone density", "statins and cancer"])
    assert counting.texts[1:] == ["statins and cancer"]
    np.testing.assert_array_equal(both[1], first[0])
    np.testing.assert_array_equal(both[0], both[2])
    # LRU with 2 entries, least recently used first: "vitamin D ..." (hit), then "statins ..." (added).
    cache(["aspirin"])  # evicts "vitamin D ..."
    assert counting.texts[-1] == "aspirin"
    n = len(counting.texts)
    cache(["statins and cancer"])  # still cached
    assert len(counting.texts) == n
    cache(["vitamin D and bone density"])  # evicted before: encoded again
    assert counting.texts[-1] == "vitamin D and bone density" and len(counting.texts) == n + 1 and len(cache) == 2
    first[0, 0] += 1.0  # a caller changing its copy does not change what the cache hands out
    assert cache(["vitamin D and bone density"])[0, 0] == again[0, 0]


def test_cache_size_zero_always_encodes(encoder) -> None:
    counting = Counting(encoder)
    cache = QueryCache(counting, size=0)
    cache(["a query"])
    cache(["a query"])
    assert counting.texts == ["a query", "a query"] and len(cache) == 0 and cache.misses == 2


# ---------------------------------------------------------------- the app over a small real retriever


@pytest.fixture(scope="module")
def small(scifact_sample: pd.DataFrame, encoder, minilm_cached) -> tuple[Retriever, pd.DataFrame]:
    docs = scifact_sample.head(120).reset_index(drop=True)
    texts = (docs["title"] + " " + docs["text"]).tolist()
    ids = docs["doc_id"].tolist()
    bm25 = BM25Index.build(ids, texts, BM25Config())
    # the documents through the run's MiniLM cache (its ONNX export: these tests are of the server, not the vectors);
    # queries through the PyTorch encoder fixture
    dense = build_dense(minilm_cached(texts), DenseConfig(kind="flat"))
    retriever = Retriever(
        bm25, dense, encoder, row_doc=ids, depth=50, dense_chunk_k=100, fusion=FusionConfig("convex", 0.5, "zscore")
    )
    return retriever, docs.set_index("doc_id")


def make_client(small, token: str | None = None, docs: pd.DataFrame | None = None, **cfg) -> TestClient:
    import dataclasses

    retriever, all_docs = small
    metrics = Metrics()
    params = {"answer": {"generator": "extractive", "scorer": cfg.pop("scorer", "lexical")},
              "embed": {"model": "all-MiniLM-L6-v2"}, "paths": {"grounding_model": cfg.pop("grounding_model", None)}}
    served = finish(
        SearchPipeline(dataclasses.replace(retriever)),
        all_docs if docs is None else docs,
        params=params,
        name="small",
        version="7",
        alias=None,
        uri="test",
        cache_size=cfg.pop("cache_size", 16),
        on_lookup=metrics.cache_lookup,
        t0=0.0,
    )
    holder = ModelHolder(lambda _v: served)
    config = ServeConfig(**{"max_query_chars": 200, "top_k_max": 20, **cfg})
    return TestClient(create_app(holder, config, token, metrics), raise_server_exceptions=False)


def test_search_returns_ranked_results_with_titles_and_the_model(small) -> None:
    retriever, docs = small
    with make_client(small) as client:
        r = client.post("/search", json={"query": "vitamin D and bone fractures", "top_k": 5, "mode": "hybrid"})
        assert r.status_code == 200, r.text
        body = r.json()
    want = retriever.search("vitamin D and bone fractures", "hybrid", 5)
    assert [x["doc_id"] for x in body["results"]] == want.ids
    # Scores to 1e-5: the server's search thread runs torch with its own thread count (float sums differ).
    assert [x["score"] for x in body["results"]] == pytest.approx(want.scores.tolist(), abs=1e-5)
    first = body["results"][0]
    assert first["title"] == docs.at[first["doc_id"], "title"] and docs.at[first["doc_id"], "text"].startswith(
        first["snippet"].rstrip("…")
    )
    assert body["model"] == {"name": "small", "version": "7", "alias": None} and body["took_ms"] > 0
    assert r.headers["x-request-id"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"query": ""}, "query: must not be empty or only whitespace"),
        ({"query": "   \n"}, "query: must not be empty or only whitespace"),
        ({"query": "x" * 201}, "query: String should have at most 200 characters"),
        ({"query": "ok", "top_k": 0}, "top_k: Input should be greater than or equal to 1"),
        ({"query": "ok", "top_k": 21}, "top_k: Input should be less than or equal to 20"),
        ({"query": "ok", "top_k": "5"}, "top_k: Input should be a valid integer"),
        ({"query": "ok", "mode": "fuzzy"}, "mode: Input should be 'bm25', 'dense', 'hybrid', 'dense_ft', 'hybrid_ft'"),
        # a mode the served model does not carry (this one has no fine-tuned embedder): the ones it does
        ({"query": "ok", "mode": "hybrid_ft"},
         "mode 'hybrid_ft' is not served by small v7; valid: bm25, dense, hybrid"),
        ({"query": 42}, "query: Input should be a valid string"),
        ({"q": "ok"}, "query: Field required"),
    ],
)
def test_bad_requests_get_422_with_a_readable_detail(small, payload: dict, message: str) -> None:
    with make_client(small) as client:
        r = client.post("/search", json=payload)
    assert r.status_code == 422
    assert message in r.json()["detail"], r.json()
    assert r.json()["request_id"] == r.headers["x-request-id"]


def test_not_json_unknown_path_and_wrong_method(small) -> None:
    with make_client(small) as client:
        bad = client.post("/search", content=b"{not json", headers={"content-type": "application/json"})
        assert bad.status_code == 422 and bad.json()["detail"] == "body: the request body is not valid JSON"
        assert client.post("/search").json()["detail"] == "body: a JSON body is required"
        assert client.get("/nowhere").status_code == 404
        assert client.get("/search").status_code == 405


def test_internal_error_is_a_generic_500_with_a_request_id(small) -> None:
    """A doc id the index returns but the docs table lacks (a real inconsistency) breaks a search."""
    retriever, docs = small
    top = retriever.search("vitamin D and bone fractures", "hybrid", 3).ids[0]
    with make_client(small, docs=docs.drop(index=top)) as client:
        r = client.post("/search", json={"query": "vitamin D and bone fractures", "top_k": 3})
        assert r.status_code == 500
        assert r.json() == {"detail": "internal server error", "request_id": r.headers["x-request-id"]}
        assert "Traceback" not in r.text and "KeyError" not in r.text
        assert client.post("/search", json={"query": "zebrafish heart regeneration"}).status_code == 200
        metrics = client.get("/metrics").text
    assert 'ragops_requests_total{endpoint="/search",mode="hybrid",status="500"} 1.0' in metrics


def test_bearer_token_guards_everything_but_health_and_the_page(small) -> None:
    with make_client(small, token=TOKEN) as client:
        for method, path in (
            ("post", "/search"),
            ("post", "/ask"),
            ("get", "/metrics"),
            ("get", "/docs"),
            ("get", "/openapi.json"),
            ("get", "/nowhere"),
        ):
            r = client.post(path, json={"query": "x"}) if method == "post" else client.get(path)
            assert r.status_code == 401, (path, r.status_code)
            assert r.headers["www-authenticate"] == "Bearer"
        wrong = client.post("/search", json={"query": "x"}, headers={"Authorization": f"Bearer {TOKEN}x"})
        assert wrong.status_code == 401
        ok = client.post("/search", json={"query": "vitamin D"}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200
        health = client.get("/health").json()
        assert health["ready"] and health["auth"] is True and health["model"]["version"] == "7"
        assert health["model"]["modes"] == ["bm25", "dense", "hybrid"] and health["model"]["default_mode"] == "hybrid"
        assert client.get("/").status_code == 200 and client.get("/static/app.js").status_code == 200


def test_judge_appends_a_judgment_and_refuses_bad_ones_with_4xx(small, tmp_path: Path) -> None:
    from ragops.eval.judgments import query_id, read

    retriever, docs = small
    doc, path = str(docs.index[0]), tmp_path / "judged" / "judgments.jsonl"
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    with make_client(small, token=TOKEN, judgments_path=str(path)) as client:
        body = {"query": "Vitamin D and fractures", "doc_id": doc, "relevant": True, "mode": "bm25"}
        assert client.post("/judge", json=body).status_code == 401
        r = client.post("/judge", json=body, headers=bearer)
        assert r.status_code == 201, r.text
        assert r.json() == {"query_id": query_id("vitamin d and fractures"), "doc_id": doc, "relevant": True,
                            "judgments": 1}
        again = client.post("/judge", json={**body, "relevant": False, "mode": None, "by": "page"}, headers=bearer)
        assert again.status_code == 201 and again.json()["judgments"] == 2
        for payload, status, message in (
            ({**body, "doc_id": "no-such-doc"}, 422, "doc_id 'no-such-doc' is not a document of small v7"),
            ({**body, "query": "  "}, 422, "query: must not be empty"),
            ({**body, "relevant": "yes"}, 422, "relevant: Input should be a valid boolean"),
            ({**body, "mode": "fuzzy"}, 422, "mode: Input should be 'bm25'"),
            ({"query": "q", "doc_id": doc}, 422, "relevant: Field required"),
        ):
            bad = client.post("/judge", json=payload, headers=bearer)
            assert bad.status_code == status and message in bad.json()["detail"], bad.text
            assert "Traceback" not in bad.text
        assert client.get("/health").json()["judgments"] is True
        metrics = client.get("/metrics", headers=bearer).text
    assert 'ragops_requests_total{endpoint="/judge",mode="bm25",status="201"} 1.0' in metrics
    df = read(path)  # the latest judgment of the pair wins: not relevant, from the page
    assert df[["doc_id", "score", "by", "mode"]].values.tolist() == [[doc, 0, "page", None]]
    with make_client(small, judgments_path=None) as client:
        off = client.post("/judge", json={"query": "q", "doc_id": doc, "relevant": True})
        assert off.status_code == 503 and off.json()["detail"].startswith("judgments are not enabled on this server")
        assert client.get("/health").json()["judgments"] is False


def test_metrics_count_requests_and_cache_hits(small) -> None:
    with make_client(small) as client:
        for _ in range(3):
            assert client.post("/search", json={"query": "statin therapy", "mode": "dense"}).status_code == 200
        client.post("/search", json={"query": "statin therapy", "mode": "bm25"})
        client.post("/search", json={"query": ""})
        text = client.get("/metrics").text
    assert 'ragops_requests_total{endpoint="/search",mode="dense",status="200"} 3.0' in text
    assert 'ragops_requests_total{endpoint="/search",mode="bm25",status="200"} 1.0' in text
    assert 'ragops_requests_total{endpoint="/search",mode="none",status="422"} 1.0' in text
    assert 'ragops_request_duration_seconds_count{endpoint="/search",mode="dense",status="200"} 3.0' in text
    # One miss (the first dense query); bm25 needs no embedding.
    assert 'ragops_query_cache_total{result="hit"} 2.0' in text
    assert 'ragops_query_cache_total{result="miss"} 1.0' in text


def test_searches_run_concurrently_off_the_event_loop(small) -> None:
    """/health answers while searches are running (they run on the thread pool)."""
    with make_client(small, cache_size=0) as client:
        errors = []

        def hammer() -> None:
            for i in range(8):
                r = client.post("/search", json={"query": f"protein folding {i}", "top_k": 10})
                if r.status_code != 200:
                    errors.append(r.status_code)

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        assert client.get("/health").json()["ready"]
        for t in threads:
            t.join()
    assert errors == []


def test_ask_returns_the_answer_contract_and_the_model(small) -> None:
    with make_client(small) as client:
        r = client.post("/ask", json={"question": "Does vitamin D deficiency increase fracture risk?", "top_k": 3})
        assert r.status_code == 200, r.text
        body = r.json()
        assert client.post("/ask", json={"question": " "}).status_code == 422
    assert {"question", "text", "generator", "scorer", "citations", "claims", "hits", "support_rate", "model"} <= set(
        body
    )
    assert body["generator"] == "extractive" and body["scorer"] == "lexical" and body["model"]["version"] == "7"
    assert 1 <= len(body["hits"]) <= 3 and body["citations"]
    assert set(body["citations"]) <= {h["doc_id"] for h in body["hits"]}
    assert all({"text", "score", "supported", "citations"} <= set(c) for c in body["claims"])


def test_a_body_over_the_limit_gets_413_unread(small) -> None:
    with make_client(small, max_body_bytes=2048) as client:
        big = {"query": "vitamin D", "padding": "x" * 5000}
        r = client.post("/search", json=big)  # Content-Length says it: refused before reading
        assert r.status_code == 413 and "larger than 2048 bytes (serve.max_body_bytes)" in r.json()["detail"]
        assert r.json()["request_id"] == r.headers["x-request-id"]

        def chunks():  # no Content-Length: the bytes read are counted, and reading stops past the limit
            yield b'{"query": "vitamin D", "padding": "'
            for _ in range(10):
                yield b"x" * 1000
            yield b'"}'

        streamed = client.post("/search", content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413 and "serve.max_body_bytes" in streamed.json()["detail"]
        assert client.post("/search", json={"query": "vitamin D"}).status_code == 200
        metrics = client.get("/metrics").text
    assert 'endpoint="/search",mode="none",status="413"} 2.0' in metrics


def test_requests_over_the_in_flight_limit_get_503_with_retry_after(small) -> None:
    import asyncio

    import httpx

    holder_client = make_client(small, cache_size=0, max_inflight_search=1)
    app = holder_client.app

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(*(client.post("/search", json={"query": f"protein folding {i}"})
                                          for i in range(8)))

    with holder_client:  # runs the app's lifespan (the search runner)
        responses = asyncio.run(burst())
        codes = sorted(r.status_code for r in responses)
        busy = [r for r in responses if r.status_code == 503]
        assert codes.count(200) >= 1 and busy and set(codes) == {200, 503}, codes
        assert all(r.headers["retry-after"] == "1" and "in flight" in r.json()["detail"] for r in busy)
        # the limit frees as requests finish: one at a time, every request is accepted
        assert all(holder_client.post("/search", json={"query": "q"}).status_code == 200 for _ in range(3))


def test_health_says_degraded_when_the_trained_scorer_is_missing(small, tmp_path: Path) -> None:
    with make_client(small, scorer="trained", grounding_model=str(tmp_path / "no-grounding")) as client:
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        model = health.json()["model"]
        assert model["scorer"] == "embedding" and "trained grounding scorer is missing" in model["degraded"]
        assert str(tmp_path / "no-grounding") in model["degraded"]
        assert client.post("/ask", json={"question": "Does vitamin D prevent fractures?"}).status_code == 200
    with make_client(small) as client:  # a scorer chosen on purpose is no fallback
        assert client.get("/health").json()["status"] == "ok"
        assert client.get("/health").json()["model"]["degraded"] is None


def test_commands_and_packaged_models_turn_off_the_tokenizers_thread_pool() -> None:
    """The ONNX paths tokenize with the `tokenizers` library, whose batch calls run on a thread pool of its own
    unless TOKENIZERS_PARALLELISM=false: in a server that pool competed with the request threads for the cores
    (4 clients: p95 84 ms against 47 ms, bench/serve.py). Every `ragops` command and a packaged model's
    load_context set it (and offline mode) before anything loads."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("TOKENIZERS_PARALLELISM", "HF_HUB_OFFLINE")}
    code = ("import os\nfrom typer.testing import CliRunner\nfrom ragops.cli.main import app\n"
            "CliRunner().invoke(app, ['models', '--help'])\n"
            "print(os.environ.get('TOKENIZERS_PARALLELISM'), os.environ.get('HF_HUB_OFFLINE'))\n"
            "del os.environ['TOKENIZERS_PARALLELISM']\n"
            "from types import SimpleNamespace\nfrom ragops.pyfunc import RetrieverModel\n"
            "try:\n    RetrieverModel().load_context(SimpleNamespace(artifacts={}))  # no parts: fails after\n"
            "except KeyError:\n    print(os.environ.get('TOKENIZERS_PARALLELISM'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["false", "1", "false"]
