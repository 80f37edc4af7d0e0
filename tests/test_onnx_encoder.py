"""The ONNX encoder backends: offline export from the packaged model, agreement with PyTorch, and
cache keys that keep int8, fp32-ONNX and torch vectors apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ragops.artifacts import query_batch_size
from ragops.embedding import EmbeddingCache, Encoder, embed_with_cache
from ragops.errors import ConfigError
from ragops.models import resolve_model
from ragops.onnx_encoder import BACKENDS, FILES, check_backend

TEXTS = [
    "Vitamin D deficiency is associated with an increased risk of hip fracture in the elderly.",
    "BRCA1 mutations raise the lifetime risk of breast cancer.",
    "a",
    "The mitochondrial membrane potential collapses during apoptosis. " * 30,  # truncated at 256 tokens
    "Does aspirin reduce the risk of colorectal cancer?",
]


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def encoders(onnx_dir) -> dict[str, Encoder]:
    return {b: Encoder("all-MiniLM-L6-v2", batch_size=2, backend=b, onnx_dir=onnx_dir) for b in BACKENDS}


def test_export_is_made_once_from_the_packaged_folder(encoders, onnx_dir):
    (folder,) = [p for p in onnx_dir.iterdir() if not p.name.startswith(".")]
    assert {FILES["onnx"], FILES["onnx-int8"], "meta.json", "tokenizer"} <= {p.name for p in folder.iterdir()}
    assert encoders["onnx"].model.meta["source"] == str(resolve_model("all-MiniLM-L6-v2"))
    # int8 weights: about a quarter of the fp32 graph
    assert (folder / FILES["onnx-int8"]).stat().st_size < 0.4 * (folder / FILES["onnx"]).stat().st_size
    stamp = (folder / "meta.json").stat().st_mtime_ns
    Encoder("all-MiniLM-L6-v2", backend="onnx-int8", onnx_dir=onnx_dir)  # found, not exported again
    assert (folder / "meta.json").stat().st_mtime_ns == stamp


def test_onnx_matches_torch(encoders):
    ref = encoders["torch"].encode(TEXTS)
    for backend, floor in (("onnx", 0.9999), ("onnx-int8", 0.99)):
        vecs = encoders[backend].encode(TEXTS)
        assert vecs.shape == ref.shape and vecs.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
        cos = (vecs * ref).sum(axis=1)
        assert cos.min() > floor, (backend, cos)


def test_int8_batches_change_vectors_so_queries_go_one_at_a_time(encoders, onnx_dir):
    one_by_one = np.stack([encoders["onnx-int8"].encode([t])[0] for t in TEXTS])
    # fp32 ONNX: batching changes nothing (beyond float noise)
    fp32_single = np.stack([encoders["onnx"].encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(encoders["onnx"].encode(TEXTS), fp32_single, atol=1e-5)
    # int8: one activation scale per batch, so the batch a text is in moves its vector a little...
    batched = Encoder("all-MiniLM-L6-v2", batch_size=8, backend="onnx-int8", onnx_dir=onnx_dir).encode(TEXTS)
    assert not np.array_equal(batched, one_by_one) and (batched * one_by_one).sum(axis=1).min() > 0.97
    # ...which is why the query encoder runs int8 one query at a time: batch = single, bit for bit.
    assert query_batch_size("onnx-int8", 64) == 1 and query_batch_size("torch", 64) == 64
    single = Encoder(
        "all-MiniLM-L6-v2", batch_size=query_batch_size("onnx-int8", 64), backend="onnx-int8", onnx_dir=onnx_dir
    )
    assert np.array_equal(single.encode(TEXTS), one_by_one)


def test_cache_keys_differ_by_backend(encoders, tmp_path):
    ids = {b: e.model_id for b, e in encoders.items()}
    assert len(set(ids.values())) == 3
    assert ids["torch"].count(":") == 1  # the torch key is unchanged: existing caches stay valid
    cache_root = tmp_path / "cache"
    embed_with_cache(TEXTS, encoders["torch"], EmbeddingCache(cache_root, ids["torch"]), 384)
    _, stats = embed_with_cache(TEXTS, encoders["onnx-int8"], EmbeddingCache(cache_root, ids["onnx-int8"]), 384)
    assert stats.cached == 0 and stats.encoded == len(TEXTS)  # torch vectors are never served to int8
    _, again = embed_with_cache(TEXTS, encoders["onnx-int8"], EmbeddingCache(cache_root, ids["onnx-int8"]), 384)
    assert again.cached == len(TEXTS)


def test_unknown_backend_lists_valid_names():
    with pytest.raises(ConfigError, match="onnx-int8"):
        check_backend("tensorrt")
