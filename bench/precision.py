"""fp32 against bf16 training on this machine: one training step of each model ragops trains, at the shapes
params.yaml gives it.

    python bench/precision.py [--repeats 3]

`train.embedder.precision`, `train.reranker.precision` and `grounding.cross_encoder.precision` (README,
"Mixed precision") choose between fp32 and bf16 autocast; `auto` picks bf16 where the device multiplies bf16
natively. This measures what that buys here, before a whole build: for each model a forward pass under the
project's own autocast (ragops.encode.models.autocast), the loss in fp32, backward and an AdamW step, on token
ids of the lengths the training uses (MNRL's 32 queries, taken at 24 tokens, and 64 passages at
train.embedder.max_seq_length; the reranker's 16 groups of 4 pairs at train.reranker.max_length, its first
train.reranker.layers layers; the grounding cross-encoder's 16 pairs at grounding.cross_encoder.max_length).
Seconds per step: the median of ``--repeats`` steps after one warm-up. The quality side needs whole trainings:
docs/benchmarks.md, "Mixed precision".
Writes reports/bench/precision.json and the `precision` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

import yaml
from _common import REPO, machine, machine_line, machine_speed, speed_line, write_result, write_section


def shapes(params: dict) -> dict[str, dict]:
    """Each model's step: (sequences, tokens) per forward pass, and the transformer layers it keeps."""
    emb, rr, ce = params["train"]["embedder"], params["train"]["reranker"], params["grounding"]["cross_encoder"]
    b = int(emb["batch_size"])
    return {
        "embedder": {"passes": [(b, 24), (b * (1 + int(emb["negatives"])), int(emb["max_seq_length"]))], "layers": 0},
        "reranker": {"passes": [(int(rr["batch_size"]) * (1 + int(rr["negatives"])), int(rr["max_length"]))],
                     "layers": int(rr["layers"])},
        "grounding cross-encoder": {"passes": [(int(ce["batch_size"]), int(ce["max_length"]))], "layers": 0},
    }


def step_seconds(passes: list[tuple[int, int]], layers: int, precision: str, repeats: int) -> float:
    import torch
    from transformers import AutoModel

    from ragops.encode.models import autocast, resolve_model

    torch.manual_seed(0)
    model = AutoModel.from_pretrained(str(resolve_model("all-MiniLM-L6-v2")), local_files_only=True)
    if layers:
        model.encoder.layer = model.encoder.layer[:layers]
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    batches = [torch.randint(1000, 20000, (n, length)) for n, length in passes]

    def step() -> float:
        t = time.perf_counter()
        with autocast(precision, "cpu"):
            outs = [model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state.mean(1).float()
                    for ids in batches]
        loss = sum(o.pow(2).mean() for o in outs)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return time.perf_counter() - t

    step()
    return statistics.median(step() for _ in range(repeats))


def render(result: dict) -> str:
    m = result["machine"]
    lines = [
        "## Mixed precision: one training step, fp32 against bf16 (`python bench/precision.py`)", "",
        machine_line(m), "", speed_line(result["speed"]), "",
        f"`precision: auto` resolves to **{result['auto']}** on this machine. One step (forward under the project's "
        "autocast, backward, AdamW) of each model at params.yaml's shapes, random token ids, seconds (median of "
        f"{result['repeats']} after a warm-up):", "",
        "| model | forward passes (sequences x tokens) | fp32 s | bf16 s | speed-up |", "|---|---|---:|---:|---:|",
    ]
    for name, r in result["models"].items():
        passes = " + ".join(f"{n} x {t}" for n, t in r["passes"])
        lines.append(f"| {name} | {passes} | {r['fp32']:.2f} | {r['bf16']:.2f} | {r['fp32'] / r['bf16']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from ragops.encode.models import training_precision

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    result = {"machine": machine(), "speed": machine_speed(), "repeats": args.repeats,
              "auto": training_precision("auto", "cpu"), "models": {}}
    for name, s in shapes(params).items():
        r = {"passes": s["passes"]}
        for precision in ("fp32", "bf16"):
            r[precision] = round(step_seconds(s["passes"], s["layers"], precision, args.repeats), 3)
        result["models"][name] = r
        print(name, r, flush=True)
    write_result("precision", result)
    write_section("precision", render(result))
    print(render(result))


if __name__ == "__main__":
    main()
