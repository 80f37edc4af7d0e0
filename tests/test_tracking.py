"""ragops.registry.tracking (store resolution, what is logged), ragops.timing, and the pyfunc helpers that need
no model: all offline, no MLflow server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ragops.errors import ConfigError
from ragops.pyfunc import OUTPUT_COLUMNS, requirement_mismatches, search_frame
from ragops.registry.tracking import (
    RegistryConfig,
    flat_metrics,
    lineage_tags,
    loggable_params,
    metric_key,
    precision_tags,
    redact_uri,
    resolve_store,
)
from ragops.retrieval.load import pipeline_config
from ragops.retrieval.records import Hits
from ragops.timing import read_stage_times, record_stage_time

# ---------------------------------------------------------------- configuration and store


def test_registry_config_defaults_and_validation() -> None:
    cfg = RegistryConfig.from_params({"tolerance": "0.02", "k": 5})
    assert cfg.tolerance == 0.02 and cfg.k == 5 and cfg.model_name == "ragops-retriever"
    assert cfg.mode == "auto" and cfg.gate_key("hybrid_ft") == "test/hybrid_ft/ndcg_at_10"
    assert RegistryConfig.from_params(None) == RegistryConfig()
    with pytest.raises(ConfigError, match="unknown keys.*tolerence"):
        RegistryConfig.from_params({"tolerence": 0.1})
    with pytest.raises(ConfigError, match="valid: auto, bm25, dense, dense_ft, hybrid, hybrid_ft, hybrid_ft_rerank"):
        RegistryConfig(mode="sparse")
    assert RegistryConfig(mode="hybrid_ft_rerank").mode == "hybrid_ft_rerank"
    with pytest.raises(ConfigError, match="fit it to test"):
        RegistryConfig(select_split="test")
    with pytest.raises(ConfigError, match="max_p95_ms must be > 0"):
        RegistryConfig.from_params({"max_p95_ms": "0"})
    with pytest.raises(ConfigError, match="valid: register, skip"):
        RegistryConfig(experiments="always")
    with pytest.raises(ConfigError, match="valid: randomization, ttest"):
        RegistryConfig(test="wilcoxon")
    with pytest.raises(ConfigError, match="metric"):
        RegistryConfig(metric="ndcg10")


def test_store_defaults_to_sqlite_in_the_project(tmp_path: Path) -> None:
    store = resolve_store(RegistryConfig(), tmp_path, env={})
    assert store.tracking_uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert store.tracking_uri.startswith("sqlite:////")  # absolute: the same store from any working directory
    assert store.artifact_location == (tmp_path.resolve() / "mlartifacts").as_uri()


def test_environment_wins_and_servers_choose_their_artifacts(tmp_path: Path) -> None:
    server = resolve_store(RegistryConfig(), tmp_path, env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"})
    assert server.tracking_uri == "http://127.0.0.1:5000" and server.artifact_location is None
    other = resolve_store(RegistryConfig(artifact_root="/srv/art"), tmp_path,
                          env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/x/m.db"})
    assert other.tracking_uri == f"sqlite:///{tmp_path}/x/m.db" and other.artifact_location == "file:///srv/art"


def test_credentials_in_uris_are_not_shown() -> None:
    assert redact_uri("https://bob:s3cret@mlflow.example.com:8443/x") == "https://mlflow.example.com:8443/x"
    assert redact_uri("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"


# ---------------------------------------------------------------- what a run logs


def test_params_are_flattened_and_secrets_dropped() -> None:
    params = {"fusion": {"alpha": 0.55}, "evaluate": {"modes": ["bm25", "hybrid"]},
              "generate": {"api_key": "x", "model": "claude", "anthropic_token": "y", "note": "sk-ant-" + "a" * 30},
              "db": {"password": "hunter2"}, "paths": {"docs": "data/processed/docs.parquet"}}
    logged = loggable_params(params)
    assert logged == {"fusion.alpha": "0.55", "evaluate.modes": '["bm25", "hybrid"]', "generate.model": "claude",
                      "paths.docs": "data/processed/docs.parquet"}


def test_metric_keys_are_valid_mlflow_names() -> None:
    assert metric_key("test", "hybrid", "ndcg@10") == "test/hybrid/ndcg_at_10"
    flat = flat_metrics({"test": {"bm25": {"ndcg@10": 0.5, "latency_ms": 1.5}}, "dev": {"dense": {"p@10": 0.1}}})
    assert flat == {"test/bm25/ndcg_at_10": 0.5, "test/bm25/latency_ms": 1.5, "dev/dense/p_at_10": 0.1}
    from mlflow.utils.validation import _validate_metric_name

    for key in flat:
        _validate_metric_name(key)


def test_lineage_tags_from_git_dvc_lock_and_files(tmp_path: Path) -> None:
    from mlflow.utils.validation import _validate_tag_name

    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  chunk:\n    cmd: python -m x\n    deps:\n    - path: src/ragops/x.py\n"
        "      md5: aaa\n    - path: /abs/data/raw/set\n      md5: bbb.dir\n    outs:\n"
        "    - path: data/processed/chunks.parquet\n      md5: ccc\n")
    (tmp_path / "docs.parquet").write_bytes(b"abc")
    commit = ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x"]
    for cmd in (["init", "-q"], ["add", "dvc.lock"], commit):
        subprocess.run(["git", *cmd], cwd=tmp_path, check=True, capture_output=True)
    tags = lineage_tags(tmp_path, {"docs": tmp_path / "docs.parquet", "missing": tmp_path / "nope"})
    assert tags["dvc.md5.data/processed/chunks.parquet"] == "ccc" and tags["dvc.md5.abs/data/raw/set"] == "bbb.dir"
    assert not any("src/" in k for k in tags)  # code is in the commit, not repeated per file
    assert tags["data.sha256.docs"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert len(tags["dvc.lock.sha256"]) == 64 and len(tags["mlflow.source.git.commit"]) == 40
    assert tags["git.dirty"] == "false" and "data.sha256.missing" not in tags
    for key in tags:
        _validate_tag_name(key)


def test_precision_tags_name_what_each_trained_model_resolved_to(tmp_path: Path) -> None:
    (tmp_path / "embedder").mkdir()
    (tmp_path / "embedder/training.json").write_text(json.dumps({"trained": True, "precision": "bf16"}))
    (tmp_path / "reranker").mkdir()  # not trained: a marker without a precision
    (tmp_path / "reranker/training.json").write_text(json.dumps({"trained": False, "reason": "disabled"}))
    report = tmp_path / "grounding.json"
    report.write_text(json.dumps({"train": {"trained": {"cross_encoder": {"precision": "fp32"}}}}))
    paths = {"embedder": str(tmp_path / "embedder"), "reranker": str(tmp_path / "reranker"),
             "grounding_report": str(report)}
    assert precision_tags(paths) == {"training.precision.embedder": "bf16", "training.precision.grounding": "fp32"}
    report.write_text(json.dumps({"train": {"trained": {}}}))  # the cross-encoder disabled
    assert precision_tags(paths | {"embedder": str(tmp_path / "missing")}) == {}


def test_outside_git_the_commit_is_unknown(tmp_path: Path) -> None:
    assert lineage_tags(tmp_path, {}) == {"git.commit": "unknown"}


# ---------------------------------------------------------------- stage timings


def test_stage_times_round_trip(tmp_path: Path) -> None:
    record_stage_time(tmp_path / "t", "evaluate", 12.34567)
    record_stage_time(tmp_path / "t", "chunk", 1.0)
    (tmp_path / "t" / "broken.json").write_text("{")
    times = read_stage_times(tmp_path / "t")
    assert set(times) == {"evaluate", "chunk"} and times["evaluate"]["seconds"] == 12.346
    assert times["chunk"]["finished"][:2] == "20"
    assert read_stage_times(tmp_path / "none") == {}


# ---------------------------------------------------------------- the packaged model, without a model


class FakeRetriever:
    """Ranks the ids given per query; records the batches it was asked for. Serves bm25 and hybrid."""

    modes = ("bm25", "hybrid")

    def __init__(self, ranked: dict[str, list[str]]) -> None:
        self.ranked, self.calls = ranked, []

    def resolve(self, mode):
        from ragops.retrieval.pipeline import check_mode

        return check_mode(mode or "hybrid", self.modes)

    def search_batch(self, queries, mode, k):
        self.calls.append((list(queries), mode, k))
        return [Hits(self.ranked[q][:k], np.linspace(1.0, 0.5, len(self.ranked[q]))[:k]) for q in queries]


def test_search_frame_rows_in_input_order_then_rank() -> None:
    docs = pd.DataFrame({"doc_id": ["a", "b", "c"], "title": ["A", "B", "C"], "text": ["ta", "tb", "tc"]})
    retriever = FakeRetriever({"q1": ["b", "a", "c"], "q2": ["c", "b"]})
    frame = pd.DataFrame({"query": ["q1", "q2", "q1"], "k": [2, None, 1], "mode": [None, "bm25", None]})
    out = search_frame(retriever, docs.set_index("doc_id"), frame, k=3, mode="hybrid")
    assert tuple(out.columns) == OUTPUT_COLUMNS
    assert out[["query", "rank", "doc_id"]].values.tolist() == [
        ["q1", 1, "b"], ["q1", 2, "a"], ["q2", 1, "c"], ["q2", 2, "b"], ["q1", 1, "b"]]
    assert out["title"].tolist()[:2] == ["B", "A"] and out["text"].tolist()[2] == "tc"
    assert out["score"].dtype == np.float64 and out["rank"].dtype == np.int64
    # Rows sharing (mode, k) go in one batch.
    assert sorted(retriever.calls) == [(["q1"], "hybrid", 1), (["q1"], "hybrid", 2), (["q2"], "bm25", 3)]


def test_search_frame_checks_its_input() -> None:
    docs = pd.DataFrame({"doc_id": ["a"], "title": ["A"], "text": ["t"]}).set_index("doc_id")
    with pytest.raises(ConfigError, match="'query' column"):
        search_frame(FakeRetriever({}), docs, pd.DataFrame({"text": ["x"]}), 3, "hybrid")
    with pytest.raises(ConfigError, match="k must be >= 1"):
        search_frame(FakeRetriever({"x": ["a"]}), docs, pd.DataFrame({"query": ["x"], "k": [0]}), 3, "hybrid")
    empty = search_frame(FakeRetriever({}), docs, pd.DataFrame({"query": []}), 3, "hybrid")
    assert empty.empty and tuple(empty.columns) == OUTPUT_COLUMNS
    # A mode the model does not carry: the error lists the ones it does.
    with pytest.raises(ConfigError, match="unknown mode 'dense_ft'; valid: bm25, hybrid"):
        search_frame(FakeRetriever({"x": ["a"]}), docs, pd.DataFrame({"query": ["x"], "mode": ["dense_ft"]}), 3, None)
    # No mode anywhere: the model's default.
    fake = FakeRetriever({"x": ["a"]})
    search_frame(fake, docs, pd.DataFrame({"query": ["x"]}), 3, None)
    assert fake.calls == [(["x"], "hybrid", 3)]


def test_pipeline_config_holds_what_shapes_answers() -> None:
    params = {"embed": {"model": "all-MiniLM-L6-v2", "batch_size": 32, "cache_dir": "/x"},
              "retrieve": {"depth": 50}, "fusion": {"method": "rrf", "alpha": 0.5, "norm": "minmax"},
              "fusion_ft": {"method": "convex", "alpha": 0.6, "norm": "zscore", "prf_docs": 1, "prf_beta": 0.4},
              "rerank": {"n": 5, "weight": 0.3, "max_length": 96}}
    cfg = pipeline_config(params, "hybrid_ft_rerank", 10, "abc:256")
    assert cfg["mode"] == "hybrid_ft_rerank" and cfg["k"] == 10 and cfg["format"] == 2
    assert cfg["fusion"] == {"method": "rrf", "alpha": 0.5, "norm": "minmax", "rrf_k": 60,
                             "prf_docs": 0, "prf_beta": 0.0}  # feedback off unless params turn it on
    assert cfg["fusion_ft"] == {"method": "convex", "alpha": 0.6, "norm": "zscore", "rrf_k": 60,
                                "prf_docs": 1, "prf_beta": 0.4}
    assert cfg["rerank"] == {"n": 5, "weight": 0.3, "max_length": 96, "batch_size": 32, "backend": "torch"}
    assert cfg["retrieve"] == {"depth": 50, "dense_chunk_k": 400}
    assert cfg["embed"] == {"model": "all-MiniLM-L6-v2", "model_id": "abc:256", "device": "cpu", "batch_size": 32,
                            "query_backend": "torch"}  # the query encoder the packaged model uses
    assert json.loads(json.dumps(cfg)) == cfg
    int8 = pipeline_config({**params, "embed": {"model": "m", "query_backend": "onnx-int8"}}, "hybrid")
    assert int8["embed"]["query_backend"] == "onnx-int8"
    no_ft = pipeline_config({k: v for k, v in params.items() if k != "fusion_ft"}, "hybrid")
    assert no_ft["fusion_ft"] == no_ft["fusion"]
    with pytest.raises(ConfigError, match="unknown mode 'colbert'"):
        pipeline_config(params, "colbert")


def test_requirement_mismatches() -> None:
    import mlflow

    assert requirement_mismatches([f"mlflow=={mlflow.__version__}", "# comment", "-r other.txt", "numpy>=1"]) == []
    assert requirement_mismatches(["mlflow==0.0.1"]) == [f"mlflow (installed: {mlflow.__version__}, model: 0.0.1)"]
    assert requirement_mismatches(["surely-not-installed-pkg==1.0"]) == [
        "surely-not-installed-pkg (installed: none, model: 1.0)"]
