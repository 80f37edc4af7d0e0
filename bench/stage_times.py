"""Time every DVC stage of a full build from scratch on SciFact, against raw model encoding.

    python bench/stage_times.py [--mirror ../shared/datasets] [--skip-raw]

A temporary copy of the project gets an empty embedding cache, `ragops data fetch`, then each stage
through `dvc repro --single-item` in DAG order, timed. Then, in the same run:
- raw `SentenceTransformer.encode` over the same chunk texts (the model-bound floor; the embed stage
  should run at >= 90% of its throughput);
- a second `dvc repro` with nothing changed (no stage may run);
- a fusion-only change (only `evaluate` may run);
- an incremental build after changing 1% of the documents (only their chunks are re-embedded).
Writes reports/bench/stage_times.json and the `stage_times` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from _common import REPO, machine, machine_line, python_env, write_result, write_section

FILES = ["dvc.yaml", "params.yaml", "src", ".dvc/config", ".dvc/.gitignore", ".dvcignore",
         "data/raw/scifact.dvc", "data/raw/.gitignore"]


def sh(cmd: list[str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=python_env(), capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return time.perf_counter() - t0, proc.stdout + proc.stderr


def setup_project(root: Path, mirror: Path) -> None:
    for name in FILES:
        src, dst = REPO / name, root / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["embed"]["cache_dir"] = str(root / "embcache")
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["git", "init", "-q"], root)
    sh(["ragops", "data", "fetch", "--mirror", str(mirror)], root)


def raw_encode(root: Path) -> dict:
    """The floor: SentenceTransformer.encode over exactly the chunk texts, one call."""
    code = (
        "import json,time,pandas as pd;from ragops.encode.models import load_sentence_transformer as L;"
        "c=pd.read_parquet('data/processed/chunks.parquet');m=L('all-MiniLM-L6-v2');"
        "t=time.perf_counter();m.encode(c.text.tolist(),batch_size=64,normalize_embeddings=True);"
        "s=time.perf_counter()-t;print('RESULT',json.dumps({'seconds':s,'chunks':len(c),'tokens':int(c.n_tokens.sum())}))"
    )
    _, out = sh(["python", "-c", code], root)
    return json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[len("RESULT "):])


def change_one_percent(root: Path) -> int:
    """Rewrite the dataset with 1% of the documents' texts edited (appending a sentence)."""
    src = root / "data/raw/scifact"
    dst = root / "data/raw/scifact_edit"
    shutil.copytree(src, dst)
    lines = gzip.open(src / "corpus.jsonl.gz", "rt").read().splitlines()
    n = max(1, len(lines) // 100)
    for i in range(0, len(lines), len(lines) // n)[:n]:
        doc = json.loads(lines[i])
        doc["text"] += " This abstract was edited for the incremental benchmark."
        lines[i] = json.dumps(doc)
    with gzip.open(dst / "corpus.jsonl.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["data"]["source"] = "data/raw/scifact_edit"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", type=Path, default=REPO.parent / "shared" / "datasets")
    ap.add_argument("--skip-raw", action="store_true", help="skip the raw-encode comparison")
    ap.add_argument("--keep", action="store_true", help="keep the temporary project (its path is printed)")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ragops-bench-"))
    print(f"project copy: {root}", flush=True)
    try:
        setup_project(root, args.mirror.resolve())
        from ragops.orchestration import list_stages
        from ragops.timing import read_stage_times
        from ragops.training.artifacts import training_record

        # The DAG as dvc.yaml has it when the bench runs (training stages included, if any).
        stages = {s.name: round(sh(["dvc", "repro", "--single-item", s.name], root)[0], 2) for s in list_stages(root)}
        embed_stats = json.loads((root / "models/index/embed_stats.json").read_text())
        raw = None if args.skip_raw else raw_encode(root)
        noop_s, noop_out = sh(["dvc", "repro"], root)
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["fusion"]["alpha"] = round(1 - float(params["fusion"]["alpha"]), 2) or 0.4
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        fusion_s, fusion_out = sh(["dvc", "repro"], root)
        trained = {m: training_record(root / f"models/{m}") for m in ("embedder", "reranker")}
        n_changed = change_one_percent(root)
        incr_s, incr_out = sh(["dvc", "repro"], root)
        incr_stats = json.loads((root / "models/index/embed_stats.json").read_text())
        incr_ran = [ln.split("'")[1] for ln in incr_out.splitlines() if "Running stage" in ln]
        times = read_stage_times(root / ".cache/stage_times")
        result = {
            "machine": machine(),
            "stages_s": stages,
            "full_build_s": round(sum(stages.values()), 2),
            "non_embed_s": round(sum(v for k, v in stages.items() if k != "embed"), 2),
            "embed_stats": embed_stats,
            "raw_encode": raw,
            "embed_vs_raw_throughput": round(raw["seconds"] / stages["embed"], 3) if raw else None,
            "noop_repro_s": round(noop_s, 2),
            "noop_ran_stages": noop_out.count("Running stage"),
            "fusion_change_s": round(fusion_s, 2),
            "fusion_change_ran": [ln.split("'")[1] for ln in fusion_out.splitlines() if "Running stage" in ln],
            "incremental": {"docs_changed": n_changed, "seconds": round(incr_s, 2), "ran": incr_ran,
                            "stage_s": {s: times[s]["seconds"] for s in incr_ran if s in times},
                            "models_kept": {m: training_record(root / f"models/{m}") == rec
                                            for m, rec in trained.items()},
                            "fraction_of_full": round(incr_s / sum(stages.values()), 3),
                            "chunks_encoded": incr_stats["encoded"], "chunks_total": incr_stats["total"]},
        }
        write_result("stage_times", result)
        write_section("stage_times", render(result))
        print(json.dumps(result, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def render(r: dict) -> str:
    rows = "\n".join(f"| {s} | {t:.1f} |" for s, t in r["stages_s"].items())
    raw = r["raw_encode"]
    raw_line = (f"Raw `SentenceTransformer.encode` over the same {raw['chunks']:,} chunks "
                f"({raw['tokens']:,} tokens): {raw['seconds']:.1f} s; the embed stage ran at "
                f"**{r['embed_vs_raw_throughput']:.0%}** of that throughput (stage time includes process "
                "start, model load, cache writes).") if raw else "Raw encode: skipped."
    inc = r["incremental"]
    secs = inc.get("stage_s", {})
    stage_list = ", ".join(f"{s} {secs.get(s, float('nan')):.1f}" for s in inc.get("ran", [])) or "n/a"
    kept = ", ".join(f"{m} {'yes' if k else 'no'}" for m, k in inc.get("models_kept", {}).items()) or "n/a"
    return f"""## Pipeline stages, full SciFact build from scratch (`python bench/stage_times.py`)

{machine_line(r['machine'])}

| stage | seconds |
|---|---|
{rows}
| **total** | **{r['full_build_s']:.1f}** |
| everything but embed | {r['non_embed_s']:.1f} |

{raw_line}

- Second `dvc repro`, nothing changed: {r['noop_repro_s']:.1f} s, {r['noop_ran_stages']} stages run.
- Fusion params changed: {r['fusion_change_s']:.1f} s, re-ran {', '.join(r['fusion_change_ran']) or 'nothing'}.
- {inc['docs_changed']} documents (1%) edited: {inc['seconds']:.1f} s = {inc['fraction_of_full']:.1%} of the
  full build; {inc['chunks_encoded']} of {inc['chunks_total']:,} chunks re-embedded (the rest from the cache);
  stages re-run (seconds inside each): {stage_list}.
  Trained models kept (`train.retrain: on_train_change`; training key unchanged): {kept}."""


if __name__ == "__main__":
    main()
