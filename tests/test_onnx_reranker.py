"""ragops.encode.onnx_reranker: a cross-encoder exported to int8 ONNX scores like PyTorch, one query's list per run.

The cross-encoder here is the reranker's own starting point (the packaged MiniLM with a seeded one-logit
head, ragops.training.reranker.init_cross_encoder), saved and exported as the pipeline would."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from ragops.encode.models import model_fingerprint, resolve_model
from ragops.encode.onnx_reranker import (
    FILE,
    FP32_LAYERS,
    RECIPE,
    OnnxCrossEncoder,
    ensure_export,
    export_dir,
    fp32_nodes,
)
from ragops.errors import ConfigError
from ragops.retrieval.load import load_reranker
from ragops.retrieval.rerank import CrossEncoderScorer, PairEncoder


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory) -> Path:
    from ragops.training.reranker import init_cross_encoder

    folder = tmp_path_factory.mktemp("ce") / "reranker"
    model, tok = init_cross_encoder(resolve_model("all-MiniLM-L6-v2"), seed=0)
    model.save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def pairs(scifact_sample: pd.DataFrame, scifact_queries: pd.DataFrame) -> tuple[list[str], list[str]]:
    docs = (scifact_sample["title"] + ". " + scifact_sample["text"]).head(24).tolist()
    queries = scifact_queries["text"].head(24).tolist()
    return queries, docs


def test_export_once_and_scores_like_torch(cross_encoder: Path, onnx_dir: Path, pairs) -> None:
    folder = ensure_export(cross_encoder, onnx_dir)
    assert folder == export_dir(onnx_dir, model_fingerprint(cross_encoder)) and (folder / FILE).is_file()
    assert not (folder / "model.onnx").exists()  # only the int8 model is kept
    meta = json.loads((folder / "meta.json").read_text())
    # recipe 2: the first layers' feed-forward MatMuls are left in fp32, every other MatMul is int8
    assert meta["recipe"] == RECIPE == 2 and len(meta["fp32_nodes"]) == 2 * FP32_LAYERS, meta
    import onnx

    graph = onnx.load(str(folder / FILE)).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("MatMul") == 2 * FP32_LAYERS and ops.count("MatMulInteger") >= 4, ops
    stamp = (folder / FILE).stat().st_mtime_ns
    assert ensure_export(cross_encoder, onnx_dir) == folder and (folder / FILE).stat().st_mtime_ns == stamp
    queries, docs = pairs
    torch_scores = CrossEncoderScorer(cross_encoder, 96).score_pairs(queries, docs)
    onnx_scores = OnnxCrossEncoder(folder, 96).score_pairs(queries, docs)
    assert onnx_scores.shape == torch_scores.shape == (24,)
    # int8 weights: close, and above all the same order (what reranking reads)
    assert np.abs(onnx_scores - torch_scores).max() < 0.1 * (np.ptp(torch_scores) + 1e-6) + 0.05
    assert spearmanr(onnx_scores, torch_scores).statistic > 0.95


def test_one_querys_list_per_run_and_long_queries(cross_encoder: Path, onnx_dir: Path, pairs) -> None:
    queries, docs = pairs
    ce = OnnxCrossEncoder(ensure_export(cross_encoder, onnx_dir), 96)
    together = ce.score(queries[0], docs[:10])
    # a list's scores are a function of the query and the list: the same every time, and score_pairs
    # scores each run of one query's pairs as that query's list
    np.testing.assert_array_equal(together, ce.score(queries[0], docs[:10]))
    mixed = ce.score_pairs([queries[0]] * 10 + [queries[1]] * 4, docs[:10] + docs[:4])
    np.testing.assert_array_equal(mixed[:10], together)
    np.testing.assert_array_equal(mixed[10:], ce.score(queries[1], docs[:4]))
    # each pair alone scores nearly alike (int8 activations: one scale per run) and ranks alike
    alone = np.asarray([ce.score(queries[0], [d])[0] for d in docs[:10]])
    assert np.abs(alone - together).max() < 0.05 * (np.ptp(alone) + 1e-6) + 0.02
    # (this untrained head spreads the ten scores over ~0.03 logits, so near-ties may swap)
    assert spearmanr(alone, together).statistic > 0.9
    assert ce.score("q", []).shape == (0,)
    # a query longer than max_length is cut too, instead of failing the request
    long_query = " ".join(queries[:12])
    from transformers import AutoTokenizer

    assert len(AutoTokenizer.from_pretrained(str(cross_encoder))(long_query)["input_ids"]) > 96
    assert np.isfinite(ce.score(long_query, docs[:3])).all()


def test_load_reranker_by_backend_and_cache_keys_differ(cross_encoder: Path, onnx_dir: Path,
                                                        scifact_sample: pd.DataFrame) -> None:
    docs = scifact_sample.head(5)
    onnx = load_reranker(cross_encoder, {"backend": "onnx-int8", "max_length": 96, "n": 3}, docs, onnx_dir)
    torch = load_reranker(cross_encoder, {"backend": "torch", "max_length": 96, "n": 3}, docs, onnx_dir)
    assert isinstance(onnx.model, OnnxCrossEncoder) and isinstance(torch.model, CrossEncoderScorer)
    assert onnx.n == 3 and set(onnx.passages) == set(docs["doc_id"])
    # batch evaluation caches scores by the model's fingerprint: the two backends never share them
    assert PairEncoder(onnx.model).model_id != PairEncoder(torch.model).model_id
    with pytest.raises(ConfigError, match="unknown rerank.backend 'onnx'; valid: onnx-int8, torch"):
        load_reranker(cross_encoder, {"backend": "onnx"}, docs, onnx_dir)


def test_fp32_nodes_are_the_first_layers_feed_forward_matmuls() -> None:
    names = [f"/model/bert/encoder/layer.{i}/{part}/dense/MatMul" for i in range(4)
             for part in ("attention/output", "intermediate", "output")]
    nodes = [SimpleNamespace(name=n, op_type="MatMul") for n in names]
    nodes += [SimpleNamespace(name="/model/classifier/Gemm", op_type="Gemm"),
              SimpleNamespace(name="/model/bert/encoder/layer.0/output/dense/MatMul_q", op_type="MatMulInteger")]
    assert fp32_nodes(nodes, 2) == [names[1], names[2], names[4], names[5]]
    assert fp32_nodes(nodes, 0) == []


def test_a_package_keeps_serving_its_recipe_1_export(cross_encoder: Path, onnx_dir: Path, tmp_path: Path) -> None:
    """An older package carries a recipe-1 export (``<fingerprint>-ce``): loaded from the package it is what
    is served (what was gated); a cache folder holding one is re-exported under the current recipe."""
    current = ensure_export(cross_encoder, onnx_dir)
    package, cache = tmp_path / "package", tmp_path / "cache"
    legacy_name = export_dir(package, model_fingerprint(cross_encoder), recipe=1).name
    assert legacy_name.endswith("-ce") and current.name.endswith(f"-ce{RECIPE}")
    for folder in (package, cache):
        shutil.copytree(current, folder / legacy_name)
    assert ensure_export(cross_encoder, package, packaged=True) == package / legacy_name
    assert not export_dir(package, model_fingerprint(cross_encoder)).exists()  # nothing written into it
    assert ensure_export(cross_encoder, cache) == export_dir(cache, model_fingerprint(cross_encoder))
