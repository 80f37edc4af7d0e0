"""Latency of `ragops ask` with the extractive generator (the offline default), one question at a time,
in process (models loaded once, as the server and batch mode do): p50 / p95 per scorer, each with the build's
sentence store (stage `sentences`, as served) and, for comparison, without it (every answer encodes its
context's sentences).

With ``--http``, also the served path: the build is registered into a temporary MLflow store (nothing in
the project is written), `ragops serve --model models:/ragops-retriever@champion` starts on 127.0.0.1, and one
client posts the same questions to `/ask` one at a time (latency as the client sees it, HTTP included).

Questions: a seeded sample of the SciFact test queries. Needs the built pipeline (`dvc repro`).
Writes reports/bench/ask.json and the `ask` section of docs/benchmarks.md.

    python bench/ask.py [--n 100] [--scorers lexical,embedding,trained] [--without-store trained] [--http]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, machine_line, write_result, write_section  # noqa: E402


def summary(latencies_ms: list[float]) -> dict[str, float]:
    a = np.asarray(latencies_ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 1), "p95_ms": round(float(np.percentile(a, 95)), 1),
            "mean_ms": round(float(a.mean()), 1), "max_ms": round(float(a.max()), 1)}


def http_latencies(texts: list[str]) -> dict[str, float]:
    """Register the build in a temporary store, serve its champion, POST each question to /ask in turn."""
    import shutil
    import tempfile

    import httpx
    import yaml
    from _common import REPO, point_at_build
    from serve import free_port, run, start_server, stop

    root = Path(tempfile.mkdtemp(prefix="ragops-bench-ask-"))
    port, server = free_port(), None
    try:
        serve = yaml.safe_load((REPO / "params.yaml").read_text()).get("serve", {})
        params = point_at_build(root, REPO, {"serve": {**serve, "port": port, "poll_s": 60, "cache_size": 0}})
        if params["answer"]["generator"] not in ("auto", "extractive"):
            raise SystemExit("answer.generator must be auto or extractive for this bench")
        run([sys.executable, "-m", "ragops.stages.register"], root)
        server = start_server(root, port)
        lat = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            for q in [texts[0], *texts]:  # the first is the warm-up
                t = time.perf_counter()
                r = client.post("/ask", json={"question": q})
                lat.append((time.perf_counter() - t) * 1000.0)
                if r.status_code != 200 or (r.json().get("generator"), r.json().get("scorer")) != ("extractive",
                                                                                           "trained"):
                    raise SystemExit(f"/ask answered {r.status_code}: {r.text[:500]}")
        return summary(lat[1:])
    finally:
        if server is not None:
            stop(server)
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--scorers", default="lexical,embedding,trained")
    ap.add_argument("--without-store", default="trained", help="scorers also measured without the sentence store")
    ap.add_argument("--http", action="store_true", help="also POST /ask to `ragops serve` of the registered build")
    args = ap.parse_args()
    from ragops.answer.answerer import build_answerer
    from ragops.config import load_params
    from ragops.retrieval.load import load_pipeline

    params = load_params()
    t0 = time.perf_counter()
    retriever, docs = load_pipeline(params)
    load_s = time.perf_counter() - t0
    queries = pd.read_parquet(params["paths"]["queries"])
    qrels = pd.read_parquet(params["paths"]["qrels"])
    test_ids = set(qrels[qrels["split"] == "test"]["query_id"].astype(str))
    texts = sorted(t for q, t in zip(queries["query_id"].astype(str), queries["text"], strict=True) if q in test_ids)
    texts = random.Random(int(params["seed"])).sample(texts, min(args.n, len(texts)))
    result = {
        "machine": machine(),
        "n_questions": len(texts),
        "generator": "extractive",
        "k": params["answer"]["k"],
        "load_s": round(load_s, 2),
        "scorers": {},
    }
    arms = [(n, True) for n in args.scorers.split(",")] + \
        [(n, False) for n in args.without_store.split(",") if n]
    for name, stored in arms:
        # without the store: sentences_dir names a folder with no store in it, so every answer encodes its own
        answerer = build_answerer(retriever, docs, params, generator="extractive", scorer=name,
                                  sentences_dir=None if stored else Path(params["paths"]["sentences"]) / "none")
        if stored and getattr(answerer.encode.base, "hits", None) is None:
            raise SystemExit(f"no sentence store at {params['paths']['sentences']}: run `dvc repro sentences`")
        answerer.ask(texts[0])  # warm-up
        lat = []
        for q in texts:
            t = time.perf_counter()
            answerer.ask(q)
            lat.append((time.perf_counter() - t) * 1000.0)
        key = name if stored else f"{name}, no sentence store"
        result["scorers"][key] = summary(lat)
        print(key, result["scorers"][key], flush=True)
    if args.http:
        del retriever, docs, answerer  # the server gets the cores and the memory
        result["scorers"]["trained, HTTP /ask (registered package)"] = http_latencies(texts)
        print("http", result["scorers"]["trained, HTTP /ask (registered package)"], flush=True)
    write_result("ask", result)
    rows = "\n".join(
        f"| {n} | {v['p50_ms']:.0f} | {v['p95_ms']:.0f} | {v['mean_ms']:.0f} |" for n, v in result["scorers"].items()
    )
    write_section(
        "ask",
        f"""## `ragops ask` latency (extractive generator)

One question at a time in one process (models loaded once: {load_s:.1f} s), {len(texts)} seeded SciFact
test queries, k = {result["k"]} documents, hybrid retrieval, 3-sentence extractive answer, each claim
scored. The context's sentence vectors come from the sentence store (stage `sentences`; what `ragops ask`,
`/ask` and the rag stage read); "no sentence store" encodes them in each answer.
`python bench/ask.py` -> reports/bench/ask.json.

| scorer | p50 ms | p95 ms | mean ms |
|---|---|---|---|
{rows}

{machine_line(result["machine"])}""",
    )


if __name__ == "__main__":
    main()
