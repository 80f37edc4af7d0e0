"""The HTTP API under load: `/search` in the registered (served) mode through the real server on loopback
against the same pipeline called in-process in a loop, and a hot swap of the served version during load.

    python bench/serve.py [--project .] [--clients 1,4] [--requests 2000] [--duration 30]

Reads the built pipeline of --project (nothing there is written) and registers two versions of it
into a temporary MLflow store (SQLite), champion = v1. Then, in one run:

1. in-process: a fresh process loads the pipeline (`load_pipeline`) and calls `search(q, mode, 10)` in the
   mode the registry chose (reports/registry.json `served_mode`)
   on SciFact queries one after the other (the baseline: no HTTP, no threads);
2. `ragops serve --model models:/ragops-retriever@champion` (uvicorn, 1 worker, 127.0.0.1, query cache off,
   so every request encodes its query like the baseline); for each --clients N a client process runs N
   concurrent keep-alive connections (asyncio + aiohttp) over the same queries for --requests requests or
   --duration seconds, whichever ends first;
3. the swap: 4 clients for --swap-duration seconds; after a third of it `ragops promote --version 2`
   moves the alias; the server's watcher (poll 1 s) loads v2 off the request path and swaps it in.
   Every failed request (non-200 or connection error) is counted.

The load generator runs on the same 2 cores as the server (and the baseline has the cores to itself),
so the ratio is a lower bound for a server with its own machine.
Writes reports/bench/serve.json and the `serve` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml
from _common import REPO, machine, machine_line, point_at_build, python_env, write_result, write_section

from ragops.harness import Service, free_port, health_ready, start

MODEL = "ragops-retriever"

IN_PROCESS = r"""
import json, sys, time
from ragops.retrieval.load import load_pipeline
from ragops.config import load_params
queries, count, duration = json.loads(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
mode = sys.argv[5]
retriever, _ = load_pipeline(load_params(sys.argv[1]), [mode])
for q in queries[:50]:
    retriever.search(q, mode, 10)
lat = []
t0 = time.perf_counter()
while len(lat) < count and time.perf_counter() - t0 < duration:
    q = queries[len(lat) % len(queries)]
    t = time.perf_counter()
    retriever.search(q, mode, 10)
    lat.append(time.perf_counter() - t)
print("RESULT " + json.dumps({"wall_s": time.perf_counter() - t0, "latencies": lat}))
"""

CLIENT = r"""
import asyncio, json, sys, time
import aiohttp

async def main(url, queries, clients, count, duration, warmup):
    records = []
    state = {"next": 0}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        async def one(q):
            t = time.perf_counter()
            try:
                async with session.post(url, json={"query": q, "top_k": 10}) as r:
                    body = await r.read()
                    status = r.status
                version = json.loads(body)["model"]["version"] if status == 200 else None
            except Exception as exc:  # a refused or dropped connection is a failed request
                status, version = type(exc).__name__, None
            return t, time.perf_counter() - t, status, version

        for i in range(warmup):
            await one(queries[i % len(queries)])
        t0 = time.perf_counter()

        async def worker():
            while True:
                i = state["next"]
                state["next"] += 1
                if i >= count or time.perf_counter() - t0 > duration:
                    return
                t, dt, status, version = await one(queries[i % len(queries)])
                records.append((t - t0, dt, status, version))

        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
    print("RESULT " + json.dumps({"wall_s": wall, "records": records}))

args = json.loads(sys.argv[1])
asyncio.run(main(args["url"], args["queries"], args["clients"], args["count"], args["duration"], args["warmup"]))
"""


def env() -> dict[str, str]:
    e = python_env()
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "RAGOPS_API_TOKEN"):
        e.pop(key, None)
    return e


def run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout + proc.stderr


def result_of(out: str) -> dict:
    return json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[len("RESULT ") :])


def setup(root: Path, project: Path, port: int) -> list[str]:
    """Params reading the built pipeline of ``project``, a registry here with v1 (champion) and v2; the queries."""
    import pandas as pd

    serve = yaml.safe_load((project / "params.yaml").read_text()).get("serve", {})
    # Cache off: every request encodes its query, like the in-process loop.
    params = point_at_build(root, project, {"serve": {**serve, "port": port, "poll_s": 1, "cache_size": 0}})
    for _ in range(2):
        run([sys.executable, "-m", "ragops.stages.register"], root)
    run(["ragops", "promote", "--version", "1", "--force"], root)
    queries = pd.read_parquet(params["paths"]["queries"])
    return queries.sort_values("query_id")["text"].tolist()


def start_server(root: Path, port: int) -> Service:
    """`ragops serve` of the champion on ``port``, ready when /health says so (the tests' harness)."""
    return start(["ragops", "serve", "--model", f"models:/{MODEL}@champion", "--port", str(port)], root, env(),
                 root / "server.log", f"http://127.0.0.1:{port}/health", health_ready, "ragops serve", timeout=180)


def stop(server: Service) -> None:
    server.stop(timeout=30)


def client(
    root: Path, port: int, queries: list[str], clients: int, count: int, duration: float, warmup: int = 50
) -> subprocess.Popen:
    args = {
        "url": f"http://127.0.0.1:{port}/search",
        "queries": queries,
        "clients": clients,
        "count": count,
        "duration": duration,
        "warmup": warmup,
    }
    return subprocess.Popen(
        [sys.executable, "-c", CLIENT, json.dumps(args)],
        cwd=root,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def summarize(latencies_s: list[float], wall_s: float, failed: int = 0) -> dict:
    ms = sorted(x * 1000 for x in latencies_s)

    def pct(p: float) -> float:
        return round(ms[min(len(ms) - 1, int(round(p / 100 * (len(ms) - 1))))], 2) if ms else float("nan")

    return {
        "requests": len(ms) + failed,
        "ok": len(ms),
        "failed": failed,
        "wall_s": round(wall_s, 2),
        "throughput_qps": round(len(ms) / wall_s, 1),
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "mean_ms": round(statistics.fmean(ms), 2) if ms else None,
    }


def load_phase(proc: subprocess.Popen) -> tuple[dict, list]:
    out, err = proc.communicate(timeout=900)
    if proc.returncode:
        raise SystemExit(f"the client failed:\n{err[-3000:]}")
    res = result_of(out)
    records = res["records"]
    ok = [r[1] for r in records if r[2] == 200]
    return summarize(ok, res["wall_s"], sum(1 for r in records if r[2] != 200)), records


def swap_phase(root: Path, port: int, queries: list[str], duration: float) -> dict:
    proc = client(root, port, queries, 4, 10**9, duration)
    time.sleep(duration / 3)
    t_promote = time.perf_counter()
    out = run(["ragops", "promote", "--version", "2"], root)
    promoted_s = time.perf_counter() - t_promote
    swapped_s = None
    while time.perf_counter() - t_promote < duration:
        model = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()["model"]
        if model["version"] == "2":
            swapped_s = time.perf_counter() - t_promote
            break
        time.sleep(0.2)
    summary, records = load_phase(proc)
    versions = [r[3] for r in records if r[2] == 200]
    first_v2 = next((i for i, v in enumerate(versions) if v == "2"), None)
    errors = sorted({str(r[2]) for r in records if r[2] != 200})
    return {
        **summary,
        "promote_cli_s": round(promoted_s, 2),
        "alias_to_served_s": swapped_s and round(swapped_s, 2),
        "served_by": {v: versions.count(v) for v in sorted(set(versions), key=str)},
        "v1_after_first_v2": sum(1 for v in versions[first_v2:] if v == "1") if first_v2 is not None else None,
        "error_kinds": errors,
        "promote_output": out.strip().splitlines()[-1],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, default=REPO)
    ap.add_argument("--clients", default="1,4")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--swap-duration", type=float, default=45.0)
    args = ap.parse_args()
    project = args.project.resolve()
    root = Path(tempfile.mkdtemp(prefix="ragops-bench-serve-"))
    port = free_port()
    server = None
    try:
        queries = setup(root, project, port)
        mode = json.loads((root / "reports/registry.json").read_text())["served_mode"]
        inproc = result_of(
            run(
                [
                    sys.executable,
                    "-c",
                    IN_PROCESS,
                    str(root / "params.yaml"),
                    json.dumps(queries),
                    str(args.requests),
                    str(args.duration),
                    mode,
                ],
                root,
            )
        )
        baseline = summarize(inproc["latencies"], inproc["wall_s"])
        server = start_server(root, port)
        loads = {}
        for n in [int(x) for x in args.clients.split(",")]:
            loads[n], _ = load_phase(client(root, port, queries, n, args.requests, args.duration))
            loads[n]["ratio_to_in_process"] = round(loads[n]["throughput_qps"] / baseline["throughput_qps"], 3)
        swap = swap_phase(root, port, queries, args.swap_duration)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        swaps = next(
            (float(ln.split()[-1]) for ln in metrics.splitlines() if ln.startswith("ragops_model_swaps_total")), None
        )
        used = yaml.safe_load((root / "params.yaml").read_text())
        result = {
            "machine": machine(),
            "serve_params": {
                k: used["serve"].get(k) for k in ("workers", "batch_max", "encoder_threads", "cache_size")
            },
            "query_backend": used.get("embed", {}).get("query_backend", "same"),
            "project": str(project),
            "queries": len(queries),
            "mode": mode,
            "k": 10,
            "cache": "off",
            "in_process": baseline,
            "server": {str(n): v for n, v in loads.items()},
            "swap": {**swap, "swaps_in_metrics": swaps},
        }
        write_result("serve", result)
        write_section("serve", render(result))
        print(json.dumps(result, indent=2))
    finally:
        if server is not None:
            stop(server)
            shutil.copy2(root / "server.log", Path(tempfile.gettempdir()) / "ragops-bench-serve-server.log")
        shutil.rmtree(root, ignore_errors=True)


def render(r: dict) -> str:
    b, s = r["in_process"], r["swap"]
    rows = "\n".join(
        f"| server, {n} client{'s' if n != '1' else ''} | {v['throughput_qps']:.1f} | {v['ratio_to_in_process']:.2f} | "
        f"{v['p50_ms']:.1f} | {v['p95_ms']:.1f} | {v['p99_ms']:.1f} | {v['ok']} | {v['failed']} |"
        for n, v in r["server"].items()
    )
    return f"""## Serving: /search under load, and a hot swap (`python bench/serve.py`)

{machine_line(r["machine"])}

Full SciFact build, `POST /search` in the registered mode (`{r.get("mode")}`), `top_k: 10`, query cache off (every
request encodes its query). The server is `ragops serve` (uvicorn, 1 worker, 127.0.0.1) serving
`models:/ragops-retriever@champion`; the clients are one separate process (asyncio + aiohttp, keep-alive
connections) **on the same 2 cores as the server**; server settings `serve: {r.get("serve_params")}`, query
encoder `embed.query_backend: {r.get("query_backend")}`; the in-process baseline calls the same retriever
(`SearchPipeline.search`) in a loop in a fresh process with both cores to itself. Latency is measured by the
client, from sending the request to reading the whole response.

| | queries/s | vs in-process | p50 ms | p95 ms | p99 ms | ok | failed |
|---|---|---|---|---|---|---|---|
| in-process loop | {b["throughput_qps"]:.1f} | 1.00 | {b["p50_ms"]:.1f} | {b["p95_ms"]:.1f} | {b["p99_ms"]:.1f} | \
{b["ok"]} | 0 |
{rows}

Targets (issue 7): throughput at least 0.80 of in-process, p95 at most 50 ms at 4 clients, 0 errors, 0 failed
requests during a hot swap.

**Hot swap under load** (4 clients, {s["wall_s"]:.0f} s): `ragops promote --version 2` moved the alias
after a third of the run; the watcher (poll 1 s) loaded v2 beside v1 and swapped it in
{s["alias_to_served_s"]} s after the promote command started. Requests: {s["ok"]} ok, **{s["failed"]} failed**;
served by version: {s["served_by"]}; after the first v2 answer, {s["v1_after_first_v2"]} answers still
came from v1 (requests already in flight). Throughput during the swap window {s["throughput_qps"]:.1f} q/s,
p95 {s["p95_ms"]:.1f} ms, p99 {s["p99_ms"]:.1f} ms (the load of v2, about 5 s of CPU, shares the 2 cores)."""


if __name__ == "__main__":
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    main()
