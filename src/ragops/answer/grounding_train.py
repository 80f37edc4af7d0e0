"""Training and evaluating the grounding scorers on SciFact claims (the `grounding` stage's core).

Every threshold, and the trained scorer's regularization, is chosen on claims_train by group k-fold
cross-validation (folds by claim); the evaluation claims are only scored. A pair is a claim and one
cited document; SUPPORT is positive, CONTRADICT and no evidence (NEI) are negative.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ragops.answer.cross_encoder import (
    CE_DIR,
    CE_FEATURES,
    CrossEncoderConfig,
    GroundingCrossEncoder,
    ce_features,
    train_cross_encoder,
    training_examples,
)
from ragops.answer.grounding_data import Pair
from ragops.answer.grounding_fit import (
    claim_only,
    fit_logistic,
    fit_stacker,
    group_folds,
    memo_encode,
    pair_docs,
    training_rows,
)
from ragops.answer.grounding_metrics import auroc, best_threshold, grounding_report, negation_table
from ragops.answer.pseudo_claims import corpus_claims, pseudo_examples
from ragops.answer.scorers import (
    FEATURES,
    LEXICAL_BASELINE_THRESHOLD,
    Docs,
    EncodeFn,
    LogisticModel,
    embedding_scores,
    lexical_score,
    rank_sentences,
    stack_features,
    stack_inputs,
    trained_features,
)

log = logging.getLogger("ragops.grounding")


@dataclass(frozen=True)
class TrainConfig:
    augment: bool = True  # add negated claims (ragops.answer.negate) with the opposite label
    folds: int = 5
    c_grid: tuple[float, ...] = field(default=(0.003, 0.01, 0.03, 0.1))  # inverse L2 strength, chosen by CV
    seed: int = 42
    # The cross-encoder (ragops.answer.cross_encoder), stacked on the logistic model; None = logistic only.
    cross_encoder: CrossEncoderConfig | None = None
    stacker: str = "sum"  # ragops.answer.scorers.STACK_FORMS
    stack_weights: tuple[float, ...] = (0.5, 1.0, 2.0)  # sum: the log odds' weight, chosen by cross-validation


def fit_trained(
    x: np.ndarray, y: np.ndarray, groups: Sequence[str], synthetic: np.ndarray, cfg: TrainConfig
) -> tuple[LogisticModel, float, dict[str, Any], np.ndarray]:
    """Choose C by out-of-fold AUROC on the real (non-synthetic) train pairs, take the threshold with the
    best out-of-fold F1, refit on all of train. Returns (model, threshold, cross-validation record, the
    out-of-fold predictions at the chosen C)."""
    folds = group_folds(groups, cfg.folds, cfg.seed)
    real = ~synthetic
    best: tuple[float, float, np.ndarray] | None = None
    cv: dict[str, float] = {}
    for c in cfg.c_grid:
        oof = np.zeros(len(y))
        for f in range(cfg.folds):
            train = folds != f
            oof[~train] = fit_logistic(x[train], y[train], c, cfg.seed).predict(x[~train])
        score = auroc(oof[real], y[real])
        cv[f"auroc_C={c:g}"] = round(score, 4)
        if best is None or score > best[0]:
            best = (score, c, oof)
    score, c, oof = best
    threshold = best_threshold(oof[real], y[real])
    record = {"C": c, "cv_auroc": round(score, 4), "grid": cv, "folds": cfg.folds}
    return fit_logistic(x, y, c, cfg.seed), threshold, record, oof


def fit_stacked(
    train: Sequence[Pair],
    sentences: dict[str, list[str]],
    encode: EncodeFn,
    base_model: str | Path,
    owners: Sequence[Pair],
    synthetic: np.ndarray,
    oof: np.ndarray,
    cfg: TrainConfig,
    titles: dict[str, str] | None = None,
    exclude: frozenset[str] = frozenset(),
) -> tuple[GroundingCrossEncoder, LogisticModel, float, dict[str, Any]]:
    """The cross-encoder trained on the claims of folds 1..k-1, and a small "stacker" over (logistic model's
    logit, cross-encoder features) fit on fold 0, where both are out-of-sample (the logistic model's
    out-of-fold predictions come from the same folds). Its form is ``cfg.stacker``; the ``sum`` form's weight
    (of ``cfg.stack_weights``) is the one whose out-of-fold AUROC overall plus SUPPORT vs CONTRADICT is the
    highest on a k-fold split of fold 0's claims, which also gives the threshold and the cross-validated
    AUROC. With ``cfg.cross_encoder.corpus_claims``, pseudo-claims from the corpus (``titles`` and
    ``sentences``, never documents in ``exclude`` nor those fold 0's claims cite) join its training examples.
    Returns (cross-encoder, stacker, threshold, record)."""
    assert cfg.cross_encoder is not None
    ce_cfg = cfg.cross_encoder
    groups = [p.claim_id for p in owners]
    fold_of = dict(zip(groups, group_folds(groups, cfg.folds, cfg.seed), strict=True))
    fit_part = [p for p in train if fold_of[p.claim_id] != 0]
    docs = [sentences.get(p.doc_id, []) for p in fit_part]
    order = rank_sentences(encode, [p.claim for p in fit_part], [[d] for d in docs])
    examples = training_examples(
        fit_part, sentences, {(p.claim_id, p.doc_id): o for p, o in zip(fit_part, order, strict=True)}, cfg.seed,
        negate_evidence=ce_cfg.negate_evidence,
    )  # fmt: skip
    n_claim_examples = len(examples)
    if ce_cfg.corpus_claims > 0 and titles is not None:
        held_docs = {p.doc_id for p in train if fold_of[p.claim_id] == 0}
        pseudo = corpus_claims(
            titles, sentences, ce_cfg.corpus_source, ce_cfg.corpus_claims, cfg.seed, exclude | held_docs
        )
        ranked = rank_sentences(encode, [c for _, c in pseudo], [[sentences[d]] for d, _ in pseudo])
        examples += pseudo_examples(pseudo, sentences, ranked, ce_cfg.top_k, ce_cfg.corpus_nei)
        random.Random(cfg.seed).shuffle(examples)
    ce, ce_record = train_cross_encoder(base_model, examples, ce_cfg)
    ce_record["claim_examples"] = n_claim_examples
    rows = [i for i, p in enumerate(owners) if not synthetic[i] and fold_of[p.claim_id] == 0]
    held = [owners[i] for i in rows]
    x = stack_inputs(oof[rows], ce_feats(ce, encode, [p.claim for p in held], [pair_docs(p, sentences) for p in held]))
    x = stack_features(x, cfg.stacker)
    y = np.asarray([p.label == "SUPPORT" for p in held])
    sc = np.asarray([p.label != "NEI" for p in held])
    inner = group_folds([p.claim_id for p in held], cfg.folds, cfg.seed + 1)
    grid, best = {}, None
    for weight in cfg.stack_weights if cfg.stacker == "sum" else (1.0,):
        pred = np.zeros(len(y))
        for f in range(cfg.folds):
            fitted = fit_stacker(cfg.stacker, x[inner != f], y[inner != f], weight, cfg.seed)
            pred[inner == f] = fitted.predict(x[inner == f])
        scores = (round(auroc(pred, y), 4), round(auroc(pred[sc], y[sc]), 4))
        grid[f"weight={weight:g}"] = list(scores)
        if best is None or sum(scores) > sum(best[1]):
            best = (weight, scores, pred)
    weight, scores, pred = best
    record = {
        "stack_pairs": len(held),
        "stacker": cfg.stacker,
        "stack_weight": weight,
        "stack_grid": grid,
        "stack_cv_auroc": scores[0],
        "stack_cv_auroc_support_vs_contradict": scores[1],
        "logistic_oof_auroc_same_pairs": round(auroc(oof[rows], y), 4),
        "cross_encoder": {**ce_record, "train_pairs": len(fit_part)},
    }
    return ce, fit_stacker(cfg.stacker, x, y, weight, cfg.seed), best_threshold(pred, y), record


def ce_feats(ce: GroundingCrossEncoder, encode: EncodeFn, claims: Sequence[str], docs: Sequence[Docs]) -> np.ndarray:
    """The cross-encoder features of each claim against its documents' most similar sentences."""
    order = rank_sentences(encode, claims, docs)
    flat = [[s for doc in d for s in doc] for d in docs]
    return ce_features(ce, claims, [[f[i] for i in o] for f, o in zip(flat, order, strict=True)])


def fit_and_evaluate(
    train: Sequence[Pair],
    test: Sequence[Pair],
    sentences: dict[str, list[str]],
    encode: EncodeFn,
    cfg: TrainConfig,
    base_model: str | Path | None = None,
    ce_dir: str | Path | None = None,
    titles: dict[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(scorers.json content: thresholds and the trained model, report: every scorer on ``test``).
    With ``cfg.cross_encoder``, the cross-encoder is fine-tuned from ``base_model`` and saved to ``ce_dir``;
    its pseudo-claims (``corpus_claims``) come from ``titles`` and ``sentences`` of documents no ``test``
    claim cites."""
    t0 = time.perf_counter()
    encode = memo_encode(encode)  # the scorers share sentences: each text is encoded once
    labels = [p.label for p in test]
    y_train = np.asarray([p.label == "SUPPORT" for p in train])
    train_docs = [pair_docs(p, sentences) for p in train]
    test_docs = [pair_docs(p, sentences) for p in test]
    saved: dict[str, Any] = {}
    report: dict[str, Any] = {"scorers": {}, "train": {}}
    base = {
        "lexical": (
            np.asarray([lexical_score(p.claim, d) for p, d in zip(train, train_docs, strict=True)]),
            np.asarray([lexical_score(p.claim, d) for p, d in zip(test, test_docs, strict=True)]),
        ),
        "embedding": (
            embedding_scores([p.claim for p in train], train_docs, encode),
            embedding_scores([p.claim for p in test], test_docs, encode),
        ),
    }
    for name, (s_train, s_test) in base.items():
        threshold = best_threshold(s_train, y_train)  # a single threshold: no fitting beyond it
        saved[name] = {"threshold": round(threshold, 6)}
        report["scorers"][name] = grounding_report(s_test, labels, threshold)
        report["train"][name] = grounding_report(s_train, [p.label for p in train], threshold)
    report["scorers"]["lexical_baseline"] = grounding_report(base["lexical"][1], labels, LEXICAL_BASELINE_THRESHOLD)
    t1 = time.perf_counter()
    claims, owners, y, synthetic = training_rows(train, cfg.augment)
    x = trained_features(encode, claims, [pair_docs(p, sentences) for p in owners])
    model, threshold, cv, oof = fit_trained(x, y, [p.claim_id for p in owners], synthetic, cfg)
    test_claims = [p.claim for p in test]
    s_test = model.predict(trained_features(encode, test_claims, test_docs))
    # The control: each evaluation claim against another claim's cited document (a seeded permutation).
    # Whatever the trained scorer still separates there, it read from the claim's wording, not the evidence.
    wrong_docs = [test_docs[j] for j in np.random.default_rng(cfg.seed).permutation(len(test))]
    s_wrong = model.predict(trained_features(encode, test_claims, wrong_docs))
    saved["trained"] = {
        "threshold": round(threshold, 6),
        "features": list(FEATURES) + ["pair_embedding(4 x dim)"],
        "logistic": model.to_dict(),
        "cv": cv,
        "augment": cfg.augment,
    }
    report["diagnostics"] = {
        "claim_only": claim_only(encode, claims, y, [p.claim for p in test], labels, cfg.seed),
        "logistic_only": grounding_report(s_test, labels, threshold),
    }
    if cfg.cross_encoder is not None:
        if base_model is None or ce_dir is None:
            raise ValueError("the cross-encoder needs base_model and ce_dir")
        ce, stacker, threshold, stack_record = fit_stacked(
            train, sentences, encode, base_model, owners, synthetic, oof, cfg,
            titles=titles, exclude=frozenset(p.doc_id for p in test),
        )  # fmt: skip
        ce.save(ce_dir)
        ce_test = ce_feats(ce, encode, test_claims, test_docs)
        s_test = stacker.predict(stack_features(stack_inputs(s_test, ce_test), cfg.stacker))
        ce_wrong = ce_feats(ce, encode, test_claims, wrong_docs)
        s_wrong = stacker.predict(stack_features(stack_inputs(s_wrong, ce_wrong), cfg.stacker))
        sup, con = CE_FEATURES.index("ce_topk_support"), CE_FEATURES.index("ce_topk_contradict")
        report["diagnostics"]["cross_encoder_only"] = grounding_report(ce_test[:, sup] - ce_test[:, con], labels, 0.0)
        saved["trained"].update(
            threshold=round(threshold, 6),
            stacker=stacker.to_dict(),
            stack_form=cfg.stacker,
            stack_features=["logit(logistic)", *(CE_FEATURES if cfg.stacker == "logistic" else ("ce_topk_log_odds",))],
            cross_encoder={"dir": CE_DIR, "max_length": cfg.cross_encoder.max_length, "top_k": cfg.cross_encoder.top_k},
        )
        cv = {**cv, **stack_record}
    train_seconds = time.perf_counter() - t1
    report["scorers"]["trained"] = grounding_report(s_test, labels, threshold)
    report["diagnostics"]["trained_wrong_evidence"] = grounding_report(s_wrong, labels, threshold)
    report["train"]["trained"] = cv
    report["negation"] = negation_table(test, labels)
    report["n_train_pairs"], report["n_train_rows"], report["n_test_pairs"] = len(train), len(claims), len(test)
    report["seconds"] = {"total": round(time.perf_counter() - t0, 1), "trained_fit": round(train_seconds, 1)}
    log.info(
        "grounding on %d test pairs: %s",
        len(test),
        {k: (v["auroc"], v["auroc_support_vs_contradict"], v["f1"]) for k, v in report["scorers"].items()},
    )
    return saved, report


