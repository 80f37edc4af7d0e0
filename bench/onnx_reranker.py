"""The reranker on PyTorch and as int8 ONNX (ragops.encode.onnx_reranker): the same rankings, how much faster.

    python bench/onnx_reranker.py [--root .] [--queries 100]

Needs a built project with a trained reranker (`dvc repro`). For each backend (rerank.backend torch and
onnx-int8) it evaluates the rerank modes on dev and test (nDCG@10 over every query, scores computed
fresh: no score cache), and times --queries test queries one at a time end to end in each rerank mode,
plus the cross-encoder alone on each query's top rerank.n. The export is made once (timed).

Writes reports/bench/onnx_reranker.json and the `onnx_reranker` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from _common import machine, machine_line, write_result, write_section

BACKENDS = ("torch", "onnx-int8")


def pct(ms: list[float]) -> dict:
    a = np.asarray(ms)
    return {"p50": round(float(np.percentile(a, 50)), 2), "p95": round(float(np.percentile(a, 95)), 2),
            "mean": round(float(a.mean()), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path.cwd())
    ap.add_argument("--queries", type=int, default=100)
    args = ap.parse_args()
    os.chdir(args.root)
    import pandas as pd

    from ragops.config import load_params
    from ragops.encode.models import model_fingerprint
    from ragops.encode.onnx_reranker import export_dir
    from ragops.eval.evaluation import latency_sample, qrels_for_split
    from ragops.eval.metrics import mean_metrics
    from ragops.retrieval.load import load_pipeline
    from ragops.training.artifacts import effective_reranker

    params = load_params()
    folder = effective_reranker(params)
    if folder is None:
        raise SystemExit("this build has no trained reranker: `dvc repro train_reranker` first")
    onnx_dir = params["embed"].get("onnx_dir", "~/.cache/ragops/onnx")
    export = export_dir(onnx_dir, model_fingerprint(folder))
    existed = (export / "meta.json").is_file()
    qrels_all = pd.read_parquet(params["paths"]["qrels"])
    text = pd.read_parquet(params["paths"]["queries"]).set_index("query_id")["text"]
    modes = ["hybrid_rerank", "hybrid_ft_rerank"]
    result: dict = {"machine": machine(), "rerank": {k: params["rerank"][k] for k in ("n", "max_length", "weight")},
                    "backends": {}}
    for backend in BACKENDS:
        p = {**params, "rerank": {**params["rerank"], "backend": backend}}
        t0 = time.perf_counter()
        pipeline, _ = load_pipeline(p, modes)
        load_s = time.perf_counter() - t0
        out: dict = {"load_s": round(load_s, 2)}
        if backend == "onnx-int8" and not existed:
            out["export_in_load"] = True
        for split in ("dev", "test"):
            qrels = qrels_for_split(qrels_all, split)
            qids = sorted(qrels)
            texts = [str(text[q]) for q in qids]
            for mode in modes:
                hits = pipeline.search_batch(texts, mode, 10, fresh=True)
                run = {q: h.as_dict() for q, h in zip(qids, hits, strict=True)}
                out[f"{split}/{mode}/ndcg@10"] = round(float(mean_metrics(qrels, run, ["ndcg@10"])["ndcg@10"]), 4)
        qrels = qrels_for_split(qrels_all, "test")
        qids = sorted(qrels)
        sample = [str(text[qids[i]]) for i in latency_sample(qids, args.queries, int(params["seed"]))]
        for q in sample[:3]:
            pipeline.timed_search(q, "hybrid_ft_rerank")
        for mode in modes:
            out[f"{mode}_ms"] = pct([pipeline.timed_search(q, mode, 10)[1] for q in sample])
        ce = []
        rr = pipeline.reranker
        for q in sample:
            top = pipeline.search(q, "hybrid_ft")
            passages = [rr.passages[d] for d in top.ids[: rr.n]]
            t0 = time.perf_counter()
            rr.score(q, passages)
            ce.append((time.perf_counter() - t0) * 1000.0)
        out["cross_encoder_only_ms"] = pct(ce)
        result["backends"][backend] = out
    t, o = result["backends"]["torch"], result["backends"]["onnx-int8"]
    result["ndcg_delta"] = {k: round(o[k] - t[k], 4) for k in t if k.endswith("ndcg@10")}
    result["export_mb"] = round(sum(f.stat().st_size for f in export.rglob("*") if f.is_file()) / 1e6, 1)
    write_result("onnx_reranker", result)
    write_section("onnx_reranker", render(result))
    print(json.dumps(result, indent=2))


def render(r: dict) -> str:
    t, o = r["backends"]["torch"], r["backends"]["onnx-int8"]
    rr = r["rerank"]
    rows = []
    for key in [k for k in t if k.endswith("ndcg@10")]:
        rows.append(f"| nDCG@10 {key.removesuffix('/ndcg@10')} | {t[key]:.4f} | {o[key]:.4f} | "
                    f"{r['ndcg_delta'][key]:+.4f} |")
    for key in ("hybrid_rerank_ms", "hybrid_ft_rerank_ms", "cross_encoder_only_ms"):
        rows.append(f"| {key.removesuffix('_ms')} p50 / p95 ms | {t[key]['p50']:.1f} / {t[key]['p95']:.1f} | "
                    f"{o[key]['p50']:.1f} / {o[key]['p95']:.1f} | {t[key]['p95'] / o[key]['p95']:.1f}x faster |")
    table = "\n".join(rows)
    return f"""## The reranker as int8 ONNX (`python bench/onnx_reranker.py`)

{machine_line(r['machine'])}

The trained cross-encoder on the top {rr['n']} documents ({rr['max_length']} tokens a pair, weight
{rr['weight']}), `rerank.backend: torch` against `onnx-int8` (exported once, {r['export_mb']:.0f} MB; one
query's list per run, on every core). Scores computed fresh for every query; latency one query at a time,
end to end (query encoding and first stage included):

| | torch | onnx-int8 | difference |
|---|---|---|---|
{table}"""


if __name__ == "__main__":
    main()
