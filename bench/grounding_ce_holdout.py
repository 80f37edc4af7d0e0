"""The grounding cross-encoder on claims_train only (never the evaluation claims): trained on the claims of
folds 1..4, judged after every epoch on fold 0 (group 5-fold by claim, the stage's split) — the
cross-encoder alone, the logistic model fit on the same folds, and the two stacked (5-fold within fold 0).
The cross-encoder settings in params.yaml (`grounding.cross_encoder`) were chosen from these figures.

    python bench/grounding_ce_holdout.py [--dataset data/raw/scifact] [--epochs 3] [--lr 8e-5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ragops.answer.cross_encoder import CE_FEATURES, CrossEncoderConfig, train_cross_encoder, training_examples
from ragops.answer.grounding_data import read_pairs, read_sentences
from ragops.answer.grounding_fit import fit_logistic, group_folds, memo_encode, pair_docs, training_rows
from ragops.answer.grounding_metrics import auroc
from ragops.answer.grounding_train import ce_feats
from ragops.answer.scorers import rank_sentences, stack_inputs, trained_features
from ragops.encode.encoder import Encoder
from ragops.encode.models import resolve_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", type=Path, default=Path("data/raw/scifact"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=8e-5)
    ap.add_argument("--head-lr", type=float, default=1e-3)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    sents = read_sentences(args.dataset / "corpus_sentences.jsonl.gz")
    train = read_pairs(args.dataset / "claims_train.csv", sents)
    claim_ids = [p.claim_id for p in train]
    fold = dict(zip(claim_ids, group_folds(claim_ids, 5, 42), strict=True))
    fit = [p for p in train if fold[p.claim_id] != 0]
    held = [p for p in train if fold[p.claim_id] == 0]
    encode = memo_encode(Encoder("all-MiniLM-L6-v2"))
    order = rank_sentences(encode, [p.claim for p in fit], [pair_docs(p, sents) for p in fit])
    examples = training_examples(fit, sents, {(p.claim_id, p.doc_id): o for p, o in zip(fit, order, strict=True)}, 42)
    claims, owners, y, _ = training_rows(fit, augment=True)
    lr = fit_logistic(trained_features(encode, claims, [pair_docs(p, sents) for p in owners]), y, 0.003, 42)
    lr_held = lr.predict(trained_features(encode, [p.claim for p in held], [pair_docs(p, sents) for p in held]))
    lab = np.asarray([p.label for p in held])
    yh, sc = lab == "SUPPORT", lab != "NEI"
    inner = group_folds([p.claim_id for p in held], 5, 43)

    def line(name: str, s: np.ndarray) -> str:
        return f"{name} {auroc(s, yh):.4f} ({auroc(s[sc], yh[sc]):.4f})"

    print(f"{len(examples)} examples from {len(fit)} pairs; {len(held)} held-out pairs; AUROC (SUPPORT vs CONTRADICT)")
    print(line("logistic", lr_held), flush=True)
    t0 = time.perf_counter()

    def on_epoch(epoch: int, model) -> None:
        f = ce_feats(model, encode, [p.claim for p in held], [pair_docs(p, sents) for p in held])
        x = stack_inputs(lr_held, f)
        stacked = np.zeros(len(yh))
        for k in range(5):
            stacked[inner == k] = fit_logistic(x[inner != k], yh[inner != k], 1.0, 42).predict(x[inner == k])
        top1, topk = CE_FEATURES.index("ce_top1_support"), CE_FEATURES.index("ce_topk_support")
        print(
            f"epoch {epoch} ({time.perf_counter() - t0:.0f} s): {line('ce top1 P(S)', f[:, top1])}, "
            f"{line('ce topk P(S)-P(C)', f[:, topk] - f[:, topk + 1])}, {line('stacked', stacked)}",
            flush=True,
        )

    cfg = CrossEncoderConfig(
        epochs=args.epochs, lr=args.lr, head_lr=args.head_lr, max_length=args.max_length, threads=args.threads
    )
    train_cross_encoder(resolve_model("all-MiniLM-L6-v2"), examples, cfg, on_epoch)


if __name__ == "__main__":
    main()
