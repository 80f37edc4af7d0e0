"""Two test workers on one machine: does giving each process all the cores' threads, or its share, finish
sooner? (tests/conftest.py `thread_share`, docs/DECISIONS.md.)

    python bench/worker_threads.py [--mirror ../shared/datasets] [--project <a built tiny project>]

Builds the tiny test profile (tests/profiles/tiny.yaml, as the test suite does) unless --project names one,
then runs two `train_embedder` stages at once (RAGOPS_RETRAIN=1, in two copies of the project), first with
torch's default threads (every core each), then with OMP_NUM_THREADS = cores / 2. Wall seconds of each pair.
Writes reports/bench/worker_threads.json and the `worker_threads` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, machine, machine_line, python_env, write_result, write_section

sys.path.insert(0, str(REPO))
from tests.integration.conftest import copy_project, run  # noqa: E402


def pair(projects: list[Path], threads: str | None) -> float:
    env = {**python_env(), "RAGOPS_RETRAIN": "1"}
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.pop(var, None)
        if threads:
            env[var] = threads
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-m", "ragops.stages.train_embedder"], cwd=p, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for p in projects]
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"train_embedder failed:\n{err[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mirror", default=str(REPO.parent / "shared" / "datasets"))
    ap.add_argument("--project", help="a tiny project already built (skips the build)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.project:
            built = Path(args.project)
        else:
            built = copy_project(root / "built", root / "embcache")
            run(["ragops", "data", "fetch", "--mirror", args.mirror], built)
            run(["dvc", "repro"], built)
        projects = [shutil.copytree(built, root / f"copy{i}", symlinks=True) for i in (0, 1)]
        share = str(max(1, len(os.sched_getaffinity(0)) // 2))
        result = {"machine": machine(), "default_threads_s": round(pair(projects, None), 1),
                  "share_threads_s": round(pair(projects, share), 1), "share": int(share)}
    print(result)
    write_result("worker_threads", result)
    write_section("worker_threads", f"""## Two test workers' threads (`python bench/worker_threads.py`)

Two tiny-profile `train_embedder` stages at once (RAGOPS_RETRAIN=1), as two pytest-xdist workers run them:
**{result['default_threads_s']} s** with torch's default threads in each, **{result['share_threads_s']} s** with
`OMP_NUM_THREADS={share}` (each process its share of the cores: what tests/conftest.py sets under xdist).

{machine_line(result["machine"])}""")


if __name__ == "__main__":
    main()
