"""The server under overload: far more concurrent clients than it has cores, on /search and on /ask.

    python bench/overload.py [--project .] [--search-clients 32] [--ask-clients 64] [--duration 20]

Registers the built pipeline of --project into a temporary MLflow store (like bench/serve.py; nothing in
--project is written), starts `ragops serve --model models:/ragops-retriever@champion` on 127.0.0.1 with
params.yaml's `serve:` limits (query cache off), then runs two phases from one client process (asyncio +
aiohttp, keep-alive connections, on the same 2 cores as the server): --search-clients closed-loop clients on
`/search` for --duration seconds, then --ask-clients on `/ask`. Meanwhile another thread asks `/health`
every 100 ms, and the server's resident memory is sampled from /proc. Every request is recorded with its
status: accepted (200), shed (503 with Retry-After), or anything else (an error).

Writes reports/bench/overload.json and the `overload` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import yaml
from _common import REPO, machine, machine_line, write_result, write_section
from serve import env as server_env
from serve import free_port, result_of, setup, start_server, stop

CLIENT = r"""
import asyncio, json, sys, time
import aiohttp

async def main(url, field, texts, clients, duration):
    records = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients),
                                     timeout=aiohttp.ClientTimeout(total=120)) as session:
        t0 = time.perf_counter()

        async def worker(k):
            i = k
            while time.perf_counter() - t0 < duration:
                t = time.perf_counter()
                try:
                    async with session.post(url, json={field: texts[i % len(texts)]}) as r:
                        await r.read()
                        status, retry = r.status, r.headers.get("Retry-After")
                except Exception as exc:  # a refused or dropped connection is an error
                    status, retry = type(exc).__name__, None
                records.append((t - t0, time.perf_counter() - t, status, retry))
                i += clients
                if status == 503:
                    await asyncio.sleep(0.05)  # a client that was told to come back later does not spin

        await asyncio.gather(*(worker(k) for k in range(clients)))
        wall = time.perf_counter() - t0
    print("RESULT " + json.dumps({"wall_s": wall, "records": records}))

a = json.loads(sys.argv[1])
asyncio.run(main(a["url"], a["field"], a["texts"], a["clients"], a["duration"]))
"""


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))] * 1000, 1)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def phase(root: Path, port: int, path: str, field: str, texts: list[str], clients: int, duration: float,
          server_pid: int) -> dict:
    health: list[float] = []
    health_errors: list[str] = []
    memory: list[float] = [rss_mb(server_pid)]
    done = threading.Event()

    def watch() -> None:
        with httpx.Client(timeout=10) as c:
            while not done.is_set():
                t = time.perf_counter()
                try:
                    code = c.get(f"http://127.0.0.1:{port}/health").status_code
                    if code != 200:
                        health_errors.append(str(code))
                except httpx.HTTPError as exc:
                    health_errors.append(type(exc).__name__)
                health.append(time.perf_counter() - t)
                memory.append(rss_mb(server_pid))
                time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    args = {"url": f"http://127.0.0.1:{port}{path}", "field": field, "texts": texts, "clients": clients,
            "duration": duration}
    proc = subprocess.run([sys.executable, "-c", CLIENT, json.dumps(args)], cwd=root, env=server_env(),
                          capture_output=True, text=True, timeout=duration + 600)
    done.set()
    watcher.join()
    if proc.returncode:
        raise SystemExit(f"the client failed:\n{proc.stderr[-3000:]}")
    res = result_of(proc.stdout)
    records = res["records"]
    ok = [r[1] for r in records if r[2] == 200]
    shed = [r[1] for r in records if r[2] == 503]
    other = [r for r in records if r[2] not in (200, 503)]
    return {
        "endpoint": path,
        "clients": clients,
        "wall_s": round(res["wall_s"], 1),
        "requests": len(records),
        "accepted": len(ok),
        "accepted_qps": round(len(ok) / res["wall_s"], 1),
        "accepted_p50_ms": pct(ok, 50),
        "accepted_p95_ms": pct(ok, 95),
        "accepted_p99_ms": pct(ok, 99),
        "shed_503": len(shed),
        "shed_with_retry_after": sum(1 for r in records if r[2] == 503 and r[3]),
        "shed_p99_ms": pct(shed, 99),
        "other_errors": len(other),
        "other_kinds": sorted({str(r[2]) for r in other}),
        "health_requests": len(health),
        "health_p95_ms": pct(health, 95),
        "health_errors": len(health_errors),
        "rss_mb_start": round(memory[0], 1),
        "rss_mb_max": round(max(memory), 1),
        "rss_mb_end": round(memory[-1], 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, default=REPO)
    ap.add_argument("--search-clients", type=int, default=32)
    ap.add_argument("--ask-clients", type=int, default=64)
    ap.add_argument("--duration", type=float, default=20.0)
    args = ap.parse_args()
    project = args.project.resolve()
    serve_cfg = yaml.safe_load((project / "params.yaml").read_text()).get("serve", {})
    with tempfile.TemporaryDirectory(prefix="ragops-bench-overload-") as tmp:
        root = Path(tmp)
        port = free_port()
        queries = setup(root, project, port)
        proc = start_server(root, port)
        try:
            phases = [
                phase(root, port, "/search", "query", queries, args.search_clients, args.duration, proc.pid),
                phase(root, port, "/ask", "question", queries, args.ask_clients, args.duration, proc.pid),
            ]
        finally:
            stop(proc)
    limits = {k: serve_cfg.get(k) for k in ("workers", "max_inflight_search", "max_inflight_ask", "max_body_bytes")}
    result = {"machine": machine(), "serve": limits, "duration_s": args.duration, "phases": phases}
    write_result("overload", result)
    write_section("overload", render(result))
    print(json.dumps(result, indent=2))


HEADER = ("| endpoint | clients | requests | accepted | accepted p50 / p95 / p99 ms | shed (503) | shed p99 ms | "
          "other errors | /health p95 ms | RSS MB start / max / end |")


def render(r: dict) -> str:
    rows = []
    for p in r["phases"]:
        rows.append(
            f"| `{p['endpoint']}` | {p['clients']} | {p['requests']} | {p['accepted']} ({p['accepted_qps']} q/s) | "
            f"{p['accepted_p50_ms']} / {p['accepted_p95_ms']} / {p['accepted_p99_ms']} | "
            f"{p['shed_503']} ({p['shed_with_retry_after']} with Retry-After) | {p['shed_p99_ms']} | "
            f"{p['other_errors']} | {p['health_p95_ms']} ({p['health_errors']} errors) | "
            f"{p['rss_mb_start']} / {p['rss_mb_max']} / {p['rss_mb_end']} |"
        )
    table = "\n".join(rows)
    return f"""## The server under overload (`python bench/overload.py`)

{machine_line(r['machine'])}

The full SciFact build served by `ragops serve` (`models:/ragops-retriever@champion`, its registered mode,
query cache off) with `serve: {r['serve']}`; closed-loop clients (asyncio + aiohttp, a shed client waits
50 ms) on the same 2 cores, {r['duration_s']:.0f} s per phase; `/health` asked every 100 ms meanwhile; resident
memory of the server from /proc.

{HEADER}
|---|---|---|---|---|---|---|---|---|---|
{table}"""


if __name__ == "__main__":
    main()
