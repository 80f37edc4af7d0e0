"""What tracking and the registry add: the `register` stage on the full SciFact build, and loading
`models:/ragops-retriever@champion` in a fresh process.

    python bench/registry.py [--project .] [--repeats 3] [--queries 50]

Reads the built pipeline of --project (data/processed, models/index, reports; nothing there is
written) and registers into a temporary MLflow store (SQLite + artifact folder):

1. `python -m ragops.stages.register`, the command `dvc repro` runs, timed from process start:
   first with no champion (v1 becomes champion), then --repeats times against a champion (the gate
   downloads its per-query table and runs the paired test);
2. --repeats fresh processes, each: import mlflow, `mlflow.pyfunc.load_model(...@champion)`, one query;
   the last one then checks that the model ranks --queries test queries exactly like the local index.

Writes reports/bench/registry.json and the `registry` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import REPO, machine, machine_line, point_at_build, python_env, write_result, write_section

LOAD = r"""
import json, sys, time
t0 = time.perf_counter()
import mlflow, mlflow.pyfunc, pandas as pd
mlflow.set_tracking_uri(sys.argv[1]); mlflow.set_registry_uri(sys.argv[1])
if sys.argv[2] == "ragops":
    from ragops.pyfunc import load_model
else:
    load_model = mlflow.pyfunc.load_model
t1 = time.perf_counter()
model = load_model("models:/ragops-retriever@champion")
t2 = time.perf_counter()
first = model.predict(pd.DataFrame({"query": ["vitamin D deficiency and bone fractures"]}))
t3 = time.perf_counter()
out = {"import_s": t1 - t0, "load_s": t2 - t1, "first_query_s": t3 - t2, "load_and_first_query_s": t3 - t1,
       "imported": sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)}
if len(sys.argv) > 3:  # the same queries through the local index: identical ids and scores?
    from ragops.retrieval.load import load_pipeline
    from ragops.config import load_params
    params = load_params(sys.argv[3])
    q = pd.read_parquet(params["paths"]["queries"]); r = pd.read_parquet(params["paths"]["qrels"])
    ids = sorted(set(r[r["split"] == "test"]["query_id"]))[: int(sys.argv[4])]
    texts = q.set_index("query_id").loc[ids, "text"].tolist()
    got = model.predict(pd.DataFrame({"query": texts, "k": 10}))  # the registered mode
    mode = model.unwrap_python_model().pipeline.default_mode
    hits = load_pipeline(params, [mode])[0].search_batch(texts, mode, 10)
    want = [(t, d, s) for t, h in zip(texts, hits) for d, s in zip(h.ids, h.scores.tolist())]
    out["identical"] = list(zip(got["query"], got["doc_id"], got["score"])) == want
    out["compared_queries"] = len(texts)
    out["mode"] = mode
print("RESULT " + json.dumps(out))
"""


def setup(root: Path, project: Path) -> None:
    """A folder whose params read the built pipeline of ``project`` and write only here."""
    point_at_build(root, project)


def env() -> dict[str, str]:
    e = python_env()
    e.pop("MLFLOW_TRACKING_URI", None)
    e.pop("MLFLOW_REGISTRY_URI", None)
    return e


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return seconds, proc.stdout + proc.stderr


def disk_bytes(folder: Path) -> int:
    """Bytes on disk under ``folder``, each file counted once however many hard links it has."""
    seen: dict[tuple[int, int], int] = {}
    for f in folder.rglob("*"):
        if f.is_file() and not f.is_symlink():
            st = f.stat()
            seen[(st.st_dev, st.st_ino)] = st.st_size
    return sum(seen.values())


def register(root: Path, package: str = "serving") -> dict:
    """One `register` run; ``package``: registry.package for it (the params file is restored afterwards)."""
    saved = (root / "params.yaml").read_text()
    params = yaml.safe_load(saved)
    params["registry"]["package"] = package
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    try:
        seconds, _ = timed([sys.executable, "-m", "ragops.stages.register"], root)
    finally:
        (root / "params.yaml").write_text(saved)
    summary = json.loads((root / "reports/registry.json").read_text())
    return {"seconds": round(seconds, 2), "version": summary["version"], "promoted": summary["promoted"],
            "p_value": summary["decision"]["p_value"], "parts_s": summary["timings"],
            "served_mode": summary["served_mode"], "package_mb": round(summary["package"]["bytes_total"] / 1e6, 1),
            "disk_mb_after": round(disk_bytes(root / "mlartifacts") / 1e6, 1)}


def load(root: Path, loader: str, check: tuple[Path, int] | None = None) -> dict:
    args = [str(check[0]), str(check[1])] if check else []
    seconds, out = timed([sys.executable, "-c", LOAD, f"sqlite:///{root / 'mlflow.db'}", loader, *args], root)
    result = json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[len("RESULT "):])
    return {**{k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()},
            "process_s": round(seconds, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, default=REPO)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--queries", type=int, default=50)
    args = ap.parse_args()
    project = args.project.resolve()
    root = Path(tempfile.mkdtemp(prefix="ragops-bench-registry-"))
    try:
        setup(root, project)
        first = register(root)
        gated = [register(root) for _ in range(args.repeats)]
        plain = [load(root, "mlflow") for _ in range(args.repeats)]
        loads = [load(root, "ragops") for _ in range(args.repeats - 1)]
        loads.append(load(root, "ragops", (root / "params.yaml", args.queries)))
        full = register(root, package="full")  # the same models with their PyTorch weights (last: loads read serving)
        growth = [b["disk_mb_after"] - a["disk_mb_after"] for a, b in zip([first, *gated], gated, strict=False)]
        keys = ("import_s", "load_s", "first_query_s", "load_and_first_query_s", "process_s")
        median = {k: round(statistics.median(x[k] for x in loads), 2) for k in keys}
        plain_median = {k: round(statistics.median(x[k] for x in plain), 2) for k in keys}
        result = {"machine": machine(), "project": str(project), "first_register": first, "gated_register": gated,
                  "gated_register_median_s": round(statistics.median(g["seconds"] for g in gated), 2),
                  "loads": loads, "load_median": median, "mlflow_loads": plain, "mlflow_load_median": plain_median,
                  "identical_to_local": loads[-1].get("identical"),
                  "ragops_load_imported": sorted({m for x in loads for m in x.get("imported", [])}),
                  "compared_queries": loads[-1].get("compared_queries"),
                  "package_mb": first["package_mb"], "full_package_mb": full["package_mb"],
                  "first_version_disk_mb": first["disk_mb_after"],
                  "growth_mb_per_unchanged_version": growth, "served_mode": first["served_mode"]}
        write_result("registry", result)
        write_section("registry", render(result))
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def render(r: dict) -> str:
    g = r["gated_register"]
    parts = {k: statistics.median(x["parts_s"][k] for x in g) for k in g[0]["parts_s"]}
    m, p = r["load_median"], r["mlflow_load_median"]
    return f"""## Tracking and registry on the full SciFact build (`python bench/registry.py`)

{machine_line(r['machine'])}

The `register` stage (`python -m ragops.stages.register`, what `dvc repro` runs), timed from process
start, into a SQLite store with a local artifact folder. The package is the whole trained pipeline
({r['package_mb']:.0f} MB: both embedders and their indexes, the reranker, the grounding scorer, the ONNX
query encoders; under `registry.package: serving`, the default, the models that run through an ONNX export travel
without their PyTorch weights{_full(r)}), serving `{r['served_mode']}`. The first version takes
{r['first_version_disk_mb']:.0f} MB on disk; each re-registered version with unchanged models adds
{', '.join(f'{g:.1f}' for g in r['growth_mb_per_unchanged_version'])} MB (its files are hard links to the
store's blobs, `ragops.registry.blobstore`; only what changed is new):

| run | seconds |
|---|---|
| first version (no champion) | {r['first_register']['seconds']:.1f} |
| with a champion to gate against (median of {len(g)}) | **{r['gated_register_median_s']:.1f}** |

Inside the stage (median): logging the run {parts['register_log']:.1f} s, packaging + registering the
model {parts['register_model']:.1f} s (MLflow loads it once to check the input example), gate
{parts['register_gate']:.2f} s; the rest is Python start and imports (mlflow, torch).

Loading `models:/ragops-retriever@champion` in a fresh process and answering one query, median of
{len(r['loads'])} processes each:

| loader | load + first query | of which first query | import mlflow before | whole process |
|---|---|---|---|---|
| `ragops.pyfunc.load_model` (`ragops search --model`) | **{m['load_and_first_query_s']:.2f} s** | \
{m['first_query_s']:.2f} s | {m['import_s']:.2f} s | {m['process_s']:.1f} s |
| `mlflow.pyfunc.load_model` | {p['load_and_first_query_s']:.2f} s | {p['first_query_s']:.2f} s | \
{p['import_s']:.2f} s | {p['process_s']:.1f} s |

The two differ by MLflow's dependency check, which ragops replaces by direct version look-ups.
{_imported(r.get('ragops_load_imported'))} "Whole process" is the subprocess's wall time, interpreter start and
exit included. The model ranked
{r['compared_queries']} test queries {'exactly' if r['identical_to_local'] else 'NOT'} like the local index
(same ids, same float scores)."""


def _full(r: dict) -> str:
    return f": {r['full_package_mb']:.0f} MB with `full`" if r.get("full_package_mb") else ""


def _imported(names: list[str] | None) -> str:
    if names is None:
        return ""
    if not names:
        return ("`ragops.pyfunc.load_model` imported neither torch nor transformers (the ONNX encoders and reranker "
                "tokenize with the `tokenizers` library alone).")
    return f"`ragops.pyfunc.load_model` imported {', '.join(names)}."


if __name__ == "__main__":
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    main()
