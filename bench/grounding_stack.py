"""The grounding stacker's form, chosen on claims_train only, with the build's own models (issue 17, lever 1).

The grounding stage trains the cross-encoder on claims_train folds 1-4 and fits a small "stacker" over (the
logistic model's out-of-fold logit, the cross-encoder's features) on fold 0's 186 pairs, where both are out
of sample. Its first form, a logistic regression over the logit and the four cross-encoder probabilities,
scored SUPPORT vs CONTRADICT on claims_dev below the cross-encoder alone (0.689 against 0.727 in the stop-26
build): fit on SUPPORT against the rest of 186 pairs (66 SUPPORT, 54 CONTRADICT, 66 NEI), it learns mostly
"is this evidence about the claim". This script re-fits only the stacker, in several forms, on those same
pairs with the build's saved cross-encoder (models/grounding/cross_encoder: no training here), and scores each
form by a 5-fold group cross-validation inside fold 0 (the stage's inner split). The choice rule is the
highest train AUROC overall plus SUPPORT vs CONTRADICT; every form is also reported on claims_dev, each with
the wrong-evidence control.

Forms (F = the four cross-encoder features of ragops.answer.cross_encoder.CE_FEATURES):
- ``prob``: logit + F as probabilities (the stage's first form, ``grounding.stacker: logistic``);
- ``logodds``: logit + log P(SUPPORT) - log P(CONTRADICT), top-1 and top-k (2 features);
- ``balanced`` / ``logodds_balanced``: the same, with CONTRADICT negatives weighted to as much total
  weight as the NEI negatives (the metric's second question gets as much say as its first);
- ``logprob``: logit + log of F;
- ``sum``: no fit at all, the logit plus the top-k log odds (both standardized on the fold-0 pairs);
  ``sum_top1`` adds the top-1 log odds too; ``sum_wW`` weighs the top-k log odds by W
  (``grounding.stacker: sum`` is this family, W chosen per build from ``grounding.stack_weights``).

    python bench/grounding_stack.py [--params params.yaml]   # -> reports/bench/grounding_stack.json, docs/benchmarks.md
    python bench/grounding_stack.py --table                    # that file as docs/grounding.md's table

Reads the build (prepare's claims copy, models/grounding), so run it after `dvc repro grounding`. Its
stacker must be fit on the same fold-0 pairs: it re-derives them with the stage's own code and seed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from _common import BENCH_DIR, machine, machine_line, write_result, write_section

from ragops.answer.cross_encoder import CE_DIR, CE_FEATURES, GroundingCrossEncoder, cross_encoder_config
from ragops.answer.grounding_data import read_pairs, read_sentences
from ragops.answer.grounding_fit import fit_stacker, group_folds, memo_encode, pair_docs, training_rows
from ragops.answer.grounding_metrics import auroc, grounding_report
from ragops.answer.grounding_train import TrainConfig, ce_feats, fit_trained
from ragops.answer.scorers import stack_features, stack_inputs, trained_features
from ragops.config import load_params
from ragops.stages.grounding import sample

FORMS = ("prob", "logodds", "balanced", "logodds_balanced", "logprob", "sum", "sum_top1", "sum_w0.5", "sum_w2")


def features(form: str, x: np.ndarray) -> np.ndarray:
    """x: stack_inputs (logit, then CE_FEATURES as probabilities) -> the form's inputs."""
    if form in ("prob", "balanced"):
        return stack_features(x, "logistic")
    if form == "sum" or form.startswith("sum_w"):
        return stack_features(x, "sum")  # the stage's own columns: logit, top-k log odds
    eps = 1e-6
    if form == "logprob":
        return np.column_stack([x[:, 0], np.log(x[:, 1:] + eps)])
    s1, c1 = CE_FEATURES.index("ce_top1_support") + 1, CE_FEATURES.index("ce_top1_contradict") + 1
    lo1 = np.log(x[:, s1] + eps) - np.log(x[:, c1] + eps)
    return np.column_stack([stack_features(x, "sum"), lo1])  # logit, top-k and top-1 log odds


def weights(labels: np.ndarray) -> np.ndarray:
    """CONTRADICT negatives weighted to as much total weight as the NEI negatives."""
    w = np.ones(len(labels))
    n_nei, n_con = (labels == "NEI").sum(), (labels == "CONTRADICT").sum()
    w[labels == "CONTRADICT"] = n_nei / max(n_con, 1)
    return w


class Form:
    """One stacker form fit on (x, y): predict() gives a score (higher = SUPPORT). The sum forms and the
    unweighted regressions are the stage's own fit_stacker; only the balanced forms fit here (weighted)."""

    def __init__(self, form: str, x: np.ndarray, y: np.ndarray, labels: np.ndarray, seed: int) -> None:
        self.form = form
        f = features(form, x)
        if form.endswith("balanced"):
            from sklearn.linear_model import LogisticRegression

            self.mean, self.scale = f.mean(axis=0), np.where(f.std(axis=0) > 1e-9, f.std(axis=0), 1.0)
            self.lr = LogisticRegression(C=1.0, max_iter=2000, random_state=seed)
            self.lr.fit((f - self.mean) / self.scale, y, sample_weight=weights(labels))
        elif form.startswith("sum"):
            self.model = fit_stacker("sum", f, y, float(form[len("sum_w"):]) if form.startswith("sum_w") else 1.0, seed)
        else:
            self.model = fit_stacker("logistic", f, y, 1.0, seed)

    def predict(self, x: np.ndarray) -> np.ndarray:
        f = features(self.form, x)
        if self.form.endswith("balanced"):
            return self.lr.decision_function((f - self.mean) / self.scale)
        return self.model.predict(f)


def fold0_setup(params_path: str) -> SimpleNamespace:
    """What the stage's stacker is fit on, re-derived with the stage's own code and seed: fold 0's pairs with
    the logistic model's out-of-fold logit and the saved cross-encoder's features (x, labels, the inner
    split), and claims_dev with the right and a wrong claim's evidence. bench/grounding_sentences.py reads it too."""
    from ragops.encode.encoder import Encoder

    params = load_params(params_path)
    g, paths, seed = params["grounding"], params["paths"], int(params["seed"])
    folder = Path(paths["claims"])
    sentences = read_sentences(folder / g["sentences_file"])
    train = sample(read_pairs(folder / g["train_file"], sentences), int(g.get("max_train_pairs", 0)), seed)
    test = sample(read_pairs(folder / g["eval_file"], sentences), int(g.get("max_eval_pairs", 0)), seed)
    cfg = TrainConfig(augment=bool(g["augment"]), folds=int(g["folds"]), c_grid=tuple(float(c) for c in g["c_grid"]),
                      seed=seed, cross_encoder=cross_encoder_config(g.get("cross_encoder"), seed))
    encode = memo_encode(Encoder(params["embed"]["model"], device=params["embed"].get("device", "cpu")))
    # the stage's logistic model and its out-of-fold predictions (deterministic: the same as the build's)
    claims, owners, y_rows, synthetic = training_rows(train, cfg.augment)  # augmented rows carry their own label
    x_train = trained_features(encode, claims, [pair_docs(p, sentences) for p in owners])
    model, _, _, oof = fit_trained(x_train, y_rows, [p.claim_id for p in owners], synthetic, cfg)
    groups = [p.claim_id for p in owners]
    fold_of = dict(zip(groups, group_folds(groups, cfg.folds, cfg.seed), strict=True))
    rows = [i for i, p in enumerate(owners) if not synthetic[i] and fold_of[p.claim_id] == 0]
    held = [owners[i] for i in rows]
    ce_cfg = cfg.cross_encoder
    assert ce_cfg is not None, "grounding.cross_encoder is off: there is no stacker"
    ce = GroundingCrossEncoder.load(Path(paths["grounding_model"]) / CE_DIR, ce_cfg.max_length, ce_cfg.top_k)
    x = stack_inputs(oof[rows], ce_feats(ce, encode, [p.claim for p in held], [pair_docs(p, sentences) for p in held]))
    lab = np.asarray([p.label for p in held])
    y = lab == "SUPPORT"
    sc = lab != "NEI"
    inner = group_folds([p.claim_id for p in held], cfg.folds, cfg.seed + 1)
    test_claims = [p.claim for p in test]
    test_docs = [pair_docs(p, sentences) for p in test]
    wrong_docs = [test_docs[j] for j in np.random.default_rng(cfg.seed).permutation(len(test))]
    s_test = model.predict(trained_features(encode, test_claims, test_docs))
    s_wrong = model.predict(trained_features(encode, test_claims, wrong_docs))
    x_test = stack_inputs(s_test, ce_feats(ce, encode, test_claims, test_docs))
    x_wrong = stack_inputs(s_wrong, ce_feats(ce, encode, test_claims, wrong_docs))
    labels_test = [p.label for p in test]
    return SimpleNamespace(**{k: v for k, v in locals().items() if k not in ("params_path", "Encoder")})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--table", action="store_true", help="print the last result as a markdown table")
    args = ap.parse_args()
    if args.table:
        print(table(json.loads((BENCH_DIR / "grounding_stack.json").read_text())))
        return
    t0 = time.perf_counter()
    b = fold0_setup(args.params)
    x, y, lab, sc, inner, cfg, seed = b.x, b.y, b.lab, b.sc, b.inner, b.cfg, b.seed
    x_test, x_wrong, labels_test, held, test = b.x_test, b.x_wrong, b.labels_test, b.held, b.test
    out: dict = {"machine": machine(), "forms": {},
                 "data": f"{len(held)} fold-0 pairs ({int(y.sum())} SUPPORT, {int((lab == 'CONTRADICT').sum())} "
                         f"CONTRADICT, {int((lab == 'NEI').sum())} NEI), {len(test)} claims_dev pairs"}
    for form in FORMS:
        pred = np.zeros(len(y))
        for f in range(cfg.folds):
            pred[inner == f] = Form(form, x[inner != f], y[inner != f], lab[inner != f], seed).predict(x[inner == f])
        fitted = Form(form, x, y, lab, seed)
        dev = grounding_report(fitted.predict(x_test), labels_test, 0.0)
        wrong = grounding_report(fitted.predict(x_wrong), labels_test, 0.0)
        out["forms"][form] = {
            "train_cv": {"auroc": round(auroc(pred, y), 4),
                         "auroc_support_vs_contradict": round(auroc(pred[sc], y[sc]), 4)},
            "claims_dev": {k: dev[k] for k in ("auroc", "auroc_support_vs_contradict", "auroc_support_vs_nei")},
            "wrong_evidence_support_vs_contradict": wrong["auroc_support_vs_contradict"],
        }
        print(form, out["forms"][form], flush=True)
    publish("grounding_stack", out, t0, table, "## Grounding stacker forms, chosen on claims_train's fold 0 "
            "(`python bench/grounding_stack.py`)\n\nThe stage uses the `sum` family, its weight chosen by the same "
            "cross-validation ([grounding.md](grounding.md), point 10).")


def publish(name: str, out: dict, t0: float, render, heading: str) -> None:
    """Choose on train (AUROC overall plus SUPPORT vs CONTRADICT: both questions alike), then write the result
    (reports/bench/<name>.json) and its table (docs/benchmarks.md) and print the table."""
    cv = out["forms"]
    out["chosen_on_train"] = max(cv, key=lambda f: sum(cv[f]["train_cv"].values()))
    out["seconds"] = round(time.perf_counter() - t0, 1)
    write_result(name, out)
    write_section(name, f"{heading}\n\n{render(out)}")
    print(render(out))


def table(out: dict, first: str = "form", weight: bool = False, share: bool = False) -> str:
    """The forms as a markdown table: train CV and claims_dev AUROCs and the other-claim control, with each form's
    weight and the share of its score from the evidence where asked (bench/grounding_sentences.py)."""
    head = [first, *(["weight"] if weight else []), "train CV AUROC", "train CV S vs C", "claims_dev AUROC",
            "claims_dev S vs C", "claims_dev S vs NEI", "other claim's evidence, S vs C",
            *(["share from the evidence"] if share else [])]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for form, v in out["forms"].items():
        t, d = v["train_cv"], v["claims_dev"]
        mark = " (chosen on train)" if form == out["chosen_on_train"] else ""
        figures = (t["auroc"], t["auroc_support_vs_contradict"], d["auroc"], d["auroc_support_vs_contradict"],
                   d["auroc_support_vs_nei"], v["wrong_evidence_support_vs_contradict"])
        cells = [f"`{form}`{mark}", *([f"{v['weight']:g}"] if weight else []), *(f"{x:.3f}" for x in figures),
                 *([f"{v['evidence_share']:.3f}"] if share else [])]
        rows.append("| " + " | ".join(cells) + " |")
    m = out["machine"]
    where = machine_line(m) if isinstance(m, dict) else f"Machine: {m}."
    return "\n".join(rows) + f"\n\n{out['data']}; {out['seconds']} s. {where}"


if __name__ == "__main__":
    main()
