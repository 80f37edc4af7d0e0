"""A first build without training: how long `make repro` takes on SciFact with the training switched off, and what
it gives up against the full build.

    python bench/quick_build.py [--mirror ../shared/datasets] [--keep]

A clean clone of HEAD, as bench/stage_times.py makes it (no outputs, no DVC cache, an empty embedding cache, an
MLflow store of its own), with the four training switches of params.yaml set to false (:data:`OFF`: the
fine-tuned embedder, the trained reranker, the grounding cross-encoder's pretraining and its fine-tuning), then
`ragops data fetch` and one `dvc repro`, timed. Reports the wall time, each stage's own time, and the headline
figures against this checkout's full build (reports/metrics.json): test nDCG@10 and recall@100 of every mode the
build has, the grounding scorers' AUROC (also SUPPORT against CONTRADICT) and F1 on claims_dev, and the extractive
answers' citation precision and support rate.
Writes reports/bench/quick_build.json and the `quick_build` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml
from _common import REPO, machine, machine_line, machine_speed, speed_line, write_result, write_section
from stage_times import sh, temporary_clone

# The switches that skip training (README, "Training"); everything else is params.yaml as committed.
OFF = ("train.embedder.enabled", "train.reranker.enabled", "grounding.pretrain.enabled",
       "grounding.cross_encoder.enabled")


def switch_off(params: dict, keys: tuple[str, ...] = OFF) -> dict:
    for key in keys:
        *path, last = key.split(".")
        section = params
        for name in path:
            section = section[name]
        section[last] = False
    return params


def headline(metrics: dict) -> dict:
    """The figures compared: retrieval per test mode, grounding per scorer, the extractive answers."""
    test = metrics.get("test", {})
    out = {f"test/{mode}/{m}": row[m] for mode, row in test.items() for m in ("ndcg@10", "recall@100")}
    out |= {f"grounding/{s}/{m}": row[m] for s, row in metrics.get("grounding", {}).items()
            for m in ("auroc", "auroc_support_vs_contradict", "f1") if m in row}
    out |= {f"rag/extractive/{m}": metrics["rag"]["extractive"][m] for m in ("citation_precision", "support_rate")
            if m in metrics.get("rag", {}).get("extractive", {})}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", type=Path, default=REPO.parent / "shared" / "datasets")
    ap.add_argument("--keep", action="store_true", help="keep the temporary project (its path is printed)")
    args = ap.parse_args()
    speed = machine_speed()
    with temporary_clone("ragops-bench-quick-", args.keep) as (root, commit):
        params = switch_off(yaml.safe_load((root / "params.yaml").read_text()))
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        fetch_s = sh(["ragops", "data", "fetch", "--mirror", str(args.mirror.resolve())], root)[0]
        build_s, out = sh(["dvc", "repro"], root)
        from ragops.timing import read_stage_times

        own = {k: round(v["seconds"], 1) for k, v in read_stage_times(root / ".cache/stage_times").items()}
        quick = headline(json.loads((root / "reports/metrics.json").read_text()))
        full = headline(json.loads((REPO / "reports/metrics.json").read_text()))
        result = {"machine": machine(), "machine_speed": speed, "commit": commit, "switched_off": list(OFF),
                  "data_fetch_s": round(fetch_s, 1), "build_s": round(build_s, 1),
                  "ran": [ln.split("'")[1] for ln in out.splitlines() if ln.startswith("Running stage")],
                  "stage_own_s": own, "quick": quick, "full": full}
        write_result("quick_build", result)
        write_section("quick_build", render(result))
        print(json.dumps(result, indent=2))


def render(r: dict) -> str:
    total = r["data_fetch_s"] + r["build_s"]
    slow = sorted(r["stage_own_s"].items(), key=lambda kv: -kv[1])[:6]
    rows = "\n".join(f"| {k} | {r['quick'][k]:.4f} | {r['full'][k]:.4f} | {r['quick'][k] - r['full'][k]:+.4f} |"
                     if k in r["quick"] else f"| {k} | (not built) | {r['full'][k]:.4f} | |" for k in r["full"])
    return f"""## A first build without training (`python bench/quick_build.py`)

{machine_line(r['machine'])}

{speed_line(r['machine_speed'])}

A clean clone of commit {r['commit']} with {', '.join(f'`{k}: false`' for k in r['switched_off'])},
then `ragops data fetch` and `dvc repro` from scratch: **{total / 60:.1f} min** ({total:.0f} s). The slowest stages
(their own time): {', '.join(f'{k} {v:.0f} s' for k, v in slow)}. Against the full build of this checkout
(reports/metrics.json), which trains all four (the modes a build without training has not are left blank):

| figure | without training | full build | difference |
|---|---:|---:|---:|
{rows}"""


if __name__ == "__main__":
    main()
