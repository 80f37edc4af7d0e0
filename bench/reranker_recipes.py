"""How the reranker's int8 export recipe moves its scores away from PyTorch's, and what that costs in speed.

    python bench/reranker_recipes.py [--root .] [--layers 0 1 2 3]

Needs a built project with a trained reranker (`dvc repro`). The trained cross-encoder is exported once to
fp32 ONNX (fused, as ragops.encode.onnx_reranker does) and quantized under each recipe: every MatMul int8 (layers
0: recipe 1), the feed-forward MatMuls of the first L encoder layers left in fp32 (recipe 2 is L =
rerank FP32_LAYERS), and no quantization at all (fp32 ONNX). For dev and test, and for both first stages
(hybrid, hybrid_ft), each query's top rerank.n documents are scored by PyTorch and by each recipe:

- deviation: the mean absolute difference of the within-list z-scores (what reranking reads: it mixes
  z(cross-encoder) with z(first stage)), in z-units a passage;
- nDCG@10 of the reranked list minus PyTorch's (over the split's queries; a few near-tied swaps move it);
- ms a query for the cross-encoder alone (one list a session run, every core).

The recipe is chosen on dev's deviation; test is reported. Writes reports/bench/reranker_recipes.json and
the `reranker_recipes` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine, machine_line, write_result, write_section

SPLITS, FIRST = ("dev", "test"), ("hybrid_ft", "hybrid")


def zdev(got: list[np.ndarray], ref: list[np.ndarray]) -> float:
    def z(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, dtype=np.float64)
        return (a - a.mean()) / (a.std() or 1.0)

    return float(np.mean([np.abs(z(a) - z(b)).mean() for a, b in zip(got, ref, strict=True) if len(a)]))


def export_fp32(folder: Path, work: Path) -> Path:
    """The fused fp32 graph ragops.encode.onnx_reranker quantizes: its export is run with quantize_dynamic (which
    ragops.encode.onnx_export.quantize_int8 calls) wrapped to keep a copy of its input (the export itself keeps
    only the int8 model)."""
    import onnxruntime.quantization as q

    from ragops.encode.onnx_reranker import export_cross_encoder

    real, fp32 = q.quantize_dynamic, work / "fp32.onnx"

    def keep(src, dst, **kw):
        shutil.copy(src, fp32)
        return real(src, dst, **kw)

    q.quantize_dynamic = keep
    try:
        export_cross_encoder(folder, work / "export")
    finally:
        q.quantize_dynamic = real
    return fp32


def recipe_folder(fp32: Path, work: Path, layers: int | None) -> Path:
    """``work/<name>``: the export folder with ``layers`` layers' feed-forward MatMuls in fp32 (None: fp32)."""
    import onnx

    from ragops.encode.onnx_export import quantize_int8
    from ragops.encode.onnx_reranker import FILE, fp32_nodes

    out = work / ("fp32" if layers is None else f"fp32_ffn_{layers}")
    shutil.copytree(work / "export", out, ignore=shutil.ignore_patterns(FILE))
    if layers is None:
        shutil.copy(fp32, out / FILE)
    else:
        keep = fp32_nodes(onnx.load(str(fp32)).graph.node, layers)
        quantize_int8(fp32, out / FILE, keep)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path.cwd())
    ap.add_argument("--layers", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--render", action="store_true", help="rewrite the docs section from the saved result")
    args = ap.parse_args()
    os.chdir(args.root)
    if args.render:
        write_section("reranker_recipes", render(json.loads(Path("reports/bench/reranker_recipes.json").read_text())))
        return
    import pandas as pd

    from ragops.config import load_params
    from ragops.encode.onnx_reranker import FP32_LAYERS, OnnxCrossEncoder
    from ragops.eval.evaluation import qrels_for_split
    from ragops.eval.metrics import mean_metrics
    from ragops.retrieval.load import load_pipeline
    from ragops.retrieval.rerank import rerank_hits
    from ragops.training.artifacts import effective_reranker

    params = load_params()
    folder = effective_reranker(params)
    if folder is None:
        raise SystemExit("this build has no trained reranker: `dvc repro train_reranker` first")
    p = {**params, "rerank": {**params["rerank"], "backend": "torch"}}
    pipeline, _ = load_pipeline(p, [f"{m}_rerank" for m in FIRST])
    rr = pipeline.reranker
    qrels_all = pd.read_parquet(params["paths"]["qrels"])
    text = pd.read_parquet(params["paths"]["queries"]).set_index("query_id")["text"]
    result: dict = {"machine": machine(), "rerank": {k: params["rerank"][k] for k in ("n", "max_length", "weight")},
                    "recipe_2_layers": FP32_LAYERS, "recipes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fp32 = export_fp32(folder, work)
        recipes = {f"fp32_ffn_{k}": recipe_folder(fp32, work, k) for k in args.layers}
        recipes["fp32"] = recipe_folder(fp32, work, None)
        scorers = {name: OnnxCrossEncoder(f, int(params["rerank"]["max_length"])) for name, f in recipes.items()}
        sizes = {name: round((f / "model_int8.onnx").stat().st_size / 1e6, 1) for name, f in recipes.items()}
        for split in SPLITS:
            qrels = qrels_for_split(qrels_all, split)
            qids = sorted(qrels)
            texts = [str(text[q]) for q in qids]
            for first_mode in FIRST:
                first = pipeline.search_batch(texts, first_mode, None, fresh=True)
                lists = [[rr.passages[d] for d in h.ids[: rr.n]] for h in first]

                def ndcg(scores, first=first, qids=qids, qrels=qrels) -> float:
                    run = {q: rerank_hits(h, s, rr.weight).top(10).as_dict()
                           for q, h, s in zip(qids, first, scores, strict=True)}
                    return float(mean_metrics(qrels, run, ["ndcg@10"])["ndcg@10"])

                t0 = time.perf_counter()
                ref = [rr.score(q, ps) for q, ps in zip(texts, lists, strict=True)]
                key = f"{split}/{first_mode}_rerank"
                base = ndcg(ref)
                result["recipes"].setdefault("torch", {})[key] = {
                    "ndcg@10": round(base, 4), "ms": round((time.perf_counter() - t0) * 1000 / len(texts), 1)}
                for name, sc in scorers.items():
                    for q, ps in zip(texts[:5], lists[:5], strict=True):
                        sc.score(q, ps)  # warm
                    t0 = time.perf_counter()
                    got = [sc.score(q, ps) for q, ps in zip(texts, lists, strict=True)]
                    ms = (time.perf_counter() - t0) * 1000 / len(texts)
                    value = ndcg(got)
                    result["recipes"].setdefault(name, {})[key] = {
                        "deviation": round(zdev(got, ref), 4), "ndcg@10": round(value, 4),
                        "delta": round(value - base, 4), "ms": round(ms, 1)}
                    print(split, first_mode, name, result["recipes"][name][key], flush=True)
        result["size_mb"] = sizes
    write_result("reranker_recipes", result)
    write_section("reranker_recipes", render(result))
    print(json.dumps(result, indent=2))


def render(r: dict) -> str:
    keys = [f"{s}/{m}_rerank" for s in SPLITS for m in FIRST]
    head = " | ".join(k.replace("_rerank", "") for k in keys)
    rows = []
    for name, cells in r["recipes"].items():
        if name == "torch":
            row = " | ".join(f"{cells[k]['ndcg@10']:.4f}" for k in keys)
            rows.append(f"| PyTorch (nDCG@10) | {row} | {np.mean([cells[k]['ms'] for k in keys]):.1f} | |")
            continue
        fixed = {"fp32": "fp32 ONNX", "fp32_ffn_0": "all int8 (recipe 1)"}
        label = fixed[name] if name in fixed else f"first {name.rsplit('_', 1)[1]} layers' FFN fp32"
        if name == f"fp32_ffn_{r['recipe_2_layers']}":
            label += " (**recipe 2**, the default)"
        row = " | ".join(f"{cells[k]['deviation']:.3f} / {cells[k]['delta']:+.4f}" for k in keys)
        rows.append(f"| {label} | {row} | {np.mean([cells[k]['ms'] for k in keys]):.1f} | {r['size_mb'][name]:.0f} |")
    table = "\n".join(rows)
    rr = r["rerank"]
    return f"""## The reranker's int8 recipe (`python bench/reranker_recipes.py`)

{machine_line(r['machine'])}

The trained cross-encoder on each query's top {rr['n']} ({rr['max_length']} tokens a pair, weight {rr['weight']}),
PyTorch against its ONNX exports. Each cell: deviation from PyTorch's scores (mean |z-score difference| a
passage, within each list) / nDCG@10 minus PyTorch's. The recipe is chosen on dev's deviation; test is
reported. ms: the cross-encoder alone, one query's list a run, mean over the four columns.

| recipe | {head} | ms a query | MB |
|---|---|---|---|---|---|---|
{table}"""


if __name__ == "__main__":
    main()
