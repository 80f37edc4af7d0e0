"""ragops.answer.vectors: one question's sentences are encoded once, though the relevance check, the extractive
answer and the claim scorer each read them; the answer is the one computed without the memo (real MiniLM, real
SciFact abstracts)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ragops.answer.answerer import AnswerConfig, Answerer
from ragops.answer.generators import ExtractiveConfig
from ragops.answer.scorers import load_scorer
from ragops.answer.vectors import (
    STORE_META,
    QuestionVectors,
    RoutedEncoder,
    StoredVectors,
    sentence_texts,
    with_stored_vectors,
)
from ragops.io import read_json


class Counting:
    """The real encoder, recording every text it is given."""

    def __init__(self, encoder) -> None:
        self.encoder, self.texts = encoder, []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.texts += list(texts)
        return np.stack([self.encoder([t])[0] for t in texts]) if texts else self.encoder(texts)


class Pipeline:
    """A retrieval pipeline that returns fixed documents (what is retrieved is not under test here)."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids

    def search(self, question: str, mode: str, k: int) -> SimpleNamespace:
        return SimpleNamespace(ids=self.ids[:k], scores=np.linspace(1.0, 0.5, len(self.ids[:k])))


def test_memo_encodes_each_text_once_and_keeps_the_order(encoder) -> None:
    counting = Counting(encoder)
    memo = QuestionVectors(counting)
    first = memo(["a b", "c d", "a b"])
    again = memo(["c d", "e f"])
    assert counting.texts == ["a b", "c d", "e f"]  # each text once
    np.testing.assert_array_equal(first[0], first[2])
    np.testing.assert_array_equal(again[0], first[1])
    assert memo([]).shape[0] == 0


def test_routed_encoder_uses_the_memo_only_inside_using(encoder) -> None:
    counting = Counting(encoder)
    routed = RoutedEncoder(counting)
    memo = routed.memo()
    with routed.using(memo):
        routed(["x y"])
        routed(["x y"])
    routed(["x y"])  # outside: straight to the model
    assert counting.texts == ["x y", "x y"]
    assert routed.encoder is encoder  # any other attribute is the wrapped encoder's


def test_an_answer_encodes_each_sentence_once_and_equals_the_one_without_memo(encoder, scifact_sample) -> None:
    docs = scifact_sample.head(4).set_index("doc_id")
    cfg = AnswerConfig(k=4, mode="hybrid", generator="extractive", scorer="embedding", min_relevance=0.01)

    def answerer(encode) -> Answerer:
        scorer = load_scorer("embedding", None, encode, {"embedding": 0.6})
        return Answerer(Pipeline(list(docs.index)), docs, encode, lambda ts: [len(t.split()) for t in ts], scorer,
                        "extractive", cfg, ExtractiveConfig(), None)

    question = str(scifact_sample["title"].iloc[0])
    counting = Counting(encoder)
    routed = RoutedEncoder(counting)
    with_memo = answerer(routed).ask(question)
    # every text went to the model once, though the relevance check, the answer and the scorer all read them
    assert len(counting.texts) == len(set(counting.texts)) > 0
    plain_calls = Counting(encoder)
    without = answerer(plain_calls)
    without.encode.memo = lambda: None  # no memo: every reader encodes for itself, as before
    plain = without.ask(question)
    assert len(plain_calls.texts) > len(counting.texts)  # the same sentences, read more than once
    assert with_memo.text and with_memo.claims
    assert (with_memo.text, [c.score for c in with_memo.claims]) == (plain.text, [c.score for c in plain.claims])
    assert with_memo.relevance == plain.relevance


# The sentence store (stage `sentences`): built by the stage's own main on real abstracts, read by the answerer.


@pytest.fixture(scope="module")
def int8(child_onnx_dir: Path):
    """The default query encoder: MiniLM in ONNX with int8 weights, one text per run (params.yaml)."""
    from ragops.encode.encoder import Encoder

    return Encoder("all-MiniLM-L6-v2", backend="onnx-int8", batch_size=1, onnx_dir=child_onnx_dir)


def build_store(tmp: Path, docs, enabled: bool = True, dask: str = "none") -> tuple[Path, dict]:
    """The stage's own main on ``docs``: (the store, what it encoded)."""
    from ragops.stages import sentences

    docs.to_parquet(tmp / "docs.parquet")
    params = {
        "paths": {"docs": str(tmp / "docs.parquet"), "sentences": str(tmp / "sentences")},
        "embed": {"model": "all-MiniLM-L6-v2", "device": "cpu", "backend": "torch", "query_backend": "onnx-int8",
                  "batch_size": 64, "cache_dir": str(tmp / "cache"), "dask": dask,
                  "onnx_dir": os.environ["RAGOPS_ONNX_DIR"]},
        "answer": {"sentence_vectors": enabled},
    }
    stats = sentences.main(params)
    return tmp / "sentences", stats


def test_stored_vectors_are_the_live_ones_and_only_the_rest_is_encoded(int8, scifact_sample, tmp_path) -> None:
    docs = scifact_sample.head(3)
    folder, stats = build_store(tmp_path, docs)
    texts = sentence_texts(docs["title"], docs["text"])
    meta = read_json(folder / STORE_META)
    assert meta["count"] == stats["encoded"] == len(texts) and meta["model_id"] == int8.model_id
    counting = Counting(int8)
    stored = with_stored_vectors(counting, folder)
    assert isinstance(stored, StoredVectors)
    got = stored([texts[1], "a question nobody stored", texts[0]])
    assert counting.texts == ["a question nobody stored"]  # the store's texts are not encoded again
    np.testing.assert_array_equal(got, int8([texts[1], "a question nobody stored", texts[0]]))  # bit for bit
    assert (stored.hits, stored.misses) == (2, 1)
    assert stored.dim == int8.dim and stored.model_id == int8.model_id
    assert stored.encoder is int8  # any other attribute is the wrapped encoder's (here Counting's)


def test_the_store_is_deterministic_and_incremental(int8, scifact_sample, tmp_path) -> None:
    folder, _ = build_store(tmp_path, scifact_sample.head(2))
    first = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    again, stats = build_store(tmp_path, scifact_sample.head(2))  # the same corpus: the same files, nothing encoded
    assert {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()} == first
    assert stats["encoded"] == 0
    _, stats = build_store(tmp_path, scifact_sample.head(3))  # one document more: only its sentences are encoded
    new = sentence_texts(scifact_sample["title"].iloc[2:3], scifact_sample["text"].iloc[2:3])
    assert stats["encoded"] == len(
        set(new) - set(sentence_texts(scifact_sample["title"].head(2), scifact_sample["text"].head(2))))


def test_on_dask_the_store_is_the_same(int8, scifact_sample, tmp_path) -> None:
    """`embed.dask: local` (a cluster in this process) encodes the same vectors into the same files."""
    for name in ("here", "dask"):
        (tmp_path / name).mkdir()
    here, _ = build_store(tmp_path / "here", scifact_sample.head(2))
    there, stats = build_store(tmp_path / "dask", scifact_sample.head(2), dask="local")
    assert stats["encoded"] == read_json(here / STORE_META)["count"]  # not from a cache
    assert {p.relative_to(there): p.read_bytes() for p in there.rglob("*.npy")} == \
        {p.relative_to(here): p.read_bytes() for p in here.rglob("*.npy")}


def test_a_store_of_another_encoder_or_an_empty_one_is_not_read(int8, encoder, scifact_sample, tmp_path,
                                                                caplog) -> None:
    folder, _ = build_store(tmp_path, scifact_sample.head(1))
    assert with_stored_vectors(encoder, folder) is encoder  # torch MiniLM: another model id
    assert "of another encoder" in caplog.text
    (tmp_path / "off").mkdir()
    empty, _ = build_store(tmp_path / "off", scifact_sample.head(1), enabled=False)
    assert read_json(empty / STORE_META)["count"] == 0 and not list(empty.rglob("*.npy"))
    assert with_stored_vectors(int8, empty) is int8
    assert with_stored_vectors(int8, None) is int8


def test_an_answer_reads_the_store_and_equals_the_one_without(int8, scifact_sample, tmp_path) -> None:
    docs = scifact_sample.head(4)
    folder, _ = build_store(tmp_path, docs)
    docs = docs.set_index("doc_id")
    cfg = AnswerConfig(k=4, mode="hybrid", generator="extractive", scorer="embedding", min_relevance=0.01)

    def ask(encode):
        routed = RoutedEncoder(encode)
        scorer = load_scorer("embedding", None, routed, {"embedding": 0.6})
        return Answerer(Pipeline(list(docs.index)), docs, routed, lambda ts: [len(t.split()) for t in ts], scorer,
                        "extractive", cfg, ExtractiveConfig(), None).ask(question)

    question = str(scifact_sample["title"].iloc[0]) + "?"
    live, counting = Counting(int8), Counting(int8)
    plain, stored = ask(live), ask(with_stored_vectors(counting, folder))
    assert stored.text and stored.claims
    # only the question was encoded: an extractive claim is a stored sentence (its citation stripped)
    assert counting.texts == [question]
    assert len(live.texts) > len(counting.texts)
    assert (stored.text, [c.score for c in stored.claims], stored.relevance) == \
        (plain.text, [c.score for c in plain.claims], plain.relevance)
