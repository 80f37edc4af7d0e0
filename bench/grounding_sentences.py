"""Sentence-level reading of the evidence for the grounding scorer (issue 17, item 2), chosen on claims_train.

The stage's cross-encoder reads a claim against its documents' most similar sentence and against its
``top_k`` (2) most similar joined into one text; the stacker adds the joined text's log odds
log P(SUPPORT) - log P(CONTRADICT) to the logistic model's logit (``grounding.stacker: sum``). The issue asks
for sentence-level scoring instead: each of the top ``m`` sentences read alone, contradiction read per
sentence, aggregated per claim. This script measures that with the build's saved cross-encoder (no
training): for each claim its ``m`` most similar sentences (by the base MiniLM cosine, as at answer time) are
scored one by one, and the per-sentence probabilities aggregated as

- ``max``: max_j log P(SUPPORT)_j - max_j log P(CONTRADICT)_j (the most supporting sentence against the most
  contradicting one: one contradicting sentence is enough to contradict);
- ``mean``: the mean of the per-sentence log odds;
- ``decisive``: the log odds of the sentence the model is surest about (largest |log odds|).

Each aggregate replaces the joined text's log odds in the stage's own ``sum`` stacker, its weight chosen
from ``grounding.stack_weights`` by the stage's inner 5-fold split of fold 0 (the rule the stage uses); the
form is chosen by the same train CV (AUROC overall plus SUPPORT vs CONTRADICT). claims_dev is only reported,
each with the wrong-evidence control (every claim against another claim's documents).

    python bench/grounding_sentences.py [--params params.yaml]   # -> reports/bench/grounding_sentences.json,
                                                                   #    docs/benchmarks.md
Reads the build (prepare's claims copy, models/grounding): run it after `dvc repro grounding`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import machine
from grounding_stack import fold0_setup, publish
from grounding_stack import table as stack_table

from ragops.answer.grounding_data import LABELS
from ragops.answer.grounding_fit import fit_stacker, pair_docs
from ragops.answer.grounding_metrics import auroc, grounding_report
from ragops.answer.scorers import rank_sentences, stack_features

AGGREGATES = ("max", "mean", "decisive")
EPS = 1e-6


def sentence_logp(ce, encode, claims, docs, m: int) -> tuple[np.ndarray, np.ndarray]:
    """([n, m] log P(SUPPORT), [n, m] log P(CONTRADICT)) of each claim against each of its ``m`` most similar
    sentences read alone; NaN where a claim has fewer sentences."""
    order = rank_sentences(encode, claims, docs)
    flat = [[s for doc in d for s in doc] for d in docs]
    pairs = [(i, j, f[k]) for i, (f, o) in enumerate(zip(flat, order, strict=True)) for j, k in enumerate(o[:m])]
    ls, lc = np.full((len(claims), m), np.nan), np.full((len(claims), m), np.nan)
    if pairs:
        p = ce.probs([claims[i] for i, _, _ in pairs], [s for _, _, s in pairs])
        rows, cols = np.array([i for i, _, _ in pairs]), np.array([j for _, j, _ in pairs])
        ls[rows, cols] = np.log(p[:, LABELS.index("SUPPORT")] + EPS)
        lc[rows, cols] = np.log(p[:, LABELS.index("CONTRADICT")] + EPS)
    return ls, lc


def aggregate(ls: np.ndarray, lc: np.ndarray, how: str) -> np.ndarray:
    """One number per claim (0 for a claim with no sentence)."""
    lo = ls - lc
    with np.errstate(all="ignore"):
        if how == "max":
            out = np.nanmax(ls, axis=1) - np.nanmax(lc, axis=1)
        elif how == "mean":
            out = np.nanmean(lo, axis=1)
        else:  # decisive
            pick = np.nanargmax(np.where(np.isnan(lo), -np.inf, np.abs(lo)), axis=1)
            out = lo[np.arange(len(lo)), pick]
    return np.nan_to_num(out, nan=0.0)


def cv_scores(f: np.ndarray, y: np.ndarray, sc: np.ndarray, inner: np.ndarray, folds: int, weight: float,
              seed: int) -> dict[str, float]:
    pred = np.zeros(len(y))
    for k in range(folds):
        pred[inner == k] = fit_stacker("sum", f[inner != k], y[inner != k], weight, seed).predict(f[inner == k])
    return {"auroc": round(auroc(pred, y), 4), "auroc_support_vs_contradict": round(auroc(pred[sc], y[sc]), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--m", type=int, nargs="+", default=[3, 5], help="sentences read per claim")
    args = ap.parse_args()
    t0 = time.perf_counter()
    b = fold0_setup(args.params)
    weights = b.cfg.stack_weights
    sets = {"fold0": ([p.claim for p in b.held], [pair_docs(p, b.sentences) for p in b.held]),
            "dev": ([p.claim for p in b.test], b.test_docs), "wrong": ([p.claim for p in b.test], b.wrong_docs)}
    logit = {"fold0": b.x[:, 0], "dev": b.x_test[:, 0], "wrong": b.x_wrong[:, 0]}
    # the stage's own form first: the joined top-k text's log odds
    cols = {"joined": {k: stack_features(x, "sum")[:, 1] for k, x in
                       (("fold0", b.x), ("dev", b.x_test), ("wrong", b.x_wrong))}}
    for m in args.m:
        logp = {k: sentence_logp(b.ce, b.encode, c, d, m) for k, (c, d) in sets.items()}
        for how in AGGREGATES:
            cols[f"{how}@{m}"] = {k: aggregate(*logp[k], how) for k in sets}
    out: dict = {"machine": machine(), "forms": {}, "weights": list(weights),
                 "data": f"{len(b.held)} fold-0 pairs, {len(b.test)} claims_dev pairs"}
    for name, col in cols.items():
        f = {k: np.column_stack([logit[k], col[k]]) for k in sets}
        grid = {w: cv_scores(f["fold0"], b.y, b.sc, b.inner, b.cfg.folds, w, b.seed) for w in weights}
        w = max(weights, key=lambda v: sum(grid[v].values()))  # the stage's rule
        fitted = fit_stacker("sum", f["fold0"], b.y, w, b.seed)
        dev = grounding_report(fitted.predict(f["dev"]), b.labels_test, 0.0)
        wrong = grounding_report(fitted.predict(f["wrong"]), b.labels_test, 0.0)
        out["forms"][name] = {
            "weight": w, "train_cv": grid[w],
            "claims_dev": {k: dev[k] for k in ("auroc", "auroc_support_vs_contradict", "auroc_support_vs_nei")},
            "wrong_evidence_support_vs_contradict": wrong["auroc_support_vs_contradict"],
            "evidence_share": round(dev["auroc_support_vs_contradict"] - wrong["auroc_support_vs_contradict"], 4),
        }
        print(name, out["forms"][name], flush=True)
    publish("grounding_sentences", out, t0, table, "## Grounding: the evidence read sentence by sentence, chosen "
            "on claims_train's fold 0 (`python bench/grounding_sentences.py`)\n\n"
            "[grounding.md](grounding.md), point 11.")


def table(out: dict) -> str:
    return stack_table(out, "evidence read as", weight=True, share=True)


if __name__ == "__main__":
    main()
