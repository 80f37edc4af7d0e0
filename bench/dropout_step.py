"""What the dropouts cost each training's step on the CPU, and the embedder's passages in length-sorted groups.

    python bench/dropout_step.py [--steps 6] [--precisions auto]

Each of the three trainings' own step, on real texts from the mirror (needs no build), in the precision asked for
(auto: what the trainings' `precision: auto` resolves to on this machine), with the models' own dropouts (0.1) and
with none (params.yaml: `attention_dropout: 0.0` and `hidden_dropout: 0.0` under train.embedder, train.reranker
and grounding.cross_encoder):
- embedder: ragops.training.embedder.mnrl_step (batch and max_seq_length from params.yaml) on 32 seeded SciFact
  documents' titles as queries and one seeded chunk (the chunk stage's chunker and params) of each of 64 documents
  as positives and negatives, the optimizer's update included; arms: without attention dropout (the recipe before
  these keys) with the passages in one forward, then in length-sorted groups (PASSAGE_GROUP), then with no
  hidden dropout either. The mean of ``--steps`` steps after one untimed. Padding: tokens the passages' forwards
  held over the passages' own.
- reranker: ragops.training.reranker.train_cross_encoder (train.reranker's layers, batch, max_length) for
  ``--steps`` + 1 steps on title queries, each with its abstract and three seeded others (the stage's group
  size), seconds a step over the steps.
- grounding cross-encoder: ragops.answer.cross_encoder.train_cross_encoder (grounding.cross_encoder's batches,
  grouped by length, 128 tokens) on the grounding_pretrain stage's first ``--pairs`` training pairs, one epoch.
Each cross-encoder arm runs after an untimed warm-up run. Writes reports/bench/dropout_step.json and the
``dropout_step`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from dataclasses import replace
from pathlib import Path

from _common import REPO, machine, machine_line, write_result, write_section

OWN, NONE = (None, None), (0.0, 0.0)


def scifact(mirror: str, n: int, seed: int):
    """``n`` seeded SciFact documents (ids, titles, abstracts) from the mirror."""
    from ragops.data.beir import read_corpus

    folder = Path(mirror) / "scifact"
    docs = read_corpus(next(f for f in (folder / "corpus.jsonl", folder / "corpus.jsonl.gz") if f.exists()))
    docs = docs.sample(n=n, random_state=seed)
    return docs["doc_id"].tolist(), docs["title"].tolist(), docs["text"].tolist()


def embedder_rows(params: dict, precision: str, steps: int, seed: int, mirror: str) -> list[dict]:
    import numpy as np
    import torch

    from ragops.data.chunking import chunk_documents, load_chunk_tokenizer
    from ragops.encode.models import adamw, load_sentence_transformer, set_dropout
    from ragops.training.embedder import PASSAGE_GROUP, by_length, mnrl_step

    cfg, ch = params["train"]["embedder"], params["chunk"]
    b = int(cfg["batch_size"])
    ids, titles, texts = scifact(mirror, 2 * b, seed)
    chunks = chunk_documents(ids, titles, texts, load_chunk_tokenizer(params["embed"]["model"]),
                             int(ch["max_tokens"]), int(ch["overlap"]))
    rng = random.Random(seed)
    passages = [rng.choice(g["text"].tolist()) for _, g in chunks.groupby("doc_id", sort=False)]
    queries, mask = titles[:b], np.zeros((b, 2 * b), dtype=bool)
    rows = []
    for label, (attention, hidden), group in (("attention 0.0, hidden own (0.1), one forward", (0.0, None), 0),
                                              ("attention 0.0, hidden own (0.1), grouped", (0.0, None), PASSAGE_GROUP),
                                              ("none (params.yaml), grouped", NONE, PASSAGE_GROUP)):
        model = load_sentence_transformer(params["embed"]["model"])
        model.max_seq_length = int(cfg["max_seq_length"])
        set_dropout(model, attention, hidden, "train.embedder")
        model.train()
        opt = adamw(model.parameters(), 1e-5)
        feats = model.preprocess(passages)
        real = int(feats["attention_mask"].sum())
        held = (sum(p["input_ids"].numel() for p in by_length(feats, group)) if group
                else feats["input_ids"].numel())

        def step() -> None:
            mnrl_step(model, queries, passages, 1, mask, 20.0, precision, group)  # noqa: B023
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # noqa: B023
            opt.step()  # noqa: B023
            opt.zero_grad()  # noqa: B023

        step()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        rows.append({"training": "embedder", "arm": label, "precision": precision, "padding": round(held / real, 3),
                     "s_per_step": round((time.perf_counter() - t0) / steps, 3)})
        print(rows[-1], flush=True)
    return rows


def reranker_rows(params: dict, precision: str, steps: int, seed: int, mirror: str) -> list[dict]:
    from ragops.encode.models import resolve_model, set_dropout
    from ragops.stages.train_embedder import train_config
    from ragops.training.reranker import init_cross_encoder, train_cross_encoder

    cfg = params["train"]["reranker"]
    b, n = int(cfg["batch_size"]), int(cfg["negatives"]) + 1
    _, titles, texts = scifact(mirror, b * (steps + 1), seed)
    rng = random.Random(seed)
    groups = [[texts[i], *rng.sample(texts[:i] + texts[i + 1 :], n - 1)] for i in range(len(texts))]
    tcfg = replace(train_config(cfg, seed, precision), epochs=1, max_steps=steps + 1, warmup=0.0)
    rows = []
    for label, dropouts in (("warm-up", OWN), ("own (0.1)", OWN), ("none (params.yaml)", NONE)):
        model, tok = init_cross_encoder(resolve_model(params["embed"]["model"]), seed, int(cfg["layers"]))
        set_dropout(model, *dropouts, "train.reranker")
        result = train_cross_encoder(model, tok, titles, groups, int(cfg["max_length"]), tcfg)
        if label != "warm-up":
            rows.append({"training": "reranker", "arm": label, "precision": precision,
                         "s_per_step": round(result.seconds / result.steps, 3)})
            print(rows[-1], flush=True)
    return rows


def grounding_rows(params: dict, precision: str, pairs: int, mirror: str) -> list[dict]:
    from ragops.answer.cross_encoder import train_cross_encoder
    from ragops.answer.nli_data import load_all
    from ragops.answer.nli_pretrain import examples, sample, split
    from ragops.encode.models import resolve_model
    from ragops.stages.grounding_pretrain import config

    cfg = config(params)
    train = examples(split(sample(load_all(mirror, list(cfg.sources), verify=False), cfg), cfg.holdout,
                           cfg.seed)[0], cfg.seed)[:pairs]  # fmt: skip
    base = resolve_model(params["embed"]["model"])
    rows = []
    for label, (attention, hidden) in (("warm-up", OWN), ("own (0.1)", OWN), ("none (params.yaml)", NONE)):
        ce = replace(cfg.cross_encoder, epochs=1, precision=precision, attention_dropout=attention,
                     hidden_dropout=hidden)
        _, record = train_cross_encoder(base, train, ce)
        if label != "warm-up":
            steps = -(-len(train) // ce.batch_size)
            rows.append({"training": f"grounding cross-encoder ({', '.join(cfg.sources)} pairs)", "arm": label,
                         "precision": precision, "padding": record["padding"],
                         "s_per_step": round(record["seconds"] / steps, 3)})
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--pairs", type=int, default=480, help="grounding pretraining pairs (one epoch)")
    ap.add_argument("--precisions", nargs="+", default=["auto"])
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--mirror", default=os.environ.get("RAGOPS_MIRROR", str(REPO.parent / "shared" / "datasets")))
    args = ap.parse_args()
    import torch
    import yaml

    from ragops.encode.models import training_precision

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    rows = []
    for asked in args.precisions:
        precision = training_precision(asked, "cpu")
        rows += embedder_rows(params, precision, args.steps, args.seed, args.mirror)
        rows += reranker_rows(params, precision, args.steps, args.seed, args.mirror)
        rows += grounding_rows(params, precision, args.pairs, args.mirror)
    result = {"machine": machine(), "threads": torch.get_num_threads(), "steps": args.steps, "pairs": args.pairs,
              "rows": rows}
    write_result("dropout_step", result)
    write_section("dropout_step", render(result))


def render(r: dict) -> str:
    first: dict[tuple[str, str], float] = {}
    lines = []
    for x in r["rows"]:
        base = first.setdefault((x["training"], x["precision"]), x["s_per_step"])
        pad = f"{x['padding']:.2f}" if "padding" in x else ""
        lines.append(f"| {x['training']} | {x['precision']} | {x['arm']} | {pad} | {x['s_per_step']:.3f} | "
                     f"{base / x['s_per_step']:.2f}x |")
    body = "\n".join(lines)
    return f"""## The dropouts and the embedder's grouped passages in a training step (`python bench/dropout_step.py`)

{machine_line(r['machine'])}

Each training's own step on SciFact texts (the embedder: 32 titles as queries, 64 chunks as passages, mean of
{r['steps']} steps after one untimed, the optimizer's update included; the reranker: title queries with 4 abstracts
each, {r['steps']} steps and one more; the grounding cross-encoder: the grounding_pretrain stage's first {r['pairs']}
training pairs, one epoch, batches grouped by length), after a warm-up run. Padding: the tokens the forwards held
over the texts' own (the embedder's passages; the grounding batches'):

| training | precision | dropouts | padding | seconds a step | faster than the first row |
|---|---|---|---:|---:|---:|
{body}

params.yaml sets `attention_dropout: 0.0` and `hidden_dropout: 0.0` for the three trainings (the pretraining
inherits the grounding cross-encoder's); what that did to the models: docs/DECISIONS.md, "Dropout".
"""


if __name__ == "__main__":
    main()
