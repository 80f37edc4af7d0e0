"""What each nli/ source teaches the grounding cross-encoder (issue 17's ablation), before any SciFact label.

Arms: healthver / healthver+covidfact / healthver+covidfact+fever (FEVER sampled as in params.yaml), each
pretrained as the `grounding_pretrain` stage does (``--arm stage`` reads the stage's own model instead of
training one). Every arm's model alone, with no SciFact fine-tuning, scores

- claims_train (all 919 pairs: nothing here was fit on them, so they choose the recipe) and claims_dev
  (the 300 test claims, reported), as the scorer sees them at answer time: the claim against its cited
  documents' ``top_k`` most similar sentences, P(SUPPORT) - P(CONTRADICT); AUROC overall and SUPPORT vs
  CONTRADICT, SUPPORT positive;
- the wrong-evidence control: each claim against another claim's documents (a seeded permutation). The
  difference is what the score reads from the evidence rather than from the claim's wording;
- COVID-Fact's RTE dev split (419 pairs; its not_entailment is always a refuted claim): the transfer of the
  HealthVer-only model to another collection it never saw (AUROC SUPPORT vs refuted).

The fine-tuned figures (pretrained, then trained on claims_train) come from the stage itself
(reports/grounding.json) and from ``bench/grounding_ce_cv.py --init <model dir>`` on claims_train folds.

    python bench/grounding_pretrain.py --arm healthver --out bench-hv.json      # ~6 min on 2 cores
    python bench/grounding_pretrain.py --arm healthver+covidfact --out bench-hvcf.json
    python bench/grounding_pretrain.py --arm stage --out bench-stage.json       # after `dvc repro`
    python bench/grounding_pretrain.py --table bench-*.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ragops.answer.cross_encoder import CE_FEATURES, GroundingCrossEncoder
from ragops.answer.grounding_data import read_pairs, read_sentences
from ragops.answer.grounding_fit import memo_encode, pair_docs
from ragops.answer.grounding_metrics import auroc
from ragops.answer.grounding_train import ce_feats
from ragops.answer.nli_data import load_source
from ragops.answer.nli_pretrain import evaluate, pretrain
from ragops.config import load_params
from ragops.encode.encoder import Encoder
from ragops.encode.models import resolve_model
from ragops.stages.grounding_pretrain import config

ARMS = {"healthver": ("healthver",), "healthver+covidfact": ("healthver", "covidfact"),
        "healthver+covidfact+fever": ("healthver", "covidfact", "fever")}


def claims_figures(model: GroundingCrossEncoder, claims_dir: Path, embed_model: str, seed: int = 42) -> dict:
    sents = read_sentences(claims_dir / "corpus_sentences.jsonl.gz")
    encode = memo_encode(Encoder(embed_model))  # ranks the evidence sentences, as the grounding stage does
    sup, con = CE_FEATURES.index("ce_topk_support"), CE_FEATURES.index("ce_topk_contradict")
    out = {}
    for name in ("claims_train", "claims_dev"):
        pairs = read_pairs(claims_dir / f"{name}.csv", sents)
        label = np.asarray([p.label for p in pairs])
        y, sc = label == "SUPPORT", label != "NEI"
        perm = np.random.default_rng(seed).permutation(len(pairs))
        docs = [pair_docs(p, sents) for p in pairs]
        claims = [p.claim for p in pairs]
        row = {"pairs": len(pairs)}
        for what, d in (("right", docs), ("wrong", [docs[j] for j in perm])):
            f = ce_feats(model, encode, claims, d)
            score = f[:, sup] - f[:, con]
            row[what] = {"auroc": round(auroc(score, y), 4), "auroc_support_vs_contradict": round(
                auroc(score[sc], y[sc]), 4)}
        row["from_evidence_support_vs_contradict"] = round(
            row["right"]["auroc_support_vs_contradict"] - row["wrong"]["auroc_support_vs_contradict"], 4)
        out[name] = row
    return out


def run(args: argparse.Namespace) -> None:
    params = load_params(args.params)
    cfg = config(params)
    t0 = time.perf_counter()
    if args.arm == "stage":
        folder = Path(params["paths"]["grounding_pretrained"])
        model = GroundingCrossEncoder.load(folder, cfg.cross_encoder.max_length, cfg.cross_encoder.top_k)
        record = json.loads((folder / "training.json").read_text())
        record = {k: record[k] for k in ("sources", "train_pairs", "holdout_pairs", "training", "holdout")}
    else:
        cfg = replace(cfg, sources=ARMS[args.arm])
        if args.smoke:
            cfg = replace(cfg, max_pairs=dict.fromkeys(cfg.sources, args.smoke))
        model, record = pretrain(Path(params["grounding"]["pretrain"]["data"]).parent,
                                 resolve_model(params["embed"]["model"]), cfg)
        if args.save:
            model.save(args.save)
    seconds = time.perf_counter() - t0
    rte_dev = [p for p in load_source(Path(params["grounding"]["pretrain"]["data"]).parent, "covidfact_rte",
                                      verify=False) if p.split == "dev"]
    out = {
        "arm": args.arm, "sources": record["sources"], "train_pairs": record["train_pairs"],
        "pretrain_seconds": record["training"]["seconds"], "seconds": round(seconds, 1),
        "holdout": record["holdout"], "covidfact_rte_dev": evaluate(model, rte_dev)["covidfact_rte"],
        "zero_shot": claims_figures(model, Path(params["paths"]["claims"]), params["embed"]["model"]),
    }  # fmt: skip
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


def table(files: list[Path]) -> None:
    rows = [json.loads(f.read_text()) for f in files]
    print("| arm | pairs | pretrain s | train AUROC | train S-v-C | train S-v-C wrong ev. | dev AUROC | dev S-v-C | "
          "dev S-v-C wrong ev. | COVID-Fact dev S-v-refuted |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        t, d = r["zero_shot"]["claims_train"], r["zero_shot"]["claims_dev"]
        print(f"| {'+'.join(r['sources'])} | {r['train_pairs']} | {r['pretrain_seconds']:.0f} | "
              f"{t['right']['auroc']:.3f} | {t['right']['auroc_support_vs_contradict']:.3f} | "
              f"{t['wrong']['auroc_support_vs_contradict']:.3f} | {d['right']['auroc']:.3f} | "
              f"{d['right']['auroc_support_vs_contradict']:.3f} | {d['wrong']['auroc_support_vs_contradict']:.3f} | "
              f"{r['covidfact_rte_dev']['auroc']:.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--arm", choices=[*ARMS, "stage"])
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--save", type=Path, help="also save the arm's model here (for grounding_ce_cv.py --init)")
    ap.add_argument("--table", type=Path, nargs="+")
    ap.add_argument("--smoke", type=int, default=0, help=">0: this many pairs per source (a quick check of the script)")
    args = ap.parse_args()
    if args.table:
        table(args.table)
    else:
        run(args)


if __name__ == "__main__":
    main()
