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
from typing import Any

import numpy as np

from ragops.answer.grounding_data import Pair
from ragops.answer.grounding_metrics import auroc, best_threshold, grounding_report
from ragops.answer.negate import negate
from ragops.answer.scorers import (
    FEATURES,
    LEXICAL_BASELINE_THRESHOLD,
    EncodeFn,
    LogisticModel,
    embedding_scores,
    lexical_score,
    trained_features,
)
from ragops.answer.text import negation_count

log = logging.getLogger("ragops.grounding")


@dataclass(frozen=True)
class TrainConfig:
    augment: bool = True  # add negated claims (ragops.answer.negate) with the opposite label
    folds: int = 5
    c_grid: tuple[float, ...] = field(default=(0.003, 0.01, 0.03, 0.1))  # inverse L2 strength, chosen by CV
    seed: int = 42


def pair_docs(pair: Pair, sentences: dict[str, list[str]]) -> list[list[str]]:
    """The documents a pair's claim is judged against: its one cited document, as sentences."""
    return [sentences.get(pair.doc_id, [])]


def group_folds(groups: Sequence[str], k: int, seed: int) -> np.ndarray:
    """Fold of each row, by group (all pairs of a claim, and their negations, in one fold)."""
    names = sorted(set(groups))
    random.Random(seed).shuffle(names)
    fold_of = {g: i % k for i, g in enumerate(names)}
    return np.asarray([fold_of[g] for g in groups])


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> LogisticModel:
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    lr = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit((x - mean) / scale, y)
    return LogisticModel(mean, scale, lr.coef_[0].copy(), float(lr.intercept_[0]))


def training_rows(pairs: Sequence[Pair], augment: bool) -> tuple[list[str], list[Pair], np.ndarray, np.ndarray]:
    """(claims, their pairs, SUPPORT labels, is-synthetic) with, when ``augment``, each labelled claim's
    negation carrying the opposite label: the negation of a supported claim is contradicted and vice versa."""
    claims, owners, y, synthetic = [], [], [], []
    for p in pairs:
        claims.append(p.claim)
        owners.append(p)
        y.append(p.label == "SUPPORT")
        synthetic.append(False)
        if augment and p.label in ("SUPPORT", "CONTRADICT"):
            claims.append(negate(p.claim))
            owners.append(p)
            y.append(p.label == "CONTRADICT")
            synthetic.append(True)
    return claims, owners, np.asarray(y), np.asarray(synthetic)


def fit_trained(
    x: np.ndarray, y: np.ndarray, groups: Sequence[str], synthetic: np.ndarray, cfg: TrainConfig
) -> tuple[LogisticModel, float, dict[str, Any]]:
    """Choose C by out-of-fold AUROC on the real (non-synthetic) train pairs, take the threshold with the
    best out-of-fold F1, refit on all of train. Returns (model, threshold, cross-validation record)."""
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
    return fit_logistic(x, y, c, cfg.seed), threshold, record


def fit_and_evaluate(
    train: Sequence[Pair], test: Sequence[Pair], sentences: dict[str, list[str]], encode: EncodeFn, cfg: TrainConfig
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(scorers.json content: thresholds and the trained model, report: every scorer on ``test``)."""
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
    model, threshold, cv = fit_trained(x, y, [p.claim_id for p in owners], synthetic, cfg)
    train_seconds = time.perf_counter() - t1
    s_test = model.predict(trained_features(encode, [p.claim for p in test], test_docs))
    saved["trained"] = {
        "threshold": round(threshold, 6),
        "features": list(FEATURES) + ["pair_embedding(4 x dim)"],
        "logistic": model.to_dict(),
        "cv": cv,
        "augment": cfg.augment,
    }
    report["scorers"]["trained"] = grounding_report(s_test, labels, threshold)
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


def memo_encode(encode: EncodeFn) -> EncodeFn:
    """``encode`` with a dict of the vectors already computed (one stage run: a few thousand texts)."""
    memo: dict[str, np.ndarray] = {}

    def cached(texts: list[str]) -> np.ndarray:
        todo = sorted({t for t in texts if t not in memo})
        if todo:
            memo.update(zip(todo, encode(todo), strict=True))
        return np.stack([memo[t] for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)

    return cached


def negation_table(pairs: Sequence[Pair], labels: Sequence[str]) -> dict[str, float]:
    """Share of claims with a negation cue, per label: the annotation artifact a scorer may lean on."""
    out = {}
    for lab in ("SUPPORT", "CONTRADICT", "NEI"):
        sel = [p for p, lb in zip(pairs, labels, strict=True) if lb == lab]
        out[f"negated_share_{lab.lower()}"] = (
            round(sum(negation_count(p.claim) > 0 for p in sel) / len(sel), 4) if sel else 0.0
        )
    return out
