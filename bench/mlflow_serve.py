"""The registered package through the real MLflow client: `mlflow models serve` answers like the local
build in every mode the package carries, for every test query.

    python bench/mlflow_serve.py [--project .] [--limit 0]

Reads the built pipeline of --project (nothing there is written), registers it into a temporary MLflow
store (`python -m ragops.stages.register`, what `dvc repro` runs: v1 becomes champion), starts
`mlflow models serve -m models:/ragops-retriever@champion --env-manager local` on 127.0.0.1, and posts
every test query (--limit N: the first N), in every mode, to /invocations; the same queries go through
the local build's pipeline (`ragops.retrieval.load.load_pipeline`, what `ragops search` runs). Counts queries
whose ranked ids differ and the largest score difference. Also times one query at a time through
/invocations in the served mode (HTTP and JSON included).

Writes reports/bench/mlflow_serve.json and the `mlflow_serve` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import REPO, machine, machine_line, point_at_build, python_env, write_result, write_section

from ragops.harness import Service, free_port, start

MODEL = "ragops-retriever"
LOCAL = r"""
import json, sys
import pandas as pd
from ragops.retrieval.load import load_pipeline
from ragops.config import load_params
params = load_params("params.yaml")
texts, modes = json.loads(sys.argv[1]), json.loads(sys.argv[2])
pipeline, _ = load_pipeline(params)
out = {m: [[(d, s) for d, s in zip(h.ids, h.scores.tolist())] for h in pipeline.search_batch(texts, m, 10)]
       for m in modes}
print("RESULT " + json.dumps(out))
"""


def result_line(out: str) -> dict:
    return json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[len("RESULT "):])


def serve(root: Path) -> tuple[Service, str]:
    """`mlflow models serve` of the champion, ready when /ping answers (the tests' harness)."""
    port = free_port()
    env = {**python_env(), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    cmd = [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}@champion",
           "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    url = f"http://127.0.0.1:{port}"
    return start(cmd, root, env, root / "serve.log", f"{url}/ping", what="mlflow models serve", timeout=300), url


def main() -> None:
    import httpx
    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, default=REPO)
    ap.add_argument("--limit", type=int, default=0, help="first N test queries (0: all)")
    ap.add_argument("--timed", type=int, default=100, help="queries timed one at a time in the served mode")
    args = ap.parse_args()
    project = args.project.resolve()
    root = Path(tempfile.mkdtemp(prefix="ragops-bench-mlflow-serve-"))
    proc = None
    try:
        point_at_build(root, project)
        subprocess.run([sys.executable, "-m", "ragops.stages.register"], cwd=root, env=python_env(), check=True,
                       capture_output=True)
        summary = json.loads((root / "reports/registry.json").read_text())
        modes = summary["package"]["modes"]
        qrels = pd.read_parquet(project / "data/processed/qrels.parquet")
        queries = pd.read_parquet(project / "data/processed/queries.parquet").set_index("query_id")["text"]
        ids = sorted(set(qrels[qrels["split"] == "test"]["query_id"]))
        texts = [str(queries[q]) for q in (ids[: args.limit] if args.limit else ids)]
        local = subprocess.run([sys.executable, "-c", LOCAL, json.dumps(texts), json.dumps(modes)], cwd=root,
                               env=python_env(), check=True, capture_output=True, text=True)
        want = result_line(local.stdout)
        proc, url = serve(root)
        per_mode = {}
        with httpx.Client(timeout=600) as client:
            for mode in modes:
                body = {"dataframe_split": {"columns": ["query", "mode"], "data": [[t, mode] for t in texts]},
                        "params": {"k": 10}}
                rows = client.post(f"{url}/invocations", json=body).raise_for_status().json()["predictions"]
                got: dict[str, list] = {}
                for r in rows:
                    got.setdefault(r["query"], []).append((r["doc_id"], r["score"]))
                differ = sum(1 for t, w in zip(texts, want[mode], strict=True)
                             if [d for d, _ in got.get(t, [])] != [d for d, _ in w])
                gap = max((abs(a[1] - b[1]) for t, w in zip(texts, want[mode], strict=True)
                           for a, b in zip(got.get(t, []), w, strict=False)), default=0.0)
                per_mode[mode] = {"queries": len(texts), "ranking_differs": differ, "max_score_gap": gap}
            served = summary["served_mode"]
            lat = []
            for t in texts[: args.timed]:
                t0 = time.perf_counter()
                client.post(f"{url}/invocations", json={"dataframe_split": {"columns": ["query"], "data": [[t]]},
                                                         "params": {"k": 10}}).raise_for_status()
                lat.append((time.perf_counter() - t0) * 1000.0)
        lat_a = np.asarray(lat)
        result = {"machine": machine(), "project": str(project), "served_mode": served,
                  "served_mode_reason": summary["served_mode_reason"], "modes": per_mode,
                  "identical_queries": sum(m["queries"] - m["ranking_differs"] for m in per_mode.values()),
                  "compared": sum(m["queries"] for m in per_mode.values()),
                  "invocations_one_query_ms": {"served_mode": served, "n": len(lat),
                                               "p50": round(float(np.percentile(lat_a, 50)), 2),
                                               "p95": round(float(np.percentile(lat_a, 95)), 2)}}
        write_result("mlflow_serve", result)
        write_section("mlflow_serve", render(result))
        print(json.dumps(result, indent=2))
    finally:
        if proc is not None:
            proc.stop(timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def render(r: dict) -> str:
    rows = "\n".join(f"| `{m}` | {v['queries']} | {v['ranking_differs']} | {v['max_score_gap']:.2g} |"
                     for m, v in r["modes"].items())
    inv = r["invocations_one_query_ms"]
    return f"""## The package through `mlflow models serve` (`python bench/mlflow_serve.py`)

{machine_line(r['machine'])}

The full SciFact build registered (served mode `{r['served_mode']}`: {r['served_mode_reason']}), then
`mlflow models serve -m models:/ragops-retriever@champion --env-manager local` on 127.0.0.1 asked for every
test query in every mode the package carries, against the local build's pipeline (what `ragops search`
runs): **{r['identical_queries']} of {r['compared']}** rankings identical.

| mode | queries | rankings that differ | largest score difference |
|---|---|---|---|
{rows}

One query at a time through `/invocations` in the served mode (HTTP and JSON included, {inv['n']} queries):
p50 {inv['p50']:.1f} ms, p95 {inv['p95']:.1f} ms."""


if __name__ == "__main__":
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    main()
