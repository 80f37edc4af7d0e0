"""Tracking and the registry on the tiny profile, with the real tools: `dvc repro` logs a run and
registers a version; the gate keeps a worse challenger out and lets a better one in; the CLI lists,
promotes and answers from `models:/ragops-retriever@champion` exactly like the local index; and the
same against a real `mlflow server` on 127.0.0.1.

Versions (a SQLite store inside the project copy), on the test split, hybrid nDCG@10 (the served mode
named here, `registry.mode: hybrid`, so that fusion.alpha moves what is served; `auto` is exercised by
test_served_package.py): v1 fusion.alpha=0.3 (0.92, first: champion), v2 alpha=0.0 (BM25 alone, 0.87: a
significant drop, blocked), v3 alpha=0.55 (0.95: better, promoted). v2 and v3 change no model, so their
packages share v1's model files on disk (hard links to one blob per content hash). Last, `dvc exp run`
logs a run and registers nothing.

The same history serves two checks that need exactly these states: a fusion change re-runs only what reads
fusion (v2, v3), and `ragops gate` as CI runs it on a pull request fails v2 against v1 and passes the reverse.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

from ragops.harness import background, free_port
from ragops.registry.blobstore import link_or_copy

from .conftest import clone_build, run

pytestmark = pytest.mark.integration
MODEL = "ragops-retriever"
SECRET = "sk-ant-test-0123456789abcdefghijklmnop"  # must never reach the store
COMPARE = r"""
import json, sys
import mlflow.pyfunc, pandas as pd
from ragops.retrieval.load import load_retriever
from ragops.config import load_params
params = load_params("params.yaml")
texts = json.loads(sys.argv[1])
got = mlflow.pyfunc.load_model(sys.argv[2]).predict(pd.DataFrame({"query": texts}), params={"k": 10})
hits = load_retriever(params).search_batch(texts, "hybrid", 10)  # the base retriever, as evaluate ran it
docs = pd.read_parquet(params["paths"]["docs"]).set_index("doc_id")
want = [[t, r + 1, d, s, docs.at[d, "title"], docs.at[d, "text"]]
        for t, h in zip(texts, hits) for r, (d, s) in enumerate(zip(h.ids, h.scores.tolist()))]
rows = [[q, int(r), d, float(s), t, x] for q, r, d, s, t, x in got.itertuples(index=False)]
print("RESULT " + json.dumps({"got": rows, "want": want, "columns": list(got.columns)}))
"""


def set_params(root: Path, **changes: float) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    for key, value in changes.items():
        section, name = key.split("__")
        params[section][name] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def registry_json(root: Path) -> dict:
    return json.loads((root / "reports/registry.json").read_text())


def client(root: Path):
    import mlflow

    uri = f"sqlite:///{root / 'mlflow.db'}"
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def sample_queries(root: Path, n: int) -> list[str]:
    qrels = pd.read_parquet(root / "data/processed/qrels.parquet")
    queries = pd.read_parquet(root / "data/processed/queries.parquet").set_index("query_id")
    ids = sorted(set(qrels[qrels["split"] == "test"]["query_id"]))[:n]
    return queries.loc[ids, "text"].tolist()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, built_project: Path) -> dict:
    """Three `dvc repro` runs in one project copy; what each printed and wrote."""
    # a copy of the tiny build with a new, empty registry store: v1 re-runs what reads fusion.alpha and registers
    root = clone_build(built_project, tmp_path_factory.mktemp("registry") / "project", fresh_store=True)
    params = yaml.safe_load((root / "params.yaml").read_text())
    # a credential pasted into a params value (params.yaml's schema has no key for one) that no stage reads (so
    # dvc.lock, logged as lineage, does not hold it either): never logged
    params["serve"]["model"] = SECRET
    params["registry"]["mode"] = "hybrid"
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    steps = {}
    for version, alpha in ((1, 0.3), (2, 0.0), (3, 0.55)):
        set_params(root, fusion__alpha=alpha)
        status = set(json.loads(run(["dvc", "status", "--json"], root).stdout)) if version > 1 else None
        out = run(["dvc", "repro"], root, env={"ANTHROPIC_API_KEY": SECRET})
        kept = root.parent / f"reports-v{version}"  # this version's evaluation, as CI keeps a base's
        shutil.copytree(root / "reports", kept)
        steps[version] = {"stdout": out.stdout, "registry": registry_json(root), "status": status, "reports": kept,
                          "metrics": json.loads((root / "reports/metrics.json").read_text())}
        if version == 2:  # a pull request that set fusion.alpha 0: the gate CI runs on it, v1's evaluation the base
            steps[2]["gate"] = run(["ragops", "gate", "--baseline", str(steps[1]["reports"] / "per_query.csv"),
                                    "--baseline-metrics", str(steps[1]["reports"] / "metrics.json"),
                                    "--report", str(kept / "gate.md")], root, check=False)
    return {"root": root, "steps": steps}


def test_first_version_is_champion_and_its_run_has_everything(history: dict) -> None:
    root, first = history["root"], history["steps"][1]
    summary = first["registry"]
    assert summary["version"] == 1 and summary["promoted"]
    assert summary["aliases"] == {"champion": "1", "challenger": "1"}
    assert "first version" in summary["decision"]["reason"]
    assert f"{MODEL} v1 serving hybrid (registry.mode is 'hybrid'): PROMOTED to champion" in first["stdout"]
    assert summary["served_mode"] == "hybrid" and len(summary["data_fingerprint"]) == 64
    c = client(root)
    run_ = c.get_run(summary["run_id"])
    params, metrics, tags = run_.data.params, run_.data.metrics, run_.data.tags
    assert params["fusion.alpha"] == "0.3" and params["evaluate.modes"].startswith('["bm25", "dense", "hybrid"')
    assert params["registry.tolerance"] == "0.01" and "answer.anthropic.model" in params
    assert "serve.model" not in params and "serve.host" in params  # dropped for its value
    for split in ("dev", "test"):
        for mode in ("bm25", "dense", "hybrid"):
            names = ("ndcg_at_10", "mrr_at_10", "p_at_10", "recall_at_100", "map_at_100")
            names += ("latency_ms", "latency_p95_ms")  # latency: evaluate.latency_splits
            assert {f"{split}/{mode}/{m}" for m in names} <= set(metrics)
    assert metrics["test/hybrid/ndcg_at_10"] == first["metrics"]["test"]["hybrid"]["ndcg@10"]
    assert {"timing/evaluate_s", "timing/prepare_s", "timing/register_model_s"} <= set(metrics)
    assert tags["served_mode"] == "hybrid" and tags["data.fingerprint"] == summary["data_fingerprint"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    assert tags["mlflow.source.git.commit"] == head and tags["git.commit"] == head
    assert len(tags["dvc.lock.sha256"]) == 64 and tags["dvc.md5.data/processed/chunks.parquet"]
    assert len(tags["data.sha256.qrels"]) == 64 and tags["embed.model_id"] != "None"
    # the arithmetic each model trained in: the setting (auto) is a param, what it resolved to here a tag
    from ragops.encode.models import training_precision

    built = yaml.safe_load((root / "params.yaml").read_text())
    for name, key in (("embedder", "train.embedder"), ("reranker", "train.reranker"),
                      ("grounding", "grounding.cross_encoder")):
        section, field = key.split(".")
        setting = built[section][field]["precision"]
        assert params[f"{key}.precision"] == setting
        assert tags[f"training.precision.{name}"] == training_precision(setting, "cpu")
    files = {a.path for a in c.list_artifacts(summary["run_id"])}
    assert {"per_query.csv", "metrics.json", "plots", "lineage"} <= files
    plots = {a.path for a in c.list_artifacts(summary["run_id"], "plots")}
    assert {"plots/ndcg_test.csv", "plots/ndcg_at_10_test.png", "plots/means_test.png"} <= plots
    assert c.get_model_version(MODEL, "1").run_id == summary["run_id"]
    lineage = Path(c.download_artifacts(summary["run_id"], "lineage", str(root / ".cache/check")))
    assert (lineage / "dvc.lock").read_text() and json.loads((lineage / "stage_times.json").read_text())["evaluate"]
    # No credential anywhere in the store (database and artifacts).
    for path in [root / "mlflow.db", *(p for p in (root / "mlartifacts").rglob("*") if p.is_file())]:
        if path.stat().st_size < 50_000_000:
            assert SECRET.encode() not in path.read_bytes(), path


def test_packaged_model_is_files_with_a_signature(history: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    root = history["root"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", f"sqlite:///{root / 'mlflow.db'}")
    info = mlflow.models.get_model_info(f"models:/{MODEL}/1")
    assert [c["name"] for c in info.signature.inputs.to_dict()] == ["query", "k", "mode"]
    assert [c["name"] for c in info.signature.outputs.to_dict()] == ["query", "rank", "doc_id", "score", "title",
                                                                     "text"]
    assert {p.name for p in info.signature.params.params} == {"k", "mode"}
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL}/1", dst_path=str(root / ".cache/m1")))
    assert (local / "input_example.json").exists() and (local / "code/ragops/pyfunc.py").exists()
    names = {p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()}
    assert not [n for n in names if n.endswith((".pkl", ".pickle"))], names
    assert {"artifacts/config.json", "artifacts/chunks.parquet", "artifacts/docs.parquet",
            "artifacts/model/model.safetensors"} <= names
    # every part by its MLflow artifact name (two folders named faiss: MLflow gives them their own paths)
    parts = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["python_function"]["artifacts"]
    assert {"faiss", "faiss_ft", "bm25", "embedder_ft", "reranker", "grounding"} <= set(parts)
    assert parts["faiss"]["path"] != parts["faiss_ft"]["path"]
    assert all((local / p["path"]).exists() for p in parts.values())
    # registry.package: serving (the default): what runs through an ONNX export travels without its PyTorch weights,
    # and says which model it is; the base encoder keeps its own (its fingerprint keys the sentence store)
    assert [n for n in names if n.endswith("model.safetensors")] == [f"{parts['embedder']['path']}/model.safetensors"]
    from ragops.encode.models import model_fingerprint

    for part, folder in (("embedder_ft", "embedder"), ("reranker", "reranker"), ("grounding", "grounding")):
        record = json.loads((local / parts[part]["path"] / "ragops_package.json").read_text())
        assert record["left_out"] and record["source_fingerprint"] == model_fingerprint(root / "models" / folder)


def test_worse_challenger_is_not_promoted(history: dict) -> None:
    step = history["steps"][2]
    summary, d = step["registry"], step["registry"]["decision"]
    assert summary["version"] == 2 and not summary["promoted"]
    assert summary["aliases"] == {"champion": "1", "challenger": "2"}
    assert d["delta"] < -0.01 and d["p_value"] < 0.05 and "significant" in d["reason"]
    assert "NOT promoted (champion stays v1)" in step["stdout"] and "p=" in step["stdout"]
    tags = client(history["root"]).get_model_version(MODEL, "2").tags
    assert tags["gate.decision"] == "block" and tags["gate.champion_version"] == "1"
    assert float(tags["gate.challenger_score"]) == pytest.approx(d["challenger"], abs=1e-6)
    assert float(tags["gate.champion_score"]) == pytest.approx(d["champion"], abs=1e-6)
    assert float(tags["gate.p_value"]) == pytest.approx(d["p_value"], abs=1e-6)


def test_better_challenger_is_promoted(history: dict) -> None:
    summary = history["steps"][3]["registry"]
    assert summary["version"] == 3 and summary["promoted"] and summary["previous_champion"] == 1
    assert summary["aliases"] == {"champion": "3", "challenger": "3"}
    assert summary["decision"]["delta"] > 0 and "not lower" in summary["decision"]["reason"]
    assert client(history["root"]).get_model_version(MODEL, "3").tags["gate.decision"] == "promote"


def test_a_fusion_change_reruns_only_what_reads_fusion(history: dict) -> None:
    for version in (2, 3):  # fusion.alpha alone changed
        step = history["steps"][version]
        # fusion is packaged with the model, and the rag stage answers from the fused list; no model retrains
        assert step["status"] == {"rag", "evaluate", "register"}, step["status"]
        out = step["stdout"]
        assert all(f"Running stage '{s}'" in out for s in ("rag", "evaluate", "register")), out
        assert out.count("Running stage") == 3, out


def test_ci_gate_fails_the_regression_and_passes_the_reverse(history: dict) -> None:
    """`ragops gate` as .github/workflows/pipeline.yml runs it: the pull request's own outputs (v2: BM25 alone,
    clearly worse than v1's hybrid) against the base's kept per-query scores and metrics; each side judged in the
    mode it would serve (here registry.mode: hybrid), named in the report."""
    steps = history["steps"]
    worse = steps[2]["gate"]
    assert worse.returncode == 1, worse.stdout + worse.stderr
    assert "gate: FAIL" in worse.stdout
    report = (steps[2]["reports"] / "gate.md").read_text()
    assert "❌ fails" in report and "Queries whose ndcg@10 dropped most" in report
    assert "| test | hybrid | ndcg@10 |" in report
    assert "Served mode — base: `hybrid` (" in report
    # the other way round: v1's hybrid outputs against the BM25-only baseline pass
    v1 = steps[1]["reports"]
    better = run(["ragops", "gate", "--baseline", str(steps[2]["reports"] / "per_query.csv"), "--candidate",
                  str(v1 / "per_query.csv"), "--candidate-metrics", str(v1 / "metrics.json")], history["root"],
                 check=False)
    assert better.returncode == 0, better.stdout + better.stderr
    assert "gate: PASS" in better.stdout


def test_models_lists_versions_aliases_and_scores(history: dict) -> None:
    out = json.loads(run(["ragops", "models", "--json"], history["root"]).stdout)
    rows = {r["version"]: r for r in out["versions"]}
    assert list(rows) == [3, 2, 1]
    assert rows[3]["aliases"] == ["challenger", "champion"] and rows[1]["aliases"] == []
    assert rows[2]["decision"] == "block" and rows[2]["score"] < rows[1]["score"] < rows[3]["score"]
    assert rows[2]["p_value"] < 0.05
    table = run(["ragops", "models"], history["root"]).stdout
    assert MODEL in table and "block" in table


def test_registry_model_answers_exactly_like_the_local_index(history: dict) -> None:
    root = history["root"]
    texts = sample_queries(root, 12)
    out = run([sys.executable, "-c", COMPARE, json.dumps(texts), f"models:/{MODEL}@champion"], root,
              env={"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}).stdout
    result = json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[len("RESULT "):])
    assert result["columns"] == ["query", "rank", "doc_id", "score", "title", "text"]
    assert len(result["got"]) == 12 * 10 and result["got"] == result["want"]  # ids, order and float scores
    local = run(["ragops", "search", texts[0], "--json"], root).stdout
    model = run(["ragops", "search", texts[0], "--json", "--model", f"models:/{MODEL}@champion"], root).stdout
    assert json.loads(model) == json.loads(local) and len(json.loads(model)["results"]) == 10
    missing = run(["ragops", "search", "x", "--model", f"models:/{MODEL}/99"], root, check=False)
    assert missing.returncode == 2 and "cannot load" in missing.stderr and "Traceback" not in missing.stderr


def test_promote_runs_the_gate_unless_forced(history: dict) -> None:
    root = history["root"]
    blocked = run(["ragops", "promote", "--version", "2"], root, check=False)
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert "not promoted: champion stays v3" in blocked.stdout
    forced = run(["ragops", "promote", "--version", "2", "--force"], root)
    assert "v2 is now champion (was v3)" in forced.stdout
    c = client(root)
    assert str(c.get_model_version_by_alias(MODEL, "champion").version) == "2"
    assert c.get_model_version(MODEL, "2").tags["gate.decision"] == "forced"
    back = run(["ragops", "promote"], root)  # default: the challenger (v3), gated against v2: better
    assert "v3 is now champion (was v2)" in back.stdout
    assert "already champion" in run(["ragops", "promote", "--version", "3"], root).stdout
    unknown = run(["ragops", "promote", "--version", "42"], root, check=False)
    assert unknown.returncode == 2 and "no version 42" in unknown.stderr


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1 (SQLite backend, proxied artifacts), stopped with its workers."""
    port = free_port()
    cmd = [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
           f"sqlite:///{tmp_path / 'server.db'}", "--artifacts-destination", str(tmp_path / "server-artifacts"),
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # MLflow's job runner (GenAI jobs: eight huey processes, ~25 s of CPU under `make test`) is nothing ragops
    # uses; the tracking, registry and proxied artifacts are what is tested (README: "mlflow server")
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    # a bound, not a wait: on a VM whose page faults ran ~10x slow the server was not up after 120 s (2026-12-03)
    with background(cmd, tmp_path, env, tmp_path / "server.log", f"http://127.0.0.1:{port}/health",
                    lambda r: r.text.strip() == "OK", "mlflow server", timeout=300) as url:
        yield url


def cold_onnx_dir(root: Path, folder: Path) -> str:
    """An embed.onnx_dir holding the build's exports but the fine-tuned encoder's (hard links where it can): as on
    a machine that pulled the outputs and never ran embed_ft. Returns the missing export's folder name."""
    from ragops.encode.models import model_fingerprint
    from ragops.encode.onnx_encoder import export_dir

    built = Path(yaml.safe_load((root / "params.yaml").read_text())["embed"]["onnx_dir"]).expanduser()
    missing = export_dir(built, model_fingerprint(root / "models/embedder")).name
    shutil.copytree(built, folder, copy_function=link_or_copy, ignore=lambda d, names: {missing} & set(names))
    return missing


def test_against_a_real_mlflow_server(history: dict, mlflow_server: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root = history["root"]
    env = {"MLFLOW_TRACKING_URI": mlflow_server}
    # the fine-tuned encoder's export is not in embed.onnx_dir: register makes it, and the package carries it
    saved = (root / "params.yaml").read_text()
    missing = cold_onnx_dir(root, tmp_path / "onnx")
    set_params(root, embed__onnx_dir=str(tmp_path / "onnx"))
    try:
        out = run([sys.executable, "-m", "ragops.stages.register"], root, env=env).stdout
    finally:
        (root / "params.yaml").write_text(saved)
    assert (tmp_path / "onnx" / missing / "model_int8.onnx").is_file()
    assert f"{MODEL} v1 serving hybrid" in out and "PROMOTED to champion" in out and mlflow_server in out
    summary = registry_json(root)
    assert summary["tracking_uri"] == mlflow_server and summary["version"] == 1
    listed = json.loads(run(["ragops", "models", "--json"], root, env=env).stdout)
    assert [(r["version"], r["aliases"]) for r in listed["versions"]] == [(1, ["challenger", "champion"])]
    query = sample_queries(root, 1)[0]
    tmp = tmp_path / "tmp"  # where the remote version is downloaded: removed when the command exits
    tmp.mkdir()
    remote = run(["ragops", "search", query, "--json", "--model", f"models:/{MODEL}@champion"], root,
                 env={**env, "TMPDIR": str(tmp)}).stdout
    assert json.loads(remote) == json.loads(run(["ragops", "search", query, "--json"], root).stdout)
    assert not list(tmp.rglob("MLmodel")), list(tmp.iterdir())
    run_ = httpx.get(f"{mlflow_server}/api/2.0/mlflow/runs/get", params={"run_id": summary["run_id"]}).json()["run"]
    assert any(m["key"] == "test/hybrid/ndcg_at_10" for m in run_["data"]["metrics"])
    import mlflow.artifacts

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    exports = {Path(f.path).name for f in mlflow.artifacts.list_artifacts(f"models:/{MODEL}/1/artifacts/onnx")}
    # both query encoders and the reranker; the fine-tuned encoder travels without its weights (registry.package:
    # serving): its export is filed under the packaged folder's fingerprint, and the folder names the build's model
    from ragops.encode.models import model_fingerprint
    from ragops.encode.onnx_encoder import export_dir

    ft = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL}/1/artifacts/embedder",
                                                  dst_path=str(tmp_path / "ft")))
    source = json.loads((ft / "ragops_package.json").read_text())["source_fingerprint"]
    assert export_dir(Path(), source).name == missing
    assert len(exports) == 3 and export_dir(Path(), model_fingerprint(ft)).name in exports, exports


def test_unchanged_models_cost_no_disk_again(history: dict) -> None:
    """v2 and v3 retrained nothing: their packages add only what changed (config, metrics), the model
    files are links to v1's blobs (issue 15: <= 10 MB per version)."""
    first, later = history["steps"][1]["registry"]["package"], history["steps"][3]["registry"]["package"]
    # the base encoder, three ONNX exports, the grounding cross-encoder's, the sentence vectors: once
    assert first["weights"] == "serving" and 200e6 < first["bytes_new"] < 400e6, first
    assert later["bytes_total"] == pytest.approx(first["bytes_total"], rel=0.01)
    assert later["bytes_new"] < 10e6 and later["linked"] > first["linked"], (first, later)
    c = client(history["root"])
    a_root, b_root = (Path(c.get_model_version_download_uri(MODEL, v)[len("file://"):]) / "artifacts" for v in "13")
    shared = ["model/model.safetensors", *(p.relative_to(a_root).as_posix() for p in (a_root / "onnx").rglob("*.onnx"))]
    assert len(shared) == 4, shared
    for rel in shared:
        assert (a_root / rel).stat().st_size > 10e6 and os.path.samefile(a_root / rel, b_root / rel), rel


def test_an_experiment_is_logged_not_registered(history: dict) -> None:
    """`dvc exp run` is a question, not a release: a run in the experiment, no new version, no alias moved."""
    root = history["root"]
    before = client(root).get_registered_model(MODEL).aliases
    out = run(["dvc", "exp", "run", "-S", "fusion.alpha=0.5", "-n", "alpha-half"], root)
    assert "logged, not registered" in out.stdout, out.stdout[-2000:]
    summary = registry_json(root)
    assert summary["registered"] is False and "dvc exp run (alpha-half)" in summary["reason"]
    c = client(root)
    assert max(int(v.version) for v in c.search_model_versions(f"name = '{MODEL}'")) == 3
    assert c.get_registered_model(MODEL).aliases == before
    assert c.get_run(summary["run_id"]).data.tags["dvc.experiment"] == "alpha-half"
