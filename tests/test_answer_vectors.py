"""ragops.answer.vectors: one question's sentences are encoded once, though the relevance check, the extractive
answer and the claim scorer each read them; the answer is the one computed without the memo (real MiniLM, real
SciFact abstracts)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from ragops.answer.answerer import AnswerConfig, Answerer
from ragops.answer.generators import ExtractiveConfig
from ragops.answer.scorers import load_scorer
from ragops.answer.vectors import QuestionVectors, RoutedEncoder


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
