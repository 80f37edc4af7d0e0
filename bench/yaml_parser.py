"""What libyaml's scanner saves DVC: CPU of a no-op `dvc repro` and of `dvc status` with and without it.

    python bench/yaml_parser.py [--rounds 5]

DVC reads dvc.yaml and dvc.lock (one md5 per imported module: thousands of lines) with ruamel.yaml, which
scans in C when `ruamel.yaml.clib` is installed (pyproject lists it; ruamel.yaml 0.19 no longer pulls it in)
and in pure Python otherwise. Both run here on this checkout (which must be up to date: `dvc status` clean),
interleaved round by round; "pure" hides the C module from DVC's process (``sys.modules['_ruamel_yaml'] =
None``), nothing else changes. Also checks that both parsers give equal values for every YAML file the project
keeps, and times register's read of dvc.lock with PyYAML's pure and C loaders.
Writes reports/bench/yaml_parser.json and the `yaml_parser` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time

import yaml
from _common import REPO, machine, machine_line, python_env, write_result, write_section

DVC = "import sys\n{hide}from dvc.cli import main\nsys.exit(main(sys.argv[1:]))"
FILES = ["dvc.yaml", "dvc.lock", "params.yaml",
         *sorted(str(p.relative_to(REPO)) for pattern in ("tests/profiles/*.yaml", "data/raw/*.dvc")
                 for p in REPO.glob(pattern))]


def child_cpu(cmd: list[str]) -> float:
    """CPU seconds (user + system) of ``cmd`` run to completion in this checkout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, cwd=REPO, env=python_env(), check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def same_values() -> dict[str, bool]:
    from ruamel.yaml import YAML

    return {f: YAML(typ="safe").load((REPO / f).read_text()) == YAML(typ="safe", pure=True).load((REPO / f).read_text())
            for f in FILES}


def pyyaml_lock_s(loader, repeats: int = 5) -> float:
    text = (REPO / "dvc.lock").read_text()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        yaml.load(text, Loader=loader)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    status = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=REPO, env=python_env(),
                            capture_output=True, text=True, check=True).stdout.strip()
    if status != "{}":
        raise SystemExit(f"the checkout is not up to date (dvc status: {status[:500]}): run `dvc repro` first")
    code = {"c": DVC.format(hide=""), "pure": DVC.format(hide="sys.modules['_ruamel_yaml'] = None\n")}
    cpu: dict[str, dict[str, list[float]]] = {k: {"repro": [], "status": []} for k in code}
    for _ in range(args.rounds):
        for parser, src in code.items():
            for command in ("repro", "status"):
                cpu[parser][command].append(round(child_cpu([sys.executable, "-c", src, command]), 3))
    med = {p: {c: round(statistics.median(v), 2) for c, v in cmds.items()} for p, cmds in cpu.items()}
    loaders = {"SafeLoader": round(pyyaml_lock_s(yaml.SafeLoader), 3)}
    if hasattr(yaml, "CSafeLoader"):
        loaders["CSafeLoader"] = round(pyyaml_lock_s(yaml.CSafeLoader), 3)
    lock_lines = len((REPO / "dvc.lock").read_text().splitlines())
    result = {"machine": machine(), "rounds": args.rounds, "dvc_lock_lines": lock_lines, "cpu_s": cpu,
              "median_cpu_s": med, "same_values": same_values(), "pyyaml_dvc_lock_s": loaders}
    write_result("yaml_parser", result)
    md = ["## DVC's YAML with and without libyaml's scanner (`python bench/yaml_parser.py`)", "",
          machine_line(result["machine"]), "",
          f"This checkout (dvc.lock: {lock_lines} lines), up to date; {args.rounds} interleaved rounds, median CPU "
          "seconds (user + system) of the whole `dvc` process:", "",
          "| | C scanner (`ruamel.yaml.clib`) | pure Python |", "|---|---:|---:|",
          f"| no-op `dvc repro` | {med['c']['repro']} | {med['pure']['repro']} |",
          f"| `dvc status` | {med['c']['status']} | {med['pure']['status']} |", "",
          f"Equal values from both parsers: {sum(result['same_values'].values())} of {len(FILES)} files "
          f"({', '.join(f for f, ok in result['same_values'].items() if not ok) or 'none differ'}). "
          "Register's read of dvc.lock with PyYAML: " + ", ".join(f"{k} {v} s" for k, v in loaders.items()) + "."]
    write_section("yaml_parser", "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
