"""The grounding cross-encoder's recipe, cross-validated on claims_train only (never the evaluation claims):
group 5-fold by claim (the stage's split); for each fold the logistic model and the cross-encoder are
trained on the other four and score the held-out fold. The pooled out-of-fold scores give AUROC overall and
SUPPORT vs CONTRADICT over all 919 train pairs (one fold's 186 pairs is too noisy to choose a recipe by).

Each held-out pair is scored against its own cited document and, as a control, against another claim's
(a seeded permutation): what still separates SUPPORT from CONTRADICT there was read from the claim's
wording, not the evidence. Also reported: the "contrastive" check (the claim's P(SUPPORT) - P(CONTRADICT)
minus its negation's), the stage's stacker, and a stacker with the negation's features too.

    for k in 0 1 2 3 4; do python bench/grounding_ce_cv.py --fold $k --out base.$k.json [--device cuda]; done
    python bench/grounding_ce_cv.py --combine base.*.json
    python bench/grounding_ce_cv.py --fold 0 --init models/grounding_pretrain --out pre.0.json   # issue 17
    # issue 17's ablation by pretraining source: fold 0 (the stage's own split: cross-encoder on folds 1-4, the
    # stacker on fold 0) plus claims_dev, one run per arm (no --init: plain MiniLM; bench/grounding_pretrain.py
    # --save for the others), then one table with the stage's sum stacker and the wrong-evidence control
    python bench/grounding_ce_cv.py --fold 0 --dev [--init <arm model>] --out arm.<name>.json
    python bench/grounding_ce_cv.py --arms arm.*.json
    # one arm's five folds, each with --dev: its 5-fold figure and the stacker fit on all out-of-fold pairs
    for k in 0 1 2 3 4; do python bench/grounding_ce_cv.py --fold $k --dev --init <model> --out cf.$k.json; done
    python bench/grounding_ce_cv.py --crossfit cf.0.json cf.1.json cf.2.json cf.3.json cf.4.json
    # recipe options, as in params.yaml grounding.cross_encoder:
    #   --corpus-claims 1500 [--corpus-source both] [--corpus-nei]   --negate-evidence   --epochs --lr ...

docs/grounding.md points 7-8 hold the figures (five folds on an H200: 54 s each; ~9 min each on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from ragops.answer.cross_encoder import (
    CE_FEATURES,
    CrossEncoderConfig,
    train_cross_encoder,
    training_examples,
)
from ragops.answer.grounding_data import read_pairs, read_sentences, read_titles
from ragops.answer.grounding_fit import fit_logistic, group_folds, memo_encode, pair_docs, training_rows
from ragops.answer.grounding_metrics import auroc
from ragops.answer.grounding_train import ce_feats
from ragops.answer.negate import negate
from ragops.answer.pseudo_claims import CORPUS_SOURCES, corpus_claims, pseudo_examples
from ragops.answer.scorers import rank_sentences, stack_inputs, trained_features


def model_path(model: str) -> str:
    from ragops.encode.models import offline_env, resolve_model

    offline_env()
    return model if Path(model).is_dir() else str(resolve_model(model))


def encoder(model: str, device: str):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(model_path(model), device=device)
    return memo_encode(lambda texts: st.encode(texts, batch_size=256, normalize_embeddings=True))


def run_fold(args: argparse.Namespace) -> None:
    import torch

    torch.manual_seed(42)
    sents = read_sentences(args.dataset / "corpus_sentences.jsonl.gz")
    train = read_pairs(args.dataset / "claims_train.csv", sents)
    ids = [p.claim_id for p in train]
    fold = dict(zip(ids, group_folds(ids, 5, 42), strict=True))
    fit = [p for p in train if fold[p.claim_id] != args.fold]
    held = [p for p in train if fold[p.claim_id] == args.fold]
    if args.max_pairs:  # a smoke run
        fit, held = fit[: args.max_pairs], held[: args.max_pairs]
    encode = encoder(str(args.model), args.device)
    order = rank_sentences(encode, [p.claim for p in fit], [pair_docs(p, sents) for p in fit])
    examples = training_examples(
        fit, sents, {(p.claim_id, p.doc_id): o for p, o in zip(fit, order, strict=True)}, 42,
        negate_evidence=args.negate_evidence,
    )  # fmt: skip
    n_claims = len(examples)
    if args.corpus_claims:
        titles = read_titles(args.dataset / "corpus_sentences.jsonl.gz")
        held_docs = {p.doc_id for p in held}
        pseudo = corpus_claims(titles, sents, args.corpus_source, args.corpus_claims, 42, exclude=held_docs)
        ranked = rank_sentences(encode, [c for _, c in pseudo], [[sents[d]] for d, _ in pseudo])
        examples += pseudo_examples(pseudo, sents, ranked, 2, args.corpus_nei)
        import random

        random.Random(42).shuffle(examples)
    claims, owners, y, _ = training_rows(fit, augment=True)
    lr = fit_logistic(trained_features(encode, claims, [pair_docs(p, sents) for p in owners]), y, 0.003, 42)
    # the control: each held-out claim against another claim's document (a seeded permutation) — a
    # score that still separates SUPPORT from CONTRADICT there reads the claim's wording, not the evidence
    perm = np.random.default_rng(42).permutation(len(held))
    cs, negated = [p.claim for p in held], [negate(p.claim) for p in held]
    right_docs, wrong_docs = [pair_docs(p, sents) for p in held], [pair_docs(held[j], sents) for j in perm]
    lr_held = lr.predict(trained_features(encode, cs, right_docs))
    variants = {"negated": (negated, right_docs), "wrong": (cs, wrong_docs), "wrong_negated": (negated, wrong_docs)}
    # the contrastive check (the claim's negation) and the control, for the logistic model
    lr_extra = {name: lr.predict(trained_features(encode, c, d)).tolist() for name, (c, d) in variants.items()}
    dev: dict = {}
    if args.dev:  # the evaluation claims, scored by this fold's models exactly as the held-out fold (nothing fit)
        dev_pairs = read_pairs(args.dataset / "claims_dev.csv", sents)
        dev_pairs = dev_pairs[: args.max_pairs] if args.max_pairs else dev_pairs
        dev_claims, dev_docs = [p.claim for p in dev_pairs], [pair_docs(p, sents) for p in dev_pairs]
        dev_wrong = [dev_docs[j] for j in np.random.default_rng(42).permutation(len(dev_pairs))]
        dev = {"rows": [[p.claim_id, p.doc_id, p.label] for p in dev_pairs], "ce": [], "ce_wrong_evidence": [],
               "logistic": lr.predict(trained_features(encode, dev_claims, dev_docs)).tolist(),
               "logistic_wrong": lr.predict(trained_features(encode, dev_claims, dev_wrong)).tolist()}
    cfg = CrossEncoderConfig(
        epochs=args.epochs, lr=args.lr, head_lr=args.head_lr, max_length=args.max_length,
        batch_size=args.batch_size, threads=args.threads, device=args.device,
    )  # fmt: skip
    t0 = time.perf_counter()
    epochs: list[list[list[float]]] = []
    wrong: list[list[list[float]]] = []

    def on_epoch(epoch: int, model) -> None:  # the claim's and its negation's features, right and wrong evidence
        model.encoder.eval()
        epochs.append(np.hstack([ce_feats(model, encode, c, right_docs) for c in (cs, negated)]).tolist())
        wrong.append(np.hstack([ce_feats(model, encode, c, wrong_docs) for c in (cs, negated)]).tolist())
        if dev:
            dev["ce"].append(ce_feats(model, encode, dev_claims, dev_docs).tolist())
            dev["ce_wrong_evidence"].append(ce_feats(model, encode, dev_claims, dev_wrong).tolist())

    if not args.no_ce:
        # --init: start from a pretrained grounding cross-encoder (its encoder and head), as the stage does
        # after grounding_pretrain
        train_cross_encoder(str(args.init) if args.init else model_path(args.model), examples, cfg, on_epoch)
    out = {
        "fold": args.fold, "examples": len(examples), "claim_examples": n_claims,
        "seconds": round(time.perf_counter() - t0, 1), "rows": [[p.claim_id, p.doc_id, p.label] for p in held],
        "logistic": lr_held.tolist(), "logistic_extra": lr_extra, "ce": epochs, "ce_wrong_evidence": wrong,
        "init": str(args.init or args.model), "dev": dev,
    }  # fmt: skip
    Path(args.out).write_text(json.dumps(out))


def combine(files: list[Path]) -> None:
    parts = [json.loads(f.read_text()) for f in files]
    rows = [r for p in parts for r in p["rows"]]
    lab = np.asarray([r[2] for r in rows])
    y, sc = lab == "SUPPORT", lab != "NEI"
    lr = np.concatenate([p["logistic"] for p in parts])
    inner = group_folds([r[0] for r in rows], 5, 43)
    sup, con = CE_FEATURES.index("ce_topk_support"), CE_FEATURES.index("ce_topk_contradict")

    def line(name: str, s: np.ndarray) -> str:
        return f"{name} {auroc(s, y):.4f} / {auroc(s[sc], y[sc]):.4f}"

    print(f"{len(rows)} pairs, {parts[0]['examples']} examples ({parts[0]['claim_examples']} from claims), "
          f"{max(p['seconds'] for p in parts):.0f} s per fold; AUROC overall / SUPPORT vs CONTRADICT")  # fmt: skip
    print(line("logistic", lr))
    if all("logistic_extra" in p for p in parts):
        ex = {k: np.concatenate([p["logistic_extra"][k] for p in parts]) for k in parts[0]["logistic_extra"]}
        print(line("logistic contrastive p(claim)-p(negation)", lr - ex["negated"]))
        print(line("| wrong evidence: logistic", ex["wrong"]), line("contrastive", ex["wrong"] - ex["wrong_negated"]))
    n = len(CE_FEATURES)
    lr_wrong = np.concatenate([p["logistic_extra"]["wrong"] for p in parts]) if "logistic_extra" in parts[0] else None
    for e in range(min(len(p["ce"]) for p in parts)):
        f = np.concatenate([np.asarray(p["ce"][e]) for p in parts])
        w = np.concatenate([np.asarray(p["ce_wrong_evidence"][e]) for p in parts]) if lr_wrong is not None else None
        # P(S)-P(C) of the claim; "contrastive": minus the same for the claim's negation (ragops.answer.negate)
        out = [line("ce", f[:, sup] - f[:, con]), line("contrastive", contrast(f, sup, con, n))]
        if w is not None:
            out += [line("| wrong evidence: ce", w[:, sup] - w[:, con]), line("contrastive", contrast(w, sup, con, n))]
        print(f"epoch {e}: " + "  ".join(out))
        # the stage's stacker (the logistic logit and the 4 features), and with the negation's 4 as well;
        # the stacker fit on the right evidence, then applied to the wrong
        for name, cols in (("stacked", n), ("stacked + negation", 2 * n)):
            if f.shape[1] < cols:
                continue
            x = stack_inputs(lr, f[:, :cols])
            xw = stack_inputs(lr_wrong, w[:, :cols]) if w is not None else None
            s, sw = np.zeros(len(y)), np.zeros(len(y))
            for k in range(5):
                model = fit_logistic(x[inner != k], y[inner != k], 1.0, 42)
                s[inner == k] = model.predict(x[inner == k])
                if xw is not None:
                    sw[inner == k] = model.predict(xw[inner == k])
            print(f"         {line(name, s)}" + (f"  {line('| wrong evidence', sw)}" if xw is not None else ""))


def stage_stacker(held_lr: np.ndarray, held_ce: np.ndarray, y: np.ndarray, sc: np.ndarray, groups: list[str]):
    """The stage's trained scorer over one fold (ragops.answer.grounding_train.fit_stacked): the `sum` stacker
    of the logistic logit and the cross-encoder's log odds, its weight chosen by the stage's rule (inner
    5-fold split of the fold's claims, AUROC overall plus SUPPORT vs CONTRADICT). Returns (weight, the
    inner cross-validated scores, the stacker fit on the whole fold)."""
    from ragops.answer.grounding_fit import fit_stacker
    from ragops.answer.scorers import stack_features

    x = stack_features(stack_inputs(held_lr, held_ce), "sum")
    inner = group_folds(groups, 5, 43)
    best = None
    for weight in (0.5, 1.0, 2.0):
        pred = np.zeros(len(y))
        for k in range(5):
            pred[inner == k] = fit_stacker("sum", x[inner != k], y[inner != k], weight, 42).predict(x[inner == k])
        total = auroc(pred, y) + auroc(pred[sc], y[sc])
        if best is None or total > best[0]:
            best = (total, weight, pred)
    _, weight, pred = best
    return weight, pred, fit_stacker("sum", x, y, weight, 42)


def arms_table(files: list[Path]) -> None:
    """One row per arm: the cross-encoder alone (P(S) - P(C)) and the stage's trained scorer (sum stacker),
    on the held-out fold (cross-validated) and on claims_dev, each with another claim's evidence."""
    from ragops.answer.scorers import stack_features

    def pair(s: np.ndarray, y: np.ndarray, sc: np.ndarray) -> tuple[float, float]:
        return auroc(s, y), auroc(s[sc], y[sc])

    sup, con = CE_FEATURES.index("ce_topk_support"), CE_FEATURES.index("ce_topk_contradict")
    n = len(CE_FEATURES)
    print("| arm (fine-tuned from) | epoch | fold: CE | fold: CE wrong ev. S-v-C | fold: trained (weight) | "
          "fold: trained wrong ev. S-v-C | dev: CE | dev: CE wrong ev. S-v-C | dev: trained | "
          "dev: trained wrong ev. S-v-C | dev: share from the evidence |")
    print("|---|---:|---|---:|---|---:|---|---:|---|---:|---:|")
    for f in files:
        p = json.loads(f.read_text())
        lab = np.asarray([r[2] for r in p["rows"]])
        y, sc = lab == "SUPPORT", lab != "NEI"
        dlab = np.asarray([r[2] for r in p["dev"]["rows"]])
        dy, dsc = dlab == "SUPPORT", dlab != "NEI"
        groups = [r[0] for r in p["rows"]]
        lr, lr_wrong = np.asarray(p["logistic"]), np.asarray(p["logistic_extra"]["wrong"])
        dlr, dlr_wrong = np.asarray(p["dev"]["logistic"]), np.asarray(p["dev"]["logistic_wrong"])
        for e in range(len(p["ce"])):
            held, held_w = np.asarray(p["ce"][e])[:, :n], np.asarray(p["ce_wrong_evidence"][e])[:, :n]
            dev, dev_w = np.asarray(p["dev"]["ce"][e]), np.asarray(p["dev"]["ce_wrong_evidence"][e])
            weight, pred, stacker = stage_stacker(lr, held, y, sc, groups)
            pred_w = stacker.predict(stack_features(stack_inputs(lr_wrong, held_w), "sum"))  # fit on right ev.
            d = stacker.predict(stack_features(stack_inputs(dlr, dev), "sum"))
            d_w = stacker.predict(stack_features(stack_inputs(dlr_wrong, dev_w), "sum"))
            both = [pair(held[:, sup] - held[:, con], y, sc), pair(pred, y, sc),
                    pair(dev[:, sup] - dev[:, con], dy, dsc), pair(d, dy, dsc)]
            wrong_sc = [pair(held_w[:, sup] - held_w[:, con], y, sc)[1], pair(pred_w, y, sc)[1],
                        pair(dev_w[:, sup] - dev_w[:, con], dy, dsc)[1], pair(d_w, dy, dsc)[1]]
            cells = []
            for i, (a, w) in enumerate(zip(both, wrong_sc, strict=True)):
                cells += [f"{a[0]:.3f} / {a[1]:.3f}" + (f" ({weight:g})" if i == 1 else ""), f"{w:.3f}"]
            cells.append(f"{both[3][1] - wrong_sc[3]:.3f}")
            print(f"| {arm_name(p['init'])} | {e + 1} | " + " | ".join(cells) + " |")


def crossfit_table(files: list[Path]) -> None:
    """The five folds of one arm (each run with --dev), pooled: the cross-encoder's 5-fold figure over all of
    claims_train's pairs, and the stacker fit on all the out-of-fold pairs (cross-fitted) instead of fold 0's.

    Each pair of claims_train is scored by the models that never saw its claim (its fold's logistic model and
    cross-encoder), so a stacker fit on the pooled pairs is honest; its own figure on train is cross-validated
    again (the stage's inner split over the pooled claims). On claims_dev each fold's models score every pair:
    "one CE" applies the stacker to each fold's cross-encoder in turn (what serving a single cross-encoder
    would give; mean and range over the five), "bagged" to the five averaged (five times the inference)."""
    from ragops.answer.grounding_fit import fit_stacker
    from ragops.answer.scorers import stack_features

    parts = sorted((json.loads(f.read_text()) for f in files), key=lambda p: p["fold"])
    if sorted(p["fold"] for p in parts) != list(range(5)) or not all(p["dev"] for p in parts):
        raise SystemExit("--crossfit needs the five folds of one arm, each run with --dev")
    n = len(CE_FEATURES)
    sup, con = CE_FEATURES.index("ce_topk_support"), CE_FEATURES.index("ce_topk_contradict")
    rows = [r for p in parts for r in p["rows"]]
    lab = np.asarray([r[2] for r in rows])
    y, sc = lab == "SUPPORT", lab != "NEI"
    groups = [r[0] for r in rows]
    dlab = np.asarray([r[2] for r in parts[0]["dev"]["rows"]])
    dy, dsc = dlab == "SUPPORT", dlab != "NEI"
    lr = np.concatenate([p["logistic"] for p in parts])
    lr_w = np.concatenate([p["logistic_extra"]["wrong"] for p in parts])
    dlr = [np.asarray(p["dev"]["logistic"]) for p in parts]
    dlr_w = [np.asarray(p["dev"]["logistic_wrong"]) for p in parts]

    def cell(s: np.ndarray, yy: np.ndarray, ss: np.ndarray) -> str:
        return f"{auroc(s, yy):.3f} / {auroc(s[ss], yy[ss]):.3f}"

    print(f"{len(rows)} out-of-fold pairs, {len(dlab)} claims_dev pairs; arm {arm_name(parts[0]['init'])}; "
          f"{max(p['seconds'] for p in parts):.0f} s per fold's cross-encoder")
    print("| epoch | stacker | train: CE (5-fold) | train: trained (CV) | train: trained wrong ev. S-v-C | "
          "dev: trained, one CE (mean; S-v-C range) | dev: wrong ev. S-v-C, one CE | dev: share, one CE | "
          "dev: trained, bagged | dev: share, bagged |")
    print("|---:|---|---|---|---:|---|---:|---:|---|---:|")
    for e in range(min(len(p["ce"]) for p in parts)):
        ce = np.concatenate([np.asarray(p["ce"][e])[:, :n] for p in parts])
        ce_w = np.concatenate([np.asarray(p["ce_wrong_evidence"][e])[:, :n] for p in parts])
        dce = [np.asarray(p["dev"]["ce"][e]) for p in parts]
        dce_w = [np.asarray(p["dev"]["ce_wrong_evidence"][e]) for p in parts]
        # the stage's sum stacker, its weight chosen by the stage's rule on all pooled pairs, or on fold 0's alone
        # (the stage); and a logistic stacker over the logit and the four probabilities on all pooled pairs
        weight, pred, pooled = stage_stacker(lr, ce, y, sc, groups)
        f0 = np.arange(len(rows)) < len(parts[0]["rows"])
        w0, _, fold0 = stage_stacker(lr[f0], ce[f0], y[f0], sc[f0], [g for g, k in zip(groups, f0, strict=True) if k])
        inner = group_folds(groups, 5, 43)
        x = stack_inputs(lr, ce)
        logit_cv = np.zeros(len(y))
        for k in range(5):
            logit_cv[inner == k] = fit_stacker("logistic", x[inner != k], y[inner != k], 1.0, 42).predict(x[inner == k])
        variants = ((f"sum, cross-fitted (weight {weight:g})", pooled, "sum", pred),
                    (f"sum, fold 0 only (weight {w0:g}; the stage)", fold0, "sum", None),
                    ("logistic, cross-fitted", fit_stacker("logistic", x, y, 1.0, 42), "logistic", logit_cv))
        for name, stacker, form, cv in variants:
            def score(a: np.ndarray, b: np.ndarray, st=stacker, fm=form) -> np.ndarray:
                return st.predict(stack_features(stack_inputs(a, b), fm))

            train_w = score(lr_w, ce_w)
            one = [score(dlr[k], dce[k]) for k in range(5)]
            one_w = [score(dlr_w[k], dce_w[k]) for k in range(5)]
            svc = [auroc(s[dsc], dy[dsc]) for s in one]
            svc_w = [auroc(s[dsc], dy[dsc]) for s in one_w]
            bag = score(np.mean(dlr, axis=0), np.mean(dce, axis=0))
            bag_w = score(np.mean(dlr_w, axis=0), np.mean(dce_w, axis=0))
            print(f"| {e + 1} | {name} | {cell(ce[:, sup] - ce[:, con], y, sc)} | "
                  f"{cell(cv, y, sc) if cv is not None else '—'} | {auroc(train_w[sc], y[sc]):.3f} | "
                  f"{np.mean([auroc(s, dy) for s in one]):.3f} / {np.mean(svc):.3f} ({min(svc):.3f}–{max(svc):.3f}) | "
                  f"{np.mean(svc_w):.3f} | {np.mean(svc) - np.mean(svc_w):.3f} | {cell(bag, dy, dsc)} | "
                  f"{auroc(bag[dsc], dy[dsc]) - auroc(bag_w[dsc], dy[dsc]):.3f} |")


def arm_name(init: str) -> str:
    """The arm a fine-tuning started from: plain MiniLM, the stage's pretrained model, or a saved arm."""
    name = Path(init).name
    if not Path(init).is_dir():
        return f"none ({name})"
    if name == "grounding_pretrain":
        return "the stage's (" + " + ".join(json.loads((Path(init) / "training.json").read_text())["sources"]) + ")"
    return name.removeprefix("arm_").replace("+", " + ")


def contrast(f: np.ndarray, sup: int, con: int, n: int) -> np.ndarray:
    if f.shape[1] < 2 * n:
        return np.full(len(f), np.nan)
    return f[:, sup] - f[:, con] - f[:, n + sup] + f[:, n + con]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", type=Path, default=Path("data/raw/scifact"))
    ap.add_argument("--model", default="all-MiniLM-L6-v2")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--combine", type=Path, nargs="+")
    ap.add_argument("--max-pairs", type=int, default=0, help="0 = all; >0 a smoke run on the first pairs")
    ap.add_argument("--corpus-claims", type=int, default=0, help="pseudo-claims from the corpus (0 = none)")
    ap.add_argument("--corpus-source", default="both", choices=CORPUS_SOURCES)
    ap.add_argument("--corpus-nei", action="store_true")
    ap.add_argument("--negate-evidence", action="store_true")
    ap.add_argument("--no-ce", action="store_true", help="the logistic model only (seconds)")
    ap.add_argument("--dev", action="store_true", help="also score claims_dev (right and wrong evidence) with "
                    "the fold's models: fold 0 then mirrors the stage, whose cross-encoder is trained on folds 1-4")
    ap.add_argument("--arms", type=Path, nargs="+", help="--dev fold files, one per pretraining arm: the table")
    ap.add_argument("--crossfit", type=Path, nargs=5, help="the five --dev fold files of one arm: the 5-fold "
                    "figure and the stacker fit on all out-of-fold pairs")
    ap.add_argument("--init", type=Path, help="a pretrained grounding cross-encoder folder to fine-tune "
                    "(models/grounding_pretrain, or bench/grounding_pretrain.py --save)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=8e-5)
    ap.add_argument("--head-lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.arms:
        arms_table(args.arms)
    elif args.crossfit:
        crossfit_table(args.crossfit)
    elif args.combine:
        combine(args.combine)
    else:
        run_fold(args)


if __name__ == "__main__":
    main()
