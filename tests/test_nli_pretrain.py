"""ragops.answer.nli_pretrain and the grounding_pretrain stage: the partial-label loss, label mapping, seeded
per-source samples, a holdout that shares no claim or evidence with training, a short real training on the
mirror's pairs handed over to the grounding fine-tuning, and the stage's marker when it has nothing to read."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ragops.answer.cross_encoder import (
    NOT_SUPPORT,
    CrossEncoderConfig,
    GroundingCrossEncoder,
    batch_loss,
    train_cross_encoder,
)
from ragops.answer.grounding_data import LABELS
from ragops.answer.nli_data import Pair, cv_groups, load_all
from ragops.answer.nli_pretrain import LABEL_INDEX, PretrainConfig, examples, pretrain, sample, split
from ragops.encode.models import resolve_model
from ragops.errors import ConfigError
from tests.conftest import thread_share

TINY = CrossEncoderConfig(epochs=1, batch_size=8, max_length=48, threads=thread_share())


def test_loss_is_cross_entropy_for_exact_labels_and_either_for_not_support():
    logits = torch.tensor([[0.3, 1.2, -0.5], [2.0, -1.0, 0.1], [0.0, 0.0, 3.0]])
    exact = [1, 0, 2]
    assert torch.isclose(batch_loss(logits, exact), torch.nn.functional.cross_entropy(logits, torch.tensor(exact)))
    p = torch.softmax(logits, -1)
    nei, con = LABELS.index("NEI"), LABELS.index("CONTRADICT")
    want = -torch.log(p[:, nei] + p[:, con]).mean()
    assert torch.isclose(batch_loss(logits, [NOT_SUPPORT] * 3), want)
    # a mixed batch is the mean of each example's own term
    mixed = batch_loss(logits, [1, NOT_SUPPORT, 2])
    terms = [-math.log(p[0, 1]), -math.log(p[1, nei] + p[1, con]), -math.log(p[2, 2])]
    assert math.isclose(float(mixed), sum(terms) / 3, rel_tol=1e-5)


def test_not_support_loss_does_not_prefer_nei_or_contradict():
    logits = torch.zeros(1, 3, requires_grad=True)
    batch_loss(logits, [NOT_SUPPORT]).backward()
    grad = logits.grad[0]
    nei, sup, con = (LABELS.index(x) for x in ("NEI", "SUPPORT", "CONTRADICT"))
    assert grad[sup] > 0 and torch.isclose(grad[nei], grad[con]) and grad[nei] < 0


def pair(claim: str, evidence: str, label: str, source: str = "healthver") -> Pair:
    return Pair(evidence, claim, label, source, "dev", f"{source}:{claim}")


def test_examples_map_labels_claim_first():
    pairs = [pair("c1", "e1", "support"), pair("c2", "e2", "contradict"), pair("c3", "e3", "neutral"),
             pair("c4", "e4", "not_support", "fever")]
    got = sorted(examples(pairs, 0))
    assert got == [("c1", "e1", LABELS.index("SUPPORT")), ("c2", "e2", LABELS.index("CONTRADICT")),
                   ("c3", "e3", LABELS.index("NEI")), ("c4", "e4", NOT_SUPPORT)]
    assert examples(pairs, 0) == examples(pairs, 0) and set(LABEL_INDEX) == {"support", "contradict", "neutral",
                                                                            "not_support"}


@pytest.fixture(scope="module")
def real(mirror: Path) -> list[Pair]:
    return load_all(mirror.parent, ["healthver", "covidfact", "fever"])


def test_sample_caps_each_source_seeded(real):
    cfg = PretrainConfig(max_pairs={"fever": 100, "healthver": 50})
    got = sample(real, cfg)
    by = {s: sum(p.source == s for p in got) for s in cfg.sources}
    assert by == {"healthver": 50, "covidfact": 4086, "fever": 100}
    assert got == sample(real, cfg)  # seeded
    assert sample(real, PretrainConfig(max_pairs={"fever": 100}, seed=7)) != sample(real, PretrainConfig(
        max_pairs={"fever": 100}))


def test_holdout_shares_no_fold_group(real):
    pairs = sample(real, PretrainConfig(max_pairs={"healthver": 600, "covidfact": 600, "fever": 600}))
    train, held = split(pairs, 0.2, 42)
    assert len(train) + len(held) == len(pairs) and 0.1 < len(held) / len(pairs) < 0.3
    groups = dict(zip(pairs, cv_groups(pairs), strict=True))
    assert not {groups[p] for p in train} & {groups[p] for p in held}
    # a refuted COVID-Fact rewrite never sits across the split from its true claim (same evidence)
    assert not {p.evidence for p in train if p.source == "covidfact"} & {p.evidence for p in held
                                                                       if p.source == "covidfact"}


def test_covidfact_in_both_forms_is_refused(tmp_path):
    cfg = PretrainConfig(sources=("covidfact", "covidfact_rte"))
    with pytest.raises(ConfigError, match="covidfact_rte"):
        pretrain(tmp_path, "unused", cfg)


def test_short_pretraining_learns_and_hands_over(mirror: Path, tmp_path: Path):
    """A real (short) run on the mirror's pairs: the record, the per-source holdout figures, and the saved
    model starting the grounding fine-tuning with its head (not a new one)."""
    nli = tmp_path / "nli"
    shutil.copytree(mirror.parent / "nli", nli)
    cfg = PretrainConfig(max_pairs={"healthver": 40, "covidfact": 40, "fever": 40}, holdout=0.25, cross_encoder=TINY)
    model, record = pretrain(tmp_path, resolve_model("all-MiniLM-L6-v2"), cfg)
    assert record["train_pairs"] + record["holdout_pairs"] == 120
    assert set(record["holdout"]) == {"healthver", "covidfact", "fever"}
    assert "auroc_support_vs_contradict" in record["holdout"]["covidfact"]
    assert "accuracy" not in record["holdout"]["fever"]  # RTE negatives have no exact label
    assert record["training"]["examples"] == record["train_pairs"] and record["training"]["epoch_loss"][0] > 0
    model.save(tmp_path / "pre")
    probe = (["Masks reduce transmission."], ["Wearing masks lowered the spread of the virus."])
    before = model.probs(*probe)
    loaded = GroundingCrossEncoder.load(tmp_path / "pre", TINY.max_length, TINY.top_k)
    assert np.allclose(loaded.probs(*probe), before, atol=1e-6)
    # a fine-tuning with (almost) no step keeps the pretrained head: the hand-over loads it
    frozen = CrossEncoderConfig(epochs=1, batch_size=8, max_length=48, lr=1e-12, head_lr=1e-12)
    tuned, _ = train_cross_encoder(tmp_path / "pre", [("a", "b", 1)] * 8, frozen)
    assert np.allclose(tuned.probs(*probe), before, atol=1e-5)


@pytest.mark.parametrize("enabled", [True, False])
def test_stage_writes_a_marker_when_it_has_nothing_to_learn(tmp_path: Path, enabled: bool):
    """Disabled, or an empty data folder (a data set fetched from BEIR's archive has no nli/): a marker and a
    report saying why, and the grounding stage then starts from the plain MiniLM."""
    from ragops.config import load_params
    from ragops.io import read_json
    from ragops.stages import grounding_pretrain
    from ragops.training.artifacts import is_trained

    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    (tmp_path / "nli").mkdir()
    params["grounding"]["pretrain"].update(enabled=enabled, data=str(tmp_path / "nli"))
    params["paths"].update(grounding_pretrained=str(tmp_path / "model"),
                           grounding_pretrain_report=str(tmp_path / "report.json"))
    grounding_pretrain.main(params)
    assert not is_trained(tmp_path / "model")
    reason = read_json(tmp_path / "report.json")["reason"]
    assert reason == ("no files in " + str(tmp_path / "nli") if enabled else "grounding.pretrain.enabled is false")


def test_stage_skips_pretraining_without_labelled_claims(mirror: Path, tmp_path: Path):
    """The nli/ pairs are there but the data set has no labelled claims (prepare's copy lacks claims_train):
    the grounding stage would fit no scorer, so nothing is pretrained; the reason names the missing file."""
    from ragops.config import load_params
    from ragops.io import read_json, write_json
    from ragops.stages import grounding_pretrain
    from ragops.training.artifacts import is_trained

    params = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
    nli, claims = tmp_path / "nli", tmp_path / "claims"
    shutil.copytree(mirror.parent / "nli", nli)
    claims.mkdir()
    for name in ("claims_dev.csv", "corpus_sentences.jsonl.gz"):  # everything but the training claims
        shutil.copy2(mirror / name, claims / name)
    params["grounding"]["pretrain"]["data"] = str(nli)
    params["paths"].update(claims=str(claims), grounding_pretrained=str(tmp_path / "model"),
                           grounding_pretrain_report=str(tmp_path / "report.json"))
    grounding_pretrain.main(params)
    assert not is_trained(tmp_path / "model")
    report = read_json(tmp_path / "report.json")
    assert report == {"trained": False, "reason": f"no labelled claims to fine-tune on ({claims / 'claims_train.csv'} "
                                                  "not found)"}
    # A model trained under the same key (the data set had claims before) is kept, unused, for when they return
    # (a stand-in folder with the marker the stage writes: training for real is test_short_pretraining's job);
    # one trained under another key is not.
    for key, kept in ((grounding_pretrain.training_key(params), True), ("another", False)):
        shutil.rmtree(tmp_path / "model")
        (tmp_path / "model").mkdir()
        write_json(tmp_path / "model" / "training.json", {"trained": True, "train_key": key})
        (tmp_path / "model" / "weights").write_text("w")
        grounding_pretrain.main(params)
        assert is_trained(tmp_path / "model") is kept and (tmp_path / "model" / "weights").exists() is kept, key
