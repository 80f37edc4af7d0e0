"""The fine-tuned embedder over training seeds, in fp32 and bf16: is bf16's quality inside fp32's seed spread?

    python bench/embedder_seeds.py [--project .] [--seeds 43 44] [--precisions fp32 bf16] [--backends onnx-int8 onnx]
                                   [--from-build [BACKEND ...]] [--render]

Each arm (seed, precision) trains the embedder as the ``train_embedder`` stage does (the same code, params.yaml's
``train.embedder`` with that ``precision``; the seed is the training's: its mined negatives, batch order and
dropout), then encodes the corpus with it (``embed_ft``), indexes it (``index_dense_ft``) and evaluates every mode
(``evaluate``) in a folder of its own that reads the rest of the built project in place (bench/_common.py
``point_at_build``; params.yaml's seed stays for those stages, so the index and the evaluation are the build's).
Each trained model is evaluated through every encoder backend of ``--backends`` (``embed.backend`` and
``embed.query_backend``; params.yaml's is ``onnx-int8``): the dev pools that choose the epoch are scored by PyTorch
(in fp32 before af92b35, in the training's precision since), the build's corpus by the int8 export. Each arm records
the int8 recipe of the build it ran in (``ragops.encode.onnx_encoder.RECIPE``; arms recorded without one ran under
recipe 1): the base vectors that mine the negatives and the int8 export both follow it, so arms of different
recipes are kept and summarized apart, as are arms of different trainings (the attention dropout and the AdamW:
``training``), and a rerun replaces only the arm of the same seed, precision, backend, recipe and training.
``--from-build`` adds the project's own build as an arm (its
training.json names the seed and precision), and its embedder re-encoded through each backend it names.
Results accumulate in reports/bench/embedder_seeds.json (a rerun replaces its arm) and the ``embedder_seeds``
section of docs/benchmarks.md: dev and test nDCG@10 of the modes that read the embedder, per arm and per
precision (mean, sample standard deviation, range). Dev decides; test is reported. About 20 min an arm in bf16
and 26 in fp32 on 2 cores (full SciFact). Run on an otherwise idle machine: the training seconds are recorded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import BENCH_DIR, machine, machine_line, point_at_build, python_env, write_result, write_section

from ragops.encode.onnx_encoder import RECIPE

MODES = ("dense_ft", "hybrid_ft", "hybrid_ft_rerank")
SPLITS = ("dev", "test")
STAGES = ("embed_ft", "index_dense_ft", "evaluate")
OWN = ("embedder", "embeddings_ft", "embed_stats_ft", "faiss_ft", "metrics", "per_query", "plots")


def training_recipe(training: dict) -> str:
    """What the training loop did beyond params.yaml's seed and precision, for arms recorded since 4e21a7b: the
    attention dropout (train.embedder.attention_dropout; null: the MiniLM's own 0.1), the fused AdamW, and since
    the hidden dropout's key (train.embedder.hidden_dropout) that one, with the passages in length-sorted groups."""
    config = training.get("config") or {}
    dropout = config.get("attention_dropout")
    recipe = f"attention dropout {0.1 if dropout is None else dropout}, fused AdamW"
    if "hidden_dropout" in config:
        hidden = config["hidden_dropout"]
        recipe += f", hidden dropout {0.1 if hidden is None else hidden}, grouped passages"
    return recipe


def arm_figures(metrics: dict, training: dict) -> dict:
    return {
        "training": training_recipe(training),
        "ndcg@10": {f"{s}/{m}": round(float(metrics[s][m]["ndcg@10"]), 4) for s in SPLITS for m in MODES
                    if m in metrics.get(s, {})},
        "best_epoch": training.get("best_epoch"),
        "dev_pool_by_epoch": [round(float(x), 4) for x in training.get("dev_ndcg@10_by_epoch", [])],
        "train_seconds": training.get("seconds"),
    }


def run_arms(project: Path, seed: int | None, precision: str | None, backends: list[str]) -> list[dict]:
    """Train one embedder (``seed`` and ``precision``; None: the build's own, not retrained), then for each of
    ``backends`` (``embed.backend`` and ``embed.query_backend`` of the corpus and query encoding) encode, index and
    evaluate in a temporary folder; one arm per backend."""
    with tempfile.TemporaryDirectory(prefix=f"seed{seed}-{precision}-") as tmp:
        root = Path(tmp)
        params = point_at_build(root, project)
        built_paths = yaml.safe_load((project / "params.yaml").read_text())["paths"]
        for key in OWN if seed is not None else OWN[1:]:  # what the stages write: the arm's own, never the build's
            params["paths"][key] = str(root / built_paths[key])
        build_seed = params["seed"]
        if precision is not None:
            params["train"]["embedder"]["precision"] = precision
        env = {**python_env(), "RAGOPS_RETRAIN": "1"}

        def stage(name: str, seed_now: int) -> None:
            params["seed"] = seed_now
            (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            t = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", f"ragops.stages.{name}"], cwd=root, env=env,
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{name} failed (seed {seed}, {precision}):\n{proc.stderr[-4000:]}")
            print(f"  {name}: {time.perf_counter() - t:.0f} s", flush=True)

        if seed is not None:
            stage("train_embedder", seed)
        training = json.loads((Path(params["paths"]["embedder"]) / "training.json").read_text())
        if not training.get("trained"):
            raise SystemExit(f"the embedder was not trained: {training}")
        arms = []
        for backend in backends:
            params["embed"]["backend"] = params["embed"]["query_backend"] = backend
            for name in STAGES:
                stage(name, build_seed)
            metrics = json.loads(Path(params["paths"]["metrics"]).read_text())
            arms.append({"seed": int(training["seed"]), "precision": training["precision"], "backend": backend,
                         "recipe": RECIPE, "source": "trained here" if seed is not None else "the project's build",
                         **arm_figures(metrics, training)})
        return arms


def build_arm(project: Path) -> dict:
    params = yaml.safe_load((project / "params.yaml").read_text())
    training = json.loads((project / params["paths"]["embedder"] / "training.json").read_text())
    metrics = json.loads((project / params["paths"]["metrics"]).read_text())
    return {"seed": int(training["seed"]), "precision": training["precision"], "backend": params["embed"]["backend"],
            "recipe": RECIPE, "source": "the project's build", **arm_figures(metrics, training)}


def recipe(arm: dict) -> int:
    """The int8 recipe of the build the arm ran in (arms recorded before the field: recipe 1)."""
    return int(arm.get("recipe", 1))


def group(arm: dict) -> str:
    # arms recorded before the training field trained with the MiniLM's attention dropout and torch's per-tensor AdamW
    training = arm.get("training", "attention dropout 0.1, per-tensor AdamW")
    return f"{arm['precision']}, {arm['backend']}, recipe {recipe(arm)}, {training}"


def summary(arms: list[dict]) -> dict:
    """Per (precision, encoder backend, int8 recipe): mean, sample standard deviation and range of each figure
    over seeds."""
    out: dict = {}
    for name in sorted({group(a) for a in arms}):
        rows = [a for a in arms if group(a) == name]
        out[name] = {}
        for key in rows[0]["ndcg@10"]:
            vals = [a["ndcg@10"][key] for a in rows if key in a["ndcg@10"]]
            out[name][key] = {"n": len(vals), "mean": round(statistics.fmean(vals), 4),
                              "sd": round(statistics.stdev(vals), 4) if len(vals) > 1 else None,
                              "min": min(vals), "max": max(vals)}
    return out


def render(result: dict) -> None:
    arms = sorted(result["arms"], key=lambda a: (-recipe(a), a["backend"] != "onnx-int8", group(a), a["seed"]))
    cols = [f"{s}/{m}" for s in SPLITS for m in MODES]
    lines = ["## The embedder over training seeds, fp32 and bf16 (`python bench/embedder_seeds.py`)", "",
             machine_line(result["machine"]), "",
             "Each arm trains the embedder with its seed and precision (or reads the build's, \"the build\"), then "
             "encodes the corpus and the queries with it through the encoder backend named (params.yaml's is "
             "`onnx-int8`), re-indexes and evaluates every mode (full SciFact; the rest of the build read in place). "
             "The dev pool scores choose the epoch (PyTorch on each dev query's 10 base candidates: fp32 before "
             "af92b35, the training's precision since). The recipe is the build's int8 recipe (its base vectors mine "
             "the negatives; recipe 2 since 2026-12-05), then the training's attention dropout and AdamW (the "
             "embedder without attention dropout and the fused AdamW since 4e21a7b): arms of different recipes or "
             "trainings are not comparable. nDCG@10:",
             "",
             "| precision, backend, recipe, training | seed | " + " | ".join(cols) + " | dev pool by epoch | train s |",
             "|---|---:|" + "---:|" * len(cols) + "---|---:|"]
    for a in arms:
        figs = " | ".join(f"{a['ndcg@10'].get(c, float('nan')):.4f}" for c in cols)
        pool = " / ".join(f"{x:.4f}" for x in a["dev_pool_by_epoch"])
        seed = f"{a['seed']}" + (" (the build)" if a["source"] == "the project's build" else "")
        lines.append(f"| {group(a)} | {seed} | {figs} | {pool} | {a['train_seconds']:.0f} |")
    lines += ["", "| precision, backend, recipe, training | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name, stats in result["summary"].items():
        cells = []
        for c in cols:
            st = stats.get(c)
            spread = f" ± {st['sd']:.4f} ({st['min']:.4f}-{st['max']:.4f})" if st and st["sd"] is not None else ""
            cells.append("" if st is None else f"{st['mean']:.4f}{spread}, n={st['n']}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Mean ± sample standard deviation (range) over the seeds of each precision, backend, recipe and "
              "training. The "
              "train seconds are the training loop's own (training.json), on the machine above with nothing else "
              "running."]
    write_section("embedder_seeds", "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, default=Path("."))
    ap.add_argument("--seeds", type=int, nargs="*", default=[43, 44])
    ap.add_argument("--precisions", nargs="*", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--backends", nargs="*", default=["onnx-int8"], choices=["onnx-int8", "onnx", "torch"],
                    help="encoder backends each trained model is evaluated through (one training, one arm each)")
    ap.add_argument("--from-build", nargs="*", default=None, metavar="BACKEND",
                    help="add the project's own embedder as arms: its build as it is, and re-encoded through each "
                         "BACKEND named")
    ap.add_argument("--render", action="store_true", help="only re-render docs from reports/bench/embedder_seeds.json")
    args = ap.parse_args()
    path = BENCH_DIR / "embedder_seeds.json"
    result = json.loads(path.read_text()) if path.exists() else {"arms": []}
    project = args.project.resolve()

    def add(arm: dict) -> None:
        same = (arm["seed"], group(arm))
        result["arms"] = [a for a in result["arms"] if (a["seed"], group(a)) != same]
        result["arms"].append(arm)
        result["summary"] = summary(result["arms"])
        result["machine"] = machine()
        write_result("embedder_seeds", result)
        render(result)

    if not args.render:
        if args.from_build is not None:
            add(build_arm(project))
            if args.from_build:
                print("the build's embedder", flush=True)
                for arm in run_arms(project, None, None, args.from_build):
                    add(arm)
        for seed in args.seeds:
            for precision in args.precisions:
                print(f"seed {seed}, {precision}", flush=True)
                for arm in run_arms(project, seed, precision, args.backends):
                    add(arm)
    result["summary"] = summary(result["arms"])
    write_result("embedder_seeds", result)
    render(result)
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
