"""`ragops serve` as a real process on 127.0.0.1 over the tiny build: the API with a bearer token, and
the hot swap: a registry (SQLite, in a temporary folder) with two versions, the server following
`@champion`, `ragops promote` moving the alias while clients keep searching: no request fails, and each
answer comes whole from one version."""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from ragops.harness import free_port, health_ready, start

from .conftest import run

pytestmark = pytest.mark.integration
TOKEN = "integration-token-0123"
OUTPUTS = (
    "docs",
    "queries",
    "qrels",
    "chunks",
    "embeddings",
    "embed_stats",
    "faiss",
    "bm25",
    "metrics",
    "per_query",
    "plots",
    "embedder",
    "embeddings_ft",
    "embed_stats_ft",
    "faiss_ft",
    "reranker",
    "grounding_model",
)
QUERIES = [
    "vitamin D deficiency and bone fractures",
    "statins reduce cardiovascular risk",
    "gene expression in cancer cells",
]


def serve_params(built: Path, dest: Path, **sections) -> Path:
    """params.yaml in ``dest`` reading the tiny build of ``built`` (nothing there is written)."""
    params = yaml.safe_load((built / "params.yaml").read_text())
    for key in OUTPUTS:
        params["paths"][key] = str(built / params["paths"][key])
    params["paths"]["registry"] = str(dest / "reports/registry.json")
    params["paths"]["stage_times"] = str(dest / ".cache/stage_times")
    params["registry"]["tracking_uri"] = "sqlite:///mlflow.db"
    params["answer"] = {**params.get("answer", {}), "generator": "extractive", "scorer": "embedding"}
    for name, values in sections.items():
        params[name] = {**params.get(name, {}), **values}
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return dest / "params.yaml"


class Server:
    """`ragops serve` in ``cwd``; ready when /health says so; stopped with SIGTERM (its process group)."""

    def __init__(self, cwd: Path, args: list[str], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / f"server-{self.port}.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k != "RAGOPS_API_TOKEN"}
        full_env = {
            **base,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            **(env or {}),
        }
        self.service = start(
            [str(Path(sys.executable).parent / "ragops"), "serve", "--port", str(self.port), *args],
            cwd, full_env, self.log_path, f"{self.url}/health", health_ready, "ragops serve", timeout=300,
        )
        self.proc = self.service.proc

    def stop(self) -> None:
        self.service.stop(timeout=30)


def judging_server(built_project: Path, dest: Path) -> Iterator[Server]:
    """`ragops serve` of the shared build's local outputs behind TOKEN, its judgments written in ``dest`` (never
    into the shared build's data/) at ``server.judgments``; stopped when the fixture ends."""
    params = serve_params(built_project, dest, data={"judgments": str(dest / "judged")})
    server = Server(built_project, ["--model", "local", "--params", str(params)], {"RAGOPS_API_TOKEN": TOKEN})
    server.judgments = dest / "judged" / "judgments.jsonl"
    yield server
    server.stop()


@pytest.fixture(scope="module")
def local_server(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from judging_server(built_project, tmp_path_factory.mktemp("serve-local"))


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_local_server_binds_loopback_and_guards_with_the_token(local_server: Server, built_project: Path) -> None:
    assert f"on http://127.0.0.1:{local_server.port} with bearer auth" in local_server.log_path.read_text()
    health = httpx.get(f"{local_server.url}/health").json()  # no token needed
    assert health["ready"] and health["auth"] and health["model"]["version"] == "local"
    body = {"query": QUERIES[0], "top_k": 5, "mode": "hybrid"}
    assert httpx.post(f"{local_server.url}/search", json=body).status_code == 401
    assert httpx.post(f"{local_server.url}/search", json=body, headers=auth("wrong")).status_code == 401
    r = httpx.post(f"{local_server.url}/search", json=body, headers=auth())
    assert r.status_code == 200, r.text
    # The same ranking as `ragops search` over the same build.
    cli = json.loads(run(["ragops", "search", QUERIES[0], "-k", "5", "--json"], built_project).stdout)["results"]
    got = r.json()["results"]
    assert [x["doc_id"] for x in got] == [x["doc_id"] for x in cli]
    assert [x["score"] for x in got] == pytest.approx([x["score"] for x in cli], abs=1e-3)
    assert all(x["title"] == y["title"] for x, y in zip(got, cli, strict=True))
    bad = httpx.post(f"{local_server.url}/search", json={"query": " ", "top_k": 1000}, headers=auth())
    assert bad.status_code == 422 and "query: must not be empty" in bad.json()["detail"]
    assert "top_k: Input should be less than or equal to 100" in bad.json()["detail"]
    assert httpx.get(f"{local_server.url}/nowhere", headers=auth()).status_code == 404
    docs = httpx.get(f"{local_server.url}/openapi.json", headers=auth()).json()
    assert {"/search", "/ask", "/health", "/metrics"} <= set(docs["paths"])
    assert httpx.get(f"{local_server.url}/docs", headers=auth()).status_code == 200


def test_local_server_answers_with_citations_and_counts_requests(local_server: Server) -> None:
    r = httpx.post(
        f"{local_server.url}/ask",
        json={"question": "Does vitamin D deficiency cause fractures?"},
        headers=auth(),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["model"]["version"] == "local" and answer["generator"] == "extractive"
    assert answer["citations"] and set(answer["citations"]) <= {h["doc_id"] for h in answer["hits"]}
    metrics = httpx.get(f"{local_server.url}/metrics", headers=auth()).text
    assert 'ragops_requests_total{endpoint="/search",mode="hybrid",status="200"}' in metrics
    assert 'ragops_requests_total{endpoint="/ask",mode="hybrid",status="200"} 1.0' in metrics
    assert 'ragops_model_version{alias="",name="local"} 0.0' in metrics


def test_local_server_records_judgments_and_refuses_bad_ones(local_server: Server) -> None:
    from ragops.eval.judgments import query_id, read

    hit = httpx.post(f"{local_server.url}/search", json={"query": QUERIES[1], "top_k": 1}, headers=auth()).json()
    doc = hit["results"][0]["doc_id"]
    body = {"query": QUERIES[1], "doc_id": doc, "relevant": True, "mode": hit["mode"]}
    assert httpx.post(f"{local_server.url}/judge", json=body).status_code == 401
    r = httpx.post(f"{local_server.url}/judge", json=body, headers=auth())
    assert r.status_code == 201, r.text
    assert r.json()["query_id"] == query_id(QUERIES[1]) and r.json()["judgments"] >= 1
    for payload, message in (
        ({**body, "doc_id": "not-a-doc"}, "doc_id 'not-a-doc' is not a document of local"),
        ({**body, "query": ""}, "query: must not be empty"),
        ({**body, "relevant": 1}, "relevant: Input should be a valid boolean"),
        ({**body, "extra": 1}, "extra: Extra inputs are not permitted"),
    ):
        bad = httpx.post(f"{local_server.url}/judge", json=payload, headers=auth())
        assert bad.status_code == 422 and message in bad.json()["detail"], bad.text
        assert "Traceback" not in bad.text
    judged = read(local_server.judgments)
    row = judged[(judged["query_id"] == query_id(QUERIES[1])) & (judged["doc_id"] == doc)]
    assert row[["score", "source", "by", "mode"]].values.tolist() == [[1, "human", "api", hit["mode"]]]


# ---------------------------------------------------------------- hot swap


@pytest.fixture(scope="module")
def registry_root(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry with v1 (fusion.alpha 0.3) and v2 (alpha 0.8), both serving hybrid: champion v1."""
    root = tmp_path_factory.mktemp("serve-registry")
    if (built_project / "dvc.lock").exists():
        shutil.copy2(built_project / "dvc.lock", root / "dvc.lock")
    for alpha in (0.3, 0.8):
        serve_params(built_project, root, fusion={"alpha": alpha}, serve={"poll_s": 0.5, "cache_size": 0},
                     registry={"mode": "hybrid"})
        run([sys.executable, "-m", "ragops.stages.register"], root)
    run(["ragops", "promote", "--version", "1", "--force"], root)
    return root


def test_promoted_version_is_swapped_in_under_load_without_a_failed_request(registry_root: Path) -> None:
    tmp = registry_root / "server-tmp"  # where the server downloads versions (TMPDIR): empty after SIGTERM
    tmp.mkdir(exist_ok=True)
    server = Server(registry_root, ["--model", "models:/ragops-retriever@champion"], {"TMPDIR": str(tmp)})
    seen: list[tuple[int, str, str | None, str]] = []  # (status, query, version, results)
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            i = 0
            while not stop.is_set():
                q = QUERIES[i % len(QUERIES)]
                i += 1
                try:
                    r = c.post("/search", json={"query": q, "top_k": 10})
                    body = r.json() if r.status_code == 200 else {}
                    ranking = [(x["doc_id"], round(x["score"], 4)) for x in body.get("results", [])]
                    seen.append((r.status_code, q, body.get("model", {}).get("version"), json.dumps(ranking)))
                except httpx.HTTPError as exc:
                    seen.append((0, q, None, repr(exc)))

    try:
        health = httpx.get(f"{server.url}/health").json()
        assert health["model"]["version"] == "1" and health["model"]["alias"] == "champion"
        assert health["watching"]["poll_s"] == 0.5
        threads = [threading.Thread(target=client) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        assert "v2 is now champion (was v1)" in run(["ragops", "promote", "--version", "2"], registry_root).stdout
        deadline = time.monotonic() + 120
        while httpx.get(f"{server.url}/health").json()["model"]["version"] != "2":
            assert time.monotonic() < deadline, server.log_path.read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        metrics = httpx.get(f"{server.url}/metrics").text
        health = httpx.get(f"{server.url}/health").json()
        assert list(tmp.glob("ragops-serve-*"))  # the versions it loaded live there while it serves
    finally:
        stop.set()
        server.stop()
    # SIGTERM stops it gracefully: exit 0, the downloaded versions removed
    assert server.proc.returncode == 0, server.log_path.read_text()[-3000:]
    left = list(tmp.iterdir())
    assert not [p for p in left if p.name.startswith("ragops")], left
    # what libraries leave there (onnxruntime's 51-byte `.ses`, torch's empty `torchinductor_*`): not ours, tiny
    assert sum(f.stat().st_size for f in tmp.rglob("*") if f.is_file()) < 1024, left
    failed = [s for s in seen if s[0] != 200]
    assert not failed, failed[:5]
    versions = [v for _, _, v, _ in seen]
    assert versions[0] == "1" and versions[-1] == "2" and len(seen) > 20
    assert versions.index("2") > 0 and versions.count("1") > 5 and versions.count("2") > 5
    # Each answer comes whole from one version: per query and version one ranking (scores to 1e-4: a batched
    # encoder pass may differ in the last float bits), and v2 (another fusion alpha) scores differently.
    by = {}
    for _, q, v, results in seen:
        by.setdefault((q, v), set()).add(results)
    assert all(len(r) == 1 for r in by.values()), {k: len(r) for k, r in by.items()}
    assert any(by[(q, "1")] != by[(q, "2")] for q in QUERIES if (q, "1") in by and (q, "2") in by)
    assert health["watching"]["swaps"] == 1 and health["model"]["uri"] == "models:/ragops-retriever/2"
    assert "ragops_model_swaps_total 1.0" in metrics
    assert 'ragops_model_version{alias="champion",name="ragops-retriever"} 2.0' in metrics
