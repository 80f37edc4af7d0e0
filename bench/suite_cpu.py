"""Where `make test`'s CPU goes: every Python process the suite starts, by program and by test, and the machine's
busy time beside it (issue 19, item 5: the suite is CPU-bound on 2 cores, so its wall time is its work / 2).

    python bench/suite_cpu.py [--top 30] [make variables, e.g. TEST_WORKERS=2]

Runs `make test` with a `sitecustomize` on PYTHONPATH (inherited by pytest's workers, `dvc`, every stage, CLI and
server the tests start) that appends, when each Python process exits normally, its argv, folder and own CPU time
(os.times: user + system, children excluded) to a JSON-lines log. Processes ended by a signal (a Prefect server, a
server killed on purpose) and non-Python programs (git, chromium) log nothing: the machine's busy time from
/proc/stat over the run shows how much that is. Writes reports/bench/suite_cpu.json and the `suite_cpu` section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

from _common import REPO, machine, machine_line, machine_speed, python_env, speed_line, write_result, write_section

HOOK = '''
import atexit, json, os, sys, time
_t0 = time.time()
def _ragops_cpu_log():
    try:
        t = os.times()
        rec = {"argv": sys.argv[:4], "cwd": os.getcwd(), "cpu_s": t.user + t.system, "wall_s": time.time() - _t0,
               "test": os.environ.get("PYTEST_CURRENT_TEST", "")}
        with open(os.environ["RAGOPS_CPU_LOG"], "a") as f:
            f.write(json.dumps(rec) + "\\n")
    except Exception:
        pass
atexit.register(_ragops_cpu_log)
'''


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot: user, nice, system, irq, softirq, steal (not idle
    or iowait; guest time is already inside user)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def program(argv: list[str]) -> str:
    """A name for what a process ran: a stage module, a `ragops`/`dvc`/`mlflow` subcommand, or a pytest worker."""
    names = [Path(a).name for a in argv]
    joined = " ".join(argv)
    if not argv or names[0] == "-c" or "pytest" in joined or "xdist" in joined:
        return "pytest (workers: the unit tests, in process)"
    if "/stages/" in argv[0]:
        return f"stage {Path(argv[0]).stem}"
    if names[0] == "__main__.py":  # `python -m dvc ...` (DVC's own subprocesses), `python -m pip ...` (make setup)
        return f"{Path(argv[0]).parent.name} {argv[1] if len(argv) > 1 else ''}".strip()
    if names[0] in ("ragops", "dvc", "mlflow", "prefect") and len(argv) > 1:
        return f"{names[0]} {argv[1]}"
    return names[0]


def test_of(record: dict) -> str:
    """The test whose run started the process (pytest's PYTEST_CURRENT_TEST, which the process inherited; a
    module's fixture counts under the first test that asked for it), else its temporary folder's name (which
    pytest cuts at 30 characters)."""
    current = re.sub(r" \((setup|call|teardown)\)$", "", record.get("test") or "")
    return f"`{current.removeprefix('tests/')}`" if current else test_folder(record["cwd"])


def test_folder(cwd: str) -> str:
    """The pytest temporary folder a process ran in (one per test or fixture), or the checkout."""
    m = re.search(r"/pytest-\d+/(?:popen-gw\d+/)?([^/]+)", cwd)
    return re.sub(r"\d+$", "", m.group(1)) if m else ("checkout" if cwd.startswith(str(REPO)) else "other")


def durations(stdout: str) -> list[dict]:
    """pytest's `--durations` lines (``12.34s call     tests/x.py::test_y``), slowest first."""
    found = re.findall(r"^([\d.]+)s (setup|call|teardown)\s+(\S+)$", stdout, flags=re.M)
    return [{"seconds": float(s), "phase": phase, "test": test} for s, phase, test in found]


def table(counter: collections.Counter, counts: collections.Counter, top: int) -> list[str]:
    lines = ["| CPU s | processes | |", "|---:|---:|---|"]
    lines += [f"| {v:.0f} | {counts[k]} | {k} |" for k, v in counter.most_common(top)]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("make_vars", nargs="*", help="passed to make, e.g. TEST_WORKERS=2")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="suite-cpu-") as tmp:
        Path(tmp, "sitecustomize.py").write_text(HOOK)
        log = Path(tmp, "cpu.jsonl")
        env = python_env()
        env |= {"PYTHONPATH": os.pathsep.join(filter(None, [tmp, env.get("PYTHONPATH")])), "RAGOPS_CPU_LOG": str(log)}
        speed = machine_speed()
        busy0, t0 = busy_seconds(), time.perf_counter()
        proc = subprocess.run(["make", "test", *args.make_vars], cwd=REPO, env=env, capture_output=True, text=True)
        wall, busy = time.perf_counter() - t0, busy_seconds() - busy0
        records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    summary = next((line for line in reversed(proc.stdout.splitlines()) if " in " in line and "passed" in line), "")
    if proc.returncode:
        raise SystemExit(f"make test failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    by_program, n_program = collections.Counter(), collections.Counter()
    by_test, n_test = collections.Counter(), collections.Counter()
    for r in records:
        by_program[program(r["argv"])] += r["cpu_s"]
        n_program[program(r["argv"])] += 1
        by_test[test_of(r)] += r["cpu_s"]
        n_test[test_of(r)] += 1
    logged = sum(by_program.values())
    m = machine()
    slowest = durations(proc.stdout)
    result = {"machine": m, "machine_speed": speed, "make_vars": args.make_vars, "pytest": summary,
              "wall_s": round(wall, 1), "slowest": slowest,
              "machine_busy_cpu_s": round(busy, 1), "logged_cpu_s": round(logged, 1), "processes": len(records),
              "by_program": {k: round(v, 1) for k, v in by_program.most_common()},
              "by_test": {k: round(v, 1) for k, v in by_test.most_common()}}
    write_result("suite_cpu", result)
    command = " ".join(["make test", *args.make_vars])
    md = ["## Where `make test`'s CPU goes (`python bench/suite_cpu.py`)", "", machine_line(m), "",
          speed_line(speed), "",
          f"`{command}`: {summary.strip('= ')}; wall {wall:.0f} s. The machine was busy "
          f"{busy:.0f} CPU-s ({busy / wall:.2f} of {m['cores']} cores); the {len(records)} Python processes that "
          f"exited normally logged {logged:.0f} CPU-s (the rest: servers stopped by a signal, git, chromium, the "
          "system).", "", "By program:", "", *table(by_program, n_program, args.top), "",
          "By the test that started the process (a module's fixture, such as the shared tiny build, under the first "
          "test that asked for it; `checkout`: pytest's own workers):", "", *table(by_test, n_test, args.top), "",
          f"The {len(slowest)} slowest test phases (pytest `--durations`, wall seconds on a worker that shared the "
          "machine with the other):", "", "| s | phase | test |", "|---:|---|---|",
          *(f"| {d['seconds']:.1f} | {d['phase']} | `{d['test']}` |" for d in slowest)]
    write_section("suite_cpu", "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
