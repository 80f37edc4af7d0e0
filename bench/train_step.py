"""What a grounding cross-encoder training step costs, with and without length-grouped batches and the fused AdamW.

    python bench/train_step.py [--pairs 480] [--precisions auto fp32]

The grounding_pretrain stage's own training (ragops.answer.cross_encoder.train_cross_encoder: batch and
max_length from params.yaml's grounding.pretrain and grounding.cross_encoder) on the first ``--pairs`` of its
training pairs (the seeded sample and order the stage uses, from the mirror's nli/ folder), one epoch, in four
arms: random batches or grouped by length (grounding.cross_encoder.group_by_length) x torch's per-tensor AdamW
or the fused one (ragops.encode.models.adamw). Seconds per step are the training's wall time over its steps
(tokenization included; the first arm also pays for warming the kernels, so it runs twice and the second run
counts); padding is the tokens the batches held over the pairs' own. Then the optimizer's update alone, both
ways (``--updates`` of them, the median). Needs no build. Writes
reports/bench/train_step.json and the ``train_step`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import time

from _common import REPO, machine, machine_line, write_result, write_section

ARMS = (("random", False, False), ("random", False, True), ("by length", True, False), ("by length", True, True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=480)
    ap.add_argument("--precisions", nargs="+", default=["auto"])
    ap.add_argument("--updates", type=int, default=20, help="optimizer updates timed alone, per AdamW")
    ap.add_argument("--mirror", default=os.environ.get("RAGOPS_MIRROR", str(REPO.parent / "shared" / "datasets")))
    args = ap.parse_args()
    from dataclasses import replace

    import torch
    import yaml

    import ragops.encode.models as models
    from ragops.answer.cross_encoder import train_cross_encoder
    from ragops.answer.nli_data import load_all
    from ragops.answer.nli_pretrain import examples, sample, split
    from ragops.encode.models import resolve_model, training_precision
    from ragops.stages.grounding_pretrain import config

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    cfg = config(params)
    pairs = sample(load_all(args.mirror, list(cfg.sources), verify=False), cfg)
    train = examples(split(pairs, cfg.holdout, cfg.seed)[0], cfg.seed)[: args.pairs]
    base = resolve_model(params["embed"]["model"])
    fused_adamw, rows = models.adamw, []

    def plain_adamw(groups, lr: float, weight_decay: float = 0.01):
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)

    for asked in args.precisions:
        precision = training_precision(asked, "cpu")
        for n, (batching, group, fused) in enumerate((ARMS[0], *ARMS)):
            models.adamw = fused_adamw if fused else plain_adamw
            ce = replace(cfg.cross_encoder, epochs=1, group_by_length=group, precision=precision)
            t0 = time.perf_counter()
            _, record = train_cross_encoder(base, train, ce)
            if n == 0:
                continue  # the warm-up run
            steps = -(-len(train) // ce.batch_size)
            rows.append({"precision": precision, "batches": batching, "optimizer": "fused" if fused else "per-tensor",
                         "s_per_step": round((time.perf_counter() - t0) / steps, 3),
                         "train_s_per_step": round(record["seconds"] / steps, 3), "padding": record["padding"]})
            print(rows[-1], flush=True)
    models.adamw = fused_adamw
    update = {name: update_ms(base, make, args.updates) for name, make in (("per-tensor", plain_adamw),
                                                                          ("fused", fused_adamw))}
    print({"update_ms": update}, flush=True)
    result = {"machine": machine(), "threads": torch.get_num_threads(), "pairs": len(train),
              "batch_size": cfg.cross_encoder.batch_size, "max_length": cfg.cross_encoder.max_length, "rows": rows,
              "update_ms": update, "updates": args.updates}
    write_result("train_step", result)
    write_section("train_step", render(result))


def update_ms(base, make, n: int) -> float:
    """Milliseconds of one optimizer update of the MiniLM (gradient clipping, the step, zeroing), the update the
    training loops run after each backward pass: the median of ``n`` after two untimed."""
    import statistics

    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(base), local_files_only=True)
    params = list(model.parameters())
    opt = make([{"params": params, "lr": 1e-5}], 1e-5)
    times = []
    for i in range(n + 2):
        for p in params:
            p.grad = torch.full_like(p, 1e-3)
        t0 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad()
        if i >= 2:
            times.append(1000 * (time.perf_counter() - t0))
    return round(statistics.median(times), 1)


def render(r: dict) -> str:
    base = {row["precision"]: row["train_s_per_step"] for row in r["rows"]
            if row["batches"] == "random" and row["optimizer"] == "per-tensor"}
    lines = "\n".join(f"| {x['precision']} | {x['batches']} | {x['optimizer']} | {x['padding']:.2f} | "
                      f"{x['train_s_per_step']:.3f} | {base[x['precision']] / x['train_s_per_step']:.2f}x |"
                      for x in r["rows"])
    return f"""## A grounding cross-encoder's training step (`python bench/train_step.py`)

{machine_line(r['machine'])}

The grounding_pretrain stage's training on the first {r['pairs']} of its pairs (batches of {r['batch_size']},
claim + evidence cut at {r['max_length']} tokens), one epoch; seconds a step are the training loop's (tokenizing
included) over its steps; padding is the tokens the batches held over the pairs' own tokens:

| precision | batches | AdamW | padding | seconds a step | faster than random + per-tensor |
|---|---|---|---:|---:|---:|
{lines}

The optimizer's update alone (gradient clipping, the step and zeroing over the MiniLM's parameters, median of
{r['updates']}): {r['update_ms']['per-tensor']} ms with torch's per-tensor AdamW, {r['update_ms']['fused']} ms fused.

params.yaml sets `grounding.cross_encoder.group_by_length: true` (the pretraining too); every training uses the
fused AdamW where the device has it (`ragops.encode.models.adamw`). What the two did to the models:
docs/DECISIONS.md, "Length-grouped batches and the fused AdamW".
"""


if __name__ == "__main__":
    main()
