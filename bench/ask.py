"""Latency of `ragops ask` with the extractive generator (the offline default), one question at a time,
in process (models loaded once, as the server and batch mode do): p50 / p95 per scorer, each with the build's
sentence store (stage `sentences`, as served) and, for comparison, without it (every answer encodes its
context's sentences).

Questions: a seeded sample of the SciFact test queries. Needs the built pipeline (`dvc repro`).
Writes reports/bench/ask.json and the `ask` section of docs/benchmarks.md.

    python bench/ask.py [--n 100] [--scorers lexical,embedding,trained] [--without-store trained]
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--scorers", default="lexical,embedding,trained")
    ap.add_argument("--without-store", default="trained", help="scorers also measured without the sentence store")
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
        a = np.asarray(lat)
        key = name if stored else f"{name}, no sentence store"
        result["scorers"][key] = {
            "p50_ms": round(float(np.percentile(a, 50)), 1),
            "p95_ms": round(float(np.percentile(a, 95)), 1),
            "mean_ms": round(float(a.mean()), 1),
            "max_ms": round(float(a.max()), 1),
        }
        print(key, result["scorers"][key], flush=True)
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
