"""ragops.encode.encoder and ragops.encode.models: the content-hash cache with a fake encoder (counted calls),
then the real all-MiniLM-L6-v2 against a hand-written mean-pooling reference."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ragops.data.chunking import chunk_documents
from ragops.encode.encoder import EmbeddingCache, cache_keys, embed_with_cache
from ragops.encode.models import model_fingerprint, resolve_model
from ragops.errors import ConfigError

DIM = 8


class FakeEncoder:
    """Deterministic unit vectors from sha256(salt, text); counts what it was asked to encode."""

    def __init__(self, salt: str = "", fail_on_block: int | None = None) -> None:
        self.salt = salt
        self.fail_on_block = fail_on_block
        self.blocks: list[list[str]] = []

    @property
    def encoded(self) -> list[str]:
        return [t for block in self.blocks for t in block]

    def vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256((self.salt + "\0" + text).encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(DIM)
        return (v / np.linalg.norm(v)).astype(np.float32)

    def __call__(self, texts: list[str]) -> np.ndarray:
        if self.fail_on_block is not None and len(self.blocks) + 1 == self.fail_on_block:
            raise RuntimeError("encoder crashed")
        self.blocks.append(list(texts))
        return np.stack([self.vector(t) for t in texts]) if texts else np.zeros((0, DIM), np.float32)


def texts(n: int, tag: str = "") -> list[str]:
    return [f"passage {i} {tag} about protein {i * 7 % 13}" for i in range(n)]


def expected(enc: FakeEncoder, items: list[str]) -> np.ndarray:
    return np.stack([enc.vector(t) for t in items])


# ---------------------------------------------------------------- keys and cache, fake encoder


def test_cache_keys() -> None:
    k = cache_keys("m", ["a", "b", "a"])
    assert k.dtype == np.dtype("S32") and k.shape == (3,)
    assert k[0] == k[2] and k[0] != k[1]
    assert k[0] == hashlib.sha256(hashlib.sha256(b"m").digest() + b"a").digest()
    assert cache_keys("other", ["a"])[0] != k[0]  # the model is part of the key
    assert cache_keys("m", []).shape == (0,)


def test_second_run_encodes_nothing(tmp_path: Path) -> None:
    items = texts(100)
    enc = FakeEncoder()
    first, s1 = embed_with_cache(items, enc, EmbeddingCache(tmp_path, "model-a"), DIM, block_size=16)
    np.testing.assert_array_equal(first, expected(enc, items))
    assert (s1.total, s1.cached, s1.encoded) == (100, 0, 100)
    assert len(enc.encoded) == 100 and max(len(b) for b in enc.blocks) == 16

    again = FakeEncoder()
    second, s2 = embed_with_cache(items, again, EmbeddingCache(tmp_path, "model-a"), DIM, block_size=16)
    assert again.blocks == []
    assert (s2.cached, s2.encoded) == (100, 0)
    assert second.dtype == np.float32
    np.testing.assert_array_equal(second, first)


def test_one_changed_text_costs_one_encoding(tmp_path: Path) -> None:
    items = texts(100)
    embed_with_cache(items, FakeEncoder(), EmbeddingCache(tmp_path, "m"), DIM)
    changed = list(items)
    changed[37] = "a brand new passage"
    enc = FakeEncoder()
    out, stats = embed_with_cache(changed, enc, EmbeddingCache(tmp_path, "m"), DIM)
    assert enc.encoded == ["a brand new passage"]
    assert (stats.cached, stats.encoded) == (99, 1)
    np.testing.assert_array_equal(out, expected(enc, changed))


def test_duplicates_are_encoded_once(tmp_path: Path) -> None:
    items = ["x", "y", "x", "z", "y", "x"]
    for cache in (None, EmbeddingCache(tmp_path, "m")):
        enc = FakeEncoder()
        out, stats = embed_with_cache(items, enc, cache, DIM)
        assert sorted(enc.encoded) == ["x", "y", "z"]
        assert stats.encoded == 3 and stats.total == 6
        np.testing.assert_array_equal(out, expected(enc, items))


def test_longest_first_with_lengths() -> None:
    items = ["a", "bbb", "cc", "dddd"]
    enc = FakeEncoder()
    out, stats = embed_with_cache(items, enc, None, DIM, block_size=2, lengths=[1, 3, 2, 4])
    assert enc.blocks == [["dddd", "bbb"], ["cc", "a"]]
    assert stats.tokens_encoded == 10
    np.testing.assert_array_equal(out, expected(enc, items))  # rows still in input order


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_rows"])
def test_a_damaged_segment_is_named_set_aside_and_encoded_again(tmp_path: Path, damage: str, caplog) -> None:
    items = texts(30)
    embed_with_cache(items, FakeEncoder(), EmbeddingCache(tmp_path, "m"), DIM, block_size=10)
    segments = sorted((tmp_path / "m").glob("seg-*.vecs.npy"))
    assert len(segments) == 3
    bad = segments[1]
    if damage == "truncate":  # a disk that filled up, a copy cut short: "mmap length is greater than file size"
        bad.write_bytes(bad.read_bytes()[:200])
    elif damage == "garbage":
        bad.write_bytes(b"not an array at all")
    else:  # a valid array of the wrong shape
        np.save(bad, np.zeros((3, DIM), dtype=np.float32))
    with caplog.at_level("WARNING", logger="ragops.embedding"):
        cache = EmbeddingCache(tmp_path, "m")
    assert cache.damaged == [bad] and str(bad) in caplog.text and len(cache) == 20
    assert (bad.parent / (bad.name + ".damaged")).exists() and not bad.exists()
    enc = FakeEncoder()
    out, stats = embed_with_cache(items, enc, cache, DIM, block_size=10)
    assert (stats.cached, stats.encoded) == (20, 10)  # only the damaged block's texts, encoded again
    np.testing.assert_array_equal(out, expected(enc, items))
    assert EmbeddingCache(tmp_path, "m").damaged == []  # set aside once, then the cache is whole again


def test_crash_keeps_finished_blocks(tmp_path: Path) -> None:
    items = texts(50)
    crashing = FakeEncoder(fail_on_block=3)
    with pytest.raises(RuntimeError, match="crashed"):
        embed_with_cache(items, crashing, EmbeddingCache(tmp_path, "m"), DIM, block_size=10)
    assert len(crashing.blocks) == 2
    assert not list(tmp_path.rglob("*.tmp")), "a crash must not leave temporary files"
    reopened = EmbeddingCache(tmp_path, "m")
    assert len(reopened) == 20
    found, missing = reopened.lookup(cache_keys("m", items))
    assert found[:20].all() and not found[20:].any() and missing == list(range(20, 50))

    enc = FakeEncoder()
    out, stats = embed_with_cache(items, enc, reopened, DIM, block_size=10)
    assert enc.encoded == items[20:]
    assert (stats.cached, stats.encoded) == (20, 30)
    np.testing.assert_array_equal(out, expected(enc, items))


@pytest.mark.parametrize(("a", "b"), [("model-a", "model-b"), ("0123456789abcdef:256", "0123456789abcdef:128")])
def test_models_do_not_share_entries(tmp_path: Path, a: str, b: str) -> None:
    items = texts(30)
    enc_a, enc_b = FakeEncoder(salt=a), FakeEncoder(salt=b)
    out_a, _ = embed_with_cache(items, enc_a, EmbeddingCache(tmp_path, a), DIM)
    # b sees none of a's entries, even when both ids share the cache folder (first 16 characters).
    out_b, stats = embed_with_cache(items, enc_b, EmbeddingCache(tmp_path, b), DIM)
    assert stats.cached == 0 and enc_b.encoded == items
    np.testing.assert_array_equal(out_b, expected(enc_b, items))
    assert not np.allclose(out_a, out_b)
    # and each one still finds its own
    for model, want in ((a, out_a), (b, out_b)):
        enc = FakeEncoder(salt="unused")
        out, stats = embed_with_cache(items, enc, EmbeddingCache(tmp_path, model), DIM)
        assert enc.blocks == [] and stats.cached == 30
        np.testing.assert_array_equal(out, want)


def test_cache_files_load_without_pickle(tmp_path: Path) -> None:
    items = texts(25)
    enc = FakeEncoder()
    embed_with_cache(items, enc, EmbeddingCache(tmp_path, "m"), DIM, block_size=10)
    keys_files = sorted(tmp_path.rglob("seg-*.keys.npy"))
    vecs_files = sorted(tmp_path.rglob("seg-*.vecs.npy"))
    assert len(keys_files) == len(vecs_files) == 3
    all_keys, all_vecs = [], []
    for kf, vf in zip(keys_files, vecs_files, strict=True):
        keys, vecs = np.load(kf, allow_pickle=False), np.load(vf, allow_pickle=False)
        assert keys.dtype == np.dtype("S32") and vecs.dtype == np.float32 and vecs.shape == (len(keys), DIM)
        all_keys.append(keys)
        all_vecs.append(vecs)
    keys, vecs = np.concatenate(all_keys), np.concatenate(all_vecs)
    row = {k: i for i, k in enumerate(keys.tolist())}
    want = cache_keys("m", items)
    np.testing.assert_array_equal(vecs[[row[k] for k in want.tolist()]], expected(enc, items))


def test_empty_input(tmp_path: Path) -> None:
    enc = FakeEncoder()
    out, stats = embed_with_cache([], enc, EmbeddingCache(tmp_path, "m"), DIM)
    assert out.shape == (0, DIM) and stats.total == 0 and enc.blocks == []


# ---------------------------------------------------------------- models


def test_resolve_model(tmp_path: Path) -> None:
    packaged = resolve_model("all-MiniLM-L6-v2")
    assert (packaged / "config.json").is_file()
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == packaged
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path)) == tmp_path
    with pytest.raises(ConfigError, match="all-MiniLM-L6-v2"):
        resolve_model("no-such-model")
    with pytest.raises(ConfigError):
        resolve_model(str(tmp_path / "missing"))


def test_model_fingerprint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no model files"):
        model_fingerprint(tmp_path)
    (tmp_path / "config.json").write_text('{"hidden": 8}')
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 100)
    (tmp_path / "README.md").write_text("notes")
    fp = model_fingerprint(tmp_path)
    assert len(fp) == 64 and fp == model_fingerprint(tmp_path)
    (tmp_path / "README.md").write_text("other notes")  # documentation is not the model
    assert model_fingerprint(tmp_path) == fp
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 99 + b"\x01")
    assert model_fingerprint(tmp_path) != fp
    (tmp_path / "model.safetensors").write_bytes(b"\x00" * 100)
    assert model_fingerprint(tmp_path) == fp
    (tmp_path / "config.json").rename(tmp_path / "config2.json")  # names count, too
    assert model_fingerprint(tmp_path) != fp


def test_tokenizer_is_fast(tokenizer) -> None:
    enc = tokenizer(["Aspirin reduces fever."], add_special_tokens=False, return_offsets_mapping=True)
    # as ##pi ##rin reduces fever . : word ids and character offsets, which chunking relies on
    assert enc.word_ids(0) == [0, 0, 0, 1, 2, 3]
    assert enc["offset_mapping"][0] == [(0, 2), (2, 4), (4, 7), (8, 15), (16, 21), (21, 22)]


# ---------------------------------------------------------------- the real encoder


@pytest.fixture(scope="module")
def chunk_texts(scifact_sample: pd.DataFrame, tokenizer) -> list[str]:
    df = scifact_sample.head(6)
    chunks = chunk_documents(df["doc_id"], df["title"], df["text"], tokenizer, 256, 32)
    return chunks["text"].tolist()[:10]


def reference_embeddings(encoder, tokenizer, items: list[str]) -> np.ndarray:
    """all-MiniLM-L6-v2 by hand: the transformer, mean pooling over real tokens, L2 normalization."""
    import torch

    batch = tokenizer(items, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder.model[0].auto_model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=1).numpy()


def test_encoder_identity(encoder) -> None:
    assert encoder.dim == 384
    assert encoder.model.max_seq_length == 256
    assert encoder.model_id == f"{model_fingerprint(resolve_model('all-MiniLM-L6-v2'))}:256"


def test_encoder_matches_reference(encoder, tokenizer, chunk_texts: list[str]) -> None:
    assert len(chunk_texts) >= 6
    emb = encoder.encode(chunk_texts)
    assert emb.dtype == np.float32 and emb.shape == (len(chunk_texts), 384)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    st = encoder.model.encode(chunk_texts, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(emb, st, atol=1e-5)
    np.testing.assert_allclose(emb, reference_embeddings(encoder, tokenizer, chunk_texts), atol=1e-5)
    # Different passages really get different vectors (a constant encoder would pass the above).
    sims = emb @ emb.T
    assert sims[~np.eye(len(emb), dtype=bool)].max() < 0.999


def test_embed_with_cache_through_the_real_encoder(encoder, chunk_texts: list[str], tmp_path: Path) -> None:
    calls: list[int] = []

    def counted(batch: list[str]) -> np.ndarray:
        calls.append(len(batch))
        return encoder(batch)

    direct = encoder.encode(chunk_texts)
    cache = EmbeddingCache(tmp_path, encoder.model_id)
    out, stats = embed_with_cache(chunk_texts, counted, cache, encoder.dim, block_size=4)
    assert stats.encoded == len(chunk_texts) and sum(calls) == len(chunk_texts)
    np.testing.assert_allclose(out, direct, atol=1e-5)
    calls.clear()
    again, stats = embed_with_cache(chunk_texts, counted, EmbeddingCache(tmp_path, encoder.model_id), encoder.dim)
    assert calls == [] and stats.cached == len(chunk_texts)
    np.testing.assert_array_equal(again, out)


def test_a_device_the_machine_lacks_is_a_clear_error_and_onnx_says_it_runs_on_the_cpu(monkeypatch, caplog,
                                                                                      child_onnx_dir) -> None:
    """embed.device: cuda without a GPU stops with one line naming the setting (the torch backend); the ONNX
    backends run on the CPU whatever the device, and say so instead of ignoring it silently."""
    import logging

    import torch

    from ragops.encode.encoder import Encoder
    from ragops.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a GPU machine
    with pytest.raises(ConfigError, match=r"^embed\.device is 'cuda' but torch sees no CUDA device$"):
        Encoder("all-MiniLM-L6-v2", device="cuda")
    with caplog.at_level(logging.WARNING, logger="ragops.embedding"):
        onnx = Encoder("all-MiniLM-L6-v2", device="cuda", backend="onnx", onnx_dir=child_onnx_dir)
    assert onnx.encode(["a sentence"]).shape == (1, onnx.dim)
    assert "embed.device cuda is not used: the onnx backend runs on the CPU" in caplog.text
