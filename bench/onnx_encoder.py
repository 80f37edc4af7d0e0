"""The encoder backends side by side: throughput, query latency and SciFact test nDCG@10.

    python bench/onnx_encoder.py [--root .] [--sample 2000]

In a built project (`dvc repro` with ``embed.backend: torch``): encodes the same seeded sample of
chunks with each ``embed.backend`` (torch, onnx, onnx-int8) in one process, one after the other
(chunks/s, tokens/s; torch also at ``--torch-batch``), times one-query encoding on the test queries,
then encodes the full corpus with onnx-int8 and with torch (timed: the whole-corpus speedup) and
evaluates dense and hybrid on the test split with each backend's vectors and queries (same exact
FAISS index kind, same fusion). ``--no-full-torch`` uses the pipeline's torch vectors instead.
Writes reports/bench/onnx_encoder.json and the `onnx_encoder` section of docs/benchmarks.md.
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

BACKENDS = ("torch", "onnx", "onnx-int8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path.cwd())
    ap.add_argument("--sample", type=int, default=2000, help="chunks encoded by every backend for throughput")
    ap.add_argument("--full", default="onnx-int8", help="backend that re-encodes the full corpus for nDCG")
    ap.add_argument(
        "--no-full-torch",
        dest="full_torch",
        action="store_false",
        help="use the pipeline's torch vectors instead of re-encoding the corpus with torch here",
    )
    ap.add_argument("--torch-batch", type=int, default=16, help="torch also at this batch size (its best here)")
    args = ap.parse_args()
    os.chdir(args.root)
    from ragops.config import load_params
    from ragops.encode.encoder import Encoder
    from ragops.eval.evaluation import DEFAULT_METRICS, evaluate_mode, qrels_for_split
    from ragops.retrieval.index.dense import DenseConfig, build_dense
    from ragops.retrieval.index.sparse import BM25Index
    from ragops.retrieval.load import fusion_config, query_batch_size
    from ragops.retrieval.pipeline import SearchPipeline
    from ragops.retrieval.retriever import Retriever

    params = load_params()
    paths, emb = params["paths"], params["embed"]
    chunks = pd.read_parquet(paths["chunks"], columns=["doc_id", "text", "n_tokens"])
    rng = np.random.default_rng(int(params["seed"]))
    pick = np.sort(rng.choice(len(chunks), size=min(args.sample, len(chunks)), replace=False))
    sample = chunks["text"].iloc[pick].tolist()
    sample_tokens = int(chunks["n_tokens"].iloc[pick].sum())
    qrels = qrels_for_split(pd.read_parquet(paths["qrels"]), "test")
    qtext = pd.read_parquet(paths["queries"]).set_index("query_id")["text"]
    qids = sorted(qrels)
    queries = [str(qtext[q]) for q in qids]

    encoders, thr, qlat, vecs = {}, {}, {}, {}
    for b in BACKENDS:
        t0 = time.perf_counter()
        enc = Encoder(
            emb["model"],
            batch_size=int(emb["batch_size"]),
            backend=b,
            onnx_dir=emb.get("onnx_dir", "~/.cache/ragops/onnx"),
        )
        load_s = time.perf_counter() - t0
        enc.encode(sample[:64])  # warm-up
        t0 = time.perf_counter()
        vecs[b] = enc.encode(sample)
        s = time.perf_counter() - t0
        thr[b] = {
            "seconds": round(s, 2),
            "chunks_per_s": round(len(sample) / s, 1),
            "tokens_per_s": round(sample_tokens / s),
            "load_s": round(load_s, 2),
        }
        if b == "torch":  # the product's batch size above; torch runs a little faster in smaller batches here
            enc.batch_size = args.torch_batch
            t0 = time.perf_counter()
            enc.encode(sample)
            s = time.perf_counter() - t0
            thr[f"torch@{args.torch_batch}"] = {
                "seconds": round(s, 2),
                "chunks_per_s": round(len(sample) / s, 1),
                "tokens_per_s": round(sample_tokens / s),
                "load_s": round(load_s, 2),
            }
            enc.batch_size = int(emb["batch_size"])
        ms = []
        for q in queries:
            t0 = time.perf_counter()
            enc.encode([q])
            ms.append((time.perf_counter() - t0) * 1000)
        qlat[b] = {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2)}
        encoders[b] = enc
        print(b, thr[b], qlat[b], flush=True)
    agree = {b: round(float((vecs[b] * vecs["torch"]).sum(1).min()), 4) for b in BACKENDS if b != "torch"}
    agree_mean = {b: round(float((vecs[b] * vecs["torch"]).sum(1).mean()), 5) for b in BACKENDS if b != "torch"}

    # Quality: the pipeline's torch vectors vs the full corpus re-encoded with the fast backend.
    t0 = time.perf_counter()
    full_vecs = encoders[args.full].encode(chunks["text"].tolist())
    full_s = time.perf_counter() - t0
    if args.full_torch:  # both whole-corpus encodes timed in this run (torch at the product's batch size)
        t0 = time.perf_counter()
        torch_vecs = encoders["torch"].encode(chunks["text"].tolist())
        torch_full_s = time.perf_counter() - t0
    else:
        torch_vecs, torch_full_s = np.load(paths["embeddings"]), None
    corpus = {"torch": torch_vecs, args.full: full_vecs}
    bm25 = BM25Index.load(paths["bm25"])
    retrieve = params.get("retrieve", {})
    quality = {}
    for b, mat in corpus.items():
        encoders[b].batch_size = query_batch_size(b, encoders[b].batch_size)  # queries as the product encodes them
        r = Retriever(
            bm25=bm25,
            dense_index=build_dense(mat, DenseConfig(kind="flat")),
            encode=encoders[b],
            row_doc=chunks["doc_id"].tolist(),
            depth=int(retrieve.get("depth", 100)),
            dense_chunk_k=int(retrieve.get("dense_chunk_k", 400)),
            fusion=fusion_config(params),
        )
        quality[b] = {
            m: round(evaluate_mode(SearchPipeline(r), qids, queries, qrels, m, DEFAULT_METRICS, 0).mean["ndcg@10"], 4)
            for m in ("dense", "hybrid")
        }
    result = {
        "machine": machine(),
        "sample_chunks": len(sample),
        "sample_tokens": sample_tokens,
        "throughput": thr,
        "torch_batch_size": int(emb["batch_size"]),
        "speedup_vs_torch": {b: round(thr["torch"]["seconds"] / t["seconds"], 2) for b, t in thr.items()},
        # against torch at whichever batch size ran faster
        "speedup_vs_best_torch": {
            b: round(min(t["seconds"] for k, t in thr.items() if k.startswith("torch")) / thr[b]["seconds"], 2)
            for b in BACKENDS
            if b != "torch"
        },
        "query_encode": qlat,
        "min_cosine_vs_torch": agree,
        "mean_cosine_vs_torch": agree_mean,
        "full_corpus": {
            "backend": args.full,
            "chunks": len(chunks),
            "seconds": round(full_s, 1),
            "tokens_per_s": round(int(chunks["n_tokens"].sum()) / full_s),
            "torch_seconds": round(torch_full_s, 1) if torch_full_s else None,
            "speedup_vs_torch": round(torch_full_s / full_s, 2) if torch_full_s else None,
        },
        "test_ndcg@10": quality,
        "ndcg_delta": {m: round(quality[args.full][m] - quality["torch"][m], 4) for m in ("dense", "hybrid")},
    }
    write_result("onnx_encoder", result)
    write_section("onnx_encoder", render(result))
    print(json.dumps(result, indent=2))


def render(r: dict) -> str:
    def lat(b: str) -> str:
        q = r["query_encode"].get(b)
        return f"{q['p50_ms']:.1f} / {q['p95_ms']:.1f}" if q else "-"

    best = r.get("speedup_vs_best_torch", {})
    rows = "\n".join(
        f"| {b} | {t['seconds']:.1f} | {t['chunks_per_s']:.1f} | {t['tokens_per_s']:,} | "
        f"**{r['speedup_vs_torch'][b]:.2f}x** | {f'{best[b]:.2f}x' if b in best else '-'} | {lat(b)} | "
        f"{r['min_cosine_vs_torch'].get(b, 1.0):.4f} | {t['load_s']:.1f} |"
        for b, t in r["throughput"].items()
    )
    full = r["full_corpus"]
    q = r["test_ndcg@10"]
    qrows = "\n".join(f"| {b} | {v['dense']:.4f} | {v['hybrid']:.4f} |" for b, v in q.items())
    if full.get("torch_seconds"):
        whole = (
            f"{full['backend']} {full['seconds']:.0f} s ({full['tokens_per_s']:,} tokens/s), torch (batch "
            f"{r['torch_batch_size']}) {full['torch_seconds']:.0f} s: **{full['speedup_vs_torch']:.2f}x**; "
            "each backend's own vectors"
        )
    else:
        whole = f"{full['backend']}: {full['seconds']:.0f} s; torch: the pipeline's own vectors"
    return f"""## Encoder backends: PyTorch vs ONNX vs ONNX int8 (`python bench/onnx_encoder.py`)

{machine_line(r["machine"])}

`embed.backend` picks the encoder. The same {r["sample_chunks"]:,} SciFact chunks ({r["sample_tokens"]:,}
tokens, a seeded sample) encoded by each backend in one process, one after the other, all on both cores:
torch (sentence-transformers, length-sorted batches of {r["torch_batch_size"]}, the product's `embed.batch_size`;
`torch@N`: batches of N, its fastest here), ONNX one text per run with two single-threaded runs side by
side (`ragops.encode.onnx_encoder.OnnxModel`). One-query encoding over the test queries:

| backend | seconds | chunks/s | tokens/s | vs torch | vs fastest torch | query p50 / p95 ms | min cos | load s |
|---|---|---|---|---|---|---|---|---|
{rows}

ONNX: the sentence-transformers module chain exported with eager attention, fused by onnxruntime's
transformer optimizer (Attention, SkipLayerNorm, BiasGelu); int8: onnxruntime dynamic quantization,
int8 weights per channel on the constant-weight MatMuls and the attention's QKV projection (VNNI on
this CPU). One text per run: no padding, a layer's activations stay in cache, and an int8 vector does
not depend on the texts encoded with it (the activation scale is per run). Exported once per model into
`embed.onnx_dir` (load s includes the export when it was not there yet).

SciFact test nDCG@10, the full corpus ({full["chunks"]:,} chunks) encoded in this run ({whole}), exact FAISS,
queries encoded by the same backend:

| backend | dense | hybrid |
|---|---|---|
{qrows}
| **delta** | **{r["ndcg_delta"]["dense"]:+.4f}** | **{r["ndcg_delta"]["hybrid"]:+.4f}** |"""


if __name__ == "__main__":
    main()
