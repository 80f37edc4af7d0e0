"""Ablation of the trained grounding scorer on claims_train only (never the evaluation claims):
out-of-fold AUROC (group 5-fold by claim) overall and SUPPORT vs CONTRADICT, by feature set, C, and
with / without the negated copies. The table in docs/grounding.md ("Augmentation ...") comes from here.
``--claim-only``: a diagnostic model that never sees the evidence (the claim's MiniLM vector and its
negation / direction cues), to show how much of the label the claim wording alone gives away.

    python bench/grounding_ablation.py [--dataset data/raw/scifact] [--claim-only]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ragops.answer.grounding_data import read_pairs, read_sentences
from ragops.answer.grounding_fit import fit_logistic, group_folds, memo_encode, pair_docs, training_rows
from ragops.answer.grounding_metrics import auroc
from ragops.answer.scorers import FEATURES, trained_features
from ragops.answer.text import decrease_count, negation_count
from ragops.encode.encoder import Encoder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", type=Path, default=Path("data/raw/scifact"))
    ap.add_argument("--claim-only", action="store_true")
    args = ap.parse_args()
    sents = read_sentences(args.dataset / "corpus_sentences.jsonl.gz")
    train = read_pairs(args.dataset / "claims_train.csv", sents)
    encode = memo_encode(Encoder("all-MiniLM-L6-v2"))
    if args.claim_only:
        claim_only(train, encode)
        return
    nh = len(FEATURES)
    sets = (("cues", slice(0, nh)), ("cues+pair", slice(None)), ("cues+uv", slice(0, nh + 2 * 384)))
    for augment in (True, False):
        claims, owners, y, synthetic = training_rows(train, augment)
        x = trained_features(encode, claims, [pair_docs(p, sents) for p in owners])
        labels = np.asarray([p.label for p in owners])
        folds = group_folds([p.claim_id for p in owners], 5, 42)
        real = ~synthetic
        sc = real & np.isin(labels, ["SUPPORT", "CONTRADICT"])
        for name, cols in sets:
            for c in (0.003, 0.03, 1.0):
                oof = np.zeros(len(y))
                for f in range(5):
                    t = folds != f
                    oof[~t] = fit_logistic(x[t][:, cols], y[t], c, 42).predict(x[~t][:, cols])
                print(
                    f"augment={augment} {name} C={c}: auroc {auroc(oof[real], y[real]):.4f} "
                    f"support-vs-contradict {auroc(oof[sc], y[sc]):.4f}",
                    flush=True,
                )


def claim_only(train: list, encode) -> None:
    """Out-of-fold AUROC of a logistic model over the claim alone (no evidence), with / without negated copies."""
    for augment in (False, True):
        claims, owners, y, synthetic = training_rows(train, augment)
        cues = np.asarray([[negation_count(c) > 0, decrease_count(c) > 0] for c in claims], dtype=float)
        labels = np.asarray([p.label for p in owners])
        folds = group_folds([p.claim_id for p in owners], 5, 42)
        real = ~synthetic
        sc = real & np.isin(labels, ["SUPPORT", "CONTRADICT"])
        for name, x in (("claim cues", cues), ("claim cues + claim vector", np.hstack([cues, encode(claims)]))):
            for c in (0.003, 0.03, 1.0):
                oof = np.zeros(len(y))
                for f in range(5):
                    t = folds != f
                    oof[~t] = fit_logistic(x[t], y[t], c, 42).predict(x[~t])
                print(
                    f"claim-only augment={augment} {name} C={c}: auroc {auroc(oof[real], y[real]):.4f} "
                    f"support-vs-contradict {auroc(oof[sc], y[sc]):.4f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
