"""Sizing a lever, not a shipped path: the grounding cross-encoder as fp32 ONNX against PyTorch (issue 19, item 5).

    python bench/onnx_grounding.py [--pairs 200] [--repeats 3]

`rag`, `ragops ask` and `ragops serve` load the built pipeline's grounding cross-encoder (models/grounding/
cross_encoder) through torch and transformers' BERT; that import dominates a `ragops ask`. This exports the same
model (encoder, mean pooling, 3-label head) to fp32 ONNX in a temporary folder and measures, on claims_dev pairs
(each claim with its cited abstract's first top_k sentences; the stage picks the most similar ones, but
the backends are compared on the same tokens, whichever they are):
- the largest difference of the ONNX probabilities from `GroundingCrossEncoder.probs` (the served path);
- a fresh process's wall time to import and load each (median of ``--repeats``), and to score the pairs.
Writes reports/bench/onnx_grounding.json and the `onnx_grounding` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from _common import REPO, machine, machine_line, python_env, write_result, write_section

LOAD_TORCH = """
import sys, time
t = time.perf_counter()
from ragops.answer.cross_encoder import GroundingCrossEncoder
GroundingCrossEncoder.load(sys.argv[1], 128, 2)
print(time.perf_counter() - t)
"""
LOAD_ONNX = """
import sys, time
t = time.perf_counter()
import onnxruntime
from tokenizers import Tokenizer
onnxruntime.InferenceSession(sys.argv[2] + "/model.onnx", providers=["CPUExecutionProvider"])
Tokenizer.from_file(sys.argv[1] + "/tokenizer.json")
print(time.perf_counter() - t)
"""


def fresh(code: str, *args: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=python_env(), capture_output=True,
                             text=True, check=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def main() -> None:
    import torch
    import yaml

    from ragops.answer.cross_encoder import CE_DIR, GroundingCrossEncoder
    from ragops.answer.grounding_data import read_pairs, read_sentences

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    ce_cfg = params["grounding"]["cross_encoder"]
    folder = REPO / params["paths"]["grounding_model"] / CE_DIR
    claims = REPO / params["paths"]["claims"]
    model = GroundingCrossEncoder.load(folder, int(ce_cfg["max_length"]), int(ce_cfg["top_k"]))
    sentences = read_sentences(claims / params["grounding"]["sentences_file"])
    pairs = read_pairs(claims / params["grounding"]["eval_file"], sentences)[: args.pairs]
    texts = [" ".join(sentences.get(p.doc_id, [])[: int(ce_cfg["top_k"])]) for p in pairs]
    feats = model.tokenizer([p.claim for p in pairs], texts, truncation="longest_first",
                            max_length=model.max_length, padding=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in feats]

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder, self.head = model.encoder, model.head

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            batch = dict(zip(names, inputs, strict=True))
            hidden = self.encoder(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            return torch.softmax(self.head((hidden * mask).sum(1) / mask.sum(1)), -1)

    with tempfile.TemporaryDirectory(prefix="onnx-grounding-") as tmp, torch.no_grad():
        wrapped = Wrapped().eval()
        sample = tuple(feats[n][:2] for n in names)
        torch.onnx.export(wrapped, sample, f"{tmp}/model.onnx", input_names=names, output_names=["probs"],
                          dynamic_axes={n: {0: "batch", 1: "seq"} for n in names} | {"probs": {0: "batch"}},
                          opset_version=17, do_constant_folding=True, dynamo=False)
        import onnxruntime

        session = onnxruntime.InferenceSession(f"{tmp}/model.onnx", providers=["CPUExecutionProvider"])
        t = time.perf_counter()  # the served path itself (tokenizes each batch), not the wrapper exported
        want = model.probs([p.claim for p in pairs], texts, batch_size=32)
        torch_s = time.perf_counter() - t
        t = time.perf_counter()
        got = np.concatenate([session.run(None, {n: feats[n][b:b + 32].numpy() for n in names})[0]
                              for b in range(0, len(pairs), 32)])
        onnx_s = time.perf_counter() - t
        load_torch = fresh(LOAD_TORCH, str(folder), repeats=args.repeats)
        load_onnx = fresh(LOAD_ONNX, str(folder), tmp, repeats=args.repeats)
    diff = float(np.abs(got - want).max())
    same_label = float((got.argmax(1) == want.argmax(1)).mean())
    m = machine()
    result = {"machine": m, "pairs": len(pairs), "max_abs_prob_diff": diff, "same_argmax": same_label,
              "load_torch_s": round(load_torch, 2), "load_onnx_s": round(load_onnx, 2),
              "score_torch_s": round(torch_s, 2), "score_onnx_s": round(onnx_s, 2)}
    write_result("onnx_grounding", result)
    md = ["## The grounding cross-encoder as fp32 ONNX, sized (`python bench/onnx_grounding.py`)", "",
          machine_line(m), "",
          "Not a shipped path: what exporting models/grounding/cross_encoder would save `rag`, `ragops ask` and "
          "`ragops serve`, which now load it through torch and transformers' BERT.", "",
          "| | PyTorch | ONNX fp32 |", "|---|---:|---:|",
          f"| fresh process: import and load (s, median of {args.repeats}) | {load_torch:.2f} | {load_onnx:.2f} |",
          f"| score {len(pairs)} claims_dev pairs, batches of 32 (s) | {torch_s:.2f} | {onnx_s:.2f} |", "",
          f"Largest probability difference from `GroundingCrossEncoder.probs`: {diff:.1e}; same arg-max label on "
          f"{same_label:.1%} of the pairs."]
    write_section("onnx_grounding", "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
