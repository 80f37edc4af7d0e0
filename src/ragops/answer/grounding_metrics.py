"""Grounding metrics: SUPPORT is the positive class; CONTRADICT and no evidence (NEI) are negative."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ragops.answer.text import negation_count


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Area under the ROC curve (ties count one half); NaN when a class is missing."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    if y.all() or not y.any():
        return float("nan")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def f1_at(scores: Sequence[float], positive: Sequence[bool], threshold: float) -> float:
    pred, y = np.asarray(scores) >= threshold, np.asarray(positive, dtype=bool)
    tp = int((pred & y).sum())
    denom = int(pred.sum()) + int(y.sum())
    return 2.0 * tp / denom if denom else 0.0


def best_threshold(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """The threshold with the highest F1 (the lowest such one; midpoints between observed scores)."""
    s = np.unique(np.asarray(scores, dtype=np.float64))
    candidates = np.concatenate([[s[0]], (s[:-1] + s[1:]) / 2.0]) if len(s) > 1 else s
    f1s = [f1_at(scores, positive, t) for t in candidates]
    return float(candidates[int(np.argmax(f1s))])


def grounding_report(scores: Sequence[float], labels: Sequence[str], threshold: float) -> dict[str, float]:
    """AUROC overall and SUPPORT vs CONTRADICT (and vs NEI), F1 / precision / recall at ``threshold``."""
    s, lab = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    pos = lab == "SUPPORT"
    sc, sn = np.isin(lab, ["SUPPORT", "CONTRADICT"]), np.isin(lab, ["SUPPORT", "NEI"])
    pred = s >= threshold
    tp = int((pred & pos).sum())
    return {
        "auroc": round(auroc(s, pos), 4),
        "auroc_support_vs_contradict": round(auroc(s[sc], pos[sc]), 4),
        "auroc_support_vs_nei": round(auroc(s[sn], pos[sn]), 4),
        "f1": round(f1_at(s, pos, threshold), 4),
        "precision": round(tp / int(pred.sum()), 4) if pred.any() else 0.0,
        "recall": round(tp / int(pos.sum()), 4) if pos.any() else 0.0,
        "threshold": round(float(threshold), 4),
        "n": int(len(s)),
    }


def negation_table(pairs: Sequence, labels: Sequence[str]) -> dict[str, float]:
    """Share of claims with a negation cue, per label: the annotation artifact a scorer may lean on."""
    out = {}
    for lab in ("SUPPORT", "CONTRADICT", "NEI"):
        sel = [p for p, lb in zip(pairs, labels, strict=True) if lb == lab]
        out[f"negated_share_{lab.lower()}"] = (
            round(sum(negation_count(p.claim) > 0 for p in sel) / len(sel), 4) if sel else 0.0
        )
    return out
