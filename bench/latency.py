"""Query latency on SciFact test queries, one query at a time, ragops against the naive alternatives.

    python bench/latency.py [--root .] [--k 10]

Needs a built project (`dvc repro`): the indexes in params.yaml's paths. Times, per query, end to end
(query encoding included): every retrieval mode the build carries (ragops.retrieval.pipeline.SearchPipeline:
bm25, dense, hybrid, and with trained models dense_ft, hybrid_ft, hybrid_rerank, hybrid_ft_rerank) with
the queries encoded by each ``embed.backend`` (torch and onnx-int8), and the baselines of
../shared/BASELINES.md reimplemented in bench/naive.py: rank-bm25, numpy cosine
over whole-document embeddings, the naive hybrid, naive FAISS IndexFlatL2.
Each row also carries its nDCG@10, so no speed is bought with quality.
Writes reports/bench/latency.json and the `latency` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import machine, machine_line, write_result, write_section
from naive import NaiveBM25, NaiveDense, naive_doc_embeddings, naive_hybrid

PAIRS = {  # baseline -> the ragops row it replaces
    "rank-bm25 BM25Okapi": "ragops bm25",
    "naive numpy cosine": "ragops dense",
    "naive FAISS IndexFlatL2": "ragops dense",
    "naive hybrid": "ragops hybrid",
}


def timed(fn, queries: list[str], warmup: int = 5) -> tuple[list, np.ndarray]:
    for q in queries[:warmup]:
        fn(q)
    out, ms = [], []
    for q in queries:
        t0 = time.perf_counter()
        out.append(fn(q))
        ms.append((time.perf_counter() - t0) * 1000.0)
    return out, np.asarray(ms)


def row(name: str, ms: np.ndarray, ndcg: float, note: str = "") -> dict:
    return {
        "name": name,
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p95_ms": round(float(np.percentile(ms, 95)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "ndcg@10": round(ndcg, 4),
        "note": note,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path.cwd(), help="a built ragops project")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    os.chdir(args.root)
    from ragops.config import load_params
    from ragops.eval.evaluation import qrels_for_split
    from ragops.eval.metrics import mean_metrics
    from ragops.retrieval.load import load_pipeline

    params = load_params()
    paths, emb = params["paths"], params["embed"]
    qrels = qrels_for_split(pd.read_parquet(paths["qrels"]), args.split)
    queries = pd.read_parquet(paths["queries"]).set_index("query_id")["text"]
    qids = sorted(qrels)
    texts = [str(queries[q]) for q in qids]

    def ndcg(hits: list) -> float:
        run = {q: h.as_dict() if hasattr(h, "as_dict") else h for q, h in zip(qids, hits, strict=True)}
        return float(mean_metrics(qrels, run, ["ndcg@10"])["ndcg@10"])

    rows: list[dict] = []
    pipelines = {}
    for backend in ("torch", "onnx-int8"):  # the whole pipeline with each query encoder
        pipelines[backend], _ = load_pipeline({**params, "embed": {**emb, "query_backend": backend}})
    pipeline = pipelines["torch"]
    rows.append(row("ragops bm25", *_mode(pipeline, "bm25", texts, args.k, ndcg), "bm25s, no query encoding"))
    for backend, pipe in pipelines.items():
        for mode in [m for m in pipe.modes if m != "bm25"]:
            name = f"ragops {mode}" + ("" if backend == "torch" else f" ({backend} query)")
            note = f"query encoder: {backend}"
            if pipe.reranker is not None and "rerank" in mode:
                note += f"; cross-encoder (torch) on the top {pipe.reranker.n}"
            rows.append(row(name, *_mode(pipe, mode, texts, args.k, ndcg), note))
    encoder = pipeline.encode

    # The baselines, as a user would write them (bench/naive.py), on the same documents.
    docs = pd.read_parquet(paths["docs"])
    doc_texts = (docs["title"].fillna("") + " " + docs["text"].fillna("")).tolist()
    doc_ids = docs["doc_id"].astype(str).tolist()
    t0 = time.perf_counter()
    bm25 = NaiveBM25(doc_ids, doc_texts)
    bm25_build = time.perf_counter() - t0
    st = encoder.model
    doc_emb, emb_note = naive_doc_embeddings(
        st, doc_texts, Path(emb.get("cache_dir", ".cache/embeddings")).parent / "bench", encoder.model_id
    )
    dense = NaiveDense(doc_ids, doc_emb, st)
    for name, fn in (
        ("rank-bm25 BM25Okapi", lambda q: bm25.search(q, args.k)),
        ("naive numpy cosine", lambda q: dense.search_numpy(q, args.k)),
        ("naive FAISS IndexFlatL2", lambda q: dense.search_faiss(q, args.k)),
        ("naive hybrid", lambda q: naive_hybrid(dense, bm25, q, args.k)),
    ):
        hits, ms = timed(fn, texts)
        rows.append(row(name, ms, ndcg(hits), "baseline (bench/naive.py)"))
    by_name = {r["name"]: r for r in rows if "p50_ms" in r}
    for r in rows:
        if r["name"] in PAIRS:
            ours = [by_name[n] for n in by_name if n.startswith(PAIRS[r["name"]])]
            best = min(ours, key=lambda o: o["p50_ms"])
            r["vs"] = best["name"]
            r["p50_ratio"] = round(r["p50_ms"] / best["p50_ms"], 1)
            r["p95_ratio"] = round(r["p95_ms"] / best["p95_ms"], 1)
            r["ndcg_delta"] = round(best["ndcg@10"] - r["ndcg@10"], 4)
    result = {
        "machine": machine(),
        "split": args.split,
        "queries": len(texts),
        "k": args.k,
        "docs": len(doc_ids),
        "chunks": int(pipeline.base.dense_index.ntotal),
        "rows": rows,
        "rank_bm25_build_s": round(bm25_build, 2),
        "naive_doc_embeddings": emb_note,
        "torch_threads": machine()["torch_threads"],
    }
    write_result("latency", result)
    write_section("latency", render(result))
    print(json.dumps(result, indent=2))


def _mode(pipeline, mode: str, texts: list[str], k: int, ndcg) -> tuple[np.ndarray, float]:
    hits, ms = timed(lambda q: pipeline.search(q, mode, k), texts)
    return ms, ndcg(hits)


def render(r: dict) -> str:
    lines = [
        "| retriever | p50 ms | p95 ms | mean ms | nDCG@10 | baseline ÷ fastest ragops (p50 / p95) |",
        "|---|---|---|---|---|---|",
    ]
    for x in r["rows"]:
        if "p50_ms" not in x:
            lines.append(f"| {x['name']} | – | – | – | – | {x['note']} |")
            continue
        ratio = (
            f"**{x['p50_ratio']}x** / {x['p95_ratio']}x slower than {x['vs']} (nDCG {x['ndcg_delta']:+.3f} for ragops)"
            if "vs" in x
            else ""
        )
        lines.append(
            f"| {x['name']} | {x['p50_ms']:.2f} | {x['p95_ms']:.2f} | {x['mean_ms']:.2f} | "
            f"{x['ndcg@10']:.3f} | {ratio} |"
        )
    table = "\n".join(lines)
    return f"""## Query latency, one query at a time (`python bench/latency.py`)

{machine_line(r["machine"])}

SciFact {r["split"]} split, {r["queries"]} queries, top-{r["k"]}, {r["docs"]:,} documents / {r["chunks"]:,} chunks;
each query end to end (its encoding included), after 5 warm-up queries. ragops runs the built
indexes (`dvc repro`) with params.yaml's settings; the baselines are ../shared/BASELINES.md as a user
would write them (bench/naive.py): rank-bm25 over `doc.split()`, whole-document MiniLM embeddings
(title + abstract, 256-token limit) scored with numpy or FAISS `IndexFlatL2`, the naive hybrid
re-scoring the vector top-2k with alpha = 0.5. Baseline queries are encoded with PyTorch.

{table}

rank-bm25 index build: {r["rank_bm25_build_s"]:.1f} s. Whole-document embeddings for the baselines:
{r["naive_doc_embeddings"]}."""


if __name__ == "__main__":
    main()
