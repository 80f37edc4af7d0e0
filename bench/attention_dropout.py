"""What the attention dropout costs the embedder's training step on the CPU.

    python bench/attention_dropout.py [--steps 3] [--precisions auto fp32]

train_embedder's step (ragops.training.embedder.mnrl_step: 32 queries, 32 positives and 32 hard negatives, the
passages cut at train.embedder.max_seq_length tokens) on real SciFact texts from the mirror: the first 64 abstracts
as passages, their titles as queries. Timed for the MiniLM in training mode with its own attention dropout (0.1),
with none (train.embedder.attention_dropout: 0.0, what params.yaml sets) and, as the floor, in eval mode (no
dropout at all), in each precision asked for (auto: what train.embedder.precision resolves to on this machine).
Seconds per step are the mean of ``--steps`` steps after one untimed step, each with the optimizer's update, on
the threads torch has. Needs no build. Writes reports/bench/attention_dropout.json and the ``attention_dropout``
section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from _common import REPO, machine, machine_line, write_result, write_section

ARMS = (("model's own (0.1)", "train", None), ("0.0", "train", 0.0), ("eval mode (no dropout)", "eval", None))


def texts(mirror: str, n: int) -> tuple[list[str], list[str]]:
    from ragops.data.beir import read_corpus

    folder = Path(mirror) / "scifact"
    docs = read_corpus(next(f for f in (folder / "corpus.jsonl", folder / "corpus.jsonl.gz") if f.exists())).head(2 * n)
    return docs["title"].tolist(), (docs["title"] + ". " + docs["text"]).tolist()


def time_step(precision: str, mode: str, dropout: float | None, queries, passages, steps: int, seq: int) -> float:
    import numpy as np
    import torch

    from ragops.encode.models import load_sentence_transformer, set_dropout
    from ragops.training.embedder import mnrl_step

    model = load_sentence_transformer("all-MiniLM-L6-v2")
    model.max_seq_length = seq
    set_dropout(model, dropout, None, "attention_dropout")
    model.train(mode == "train")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    b = len(queries)
    mask = np.zeros((b, 2 * b), dtype=bool)

    def step() -> None:
        mnrl_step(model, queries, passages, 1, mask, 20.0, precision)
        opt.step()
        opt.zero_grad()

    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--precisions", nargs="+", default=["auto"])
    ap.add_argument("--mirror", default=os.environ.get("RAGOPS_MIRROR", str(REPO.parent / "shared" / "datasets")))
    args = ap.parse_args()
    import torch
    import yaml

    from ragops.encode.models import training_precision

    cfg = yaml.safe_load((REPO / "params.yaml").read_text())["train"]["embedder"]
    b, seq = int(cfg["batch_size"]), int(cfg["max_seq_length"])
    titles, abstracts = texts(args.mirror, b)
    queries, passages = titles[:b], abstracts[: 2 * b]
    rows = []
    for asked in args.precisions:
        precision = training_precision(asked, "cpu")
        for label, mode, dropout in ARMS:
            s = time_step(precision, mode, dropout, queries, passages, args.steps, seq)
            rows.append({"precision": precision, "attention_dropout": label, "mode": mode, "s_per_step": round(s, 3)})
            print(rows[-1], flush=True)
    result = {"machine": machine(), "threads": torch.get_num_threads(), "batch": b, "max_seq_length": seq,
              "steps": args.steps, "rows": rows}
    write_result("attention_dropout", result)
    write_section("attention_dropout", render(result))


def render(r: dict) -> str:
    base = {row["precision"]: row["s_per_step"] for row in r["rows"] if row["attention_dropout"].startswith("model")}
    lines = "\n".join(f"| {x['precision']} | {x['attention_dropout']} | {x['s_per_step']:.2f} | "
                      f"{base[x['precision']] / x['s_per_step']:.2f}x |" for x in r["rows"])
    return f"""## The attention dropout in the embedder's training (`python bench/attention_dropout.py`)

{machine_line(r['machine'])}

One step of train_embedder (`mnrl_step`: {r['batch']} queries, {r['batch']} positives, {r['batch']} hard
negatives; passages of SciFact abstracts cut at {r['max_seq_length']} tokens; the optimizer's update included),
mean of {r['steps']} steps after one untimed:

| precision | attention dropout | seconds a step | faster than the model's own |
|---|---|---:|---:|
{lines}

Above 0, PyTorch's scaled-dot-product attention on the CPU runs its unfused path (every attention matrix
materialized, masked and kept for the backward pass); at 0 it keeps the fused kernel. params.yaml sets
`train.embedder.attention_dropout: 0.0`; what that did to the model: docs/DECISIONS.md, "The embedder trains
without attention dropout".
"""


if __name__ == "__main__":
    main()
