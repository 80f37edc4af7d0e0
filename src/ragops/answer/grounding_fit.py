"""The grounding scorers' building blocks, shared by the `grounding` stage and its benchmarks
(bench/grounding_ablation.py, grounding_ce_cv.py, grounding_ce_holdout.py): the pairs' documents, the
training rows with negation augmentation, folds by claim, the logistic fit, an encoder memo, and the
claim-only diagnostic.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from ragops.answer.grounding_data import Pair
from ragops.answer.grounding_metrics import best_threshold, grounding_report
from ragops.answer.negate import negate
from ragops.answer.scorers import EncodeFn, LogisticModel
from ragops.answer.text import decrease_count, negation_count


def pair_docs(pair: Pair, sentences: dict[str, list[str]]) -> list[list[str]]:
    """The documents a pair's claim is judged against: its one cited document, as sentences."""
    return [sentences.get(pair.doc_id, [])]


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


def fit_stacker(form: str, x: np.ndarray, y: np.ndarray, weight: float, seed: int) -> LogisticModel:
    """The stacker of ``form`` (ragops.answer.scorers.STACK_FORMS) over ``x`` = stack_features(...): ``sum``
    standardizes the columns and adds them, the later ones times ``weight`` (no fit beyond that); ``logistic``
    is a logistic regression at C = 1 (``weight`` unused)."""
    if form == "logistic":
        return fit_logistic(x, y, 1.0, seed)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    coef = np.full(x.shape[1], float(weight))
    coef[0] = 1.0
    return LogisticModel(mean, np.where(scale > 1e-9, scale, 1.0), coef, 0.0)


def memo_encode(encode: EncodeFn) -> EncodeFn:
    """``encode`` with a dict of the vectors already computed (one stage run: a few thousand texts)."""
    memo: dict[str, np.ndarray] = {}

    def cached(texts: list[str]) -> np.ndarray:
        todo = sorted({t for t in texts if t not in memo})
        if todo:
            memo.update(zip(todo, encode(todo), strict=True))
        return np.stack([memo[t] for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)

    return cached


def claim_only(
    encode: EncodeFn, claims: Sequence[str], y: np.ndarray, test: Sequence[str], labels: Sequence[str], seed: int
) -> dict[str, float]:
    """Diagnostic, never a scorer: a logistic model over the claim alone (MiniLM vector, negation and
    direction cues) on the same training rows, judged on the evaluation claims — how much of the label the
    claim wording gives away without any evidence. C = 0.03: the best of bench/grounding_ablation.py
    --claim-only on train."""

    def feats(cs: Sequence[str]) -> np.ndarray:
        cues = np.asarray([[negation_count(c) > 0, decrease_count(c) > 0] for c in cs], dtype=float)
        return np.hstack([cues, encode(list(cs))])

    model = fit_logistic(feats(claims), y, 0.03, seed)
    threshold = best_threshold(model.predict(feats(claims)), y)
    return grounding_report(model.predict(feats(test)), labels, threshold)
