"""The trained pipeline as registered and served (issue 15), on the shared tiny build (read only here):

- the registered package carries every model its modes need (both embedders and their indexes, the
  reranker, the grounding scorer, the answers' sentence vectors, the ONNX query-encoder exports), and
  `registry.mode: auto` chose the served mode on dev within the latency budget and said why;
- the real MLflow client serves it: `mlflow models serve -m models:/ragops-retriever@champion
  --env-manager local` on 127.0.0.1, `mlflow.pyfunc.load_model(...).predict(DataFrame)` and `ragops search`
  answer alike, in every mode the package carries;
- `ragops ask --model` answers with the package's own grounding scorer and sentence vectors; a package
  missing a part names it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from ragops.encode.onnx_reranker import RECIPE
from ragops.harness import background, free_port

from .conftest import run

pytestmark = pytest.mark.integration
MODEL = "ragops-retriever"
ALL_MODES = ["bm25", "dense", "hybrid", "dense_ft", "hybrid_ft", "hybrid_rerank", "hybrid_ft_rerank"]
# Expected answers from the local build and the pyfunc model, for every mode, in one process.
COMPARE = r"""
import json, sys
import mlflow.pyfunc, pandas as pd
from ragops.retrieval.load import load_pipeline
from ragops.config import load_params
params = load_params("params.yaml")
texts, uri, modes = json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
model = mlflow.pyfunc.load_model(uri)
pipeline, _ = load_pipeline(params)
out = {"default": model.unwrap_python_model().pipeline.default_mode, "modes": list(pipeline.modes)}
for mode in modes:
    got = model.predict(pd.DataFrame({"query": texts, "mode": [mode] * len(texts)}), params={"k": 10})
    hits = pipeline.search_batch(texts, mode, 10)
    out[mode] = {"got": [[q, d, s] for q, d, s in zip(got["query"], got["doc_id"], got["score"].astype(float))],
                 "want": [[t, d, s] for t, h in zip(texts, hits) for d, s in zip(h.ids, h.scores.tolist())]}
print("RESULT " + json.dumps(out))
"""


def test_queries(root: Path, n: int) -> list[str]:
    import pandas as pd

    qrels = pd.read_parquet(root / "data/processed/qrels.parquet")
    queries = pd.read_parquet(root / "data/processed/queries.parquet").set_index("query_id")
    ids = sorted(set(qrels[qrels["split"] == "test"]["query_id"]))[:n]
    return queries.loc[ids, "text"].tolist()


test_queries.__test__ = False  # a helper, not a test


def store_env(root: Path) -> dict[str, str]:
    return {"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}


@pytest.fixture(scope="module")
def summary(built_project: Path) -> dict:
    return json.loads((built_project / "reports/registry.json").read_text())


@pytest.fixture(scope="module")
def package(built_project: Path, summary: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The registered version, downloaded (what `mlflow models serve` loads)."""
    import mlflow

    mlflow.set_tracking_uri(store_env(built_project)["MLFLOW_TRACKING_URI"])
    try:
        return Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL}/{summary['version']}",
                                                        dst_path=str(tmp_path_factory.mktemp("package"))))
    finally:
        mlflow.set_tracking_uri(None)


def test_the_package_carries_every_mode_and_serves_the_one_chosen_on_dev(built_project: Path, summary: dict,
                                                                          package: Path) -> None:
    from ragops.registry.served_mode import choose_mode

    metrics = json.loads((built_project / "reports/metrics.json").read_text())
    params = yaml.safe_load((built_project / "params.yaml").read_text())
    assert params["registry"]["mode"] == "auto"
    want = choose_mode(metrics, "auto", ALL_MODES, "ndcg@10", "dev", float(params["registry"]["max_p95_ms"]))
    assert summary["served_mode"] == want.mode and summary["served_mode_reason"] == want.reason
    assert {c["mode"] for c in summary["mode_candidates"]} == set(ALL_MODES)
    assert all(c["latency_split"] == "dev" for c in summary["mode_candidates"])  # timed on dev, chosen on dev
    config = json.loads((package / "artifacts/config.json").read_text())
    assert config["mode"] == summary["served_mode"] and config["modes"] == ALL_MODES
    assert config["fusion_ft"] == {**config["fusion_ft"], **params["fusion_ft"]}
    assert config["rerank"]["n"] == params["rerank"]["n"] and config["rerank"]["weight"] == params["rerank"]["weight"]
    mlmodel = yaml.safe_load((package / "MLmodel").read_text())
    parts = mlmodel["flavors"]["python_function"]["artifacts"]
    assert set(parts) == {"embedder", "faiss", "bm25", "chunks", "docs", "embedder_ft", "faiss_ft", "reranker",
                          "grounding", "sentences", "onnx", "config"}
    store = package / parts["sentences"]["path"]  # /ask's sentence vectors, as the build's rag stage read them
    built = built_project / "models/sentences"
    assert json.loads((store / "meta.json").read_text())["count"] > 0
    assert {p.relative_to(store): p.read_bytes() for p in store.rglob("*.npy")} == \
        {p.relative_to(built): p.read_bytes() for p in built.rglob("*.npy")}
    grounding = package / parts["grounding"]["path"]
    assert (grounding / "scorers.json").read_bytes() == (built_project / "models/grounding/scorers.json").read_bytes()
    assert (grounding / "cross_encoder/onnx/model.onnx").read_bytes() == \
        (built_project / "models/grounding/cross_encoder/onnx/model.onnx").read_bytes()  # the served cross-encoder
    # the reranker runs through its export (rerank.backend onnx-int8): its weights stayed in the build
    # (registry.package: serving), the export is the build's own, filed under the packaged folder's fingerprint
    from ragops.encode.models import model_fingerprint
    from ragops.encode.onnx_reranker import FILE, export_dir

    reranker = package / parts["reranker"]["path"]
    record = json.loads((reranker / "ragops_package.json").read_text())
    assert record["left_out"] == ["model.safetensors"] and not (reranker / "model.safetensors").exists()
    assert record["source_fingerprint"] == model_fingerprint(built_project / "models/reranker")
    build_exports = Path(params["embed"]["onnx_dir"]).expanduser()
    assert (export_dir(package / parts["onnx"]["path"], model_fingerprint(reranker)) / FILE).read_bytes() == \
        (export_dir(build_exports, record["source_fingerprint"]) / FILE).read_bytes()
    onnx = package / parts["onnx"]["path"]
    exports = sorted(p.parent.name for p in onnx.glob("*/model_int8.onnx"))
    # both query encoders and the reranker (rerank.backend onnx-int8)
    assert len(exports) == 3 and sum(e.endswith(f"-ce{RECIPE}") for e in exports) == 1, exports
    rows = json.loads(run(["ragops", "models", "--json"], built_project).stdout)["versions"]
    assert next(r for r in rows if r["version"] == summary["version"])["mode"] == summary["served_mode"]


def test_pyfunc_and_the_local_build_answer_alike_in_every_mode(built_project: Path, summary: dict) -> None:
    texts = test_queries(built_project, 8)
    uri = f"models:/{MODEL}/{summary['version']}"
    out = run([sys.executable, "-c", COMPARE, json.dumps(texts), uri, json.dumps(ALL_MODES)], built_project,
              env=store_env(built_project)).stdout
    result = json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[len("RESULT "):])
    assert result["default"] == summary["served_mode"] and result["modes"] == ALL_MODES
    for mode in ALL_MODES:
        got, want = result[mode]["got"], result[mode]["want"]
        assert len(got) == len(texts) * 10
        assert [g[:2] for g in got] == [w[:2] for w in want], mode
        # the reranker runs torch in another process: its float sums may differ in the last bits
        assert [g[2] for g in got] == pytest.approx([w[2] for w in want], abs=1e-5), mode


@pytest.fixture(scope="module")
def mlflow_serve(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real `mlflow models serve` of the champion, in this environment, on 127.0.0.1."""
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}, **store_env(built_project),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m", f"models:/{MODEL}@champion",
           "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log = tmp_path_factory.mktemp("mlflow-serve") / "serve.log"
    with background(cmd, built_project, env, log, f"http://127.0.0.1:{port}/ping", what="mlflow models serve") as url:
        yield url


def test_mlflow_models_serve_answers_like_ragops_search(built_project: Path, mlflow_serve: str,
                                                        summary: dict) -> None:
    texts = test_queries(built_project, 3)
    # every mode, through the HTTP scoring protocol, against the local pipeline
    out = run([sys.executable, "-c", COMPARE, json.dumps(texts), f"models:/{MODEL}@champion",
               json.dumps(ALL_MODES)], built_project, env=store_env(built_project)).stdout
    expected = json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[len("RESULT "):])
    for mode in ALL_MODES:
        body = {"dataframe_split": {"columns": ["query", "mode"], "data": [[t, mode] for t in texts]},
                "params": {"k": 10}}
        r = httpx.post(f"{mlflow_serve}/invocations", json=body, timeout=120)
        assert r.status_code == 200, r.text[:2000]
        rows = r.json()["predictions"]
        assert [[x["query"], x["doc_id"]] for x in rows] == [w[:2] for w in expected[mode]["want"]], mode
        assert [x["score"] for x in rows] == pytest.approx([w[2] for w in expected[mode]["want"]], abs=1e-5)
    # no mode: the registered one; and the CLI over the champion and over the local build agree
    default = httpx.post(f"{mlflow_serve}/invocations", json={"dataframe_split": {
        "columns": ["query"], "data": [[texts[0]]]}, "params": {"k": 10}}, timeout=120).json()["predictions"]
    cli = json.loads(run(["ragops", "search", texts[0], "--json", "--model", f"models:/{MODEL}@champion"],
                         built_project).stdout)
    assert cli["mode"] == summary["served_mode"]
    assert [x["doc_id"] for x in default] == [x["doc_id"] for x in cli["results"]]
    local = json.loads(run(["ragops", "search", texts[0], "--json", "--mode", cli["mode"]], built_project).stdout)
    assert [x["doc_id"] for x in local["results"]] == [x["doc_id"] for x in cli["results"]]
    bad = httpx.post(f"{mlflow_serve}/invocations", json={"dataframe_split": {
        "columns": ["query", "mode"], "data": [[texts[0], "colbert"]]}}, timeout=60)
    assert bad.status_code >= 400 and "unknown mode 'colbert'" in bad.text


def test_cli_names_valid_modes_and_asks_with_the_packaged_grounding(built_project: Path, tmp_path: Path) -> None:
    unknown = run(["ragops", "search", "statins", "--mode", "colbert", "--model", f"models:/{MODEL}@champion"],
                  built_project, check=False)
    message = " ".join(unknown.stderr.replace("│", " ").split())  # typer draws the message in a box
    assert unknown.returncode == 2 and "unknown mode 'colbert'; valid: bm25, dense, hybrid, dense_ft, hybrid_ft, " \
        "hybrid_rerank, hybrid_ft_rerank" in message, message
    # params whose local grounding folder does not exist: the trained scorer can only come from the package
    params = yaml.safe_load((built_project / "params.yaml").read_text())
    params["paths"]["grounding_model"] = str(tmp_path / "no-grounding-here")
    params["paths"]["sentences"] = str(tmp_path / "no-sentences-here")  # nor its sentence vectors
    params["registry"]["tracking_uri"] = f"sqlite:///{built_project / 'mlflow.db'}"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run(["ragops", "ask", "Does vitamin D deficiency cause fractures?", "--json", "--generator", "extractive",
               "--model", f"models:/{MODEL}@champion", "--params", str(tmp_path / "params.yaml")], tmp_path).stdout
    answer = json.loads(out)
    assert answer["scorer"] == "trained" and answer["claims"] and answer["citations"]
    # the answerer `ragops ask --model` builds reads the package's sentence vectors: only the question is encoded;
    # and it runs on ONNX alone: the package's query encoders, reranker and grounding cross-encoder (never torch)
    probe = ("import json, sys; from pathlib import Path; from ragops.cli.ask import _answerer; "
             "a = _answerer(Path(sys.argv[1]), sys.argv[2], 'extractive', None, None); a.ask(sys.argv[3]); "
             "s = a.encode.base; print(json.dumps([type(s).__name__, s.hits, s.misses, a.scorer.name, "
             "sorted(m for m in ('torch', 'transformers') if m in sys.modules)]))")
    used = run([sys.executable, "-c", probe, str(tmp_path / "params.yaml"), f"models:/{MODEL}@champion",
                "Does vitamin D deficiency cause fractures?"], tmp_path).stdout
    kind, hits, misses, scorer, imported = json.loads(used.strip().splitlines()[-1])
    assert kind == "StoredVectors" and hits > 0 and misses == 1, used
    assert scorer == "trained" and imported == [], used
    # registry.package: serving left the cross-encoder's PyTorch weights out: a torch backend says so, in one line
    params["answer"]["grounding_backend"] = "torch"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    torch = run(["ragops", "ask", "Does vitamin D deficiency cause fractures?", "--model", f"models:/{MODEL}@champion",
                 "--params", str(tmp_path / "params.yaml")], tmp_path, check=False)
    assert torch.returncode == 2 and "Traceback" not in torch.stderr, torch.stderr[-2000:]
    assert "answer.grounding_backend is torch, but this version was registered without the PyTorch weights of the " \
        "grounding cross-encoder" in " ".join(torch.stderr.replace("│", " ").split()), torch.stderr[-2000:]


def test_a_full_package_keeps_the_weights_and_ranks_the_same(built_project: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """registry.package: full carries the build's model folders as they are; serving (the default) slimmed copies
    whose fingerprints name their ONNX exports: both rank alike in every mode that runs an export."""
    from ragops.config import load_params
    from ragops.encode.models import model_fingerprint
    from ragops.registry.package import left_out, package_parts
    from ragops.retrieval.load import assemble_pipeline, pipeline_config

    monkeypatch.chdir(built_project)  # the build's paths are relative to its root
    params = load_params("params.yaml")
    full, slim = package_parts(params, tmp_path / "full", "full"), package_parts(params, tmp_path / "slim")
    for key, folder in (("embedder_ft", "models/embedder"), ("reranker", "models/reranker"),
                        ("grounding", "models/grounding")):
        assert Path(full[key]).resolve() == (built_project / folder).resolve() and left_out(full[key]) == []
        assert left_out(slim[key]) and not any((Path(slim[key]) / f).exists() for f in left_out(slim[key])), key
        record = json.loads((Path(slim[key]) / "ragops_package.json").read_text())
        assert record["source_fingerprint"] == model_fingerprint(built_project / folder), key
    assert left_out(slim["embedder"]) == []  # the base keeps its weights: its fingerprint keys the sentence store
    # answering with the cross-encoder on torch (answer.grounding_backend, a register param) keeps its weights
    torch = package_parts({**params, "answer": {**params["answer"], "grounding_backend": "torch"}}, tmp_path / "torch")
    assert left_out(torch["grounding"]) == [] and left_out(torch["reranker"]) == left_out(slim["reranker"])
    config = pipeline_config(params)
    texts = test_queries(built_project, 2)
    ranked = {}
    for name, parts in (("full", full), ("slim", slim)):
        pipeline, _ = assemble_pipeline(parts, config, ["hybrid_ft_rerank"])
        ranked[name] = [(h.ids, h.scores.tolist()) for h in pipeline.search_batch(texts, "hybrid_ft_rerank", 10)]
    assert ranked["slim"] == ranked["full"]


def test_a_package_missing_a_part_names_it(package: Path, built_project: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(package, broken)
    parts = yaml.safe_load((broken / "MLmodel").read_text())["flavors"]["python_function"]["artifacts"]
    shutil.rmtree(broken / parts["reranker"]["path"])
    out = run(["ragops", "search", "statins", "--model", str(broken)], built_project, check=False)
    assert out.returncode == 2 and "the package has no 'reranker', which its mode 'hybrid_rerank' needs" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_package_without_its_grounding_scorer_never_borrows_the_builds(package: Path, built_project: Path,
                                                                         tmp_path: Path) -> None:
    """The build's scorer may have been trained for another version: a package that carries none checks claims
    with the embedding scorer and says so."""
    bare = tmp_path / "no-grounding"
    shutil.copytree(package, bare)
    mlmodel = yaml.safe_load((bare / "MLmodel").read_text())
    shutil.rmtree(bare / mlmodel["flavors"]["python_function"]["artifacts"].pop("grounding")["path"])
    (bare / "MLmodel").write_text(yaml.safe_dump(mlmodel, sort_keys=False))
    assert (built_project / "models/grounding/scorers.json").is_file()  # the build has a trained scorer to borrow
    out = run(["ragops", "ask", "Does vitamin D deficiency cause fractures?", "--json", "--generator", "extractive",
               "--model", str(bare)], built_project)
    answer = json.loads(out.stdout)
    assert answer["scorer"] == "embedding" and answer["claims"] and answer["citations"], answer
    assert "the package carries no grounding scorer; using the embedding scorer" in out.stderr, out.stderr[-2000:]


def test_a_package_without_an_encoder_export_never_writes_into_itself(package: Path, built_project: Path,
                                                                      tmp_path: Path) -> None:
    """A package registered before `register` packaged every query encoder's ONNX export: loading it takes the
    missing export from ragops' export cache (RAGOPS_ONNX_DIR; made there when absent), never writes it into the
    package, whose folder a local store loads in place and shares by hard links across versions."""
    legacy = tmp_path / "legacy"
    shutil.copytree(package, legacy)
    parts = yaml.safe_load((legacy / "MLmodel").read_text())["flavors"]["python_function"]["artifacts"]
    onnx = legacy / parts["onnx"]["path"]
    from ragops.encode.onnx_encoder import export_dir

    fingerprint = json.loads((legacy / "artifacts/config.json").read_text())["embed"]["model_id"].split(":")[0]
    base = export_dir(Path(), fingerprint).name
    cache = tmp_path / "onnx-cache"
    cache.mkdir()
    shutil.move(onnx / base, cache / base)  # the base encoder's export: in the cache (as the build left it), not here

    def files() -> list[tuple[str, int]]:
        return sorted((str(p.relative_to(legacy)), p.stat().st_size) for p in legacy.rglob("*")
                      if "__pycache__" not in p.parts)

    before = files()
    query = ["ragops", "search", "statins and muscle pain", "--json", "--mode", "hybrid_rerank", "--model"]
    got = run([*query, str(legacy)], built_project, env={"RAGOPS_ONNX_DIR": str(cache)})
    assert "has no ONNX export of a query encoder it serves" in got.stderr, got.stderr[-2000:]
    want = json.loads(run([*query, str(package)], built_project).stdout)
    assert [r["doc_id"] for r in json.loads(got.stdout)["results"]] == [r["doc_id"] for r in want["results"]]
    assert files() == before  # nothing exported, linked or written into the package
    # the package's own exports (the fine-tuned encoder's, the reranker's) are read through links in the cache
    assert {p.name for p in cache.iterdir() if p.is_symlink()} == {p.name for p in onnx.iterdir()}
    assert not (cache / base).is_symlink() and (cache / base / "meta.json").is_file()
