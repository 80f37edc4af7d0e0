"""What the Prefect flow costs on top of DVC, on full SciFact.

    python bench/flow.py [--mirror ../shared/datasets] [--repeats 3] [--max-docs N (a smoke run)]

Two temporary copies of the project, each with an empty embedding cache and `ragops data fetch`:
- copy A builds with a plain `dvc repro`;
- copy B builds with `ragops run --no-push` (the flow: a task per stage, `dvc status` first), with
  no PREFECT_API_URL, so Prefect starts its temporary server inside the command (a fresh
  PREFECT_HOME: the first start also creates its database).
Then, in copy B with everything up to date: `ragops run` (with its DVC push to the default local
remote, already filled once) timed `--repeats` times, each starting Prefect's temporary server, and
the same against a running `prefect server`. Writes reports/bench/flow.json and the `flow` section
of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from _common import REPO, machine, machine_line, python_env, write_result, write_section

from ragops.harness import Service, copy_files, free_port, start

FILES = ["dvc.yaml", "params.yaml", "src", "flows", ".dvc/config", ".dvc/.gitignore", ".dvcignore",
         "data/raw/scifact.dvc", "data/raw/.gitignore"]


def env(home: Path, api: str | None = None) -> dict[str, str]:
    out = {**python_env(), "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    out.pop("PREFECT_API_URL", None)
    if api:
        out["PREFECT_API_URL"] = api
    return out


def sh(cmd: list[str], cwd: Path, environ: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=environ, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-4000:]}")
    return time.perf_counter() - t0, proc.stdout + proc.stderr


def measured(cmd: list[str], cwd: Path, environ: dict[str, str]) -> dict:
    """Wall seconds, CPU seconds of the command and everything it started, and the load meanwhile.

    CPU time is what the command itself costs: on a shared 2-core machine another process slows the
    wall clock of whichever build it overlaps, but barely changes the CPU either build needs.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, out = sh(cmd, cwd, environ)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "load_after": round(os.getloadavg()[0], 2),
            "output": out}


def setup_project(root: Path, mirror: Path, environ: dict[str, str], max_docs: int) -> None:
    copy_files(REPO, FILES, root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["embed"]["cache_dir"] = str(root / "embcache")
    params["prepare"]["max_docs"] = max_docs
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(["git", "init", "-q"], root, environ)
    sh(["ragops", "data", "fetch", "--mirror", str(mirror)], root, environ)


def stage_seconds(output: str) -> dict[str, float]:
    """The flow's own per-stage table, from `ragops run`'s log lines (`<stage> ran 12.3s`)."""
    out: dict[str, float] = {}
    for line in output.splitlines():
        parts = line.split(" - ", 1)[-1].split()
        if len(parts) >= 3 and parts[1] in ("ran", "skipped") and parts[2].endswith("s"):
            try:
                out[parts[0]] = float(parts[2][:-1])
            except ValueError:
                continue
    return out


def start_server(home: Path) -> tuple[Service, str]:
    """A Prefect server of its own on loopback, ready when /api/health says true (the tests' harness)."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    server = start(["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"], home,
                   env(home), home / "prefect-server.log", f"{api}/health", lambda r: r.json() is True,
                   "prefect server", timeout=180)
    return server, api


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", type=Path, default=REPO.parent / "shared" / "datasets")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-docs", type=int, default=0, help="a sample, for a quick check of this script "
                    "(results are then not written)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ragops-bench-flow-"))
    home = tmp / "prefect-home"
    home.mkdir()
    plain, flow = tmp / "plain", tmp / "flow"
    server = None
    try:
        for root in (plain, flow):
            setup_project(root, args.mirror.resolve(), env(home), args.max_docs)
        flow_run = measured(["ragops", "run", "--no-push"], flow, env(home))
        plain_run = measured(["dvc", "repro"], plain, env(home))
        dvc_s, flow_s = plain_run["wall_s"], flow_run["wall_s"]
        stages = stage_seconds(flow_run.pop("output"))
        plain_run.pop("output")
        push_s, _ = sh(["dvc", "push"], flow, env(home))  # fill the remote once, outside the timings
        ephemeral = [sh(["ragops", "run"], flow, env(home))[0] for _ in range(args.repeats)]
        server, api = start_server(home)
        running = [sh(["ragops", "run"], flow, env(home, api))[0] for _ in range(args.repeats)]
        result = {
            "machine": machine(),
            "full_build": {"dvc_repro_s": round(dvc_s, 1), "flow_s": round(flow_s, 1),
                           "flow_overhead": round(flow_s / dvc_s - 1, 4),
                           "dvc_repro": plain_run, "flow": flow_run,
                           "flow_cpu_overhead": round(flow_run["cpu_s"] / plain_run["cpu_s"] - 1, 4),
                           "flow_stage_sum_s": round(sum(stages.values()), 1),
                           "flow_outside_stages_s": round(flow_s - sum(stages.values()), 1),
                           "flow_stage_s": stages, "first_push_s": round(push_s, 1)},
            "up_to_date": {"ephemeral_server_s": [round(t, 2) for t in ephemeral],
                           "running_server_s": [round(t, 2) for t in running]},
        }
        print(json.dumps(result, indent=2))
        if not args.max_docs:
            write_result("flow", result)
            write_section("flow", render(result))
    finally:
        if server is not None:
            server.stop(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


def render(r: dict) -> str:
    fb, up = r["full_build"], r["up_to_date"]
    eph, run = up["ephemeral_server_s"], up["running_server_s"]

    def build(label: str, b: dict) -> str:
        return f"| {label} | {b['wall_s']:.1f} | {b['cpu_s']:.1f} | {b['load_after']:.2f} |"

    def row(label: str, times: list[float]) -> str:
        runs = ", ".join(f"{t:.1f}" for t in times)
        return f"| {label} | {runs} | {statistics.median(times):.1f} | {max(times):.1f} |"

    return f"""## The Prefect flow on top of DVC (`python bench/flow.py`)

{machine_line(r['machine'])}

Full SciFact build from scratch (empty embedding cache), in two temporary copies:

| build | wall seconds | CPU seconds (all processes) | load average after |
|---|---|---|---|
{build("plain `dvc repro`", fb["dvc_repro"])}
{build("the flow, `ragops run --no-push` (Prefect's temporary server started inside)", fb["flow"])}
| **what the flow adds** | **{fb['flow_overhead']:+.1%}** | **{fb['flow_cpu_overhead']:+.1%}** | |

Inside the flow run the stages (each a `dvc repro --single-item`) took {fb['flow_stage_sum_s']:.1f} s;
the remaining {fb['flow_outside_stages_s']:.1f} s ({fb['flow_outside_stages_s'] / fb['dvc_repro_s']:.1%} of
the plain build) are Prefect's start-up (a new database, here), `dvc status` and the task bookkeeping
(the stage times include one `dvc` start per stage, where a plain `dvc repro` has one in all). The builds
run one after the other on a 2-core machine that other jobs share, so their wall clocks differ by
whatever else ran meanwhile; CPU seconds, counted over every process each build started, do not
depend on that. Pushing the full build to the local DVC remote took
{fb['first_push_s']:.1f} s (not in either time).

| flow run, every stage up to date (`ragops run`, incl. `dvc push` of nothing) | runs (s) | median | max |
|---|---|---|---|
{row("Prefect's temporary server started by the command", eph)}
{row("against a running `prefect server`", run)}

Each time includes the process start, Prefect's imports and (first row) its server start-up."""


if __name__ == "__main__":
    main()
