"""Stage `grounding`: fit the grounding scorers on claims_train, evaluate every scorer on the
evaluation claims (claims_dev.csv: the 300 test claims) -> models/grounding/ and reports/grounding.json.

Reads ``<paths.claims>/{grounding.train_file, grounding.eval_file, grounding.sentences_file}`` (prepare's copy).
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

from ragops.answer.cross_encoder import CE_DIR, cross_encoder_config
from ragops.answer.cross_encoder_onnx import export_and_check
from ragops.answer.grounding_data import read_pairs, read_sentences, read_titles
from ragops.answer.grounding_train import TrainConfig, fit_and_evaluate
from ragops.answer.scorers import SCORERS_FILE
from ragops.dagdeps import training_code
from ragops.encode.models import DEFAULT_ONNX_DIR
from ragops.errors import unknown_name
from ragops.io import atomic_dir, read_json, write_json
from ragops.timing import run_stage
from ragops.training.artifacts import RETRAIN_POLICIES, content_key, is_trained

log = logging.getLogger("ragops.grounding")
# the training code, part of the scorer's key (like the retrieval models': ragops.training.artifacts)
CODE = training_code("grounding")


def kept(params: dict[str, Any], key: str) -> bool:
    """True when ``train.retrain`` allows it and the saved scorers (and their report) were fit under ``key``."""
    policy = str(params["train"]["retrain"])
    if policy not in RETRAIN_POLICIES:
        raise unknown_name("train.retrain policy", policy, RETRAIN_POLICIES)
    if policy == "always" or os.environ.get("RAGOPS_RETRAIN", "") not in ("", "0"):
        return False
    saved = Path(params["paths"]["grounding_model"]) / SCORERS_FILE
    report = Path(params["paths"]["grounding_report"])
    return saved.is_file() and report.is_file() and read_json(saved).get("train_key") == key


def sample(pairs: list, n: int, seed: int) -> list:
    """A seeded sample of ``n`` pairs, whole claims at a time, in file order (0 = all)."""
    if n <= 0 or n >= len(pairs):
        return pairs
    claims = sorted({p.claim_id for p in pairs})
    random.Random(seed).shuffle(claims)
    keep, count = set(), 0
    for c in claims:
        if count >= n:
            break
        keep.add(c)
        count += sum(p.claim_id == c for p in pairs)
    return [p for p in pairs if p.claim_id in keep]


def check_pairs(pairs: list, sentences: dict[str, list[str]], top_k: int, n: int = 100) -> tuple[list, list]:
    """The ONNX export's check: the first ``n`` evaluation claims against their document's first sentence and
    against its first ``top_k`` joined (the shapes the served scorer reads; which sentences does not matter
    for comparing two backends on the same tokens)."""
    claims, texts = [], []
    for p in pairs[:n]:
        sents = sentences.get(p.doc_id, [])
        if sents:
            claims += [p.claim, p.claim]
            texts += [sents[0], " ".join(sents[:top_k])]
    return claims, texts


def main(params: dict[str, Any]) -> None:
    from ragops.encode.encoder import Encoder

    g, paths, seed = params["grounding"], params["paths"], int(params["seed"])
    folder = Path(paths["claims"])  # prepare's copy of the data set's labelled claims
    files = {k: folder / g[k] for k in ("train_file", "eval_file", "sentences_file")}
    missing = [str(path) for path in files.values() if not path.is_file()]
    if missing:  # a data set without labelled claims (your own documents): fixed thresholds, no trained scorer
        log.warning("grounding: %s not found; writing the untrained scorers only", ", ".join(missing))
        with atomic_dir(paths["grounding_model"]) as tmp:
            write_json(tmp / SCORERS_FILE, {"embed_model": params["embed"]["model"], "missing": missing})
        write_json(paths["grounding_report"], {"scorers": {}, "missing": missing})
        return
    embed = params["embed"]
    device = str(embed.get("device", "cpu"))
    # The MiniLM's vectors of claims and evidence: on a CPU through its fp32 ONNX export (the same graph, one text
    # per run: within 3e-7 of PyTorch's batched vectors; about half the encoding time on one core and no
    # sentence-transformers load), through PyTorch on a GPU. Part of the key: another backend, other last bits.
    backend = "onnx" if device == "cpu" else "torch"
    ce_cfg = cross_encoder_config(g.get("cross_encoder"), seed)
    # the cross-encoder's arithmetic as resolved here (precision auto: bf16 or fp32 by the machine)
    settings = {"grounding": g, "seed": seed, "embed_model": embed["model"], "embed_backend": backend,
                "ce_precision": ce_cfg.precision if ce_cfg else None}
    # the cross-encoder starts from the grounding_pretrain stage's model when it trained one
    pretrained = Path(paths["grounding_pretrained"])
    start = sorted(p for p in pretrained.rglob("*") if p.is_file()) if is_trained(pretrained) else []
    key = content_key(settings, [*(files[k] for k in ("train_file", "eval_file", "sentences_file")), *start], CODE)
    if kept(params, key):
        log.info("grounding: scorers kept: their training key is unchanged "
                 "(train.retrain: on_train_change; RAGOPS_RETRAIN=1 retrains)")
        return
    sentences = read_sentences(files["sentences_file"])
    train = sample(read_pairs(files["train_file"], sentences), int(g.get("max_train_pairs", 0)), seed)
    test = sample(read_pairs(files["eval_file"], sentences), int(g.get("max_eval_pairs", 0)), seed)
    cfg = TrainConfig(
        augment=bool(g["augment"]),
        folds=int(g["folds"]),
        c_grid=tuple(float(c) for c in g["c_grid"]),
        seed=seed,
        cross_encoder=ce_cfg,
        stacker=str(g["stacker"]),
        stack_weights=tuple(float(w) for w in g["stack_weights"]),
    )
    encoder = Encoder(embed["model"], device=device, backend=backend,
                      onnx_dir=str(embed.get("onnx_dir", DEFAULT_ONNX_DIR)))
    with atomic_dir(paths["grounding_model"]) as tmp:
        saved, report = fit_and_evaluate(
            train, test, sentences, encoder, cfg, base_model=pretrained if start else encoder.path, ce_dir=tmp / CE_DIR,
            titles=read_titles(files["sentences_file"]) if cfg.cross_encoder else None,
        )  # fmt: skip
        ce = saved.get("trained", {}).get("cross_encoder")
        if ce:  # the served form of the cross-encoder, checked against the model just trained
            claims, texts = check_pairs(test, sentences, int(ce["top_k"]))
            ce["onnx"] = export_and_check(tmp / CE_DIR, int(ce["max_length"]), int(ce["top_k"]), claims, texts)
        saved["embed_model"] = embed["model"]
        saved["embed_backend"] = backend
        saved["train_key"] = key
        saved["pretrained"] = bool(start)
        write_json(tmp / SCORERS_FILE, saved)
    write_json(paths["grounding_report"], {**report, "pretrained": bool(start)})


if __name__ == "__main__":
    run_stage("grounding", main)
