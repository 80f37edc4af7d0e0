"""An incremental rebuild on a copy of the built project: 1% of the documents edited, `dvc repro`.

    python bench/incremental.py [--project .]

The project must be built (`dvc repro`). Its copy (outputs, DVC cache, embedding cache, MLflow store)
gets 1% of its documents edited exactly as bench/stage_times.py does, then one `dvc repro`, timed. The
full build it is compared with is the sum of the stage times the project recorded
(`.cache/stage_times/`, each stage's last real execution) — name the stages that ran from caches there.
Writes reports/bench/incremental.json and the `incremental` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from _common import REPO, machine, machine_line, write_result, write_section
from stage_times import change_one_percent, sh

SKIP = {".venv", ".git", "tmp"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, default=REPO)
    args = ap.parse_args()
    from ragops.timing import read_stage_times
    from ragops.training.artifacts import training_record

    src = args.project.resolve()
    full = read_stage_times(src / ".cache/stage_times")
    root = Path(tempfile.mkdtemp(prefix="ragops-incr-")) / "project"
    try:
        t0 = time.perf_counter()
        shutil.copytree(src, root, symlinks=True, ignore=lambda d, names: [n for n in names if n in SKIP])
        copy_s = time.perf_counter() - t0
        sh(["git", "init", "-q"], root)
        trained = {m: training_record(root / f"models/{m}") for m in ("embedder", "reranker")}
        n_changed = change_one_percent(root)
        seconds, out = sh(["dvc", "repro"], root)
        ran = [ln.split("'")[1] for ln in out.splitlines() if "Running stage" in ln]
        times = read_stage_times(root / ".cache/stage_times")
        stats = json.loads((root / "models/index/embed_stats.json").read_text())
        full_s = sum(t["seconds"] for t in full.values())
        result = {
            "machine": machine(),
            "docs_changed": n_changed,
            "seconds": round(seconds, 2),
            "ran": ran,
            "stage_s": {s: times[s]["seconds"] for s in ran if s in times},
            "not_run": sorted(set(full) - set(ran)),
            "models_kept": {m: training_record(root / f"models/{m}") == rec for m, rec in trained.items()},
            "chunks_encoded": stats["encoded"],
            "chunks_total": stats["total"],
            "full_build_stage_s": {s: t["seconds"] for s, t in full.items()},
            "full_build_s": round(full_s, 2),
            "fraction_of_full": round(seconds / full_s, 4),
            "copy_s": round(copy_s, 1),
        }
        write_result("incremental", result)
        write_section("incremental", render(result))
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


def render(r: dict) -> str:
    full = ", ".join(f"{s} {t:.1f}" for s, t in sorted(r["full_build_stage_s"].items(), key=lambda x: -x[1]))
    ran = ", ".join(f"{s} {r['stage_s'].get(s, float('nan')):.1f}" for s in r["ran"])
    kept = ", ".join(f"{m} {'yes' if k else 'no'}" for m, k in r["models_kept"].items())
    return f"""## Incremental rebuild: 1% of the documents edited (`python bench/incremental.py`)

{machine_line(r['machine'])}

A copy of the built full-SciFact project; {r['docs_changed']} documents (1%) get a sentence appended (as in
bench/stage_times.py), then one `dvc repro`: **{r['seconds']:.1f} s = {r['fraction_of_full']:.1%} of the full build**
({r['full_build_s']:.0f} s: the sum of the stage times the project recorded for the last real execution of
each stage — {full}; a stage whose last execution read its cache, such as embed here, counts at that
time, so this understates a build from scratch and overstates the fraction).
{r['chunks_encoded']} of {r['chunks_total']:,} chunks were re-embedded (the rest came from the embedding cache).

Stages re-run (seconds inside each): {ran}. Not re-run: {', '.join(r['not_run']) or 'none'}.
Trained models kept (`train.retrain: on_train_change`: the training key did not change): {kept}."""


if __name__ == "__main__":
    main()
