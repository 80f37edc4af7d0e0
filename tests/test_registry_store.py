"""ragops.registry.versions against a real MLflow SQLite store in a temporary folder, without packaging a model:
aliases, the gate's tags, listing and promotion (what the register stage and the CLI call)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ragops.errors import ConfigError
from ragops.registry import versions as registry
from ragops.registry.tracking import RegistryConfig, experiment_id
from ragops.stages.register import gate_version
from tests.conftest import sqlite_store

BASE = np.random.default_rng(0).uniform(0.3, 0.9, 40)
FP = "a" * 64  # the evaluation set's fingerprint


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """One SQLite store for the module (creating its tables takes seconds); each test its own model name."""
    with sqlite_store(tmp_path_factory.mktemp("mlflow")) as store:
        yield store


@pytest.fixture
def cfg(request: pytest.FixtureRequest) -> RegistryConfig:
    return RegistryConfig(model_name=f"toy-{request.node.name}"[:60], n_resamples=2000)


def add_version(client, exp: str, tmp: Path, cfg: RegistryConfig, scores: np.ndarray | None,
                mode: str = "hybrid") -> tuple[str, dict[str, float]]:
    """A run (with a per_query.csv artifact unless ``scores`` is None: ``scores`` in ``mode`` on test, 0
    elsewhere) and a model version pointing at it."""
    run = client.create_run(exp)
    per_query = {f"q{i}": float(v) for i, v in enumerate(scores if scores is not None else [])}
    if scores is not None:
        rows = [{"split": s, "mode": m, "query_id": q, "ndcg@10": v if (s, m) == ("test", mode) else 0.0}
                for q, v in per_query.items() for s in ("dev", "test") for m in ("bm25", "hybrid", "hybrid_ft")]
        path = tmp / run.info.run_id / registry.PER_QUERY_ARTIFACT
        path.parent.mkdir(parents=True)
        pd.DataFrame(rows).to_csv(path, index=False)
        client.log_artifact(run.info.run_id, str(path))
    client.set_terminated(run.info.run_id)
    if not registry.aliases(client, cfg.model_name) and not client.search_model_versions(f"name = '{cfg.model_name}'"):
        client.create_registered_model(cfg.model_name)
    mv = client.create_model_version(cfg.model_name, source=(tmp / "model").as_uri(), run_id=run.info.run_id)
    return str(mv.version), per_query


def test_first_worse_better(store, cfg: RegistryConfig) -> None:
    client, exp, tmp = store
    CFG = cfg
    v1, s1 = add_version(client, exp, tmp, CFG, BASE)
    first = gate_version(client, CFG, v1, s1, "hybrid", FP)
    assert first["promoted"] and first["aliases"] == {"champion": "1", "challenger": "1"}
    v2, s2 = add_version(client, exp, tmp, CFG, BASE - 0.1)
    worse = gate_version(client, CFG, v2, s2, "hybrid", FP)
    assert not worse["promoted"] and worse["aliases"] == {"champion": "1", "challenger": "2"}
    tags = client.get_model_version(CFG.model_name, "2").tags
    assert tags["gate.decision"] == "block" and tags["gate.champion_version"] == "1"
    assert float(tags["gate.p_value"]) < 0.05 and float(tags["gate.delta"]) == pytest.approx(-0.1)
    assert tags["score"] == f"{np.mean(BASE - 0.1):.6f}" and tags["score.metric"] == "test/hybrid/ndcg@10"
    v3, s3 = add_version(client, exp, tmp, CFG, BASE + 0.05)
    assert gate_version(client, CFG, v3, s3, "hybrid", FP)["promoted"]
    rows = registry.list_versions(client, CFG.model_name)
    assert [(r.version, r.aliases, r.decision) for r in rows] == [
        (3, ["challenger", "champion"], "promote"), (2, [], "block"), (1, [], "promote")]
    assert rows[1].champion_score == pytest.approx(np.mean(BASE)) and rows[0].p_value < 0.05


def test_promote_gated_forced_and_errors(store, cfg: RegistryConfig) -> None:
    client, exp, tmp = store
    CFG = cfg
    v1, s1 = add_version(client, exp, tmp, CFG, BASE)
    gate_version(client, CFG, v1, s1, "hybrid", FP)
    v2, s2 = add_version(client, exp, tmp, CFG, BASE - 0.1)
    gate_version(client, CFG, v2, s2, "hybrid", FP)
    blocked = registry.promote(client, CFG)  # default: the challenger, v2
    assert blocked.version == "2" and not blocked.promoted and blocked.previous == "1"
    forced = registry.promote(client, CFG, 2, force=True)
    assert forced.promoted and forced.forced and "forced over v1; the gate said: drop" in forced.decision.reason
    assert registry.aliases(client, CFG.model_name)["champion"] == "2"
    assert client.get_model_version(CFG.model_name, "2").tags["gate.decision"] == "forced"
    again = registry.promote(client, CFG, 2)
    assert again.promoted and again.decision is None  # already champion: nothing to decide
    back = registry.promote(client, CFG, 1)  # v1 is better than v2: the gate lets it back
    assert back.promoted and back.decision.delta == pytest.approx(0.1)
    with pytest.raises(ConfigError, match="no version 9"):
        registry.promote(client, CFG, 9)


def test_a_champion_without_per_query_scores_blocks_until_forced(store, cfg: RegistryConfig) -> None:
    client, exp, tmp = store
    CFG = cfg
    v1, _ = add_version(client, exp, tmp, CFG, None)
    registry.set_alias(client, CFG.model_name, registry.CHAMPION, v1)
    v2, s2 = add_version(client, exp, tmp, CFG, BASE)
    summary = gate_version(client, CFG, v2, s2, "hybrid", FP)
    assert not summary["promoted"] and "has no per-query ndcg@10" in summary["decision"]["reason"]
    assert registry.promote(client, CFG, 2, force=True).promoted
    with pytest.raises(ConfigError, match="gate cannot judge it"):
        registry.promote(client, CFG, 1)  # no per-query table: only --force could bring it back
    assert registry.promote(client, CFG, 1, force=True).promoted


def test_the_gate_compares_each_versions_own_served_mode(store, cfg: RegistryConfig) -> None:
    """v1 serves hybrid, v2 hybrid_ft: v2's hybrid_ft scores against v1's hybrid scores (each logged by its
    own run), never v2's hybrid rows (0 here) nor v1's hybrid_ft rows."""
    client, exp, tmp = store
    v1, s1 = add_version(client, exp, tmp, cfg, BASE, mode="hybrid")
    assert gate_version(client, cfg, v1, s1, "hybrid", FP)["promoted"]
    v2, s2 = add_version(client, exp, tmp, cfg, BASE + 0.02, mode="hybrid_ft")
    summary = gate_version(client, cfg, v2, s2, "hybrid_ft", FP)
    assert summary["promoted"] and summary["champion_mode"] == "hybrid"
    d = summary["decision"]
    assert d["champion"] == pytest.approx(np.mean(BASE)) and d["delta"] == pytest.approx(0.02)
    assert d["reason"].startswith("hybrid_ft vs champion's hybrid: not lower")
    tags = client.get_model_version(cfg.model_name, v2).tags
    assert tags["served_mode"] == "hybrid_ft" and tags["gate.champion_mode"] == "hybrid"
    assert tags["gate.metric"] == "test/hybrid_ft/ndcg@10" and tags["data.fingerprint"] == FP
    assert [r.mode for r in registry.list_versions(client, cfg.model_name)] == ["hybrid_ft", "hybrid"]
    # promote reads the version's own mode too: v1 back (hybrid, 0.02 lower: within tolerance, but significant)
    back = registry.promote(client, cfg, 1)
    assert back.decision.champion == pytest.approx(np.mean(BASE + 0.02))


def test_another_data_set_is_never_paired_by_query_id(store, cfg: RegistryConfig) -> None:
    """Same query ids (q0, q1, ...), another evaluation set: the gate refuses instead of pairing them."""
    client, exp, tmp = store
    v1, s1 = add_version(client, exp, tmp, cfg, BASE)
    gate_version(client, cfg, v1, s1, "hybrid", FP)
    v2, s2 = add_version(client, exp, tmp, cfg, BASE + 0.2)  # better on paper, on other questions
    summary = gate_version(client, cfg, v2, s2, "hybrid", "b" * 64)
    assert not summary["promoted"] and summary["decision"]["n_queries"] == 0
    assert "another data set than champion v1 (test fingerprint bbbbbbbbbbbb vs aaaaaaaaaaaa)" in \
        summary["decision"]["reason"]
    assert not registry.promote(client, cfg, 2).promoted
    assert registry.promote(client, cfg, 2, force=True).promoted


def test_data_fingerprint_names_the_questions_and_their_judgments() -> None:
    queries = pd.DataFrame({"query_id": ["1", "3"], "text": ["a?", "b?"]})
    qrels = pd.DataFrame({"split": ["test", "test", "train"], "query_id": ["1", "3", "9"],
                          "doc_id": ["d1", "d3", "d9"], "score": [1, 1, 1]})
    fp = registry.data_fingerprint(queries, qrels, "test")
    assert fp == registry.data_fingerprint(queries.iloc[::-1], qrels.iloc[::-1], "test")  # order-free
    assert fp != registry.data_fingerprint(queries.assign(text=["a?", "c?"]), qrels, "test")  # another question
    assert fp != registry.data_fingerprint(queries, qrels.assign(doc_id=["d1", "d4", "d9"]), "test")  # judgment
    assert fp == registry.data_fingerprint(queries, qrels.assign(doc_id=["d1", "d3", "d8"]), "test")  # train only


def test_no_model_yet(store) -> None:
    client, _, _ = store
    assert registry.aliases(client, "nothing") == {} and registry.champion_version(client, "nothing") is None
    assert registry.list_versions(client, "nothing") == []
    with pytest.raises(ConfigError, match="no version yet"):
        registry.promote(client, RegistryConfig(model_name="nothing"))


def test_a_deleted_experiment_is_restored(store) -> None:
    client, _, _ = store
    exp = experiment_id(client, "gone", None)
    client.delete_experiment(exp)
    assert experiment_id(client, "gone", None) == exp
    assert client.get_experiment(exp).lifecycle_stage == "active"
