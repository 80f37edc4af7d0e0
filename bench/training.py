"""Training wall time of both models and the reranker's latency, on a built project (full SciFact).

    python bench/training.py [--project .] [--queries 100] [--retrain]

- training: the wall seconds each training stage recorded (`.cache/stage_times/train_*.json`, the
  whole stage: mining, training, dev selection, saving) and the training loop alone (`training.json`);
  with --retrain both stages are first re-run (`dvc repro --force --single-item`) so the figures are this run's;
- rerank latency: per query, one at a time, on a seeded sample of test queries: the cross-encoder over
  the top `rerank.n` (the added cost), and `hybrid_ft` vs `hybrid_ft_rerank` end to end.
Writes reports/bench/training.json and the `training` section of docs/benchmarks.md. Run under the
shared CPU lock: timings are only valid on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import BENCH_DIR, machine, machine_line, python_env, write_result, write_section


def pct(values: list[float]) -> dict[str, float]:
    a = np.asarray(values)
    return {"p50_ms": round(float(np.percentile(a, 50)), 1), "p95_ms": round(float(np.percentile(a, 95)), 1),
            "mean_ms": round(float(a.mean()), 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--project", type=Path, default=Path("."))
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--render", action="store_true", help="only re-render docs from reports/bench/training.json")
    args = ap.parse_args()
    if args.render:
        result = json.loads((BENCH_DIR / "training.json").read_text())
        render(result)
        write_result("training", result)
        return
    root = args.project.resolve()
    if args.retrain:
        for stage in ("train_embedder", "train_reranker"):
            subprocess.run(["dvc", "repro", "--force", "--single-item", stage], cwd=root, env=python_env(), check=True)
    os.chdir(root)
    sys.path.insert(0, str(root / "src"))
    import pandas as pd

    from ragops.config import load_params
    from ragops.eval.evaluation import latency_sample, qrels_for_split
    from ragops.io import read_json
    from ragops.retrieval.load import load_pipeline

    params = load_params(root / "params.yaml")
    stage_dir = root / params["paths"].get("stage_times", ".cache/stage_times")
    training = {}
    for stage, key in (("train_embedder", "embedder"), ("train_reranker", "reranker")):
        rec = read_json(Path(params["paths"][key]) / "training.json")
        stage_rec = stage_dir / f"{stage}.json"
        training[key] = {"stage_s": read_json(stage_rec)["seconds"] if stage_rec.exists() else None,
                         "loop_s": rec.get("seconds"), "steps": rec.get("steps"), "best_epoch": rec.get("best_epoch"),
                         "dev_ndcg@10_by_epoch": rec.get("dev_ndcg@10_by_epoch"), "trained": rec.get("trained")}
    # a model trained outside `dvc repro` has no stage record: its training loop's time stands in
    total = round(sum(v["stage_s"] or v["loop_s"] or 0 for v in training.values()), 1)

    router, _ = load_pipeline(params, ["hybrid_ft", "hybrid_ft_rerank"])
    qrels = qrels_for_split(pd.read_parquet(params["paths"]["qrels"]), "test")
    text = pd.read_parquet(params["paths"]["queries"]).set_index("query_id")["text"]
    qids = sorted(qrels)
    sample = [text[qids[i]] for i in latency_sample(qids, args.queries, int(params["seed"]))]
    for q in sample[:3]:  # warm-up
        router.search(q, "hybrid_ft_rerank")
    first_ms, full_ms, ce_ms = [], [], []
    for q in sample:
        first_ms.append(router.timed_search(q, "hybrid_ft")[1])
        hits = router.search(q, "hybrid_ft")
        t0 = time.perf_counter()
        router.reranker.rerank(q, hits)
        ce_ms.append((time.perf_counter() - t0) * 1000)
        full_ms.append(router.timed_search(q, "hybrid_ft_rerank")[1])
    rr = params["rerank"]
    result = {"machine": machine(), "training": training, "training_total_s": total,
              "rerank": {"n": rr["n"], "max_length": rr["max_length"], "weight": rr["weight"],
                         "queries": len(sample), "rerank_only": pct(ce_ms), "hybrid_ft": pct(first_ms),
                         "hybrid_ft_rerank": pct(full_ms)}}
    write_result("training", result)
    render(result)
    print(json.dumps(result, indent=2))


def render(result: dict) -> None:
    training, rr = result["training"], result["rerank"]
    total = result["training_total_s"] = round(sum(v["stage_s"] or v["loop_s"] or 0 for v in training.values()), 1)
    sample = range(rr["queries"])
    e, r = training["embedder"], training["reranker"]
    md = [
        "## Training and reranking (full SciFact)", "",
        f"`python bench/training.py --project <built project>`. {machine_line(result['machine'])}", "",
        "| model | stage wall s | training loop s | steps | best epoch | dev nDCG@10 by epoch (0 = untrained) |",
        "|---|---:|---:|---:|---:|---|",
        f"| embedder (MNRL, hard negatives) | {e['stage_s']} | {e['loop_s']} | {e['steps']} | {e['best_epoch']} | "
        f"{[round(v, 4) for v in e['dev_ndcg@10_by_epoch'] or []]} |",
        f"| reranker (cross-encoder) | {r['stage_s']} | {r['loop_s']} | {r['steps']} | {r['best_epoch']} | "
        f"{[round(v, 4) for v in r['dev_ndcg@10_by_epoch'] or []]} |",
        "", f"Both models: **{total / 60:.1f} min** (target <= 30 min on 2 cores).", "",
        f"Reranking the top {rr['n']} at {rr['max_length']} tokens, {len(sample)} test queries one at a time (ms):",
        "", "| | p50 | p95 | mean |", "|---|---:|---:|---:|",
    ]
    for name, key in (("cross-encoder only (added cost)", "rerank_only"), ("hybrid_ft", "hybrid_ft"),
                      ("hybrid_ft_rerank end to end", "hybrid_ft_rerank")):
        v = result["rerank"][key]
        md.append(f"| {name} | {v['p50_ms']} | {v['p95_ms']} | {v['mean_ms']} |")
    write_section("training", "\n".join(md))


if __name__ == "__main__":
    main()
