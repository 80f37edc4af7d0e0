"""The document encoder's backend, swapped in a built project: encode time and every mode's figures.

    python bench/doc_backend.py [--project .] [--backend torch]

The project must be built (`dvc repro`). In a folder of its own that reads the project's outputs in place
(bench/_common.point_at_build), the stages that depend on the document vectors run again with
``embed.backend`` set to ``--backend`` (default: torch if the project uses onnx-int8, else onnx-int8), the
trained models kept exactly as the project trained them: embed, index_dense, embed_ft, index_dense_ft,
evaluate. So the comparison isolates the encoder: same chunks, same fine-tuned embedder and reranker, same
fusion; only the document vectors (and the FAISS indexes built from them) differ. Every chunk is encoded
into a fresh embedding cache and timed (``--keep-cache``: through the project's cache, encoding only what
it lacks). Writes reports/bench/doc_backend.json and the `doc_backend` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, machine, machine_line, point_at_build, python_env, write_result, write_section

STAGES = ("embed", "index_dense", "embed_ft", "index_dense_ft", "evaluate")
# what those stages write: under the bench's own folder, never the project's
OUTPUTS = {"embeddings": "models/index/embeddings.npy", "embed_stats": "models/index/embed_stats.json",
           "faiss": "models/index/faiss", "embeddings_ft": "models/index_ft/embeddings.npy",
           "embed_stats_ft": "models/index_ft/embed_stats.json", "faiss_ft": "models/index_ft/faiss",
           "metrics": "reports/metrics.json", "per_query": "reports/per_query.csv", "plots": "reports/plots"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, default=REPO)
    ap.add_argument("--backend", default=None, help="the backend to compare with the project's own")
    ap.add_argument("--keep-cache", action="store_true",
                    help="read the other backend's vectors from the project's embedding cache where it has them "
                         "(default: a fresh cache, so every chunk is encoded and timed)")
    args = ap.parse_args()
    import yaml

    project = args.project.resolve()
    params = yaml.safe_load((project / "params.yaml").read_text())
    own = str(params["embed"].get("backend", "torch"))
    other = args.backend or ("torch" if own == "onnx-int8" else "onnx-int8")
    reference = json.loads((project / params["paths"]["metrics"]).read_text())
    own_stats = {k: json.loads((project / params["paths"][k]).read_text()) for k in ("embed_stats", "embed_stats_ft")}
    root = Path(tempfile.mkdtemp(prefix="ragops-backend-"))
    params = point_at_build(root, project)
    for key, rel in OUTPUTS.items():
        params["paths"][key] = str(root / rel)
    cache = Path(params["embed"]["cache_dir"]).expanduser()
    params["embed"]["cache_dir"] = str((cache if cache.is_absolute() else project / cache) if args.keep_cache
                                       else root / "embeddings-cache")
    params["embed"]["backend"] = other
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    seconds = {}
    for stage in STAGES:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", f"ragops.stages.{stage}"], cwd=root, env=python_env(),
                              capture_output=True, text=True)
        seconds[stage] = round(time.perf_counter() - t0, 1)
        if proc.returncode:
            sys.exit(f"{stage} failed:\n{proc.stderr[-4000:]}")
        print(f"{stage}: {seconds[stage]} s", flush=True)
    metrics = json.loads((root / OUTPUTS["metrics"]).read_text())
    stats = {k: json.loads((root / OUTPUTS[k]).read_text()) for k in ("embed_stats", "embed_stats_ft")}
    result = {"machine": machine(), "project": str(project), "own_backend": own, "other_backend": other,
              "stage_seconds": seconds, "embed_stats": {own: own_stats, other: stats},
              "metrics": {own: {s: reference[s] for s in ("dev", "test")},
                          other: {s: metrics[s] for s in ("dev", "test")}}}
    write_result("doc_backend", result)
    write_section("doc_backend", markdown(result))
    print(markdown(result))


def markdown(r: dict) -> str:
    own, other = r["own_backend"], r["other_backend"]
    a, b = r["metrics"][own], r["metrics"][other]

    def encode_line(backend: str) -> str:
        parts = []
        for key, name in (("embed_stats", "base"), ("embed_stats_ft", "fine-tuned")):
            s = r["embed_stats"][backend][key]
            parts.append(f"{name} {s['encoded']:,} chunks encoded in {s['seconds']:.0f} s"
                         f" ({s['total'] - s['encoded']:,} from the cache)")
        return f"`{backend}`: " + "; ".join(parts)

    lines = [
        f"## Document encoder backend: `{own}` (the project's) vs `{other}` (`python bench/doc_backend.py`)",
        "",
        machine_line(r["machine"]),
        "",
        "The same built project, the same trained models and fusion; only the document vectors (and the FAISS "
        "indexes built from them) come from the other backend. Queries are encoded by `embed.query_backend` "
        "in both. Encoding as each build recorded it in its `embed_stats` (vectors taken from the encode "
        "cache count 0 s; the other backend's encode is fresh unless `--keep-cache`):",
        "",
        f"- {encode_line(own)}",
        f"- {encode_line(other)}",
        "",
        f"nDCG@10 (and recall@100) by mode, `{own}` → `{other}`:",
        "",
        "| split | mode | nDCG@10 | Δ | recall@100 | Δ |",
        "|---|---|---:|---:|---:|---:|",
    ]
    worst = 0.0
    for split in ("dev", "test"):
        for mode in a[split]:
            x, y = a[split][mode], b[split][mode]
            d = y["ndcg@10"] - x["ndcg@10"]
            worst = min(worst, d)
            lines.append(f"| {split} | {mode} | {x['ndcg@10']:.4f} → {y['ndcg@10']:.4f} | {d:+.4f} | "
                         f"{x['recall@100']:.4f} → {y['recall@100']:.4f} | {y['recall@100'] - x['recall@100']:+.4f} |")
    lines += ["", f"Largest nDCG@10 drop from `{own}` to `{other}` over every split and mode: {worst:+.4f}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
