"""The trained scorer with its cross-encoder: examples from rationales, save/load, a supported vs a
contradicted pair, and training that never reads the evaluation claims (real MiniLM, a small sample)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ragops.answer.cross_encoder import CE_DIR, CrossEncoderConfig, training_examples
from ragops.answer.grounding_data import LABELS, Pair, read_pairs, read_sentences
from ragops.answer.grounding_train import TrainConfig, fit_and_evaluate, pair_docs
from ragops.answer.scorers import SCORERS_FILE, load_scorer
from ragops.io import write_json
from ragops.stages.grounding import sample

TINY_CE = CrossEncoderConfig(epochs=2, max_length=64, batch_size=16, threads=2)


@pytest.fixture(scope="module")
def claims(mirror: Path):
    sentences = read_sentences(mirror / "corpus_sentences.jsonl.gz")
    train = sample(read_pairs(mirror / "claims_train.csv", sentences), 100, 42)
    test = sample(read_pairs(mirror / "claims_dev.csv", sentences), 40, 42)
    return sentences, train, test


@pytest.fixture(scope="module")
def fitted(claims, encoder, tmp_path_factory):
    sentences, train, test = claims
    folder = tmp_path_factory.mktemp("grounding")
    cfg = TrainConfig(folds=3, cross_encoder=TINY_CE)
    saved, report = fit_and_evaluate(train, test, sentences, encoder, cfg, encoder.path, folder / CE_DIR)
    write_json(folder / SCORERS_FILE, saved)
    return folder, saved, report


def test_examples_pair_claims_with_rationales_and_their_negations() -> None:
    sents = {"d": ["Aspirin lowered fever in adults.", "The trial ran in 2001.", "Costs were high."]}
    pairs = [Pair("1", "Aspirin lowers fever.", "d", "SUPPORT", [[0]]), Pair("2", "Tea cures colds.", "d", "NEI")]
    ex = training_examples(pairs, sents, {("1", "d"): [0, 2, 1], ("2", "d"): [2, 0, 1]}, seed=0)
    by = {(c, e): LABELS[y] for c, e, y in ex}
    assert by[("Aspirin lowers fever.", "Aspirin lowered fever in adults.")] == "SUPPORT"
    negated = [c for (c, e), lab in by.items() if lab == "CONTRADICT"]
    assert negated and all(e == "Aspirin lowered fever in adults." for (c, e) in by if c in negated)
    assert by[("Aspirin lowers fever.", "The trial ran in 2001.")] == "NEI"  # least similar non-rationale
    assert by[("Tea cures colds.", "Costs were high.")] == "NEI"


def test_trained_scorer_saves_and_loads(fitted, claims, encoder) -> None:
    folder, saved, report = fitted
    sentences, _, test = claims
    assert (folder / CE_DIR / "head.safetensors").is_file()
    assert set(report["scorers"]) == {"lexical", "embedding", "trained", "lexical_baseline"}
    scorer = load_scorer("trained", folder, encoder)
    scores = scorer.score([p.claim for p in test], [pair_docs(p, sentences) for p in test])
    assert ((scores >= 0) & (scores <= 1)).all()
    assert report["scorers"]["trained"]["auroc"] > 0.6  # SUPPORT ranks above the rest on real claims
    from ragops.answer.grounding_metrics import grounding_report

    again = grounding_report(scores, [p.label for p in test], scorer.threshold)
    assert again["auroc"] == pytest.approx(report["scorers"]["trained"]["auroc"], abs=1e-4)
    long_claim = " ".join([test[0].claim] * 12)  # longer than max_length on its own: truncated, no error
    assert scorer.score([long_claim], [pair_docs(test[0], sentences)]).shape == (1,)


def test_trained_scorer_prefers_the_supported_claim(fitted, encoder) -> None:
    folder, _, _ = fitted
    scorer = load_scorer("trained", folder, encoder)
    doc = [
        "Daily aspirin reduced the risk of colorectal cancer by 40% in a trial of 20,000 adults.",
        "Participants were followed for ten years.",
    ]
    s = scorer.score(["Aspirin reduces the risk of colorectal cancer.", "Aspirin does not reduce the risk of "
                      "colorectal cancer."], [[doc], [doc]])  # fmt: skip
    assert s[0] > s[1]


def test_training_never_reads_the_evaluation_claims(fitted, claims, encoder, tmp_path: Path) -> None:
    _, saved, _ = fitted
    sentences, train, test = claims
    # the same training with evaluation claims whose labels are all flipped: the model must be identical
    flip = {"SUPPORT": "CONTRADICT", "CONTRADICT": "NEI", "NEI": "SUPPORT"}
    other = [replace(p, label=flip[p.label]) for p in test]
    cfg = TrainConfig(folds=3, cross_encoder=TINY_CE)
    again, _ = fit_and_evaluate(train, other, sentences, encoder, cfg, encoder.path, tmp_path / CE_DIR)
    for key in ("threshold", "logistic", "stacker"):
        assert again["trained"][key] == saved["trained"][key], key
    assert np.isclose(again["lexical"]["threshold"], saved["lexical"]["threshold"])
