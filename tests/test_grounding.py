"""The grounding scorers fit and judged on real SciFact claims (a seeded sample, the real MiniLM)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragops.answer.grounding_fit import pair_docs, training_rows
from ragops.answer.grounding_metrics import grounding_report
from ragops.answer.grounding_train import TrainConfig, fit_and_evaluate
from ragops.answer.scorers import SCORERS_FILE, load_scorer
from ragops.io import write_json
from tests.conftest import claims_sample


@pytest.fixture(scope="module")
def claims(mirror: Path):
    return claims_sample(mirror, 120, 60)


@pytest.fixture(scope="module")
def fitted(claims, minilm_cached):
    sentences, train, test = claims
    return fit_and_evaluate(train, test, sentences, minilm_cached, TrainConfig(folds=3))


def test_pairs_follow_the_claims_file(claims) -> None:
    sentences, train, test = claims
    labels = {p.label for p in train}
    assert labels == {"SUPPORT", "CONTRADICT", "NEI"}
    assert all(p.rationales for p in train if p.label != "NEI")
    assert all(not p.rationales for p in train if p.label == "NEI")
    assert all(pair_docs(p, sentences)[0] for p in test)  # every cited document has sentences
    claims_, owners, y, synthetic = training_rows(train, augment=True)
    n_labelled = sum(p.label != "NEI" for p in train)
    assert len(claims_) == len(train) + n_labelled and synthetic.sum() == n_labelled
    # a negated supported claim is a negative example, a negated contradicted one a positive
    for c, p, yy, syn in zip(claims_, owners, y, synthetic, strict=True):
        if syn:
            assert c != p.claim and yy == (p.label == "CONTRADICT")


def test_scorers_rank_real_claims_sanely(fitted) -> None:
    saved, report = fitted
    scorers = report["scorers"]
    assert set(scorers) == {"lexical", "embedding", "trained", "lexical_baseline"}
    for name, m in scorers.items():
        assert m["auroc"] > 0.6, (name, m)  # SUPPORT ranks above the rest on real claims
        assert m["n"] == report["n_test_pairs"]
    assert 0.0 < saved["trained"]["threshold"] < 1.0
    assert scorers["lexical_baseline"]["threshold"] == 0.7
    assert saved["trained"]["cv"]["C"] in TrainConfig().c_grid


def test_saved_trained_scorer_reproduces_the_report(fitted, claims, minilm_cached, tmp_path: Path) -> None:
    saved, report = fitted
    sentences, _, test = claims
    write_json(tmp_path / SCORERS_FILE, saved)
    # the fit's own vectors (the run's MiniLM cache): what is read back is the saved scorer, the logistic model and
    # its threshold (re-encoding the 60 claims' documents with PyTorch cost 11 s; test_onnx_encoder.py checks
    # that the ONNX export encodes like PyTorch)
    scorer = load_scorer("trained", tmp_path, minilm_cached)
    assert scorer.threshold == saved["trained"]["threshold"]
    scores = scorer.score([p.claim for p in test], [pair_docs(p, sentences) for p in test])
    assert ((scores >= 0) & (scores <= 1)).all()
    again = grounding_report(scores, [p.label for p in test], scorer.threshold)
    assert again["auroc"] == pytest.approx(report["scorers"]["trained"]["auroc"], abs=1e-4)
    assert again["f1"] == pytest.approx(report["scorers"]["trained"]["f1"], abs=1e-4)
    lexical = load_scorer("lexical", tmp_path, None)
    assert lexical.threshold == saved["lexical"]["threshold"]  # chosen on train, not the baseline's 0.7
