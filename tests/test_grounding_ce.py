"""The trained scorer with its cross-encoder: examples from rationales, save/load, a supported vs a
contradicted pair, and training that never reads the evaluation claims (real MiniLM, a small sample)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ragops.answer.cross_encoder import CE_DIR, CrossEncoderConfig, training_examples
from ragops.answer.grounding_data import LABELS, Pair, read_titles
from ragops.answer.grounding_fit import pair_docs
from ragops.answer.grounding_train import TrainConfig, fit_and_evaluate
from ragops.answer.pseudo_claims import corpus_claims, pseudo_examples
from ragops.answer.scorers import SCORERS_FILE, load_scorer
from ragops.errors import ConfigError
from ragops.io import write_json
from tests.conftest import claims_sample, thread_share

# One epoch (was two): half the module's time (the fit 30 s instead of 62 s under `make test`); its scorer still
# ranks SUPPORT first on the 40 evaluation claims (AUROC 0.662 > 0.6) and prefers the supported claim (0.78 vs 0.38).
TINY_CE = CrossEncoderConfig(epochs=1, max_length=64, batch_size=16, threads=thread_share(), corpus_claims=30)


@pytest.fixture(scope="module")
def claims(mirror: Path):
    return claims_sample(mirror, 100, 40)


@pytest.fixture(scope="module")
def titles(mirror: Path) -> dict[str, str]:
    return read_titles(mirror / "corpus_sentences.jsonl.gz")


@pytest.fixture(scope="module")
def encode(minilm_cached):
    """The MiniLM's sentence vectors, kept for the run (tests/conftest.py): the fits below and test_grounding.py's
    encode nested samples of the same claims' sentences."""
    return minilm_cached


@pytest.fixture(scope="module")
def fitted(claims, titles, encoder, encode, tmp_path_factory):
    sentences, train, test = claims
    folder = tmp_path_factory.mktemp("grounding")
    cfg = TrainConfig(folds=3, cross_encoder=TINY_CE)
    saved, report = fit_and_evaluate(train, test, sentences, encode, cfg, encoder.path, folder / CE_DIR, titles=titles)
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


def test_trained_scorer_saves_and_loads(fitted, claims, encode) -> None:
    folder, saved, report = fitted
    sentences, _, test = claims
    assert (folder / CE_DIR / "head.safetensors").is_file()
    assert set(report["scorers"]) == {"lexical", "embedding", "trained", "lexical_baseline"}
    control = report["diagnostics"]["trained_wrong_evidence"]  # every claim against another's document
    assert control["n"] == len(test) and control["threshold"] == report["scorers"]["trained"]["threshold"]
    # the run's cache of the MiniLM (the fit encoded these sentences): the loaded scorer's own parts, the
    # saved logistic model, stacker and cross-encoder, are what this reads back
    scorer = load_scorer("trained", folder, encode)
    scores = scorer.score([p.claim for p in test], [pair_docs(p, sentences) for p in test])
    assert ((scores >= 0) & (scores <= 1)).all()
    assert report["scorers"]["trained"]["auroc"] > 0.6  # SUPPORT ranks above the rest on real claims
    from ragops.answer.grounding_metrics import grounding_report

    again = grounding_report(scores, [p.label for p in test], scorer.threshold)
    assert again["auroc"] == pytest.approx(report["scorers"]["trained"]["auroc"], abs=1e-4)
    long_claim = " ".join([test[0].claim] * 12)  # longer than max_length on its own: truncated, no error
    # the stacker: the sum form, its log-odds weight the grid's best on fold 0's inner cross-validation
    cv = report["train"]["trained"]
    assert saved["trained"]["stack_form"] == cv["stacker"] == "sum"
    assert set(cv["stack_grid"]) == {"weight=0.5", "weight=1", "weight=2"}
    assert cv["stack_grid"][f"weight={cv['stack_weight']:g}"] == max(cv["stack_grid"].values(), key=sum)
    assert [cv["stack_cv_auroc"], cv["stack_cv_auroc_support_vs_contradict"]] == max(cv["stack_grid"].values(), key=sum)
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


def test_training_never_reads_the_evaluation_claims(claims, titles, encoder, encode, tmp_path: Path) -> None:
    # Two fits that differ only in the evaluation claims' labels, all flipped: every fitted part must come out
    # identical. Small fits (a prefix of the module's sample, whose vectors the run's `encode` cache holds once
    # its fit has run; one epoch, pairs cut at 32 tokens: 10 s a fit instead of 14 s on one core): the property
    # does not depend on the size, and that fit is not repeated.
    sentences, train, test = claims
    train, test = train[:40], test[:12]
    flip = {"SUPPORT": "CONTRADICT", "CONTRADICT": "NEI", "NEI": "SUPPORT"}
    cfg = TrainConfig(folds=3, cross_encoder=replace(TINY_CE, epochs=1, corpus_claims=10, max_length=32))
    fits = [
        fit_and_evaluate(train, evaluation, sentences, encode, cfg, encoder.path, tmp_path / name / CE_DIR,
                         titles=titles)[0]
        for name, evaluation in (("as_is", test), ("flipped", [replace(p, label=flip[p.label]) for p in test]))
    ]  # fmt: skip
    for key in ("threshold", "logistic", "stacker"):
        assert fits[0]["trained"][key] == fits[1]["trained"][key], key
    assert np.isclose(fits[0]["lexical"]["threshold"], fits[1]["lexical"]["threshold"])
    saved = [sorted((f.relative_to(tmp_path / n), f.read_bytes()) for f in (tmp_path / n).rglob("*") if f.is_file())
             for n in ("as_is", "flipped")]
    assert saved[0] and saved[0] == saved[1]  # the cross-encoder's weights too, byte for byte


def test_corpus_claims_are_findings_that_can_be_flipped() -> None:
    titles = {
        "a": "Aspirin reduces fever in adults",  # a finding: "reduces" -> "enhances"
        "b": "The role of tea in colds",  # a topic: only the fallback negates it
        "c": "Statins increase muscle pain",
    }
    sents = {
        "a": ["Fever fell in treated adults.", "We show that aspirin lowers fever quickly.", "Costs were low."],
        "b": ["Tea was given.", "Colds were counted.", "These results suggest that tea shortens colds."],
        "c": ["Muscle pain was measured.", "Pain rose.", "It was a trial."],
    }
    both = corpus_claims(titles, sents, "both", 100, seed=0)
    assert ("a", "Aspirin reduces fever in adults") in both
    assert ("a", "Aspirin lowers fever quickly") in both  # the clause after "we show that", capitalized
    assert all(d != "b" for d, _ in both)  # a topic title, and "shortens" has no antonym: nothing to flip
    assert {c for _, c in corpus_claims(titles, sents, "titles", 100, 0)} == {
        "Aspirin reduces fever in adults", "Statins increase muscle pain"}  # fmt: skip
    assert all(d != "c" for d, _ in corpus_claims(titles, sents, "both", 100, 0, exclude={"c"}))
    assert len(corpus_claims(titles, sents, "both", 1, 0)) == 1
    assert corpus_claims(titles, sents, "both", 2, 7) == corpus_claims(titles, sents, "both", 2, 7)  # seeded
    with pytest.raises(ConfigError, match="corpus_source 'abstracts'; valid: both, clauses, titles"):
        corpus_claims(titles, sents, "abstracts", 10, 0)


def test_pseudo_examples_support_the_claim_and_contradict_its_negation() -> None:
    sents = {"a": ["Fever fell in treated adults.", "Aspirin reduced fever.", "Costs were low."]}
    claims = [("a", "Aspirin reduces fever in adults")]
    ex = pseudo_examples(claims, sents, [[1, 0, 2]], top_k=2, nei=True)
    by = {(c, e): LABELS[y] for c, e, y in ex}
    evidence = "Aspirin reduced fever. Fever fell in treated adults."  # the top 2, most similar first
    assert by[("Aspirin reduces fever in adults", evidence)] == "SUPPORT"
    assert by[("Aspirin enhances fever in adults", evidence)] == "CONTRADICT"
    assert by[("Aspirin reduces fever in adults", "Costs were low.")] == "NEI"  # the least similar sentence
    assert [LABELS[y] for _, _, y in pseudo_examples(claims, sents, [[1, 0, 2]], 2, nei=False)] == [
        "SUPPORT", "CONTRADICT"]  # fmt: skip


def test_pseudo_claims_join_the_cross_encoders_training(fitted) -> None:
    _, saved, report = fitted
    record = report["train"]["trained"]["cross_encoder"]
    assert record["examples"] > record["claim_examples"]  # the 30 pseudo-claims and their negations


def test_negated_evidence_gives_all_four_claim_evidence_polarities() -> None:
    sents = {"d": ["In adults, aspirin lowers fever more than placebo.", "The trial ran in 2001."]}
    pairs = [Pair("1", "Aspirin lowers fever.", "d", "SUPPORT", [[0]])]
    order = {("1", "d"): [0, 1]}
    plain = training_examples(pairs, sents, order, seed=0)
    ex = training_examples(pairs, sents, order, seed=0, negate_evidence=True)
    by = {(c, e): LABELS[y] for c, e, y in ex}
    # the evidence is flipped where it meets the claim ("lowers"), not at its first direction word ("more")
    flipped = "In adults, aspirin raises fever more than placebo."
    assert by[("Aspirin lowers fever.", flipped)] == "CONTRADICT"
    assert by[("Aspirin raises fever.", flipped)] == "SUPPORT"
    assert by[("Aspirin raises fever.", sents["d"][0])] == "CONTRADICT"
    assert len(ex) == len(plain) + 2
    unrelated = [Pair("2", "Aspirin lowers fever.", "d", "SUPPORT", [[1]])]  # no shared direction word
    order2 = {("2", "d"): [1, 0]}
    assert len(training_examples(unrelated, sents, order2, 0, negate_evidence=True)) == len(
        training_examples(unrelated, sents, order2, 0)
    )


def test_stage_reads_the_cross_encoder_params() -> None:
    import yaml

    from ragops.answer.cross_encoder import cross_encoder_config

    params = yaml.safe_load((Path(__file__).parents[1] / "params.yaml").read_text())
    cfg = cross_encoder_config(params["grounding"]["cross_encoder"], seed=7)
    from ragops.encode.models import training_precision

    assert cfg is not None and cfg.seed == 7 and cfg.device == "cpu"
    assert cfg.precision == training_precision("auto", "cpu")  # params.yaml's auto, resolved on this machine
    assert (cfg.corpus_claims, cfg.corpus_source, cfg.corpus_nei, cfg.negate_evidence) == (0, "both", False, False)
    assert cfg.group_by_length is params["grounding"]["cross_encoder"]["group_by_length"] is True
    assert not cross_encoder_config({**params["grounding"]["cross_encoder"], "group_by_length": False}, 7
                                    ).group_by_length  # fmt: skip
    tiny = {**params["grounding"]["cross_encoder"], "corpus_claims": 20, "negate_evidence": True, "device": "cuda"}
    cfg = cross_encoder_config(tiny, seed=7)
    assert cfg is not None and (cfg.corpus_claims, cfg.negate_evidence, cfg.device) == (20, True, "cuda")
    older = {k: v for k, v in tiny.items() if k not in ("corpus_claims", "negate_evidence", "device")}
    cfg = cross_encoder_config(older, seed=7)  # a params.yaml from before these keys: the old recipe
    assert cfg is not None and (cfg.corpus_claims, cfg.negate_evidence, cfg.device) == (0, False, "cpu")
    assert not cross_encoder_config({k: v for k, v in older.items() if k != "group_by_length"}, 7).group_by_length
    cfg = cross_encoder_config({k: v for k, v in older.items() if not k.endswith("_dropout")}, seed=7)
    assert cfg is not None and (cfg.attention_dropout, cfg.hidden_dropout) == (None, None)  # absent: the model's own
    assert (cross_encoder_config(params["grounding"]["cross_encoder"], 7).hidden_dropout
            == params["grounding"]["cross_encoder"]["hidden_dropout"] == 0.0)
    assert cross_encoder_config({k: v for k, v in older.items() if k != "precision"}, seed=7).precision == "fp32"
    assert cross_encoder_config({**tiny, "enabled": False}, seed=7) is None


def test_the_cross_encoder_trains_in_its_precision() -> None:
    """grounding.cross_encoder.precision: bf16 changes the arithmetic of the forward pass (other losses than fp32's
    on the same seeded batches), is recorded with the training, and leaves fp32 weights."""
    import torch

    from ragops.answer.cross_encoder import train_cross_encoder
    from ragops.encode.models import resolve_model

    examples = [("Masks reduce transmission.", "Wearing masks lowered the spread of the virus.", 0),
                ("Masks reduce transmission.", "The trial measured blood pressure.", 1),
                ("Masks increase transmission.", "Wearing masks lowered the spread of the virus.", 2),
                ("Statins lower LDL.", "Statin therapy reduced LDL cholesterol by a third.", 0)] * 2
    runs = {}
    for precision in ("fp32", "bf16"):
        cfg = replace(TINY_CE, max_length=32, batch_size=4, corpus_claims=0, precision=precision)
        runs[precision] = train_cross_encoder(resolve_model("all-MiniLM-L6-v2"), examples, cfg)
    assert [r[1]["precision"] for r in runs.values()] == ["fp32", "bf16"]
    # the record says how much padding the batches held (length-grouped: 1.0 when every batch is alike)
    assert all(1.0 <= r[1]["padding"] < 2.0 for r in runs.values())
    assert runs["fp32"][1]["epoch_loss"] != runs["bf16"][1]["epoch_loss"]
    assert all(p.dtype == torch.float32 for p in runs["bf16"][0].encoder.parameters())


def test_a_cuda_device_without_a_gpu_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from ragops.answer.cross_encoder import train_cross_encoder
    from ragops.encode.models import resolve_model

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # runs on a GPU machine too

    with pytest.raises(ConfigError, match="device is 'cuda' but torch sees no CUDA device"):
        train_cross_encoder(resolve_model("all-MiniLM-L6-v2"), [("a b c", "a b c", 1)], replace(TINY_CE, device="cuda"))


def test_onnx_export_scores_like_pytorch_and_loads_without_torch(fitted, claims, encode, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    import json
    import shutil
    import subprocess
    import sys

    from ragops.answer.cross_encoder import GroundingCrossEncoder
    from ragops.answer.cross_encoder_onnx import OnnxGroundingCrossEncoder, export_and_check, load_cross_encoder
    from ragops.stages.grounding import check_pairs

    folder, saved, _ = fitted
    sentences, _, test = claims
    ce = saved["trained"]["cross_encoder"]
    # the module's fit has no export (the stage makes it, not fit_and_evaluate): PyTorch, and it says so
    with caplog.at_level("WARNING", logger="ragops.grounding"):
        assert isinstance(load_cross_encoder(folder / CE_DIR, ce["max_length"], ce["top_k"]), GroundingCrossEncoder)
    assert "has no ONNX export" in caplog.text
    copy = tmp_path / "grounding"
    shutil.copytree(folder, copy)  # the module's other tests read the fit as it is
    claims_, texts = check_pairs(test, sentences, ce["top_k"])
    claims_.append(" ".join([test[0].claim] * 12))  # longer than max_length on its own: both cut it alike
    texts.append(" ".join(sentences[test[0].doc_id]))
    record = export_and_check(copy / CE_DIR, ce["max_length"], ce["top_k"], claims_, texts)
    assert record["pairs"] == len(claims_) > 40 and record["max_abs_diff"] < 1e-4 and record["same_argmax"] == 1.0
    onnx = load_cross_encoder(copy / CE_DIR, ce["max_length"], ce["top_k"])
    assert isinstance(onnx, OnnxGroundingCrossEncoder)
    torch_ce = load_cross_encoder(copy / CE_DIR, ce["max_length"], ce["top_k"], "torch")
    # batches pad to their own longest pair: another batch size gives the same probabilities
    assert np.abs(onnx.probs(claims_, texts, batch_size=7) - torch_ce.probs(claims_, texts)).max() < 1e-4
    # the whole trained scorer, either backend
    docs = [pair_docs(p, sentences) for p in test]
    by = {b: load_scorer("trained", copy, encode, ce_backend=b).score([p.claim for p in test], docs)
          for b in ("onnx", "torch")}
    assert np.abs(by["onnx"] - by["torch"]).max() < 1e-4
    with pytest.raises(ConfigError, match="unknown answer.grounding_backend 'tensorrt'; valid: onnx, torch"):
        load_scorer("trained", copy, encode, ce_backend="tensorrt")
    # a fresh process scores with the export alone: neither torch nor transformers is imported
    probe = ("import json, sys; from ragops.answer.cross_encoder_onnx import load_cross_encoder; "
             "m = load_cross_encoder(sys.argv[1], int(sys.argv[2]), 2); p = m.probs(['a claim'], ['its evidence']); "
             "print(json.dumps([type(m).__name__, p.shape[1], "
             "[k for k in ('torch', 'transformers') if k in sys.modules]]))")
    out = subprocess.run([sys.executable, "-c", probe, str(copy / CE_DIR), str(ce["max_length"])], capture_output=True,
                         text=True, check=True).stdout
    assert json.loads(out.strip().splitlines()[-1]) == ["OnnxGroundingCrossEncoder", len(LABELS), []], out
