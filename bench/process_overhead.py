"""Where a test build's time goes: the imports of every process DVC starts, against the stages' own work.

    python bench/process_overhead.py [--mirror ../shared/datasets] [--project <a built tiny project>]

1. What importing costs in a fresh process (median of 3 runs; wall and CPU seconds): torch, transformers,
   sentence_transformers, pandas, mlflow, and dvc.repo (DVC's repository layer, which `dvc repro` loads).
2. The tiny test profile (tests/profiles/tiny.yaml) built once as the test suite builds it (or `--project`, a
   folder that fixture built), then re-run the way tests/integration/test_flow.py's first run re-runs it: a
   copy with no dvc.lock and no run cache, so DVC runs every stage, and the trained models are kept by their
   training keys. That re-run is timed under PYTHONPROFILEIMPORTTIME=1: how many Python processes
   started, how many seconds their imports took (the top-level imports of each process, lazy ones included; the
   profiling itself adds a little), and the seconds the stages spent in their own timed work (ragops.timing).

The suite runs about ten such builds and re-runs, and over a hundred `ragops`, `dvc` and server processes; what
this measures is the part of each that no test-side change can remove.
Writes reports/bench/process_overhead.json and its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, machine, machine_line, python_env, write_result, write_section

sys.path.insert(0, str(REPO))
from tests.integration.conftest import clone_build, copy_project, run  # noqa: E402 (the suite's own setup)

MODULES = ("torch", "transformers", "sentence_transformers", "pandas", "mlflow", "dvc.repo")
LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\S.*)$")  # self us, cumulative us, name (top level)


def import_cost(module: str, runs: int = 3) -> dict:
    walls, cpus = [], []
    for _ in range(runs):
        code = (f"import resource,time;t=time.perf_counter();import {module};"
                "r=resource.getrusage(resource.RUSAGE_SELF);print(time.perf_counter()-t, r.ru_utime+r.ru_stime)")
        out = subprocess.run([sys.executable, "-c", code], env=python_env(), capture_output=True, text=True, check=True)
        wall, cpu = map(float, out.stdout.split())
        walls.append(wall)
        cpus.append(cpu)
    return {"wall_s": round(statistics.median(walls), 2), "cpu_s": round(statistics.median(cpus), 2)}


def rerun(built: Path, work: Path) -> dict:
    root = clone_build(built, work / "rerun", fresh_store=True)
    (root / "dvc.lock").unlink()
    shutil.rmtree(root / ".dvc/cache/runs", ignore_errors=True)
    shutil.rmtree(root / ".cache/stage_times", ignore_errors=True)
    t0 = time.perf_counter()
    proc = run(["dvc", "repro"], root, env={"PYTHONPROFILEIMPORTTIME": "1"})
    wall = time.perf_counter() - t0
    tops = [LINE.match(line) for line in (proc.stdout + proc.stderr).splitlines()]
    tops = [(m.group(3), int(m.group(2)) / 1e6) for m in tops if m]
    heavy = {name: {"processes": sum(n == name for n, _ in tops),
                    "seconds": round(sum(s for n, s in tops if n == name), 1)}
             for name in ("sentence_transformers", "torch", "transformers", "pandas", "mlflow")}  # fmt: skip
    times = sorted((root / ".cache/stage_times").glob("*.json"))
    stages = {p.stem: json.loads(p.read_text())["seconds"] for p in times}
    return {
        "wall_s": round(wall, 1),
        "processes": sum(n == "encodings" for n, _ in tops),  # every interpreter imports it first, once
        "import_s": round(sum(s for _, s in tops), 1),
        "stage_work_s": round(sum(stages.values()), 1),
        "stages_s": {k: round(v, 1) for k, v in stages.items()},
        "top_level_imports": heavy,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mirror", type=Path, default=REPO.parent / "shared" / "datasets")
    ap.add_argument("--project", type=Path, help="a tiny project already built (skips the build)")
    args = ap.parse_args()
    result: dict = {"machine": machine(), "imports": {m: import_cost(m) for m in MODULES}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        built = args.project
        if built is None:
            built = copy_project(work / "built", work / "embcache")
            run(["ragops", "data", "fetch", "--mirror", str(args.mirror.resolve())], built)
            t0 = time.perf_counter()
            run(["dvc", "repro"], built)
            result["build_s"] = round(time.perf_counter() - t0, 1)
        result["rerun"] = rerun(built, work)
    write_result("process_overhead", result)
    r = result["rerun"]
    rows = "\n".join(f"| `{m}` | {c['wall_s']} | {c['cpu_s']} |" for m, c in result["imports"].items())
    st = r["top_level_imports"]["sentence_transformers"]
    write_section("process_overhead", f"""### Process start-up in a test build (`python bench/process_overhead.py`)

Importing, in a fresh process (median of 3):

| module | import wall s | process CPU s |
|---|---:|---:|
{rows}

The tiny profile re-run with every stage running and the trained models kept (as the flow's first run re-runs it):
{r['wall_s']} s wall; {r['processes']} Python processes, whose imports took
{r['import_s']} s in all ({st['processes']} of them loaded sentence-transformers, {st['seconds']} s); the stages'
own timed work {r['stage_work_s']} s, which includes the imports a stage makes only when it needs them (a model's
packages), so the two overlap. {machine_line(result['machine'])}""")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
