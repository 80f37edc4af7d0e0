"""Time every DVC stage of a full build from scratch on SciFact: a clean clone of the commit, as `make repro` runs it.

    python bench/stage_times.py [--mirror ../shared/datasets] [--raw] [--incremental] [--keep]

`git clone` of this repository's HEAD into a temporary folder (no outputs, no DVC cache, an empty embedding
cache, its own MLflow store, an empty HOME: no ONNX export cached), `ragops data fetch`, then each stage through
`dvc repro --single-item` in DAG order, timed; the stages import the clone's own `src` (PYTHONPATH), so the code
measured is the commit's.
Then, in the same run:
- the build's metrics against the committed ones (this checkout's reports/metrics.json, checked against
  the commit's dvc.lock): every quality figure equal, or the largest difference; and then whether each trained
  model's weight files have this checkout's bytes;
- a second `dvc repro` with nothing changed (no stage may run);
- a fusion-only change (only what reads fusion may run);
- with --raw: raw `SentenceTransformer.encode` over the same chunk texts (the PyTorch floor);
- with --incremental: a build after changing 1% of the documents (bench/incremental.py measures it too).
Writes reports/bench/stage_times.json and the `stage_times` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from _common import REPO, machine, machine_line, machine_speed, python_env, speed_line, write_result, write_section


# Figures that measure the machine, not the pipeline: left out of the reproducibility comparison.
def volatile(key: str) -> bool:
    last = key.rsplit("/", 1)[-1]
    return "latency" in last or "second" in last or "time" in last or last.endswith("_s")


def sh(cmd: list[str], cwd: Path) -> tuple[float, str]:
    # the clone's code, not this checkout's; a new HOME beside it, so what a user's caches under ~ would hold
    # (the ONNX exports in ~/.cache/ragops/onnx, DVC's site cache) starts empty as on a new machine
    home = cwd.parent / "home"
    home.mkdir(exist_ok=True)
    env = {**python_env(), "PYTHONPATH": str(cwd / "src"), "HOME": str(home)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return time.perf_counter() - t0, proc.stdout + proc.stderr


def clone_project(root: Path) -> str:
    """A clean clone of HEAD (what CI and a new user get); returns its commit."""
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(root)], check=True)
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                          check=True).stdout.strip()


@contextmanager
def temporary_clone(prefix: str, keep: bool) -> Iterator[tuple[Path, str]]:
    """(folder, commit) of a clean clone of HEAD in a new temporary folder, removed afterwards unless ``keep``."""
    root = Path(tempfile.mkdtemp(prefix=prefix)) / "project"
    print(f"project clone: {root}", flush=True)
    try:
        yield root, clone_project(root)
    finally:
        if not keep:
            shutil.rmtree(root.parent, ignore_errors=True)


def flatten(tree: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[name] = float(value)
    return out


def compare_metrics(built: Path, root: Path) -> dict:
    """The clone's metrics against this checkout's reports/metrics.json, used as the reference only when its
    md5 is the one the clone's committed dvc.lock records (the checkout's outputs are the commit's)."""
    ref = REPO / "reports/metrics.json"
    # the lock as committed: the build has rewritten the clone's dvc.lock by now
    shown = subprocess.run(["git", "show", "HEAD:dvc.lock"], cwd=root, capture_output=True, text=True)
    lock = yaml.safe_load(shown.stdout) if shown.returncode == 0 else {}
    locked = {o["path"]: o.get("md5") for s in lock.get("stages", {}).values() for o in s.get("outs", [])}
    md5 = hashlib.md5(ref.read_bytes()).hexdigest() if ref.exists() else None
    if md5 is None or locked.get("reports/metrics.json") != md5:
        return {"reference": None, "why": "this checkout's reports/metrics.json is not the commit's"}
    want = {k: v for k, v in flatten(json.loads(ref.read_text())).items() if not volatile(k)}
    got = flatten(json.loads(built.read_text()))
    diffs = {k: round(got[k] - v, 6) for k, v in want.items() if k in got and not math.isclose(got[k], v, abs_tol=0)}
    missing = sorted(k for k in want if k not in got)
    largest = sorted(diffs.items(), key=lambda kv: -abs(kv[1]))[:10]
    return {"reference": "reports/metrics.json (md5 as in dvc.lock)", "compared": len(want), "equal": len(want)
            - len(diffs) - len(missing), "missing": missing, "max_abs_diff": max(map(abs, diffs.values()), default=0.0),
            "largest": dict(largest)}


def same_weights(root: Path) -> dict[str, bool | None]:
    """Per trained-model folder of the build: whether every weight file (``*.safetensors``, the grounding
    cross-encoder's ``*.onnx``) has the same bytes as this checkout's (None where either side has none)."""
    out: dict[str, bool | None] = {}
    for folder in ("models/embedder", "models/reranker", "models/grounding_pretrain", "models/grounding"):
        files = {}
        for side in (root, REPO):
            found = sorted(f for f in (side / folder).rglob("*") if f.suffix in {".safetensors", ".onnx"})
            files[side] = {str(f.relative_to(side)): hashlib.md5(f.read_bytes()).hexdigest() for f in found}
        out[folder] = files[root] == files[REPO] if files[root] and files[REPO] else None
    return out


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
    ap.add_argument("--raw", action="store_true", help="also time raw SentenceTransformer.encode over the chunks")
    ap.add_argument("--incremental", action="store_true", help="also rebuild after editing 1%% of the documents")
    ap.add_argument("--keep", action="store_true", help="keep the temporary project (its path is printed)")
    args = ap.parse_args()
    speed = machine_speed()
    with temporary_clone("ragops-bench-", args.keep) as (root, commit):
        fetch_s = round(sh(["ragops", "data", "fetch", "--mirror", str(args.mirror.resolve())], root)[0], 2)
        from ragops.orchestration import list_stages
        from ragops.timing import read_stage_times
        from ragops.training.artifacts import training_record

        stages = {}
        for s in list_stages(root):  # the DAG as the commit's dvc.yaml has it, in dependency order
            stages[s.name] = round(sh(["dvc", "repro", "--single-item", s.name], root)[0], 2)
            print(f"{s.name}: {stages[s.name]:.1f} s", flush=True)
        own = {k: round(v["seconds"], 2) for k, v in read_stage_times(root / ".cache/stage_times").items()}
        embed_stats = json.loads((root / "models/index/embed_stats.json").read_text())
        reproduced = compare_metrics(root / "reports/metrics.json", root)
        if reproduced.get("reference"):  # this checkout's outputs are the commit's: so should its models be
            reproduced["same_weights"] = same_weights(root)
        raw = raw_encode(root) if args.raw else None
        noop_s, noop_out = sh(["dvc", "repro"], root)
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["fusion"]["alpha"] = round(1 - float(params["fusion"]["alpha"]), 2) or 0.4
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        fusion_s, fusion_out = sh(["dvc", "repro"], root)
        result = {
            "machine": machine(),
            "machine_speed": speed,
            "commit": commit,
            "data_fetch_s": fetch_s,
            "stages_s": stages,
            "stage_own_s": own,
            "full_build_s": round(fetch_s + sum(stages.values()), 2),
            "training_s": round(sum(v for k, v in stages.items() if k.startswith(("train_", "grounding"))), 2),
            "embed_stats": embed_stats,
            "reproduced": reproduced,
            "raw_encode": raw,
            "embed_vs_raw_throughput": round(raw["seconds"] / stages["embed"], 3) if raw else None,
            "noop_repro_s": round(noop_s, 2),
            "noop_ran_stages": noop_out.count("Running stage"),
            "fusion_change_s": round(fusion_s, 2),
            "fusion_change_ran": [ln.split("'")[1] for ln in fusion_out.splitlines() if "Running stage" in ln],
            "incremental": None,
        }
        write_result("stage_times", result)  # kept even if the optional part below fails
        if args.incremental:
            trained = {m: training_record(root / f"models/{m}") for m in ("embedder", "reranker")}
            n_changed = change_one_percent(root)
            incr_s, incr_out = sh(["dvc", "repro"], root)
            incr_stats = json.loads((root / "models/index/embed_stats.json").read_text())
            incr_ran = [ln.split("'")[1] for ln in incr_out.splitlines() if "Running stage" in ln]
            times = read_stage_times(root / ".cache/stage_times")
            result["incremental"] = {
                "docs_changed": n_changed, "seconds": round(incr_s, 2), "ran": incr_ran,
                "stage_s": {s: times[s]["seconds"] for s in incr_ran if s in times},
                "models_kept": {m: training_record(root / f"models/{m}") == rec for m, rec in trained.items()},
                "fraction_of_full": round(incr_s / result["full_build_s"], 3),
                "chunks_encoded": incr_stats["encoded"], "chunks_total": incr_stats["total"]}
            write_result("stage_times", result)
        write_section("stage_times", render(result))
        print(json.dumps(result, indent=2))


def render(r: dict) -> str:
    own = r.get("stage_own_s", {})
    rows = "\n".join(f"| {s} | {t:.1f} | {own[s]:.1f} |" if s in own else f"| {s} | {t:.1f} | |"
                     for s, t in r["stages_s"].items())
    raw = r["raw_encode"]
    raw_line = (f"\n\nRaw `SentenceTransformer.encode` (PyTorch) over the same {raw['chunks']:,} chunks "
                f"({raw['tokens']:,} tokens): {raw['seconds']:.1f} s; the embed stage "
                f"({r['embed_stats'].get('backend', '?')}) "
                f"ran at **{r['embed_vs_raw_throughput']:.0%}** of that throughput.") if raw else ""
    rep = r["reproduced"]
    if rep.get("reference"):
        largest = ", ".join(f"{k} {v:+g}" for k, v in list(rep["largest"].items())[:5])
        rep_line = (f"Against the committed metrics (reports/metrics.json of the commit, latency left out): "
                    f"{rep['equal']} of {rep['compared']} figures equal"
                    + (f" ({rep['note']})" if rep.get("note") else "")
                    + ("." if rep["equal"] == rep["compared"] else
                       f"; largest difference {rep['max_abs_diff']:g} ({largest})"
                       + (f"; missing: {', '.join(rep['missing'])}" if rep["missing"] else "") + "."))
        if rep.get("same_weights"):
            same = rep["same_weights"].items()
            rep_line += " Trained models' weight files byte-identical to this checkout's: " + ", ".join(
                f"{Path(k).name} {'yes' if v else 'no' if v is False else 'n/a'}" for k, v in same) + "."
    else:
        rep_line = f"Not compared with committed metrics: {rep.get('why')}."
    inc = r.get("incremental")
    inc_line = ""
    if inc:
        secs = inc.get("stage_s", {})
        stage_list = ", ".join(f"{s} {secs.get(s, float('nan')):.1f}" for s in inc.get("ran", [])) or "n/a"
        kept = ", ".join(f"{m} {'yes' if k else 'no'}" for m, k in inc.get("models_kept", {}).items()) or "n/a"
        inc_line = (f"\n- {inc['docs_changed']} documents (1%) edited: {inc['seconds']:.1f} s = "
                    f"{inc['fraction_of_full']:.1%} of the full build; {inc['chunks_encoded']} of "
                    f"{inc['chunks_total']:,} chunks re-embedded; stages re-run (seconds inside each): "
                    f"{stage_list}. Trained models kept: {kept}.")
    total = r["full_build_s"]
    fusion_ran = ", ".join(r["fusion_change_ran"]) or "nothing"
    speed = f"\n\n{speed_line(r['machine_speed'])}" if r.get("machine_speed") else ""
    return f"""## Pipeline stages, full SciFact build from scratch (`python bench/stage_times.py`)

{machine_line(r['machine'])}{speed}

A clean `git clone` of commit {r['commit']} (HOME an empty folder: no cached ONNX export), `ragops data fetch`
({r['data_fetch_s']:.1f} s), then every stage by
`dvc repro --single-item` in DAG order (wall seconds of the command; "inside": the stage's main function as it timed
itself, without DVC's hashing and the process's start-up imports):

| stage | seconds | inside |
|---|---:|---:|
{rows}
| **total, fetch included** | **{total:.1f}** ({total / 60:.1f} min) | |
| training stages (train_*, grounding*) | {r['training_s']:.1f} ({r['training_s'] / total:.0%}) | |

{rep_line}{raw_line}

- Second `dvc repro`, nothing changed: {r['noop_repro_s']:.1f} s, {r['noop_ran_stages']} stages run.
- Fusion params changed: {r['fusion_change_s']:.1f} s, re-ran {fusion_ran}.{inc_line}"""


if __name__ == "__main__":
    main()
