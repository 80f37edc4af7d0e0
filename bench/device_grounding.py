"""The grounding stages on a GPU against the CPU build: times and the figures each build reports.

    python bench/device_grounding.py

Reads what bench/device/grounding_stages.sh left on the GPU machine (reports/bench/device/: gpu.txt and the two
stages' reports), the CPU build's reports (reports/grounding.json, reports/grounding_pretrain.json: the committed
build) and its stage times (reports/bench/stage_times.json: a full build from scratch on 2 cores). Computes
nothing itself: it lines the two up. Writes reports/bench/device_grounding.json and the `device_grounding`
section of docs/benchmarks.md.
"""

from __future__ import annotations

import json
import re

from _common import REPO, write_result, write_section

DEVICE = REPO / "reports" / "bench" / "device"
STAGES = ("grounding_pretrain", "grounding")
# the held-out test figures of the trained scorer (300 SciFact test claims, 339 pairs) and of the pretraining
SCORER = ("auroc", "auroc_support_vs_contradict", "auroc_support_vs_nei", "f1")


def device_run() -> dict:
    text = (DEVICE / "gpu.txt").read_text()
    seconds = {m[1]: float(m[3]) for m in re.finditer(r"^(\w+) rc=(\d+) seconds=([\d.]+)$", text, re.M)
               if m[2] == "0"}
    lines = text.splitlines()
    return {"gpu": lines[1].strip(), "software": lines[2].strip(), "stage_s": seconds}


def figures(gpu: dict, cpu: dict, gpu_pre: dict, cpu_pre: dict) -> list[tuple[str, float, float]]:
    rows = [(f"trained scorer, test {k}", cpu["scorers"]["trained"][k], gpu["scorers"]["trained"][k]) for k in SCORER]
    rows.append(("trained scorer, train-fold stack AUROC", cpu["train"]["trained"]["stack_cv_auroc"],
                 gpu["train"]["trained"]["stack_cv_auroc"]))
    rows += [(f"embedding scorer (no training), test {k}", cpu["scorers"]["embedding"][k],
              gpu["scorers"]["embedding"][k]) for k in ("auroc", "f1")]
    for source in sorted(cpu_pre["holdout"]):
        rows.append((f"pretraining held-out AUROC, {source}", cpu_pre["holdout"][source]["auroc"],
                     gpu_pre["holdout"][source]["auroc"]))
    return rows


def main() -> None:
    run = device_run()
    gpu = json.loads((DEVICE / "grounding.json").read_text())
    gpu_pre = json.loads((DEVICE / "grounding_pretrain.json").read_text())
    cpu = json.loads((REPO / "reports" / "grounding.json").read_text())
    cpu_pre = json.loads((REPO / "reports" / "grounding_pretrain.json").read_text())
    times = json.loads((REPO / "reports" / "bench" / "stage_times.json").read_text())
    cpu_s = {s: times["stages_s"][s] for s in STAGES}
    training = {"grounding_pretrain": (cpu_pre["training"]["seconds"], gpu_pre["training"]["seconds"]),
                "grounding": (cpu["seconds"]["trained_fit"], gpu["seconds"]["trained_fit"])}
    rows = figures(gpu, cpu, gpu_pre, cpu_pre)
    result = {"device": run, "cpu_machine": times["machine"], "cpu_stage_s": cpu_s, "training_s": training,
              "figures": [{"figure": f, "cpu": c, "gpu": g} for f, c, g in rows]}
    write_result("device_grounding", result)

    m = times["machine"]
    lines = [
        "## The grounding stages on a GPU (`bench/device/grounding_stages.sh`, `python bench/device_grounding.py`)",
        "",
        f"GPU: {run['gpu']} ({run['software']}), 16 CPU cores beside it; `grounding.cross_encoder.device: cuda`, "
        f"`embed.device: cuda`. CPU: the full build from scratch on {m['cpu']}, {m['cores']} cores "
        f"(`bench/stage_times.py`, commit {m['git']}); the CPU training seconds are the committed reports' own "
        "(the build of the same code before it). Same data (full SciFact claims, the nli/ pairs), same "
        "params and seed otherwise.",
        "",
        "| stage | 2 CPU cores, s | GPU, s | of which training: CPU s | GPU s |",
        "|---|---:|---:|---:|---:|",
    ]
    for s in STAGES:
        cpu_t, gpu_t = training[s]
        lines.append(f"| {s} | {cpu_s[s]:.0f} | {run['stage_s'][s]:.0f} | {cpu_t:.0f} | {gpu_t:.1f} |")
    total_cpu, total_gpu = sum(cpu_s.values()), sum(run["stage_s"].values())
    lines += [f"| **both** | **{total_cpu:.0f}** | **{total_gpu:.0f}** | | |", "",
              "What each build reports (held-out figures; one seed each):", "",
              "| figure | CPU build | GPU build | difference |", "|---|---:|---:|---:|"]
    lines += [f"| {f} | {c:.4f} | {g:.4f} | {g - c:+.4f} |" for f, c, g in rows]
    lines += ["", "The scorers that train nothing (lexical, embedding, the logistic model's grid) give the same "
              "figures on both. The cross-encoders differ: the same seed on another device's arithmetic trains "
              "another model, and the differences go both ways; one run each, so this does not say that either "
              f"device trains the better scorer, only that the GPU ran the same stages {total_cpu / total_gpu:.0f} "
              "times faster. "
              "The retrieval models' training (train_embedder, train_reranker: half of the build from scratch) "
              "ran on the CPU in this run; since 7f56ccb `train.embedder.device` and `train.reranker.device` "
              "move it to a GPU too (not yet timed on one)."]
    write_section("device_grounding", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
