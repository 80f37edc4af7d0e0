"""The grounding cross-encoder as served (fp32 ONNX) against PyTorch: load time, scoring time, agreement.

    python bench/onnx_grounding.py [--pairs 200] [--repeats 3]

`rag`, `ragops ask` and `ragops serve` check each claim with the built grounding scorer, whose cross-encoder
runs as the ONNX export the grounding stage wrote and checked beside it (models/grounding/cross_encoder/onnx;
ragops.answer.cross_encoder_onnx) unless ``answer.grounding_backend: torch``. On claims_dev pairs (each claim
with its cited abstract's first ``top_k`` sentences: the backends are compared on the same tokens) this measures
- the largest difference of the ONNX probabilities from PyTorch's, and how often the arg-max label is the same;
- a fresh process's wall time to import and load each backend (``load_cross_encoder``; median of
  ``--repeats``), and to score the pairs in batches of 32;
- a fresh process's wall time for the whole answer path (``ragops ask`` on the build, extractive answers, one
  question, the trained scorer) under each backend, and whether torch was imported.
Writes reports/bench/onnx_grounding.json and the `onnx_grounding` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np
from _common import REPO, machine, machine_line, python_env, write_result, write_section

LOAD = """
import sys, time
t = time.perf_counter()
from ragops.answer.cross_encoder_onnx import load_cross_encoder
load_cross_encoder(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
print(time.perf_counter() - t)
"""
ASK = """
import json, sys, time
t = time.perf_counter()
from ragops.answer.answerer import build_answerer
from ragops.config import load_params
from ragops.retrieval.load import load_pipeline
params = load_params("params.yaml")
params["answer"]["grounding_backend"] = sys.argv[1]
pipeline, docs = load_pipeline(params)
answer = build_answerer(pipeline, docs, params, generator="extractive").ask(sys.argv[2])
print(json.dumps([time.perf_counter() - t, "torch" in sys.modules, [c.score for c in answer.claims]]))
"""
QUESTION = "Does vitamin D deficiency increase the risk of fractures?"


def fresh(code: str, *args: str, repeats: int) -> list:
    out = []
    for _ in range(repeats):
        res = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=python_env(), capture_output=True,
                             text=True, check=True)
        out.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return out


def main() -> None:
    import yaml

    from ragops.answer.cross_encoder_onnx import load_cross_encoder
    from ragops.answer.grounding_data import read_pairs, read_sentences

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    grounding = REPO / params["paths"]["grounding_model"]
    ce_cfg = json.loads((grounding / "scorers.json").read_text())["trained"]["cross_encoder"]
    folder, max_length, top_k = grounding / ce_cfg["dir"], int(ce_cfg["max_length"]), int(ce_cfg["top_k"])
    if "onnx" not in ce_cfg:
        sys.exit(f"{grounding}: built before the grounding stage exported its cross-encoder; run `dvc repro` first")
    claims = REPO / params["paths"]["claims"]
    sentences = read_sentences(claims / params["grounding"]["sentences_file"])
    pairs = read_pairs(claims / params["grounding"]["eval_file"], sentences)[: args.pairs]
    texts = [" ".join(sentences.get(p.doc_id, [])[:top_k]) for p in pairs]
    probs, score_s = {}, {}
    for backend in ("torch", "onnx"):
        model = load_cross_encoder(folder, max_length, top_k, backend)
        model.probs([p.claim for p in pairs[:8]], texts[:8])  # first-call costs out of the timing
        t = time.perf_counter()
        probs[backend] = model.probs([p.claim for p in pairs], texts, batch_size=32)
        score_s[backend] = time.perf_counter() - t
    load_s = {b: statistics.median(fresh(LOAD, str(folder), str(max_length), str(top_k), b, repeats=args.repeats))
              for b in ("torch", "onnx")}
    asks = {b: fresh(ASK, b, QUESTION, repeats=args.repeats) for b in ("torch", "onnx")}
    ask_s = {b: statistics.median(r[0] for r in runs) for b, runs in asks.items()}
    ask_torch = {b: runs[0][1] for b, runs in asks.items()}
    ask_diff = float(np.abs(np.asarray(asks["onnx"][0][2]) - np.asarray(asks["torch"][0][2])).max(initial=0.0))
    diff = float(np.abs(probs["onnx"] - probs["torch"]).max())
    same_label = float((probs["onnx"].argmax(1) == probs["torch"].argmax(1)).mean())
    m = machine()
    result = {"machine": m, "pairs": len(pairs), "max_abs_prob_diff": diff, "same_argmax": same_label,
              "load_s": {b: round(v, 2) for b, v in load_s.items()},
              "score_s": {b: round(v, 2) for b, v in score_s.items()},
              "ask_s": {b: round(v, 2) for b, v in ask_s.items()}, "ask_imports_torch": ask_torch,
              "ask_claim_score_max_diff": ask_diff, "stage_check": ce_cfg["onnx"]}
    write_result("onnx_grounding", result)
    md = ["## The grounding cross-encoder as served: fp32 ONNX against PyTorch (`python bench/onnx_grounding.py`)",
          "", machine_line(m), "",
          "The built full-SciFact scorer's cross-encoder (models/grounding/cross_encoder) and the export the grounding "
          "stage wrote beside it (`answer.grounding_backend: onnx`, the default; `torch` loads the PyTorch model).", "",
          "| | PyTorch | ONNX fp32 |", "|---|---:|---:|",
          f"| fresh process: import and load the cross-encoder (s, median of {args.repeats}) | {load_s['torch']:.2f} | "
          f"{load_s['onnx']:.2f} |",
          f"| score {len(pairs)} claims_dev pairs, batches of 32 (s) | {score_s['torch']:.2f} | "
          f"{score_s['onnx']:.2f} |",
          f"| fresh process: load the build and answer one question, extractive, trained scorer (s, median of "
          f"{args.repeats}) | {ask_s['torch']:.2f} | {ask_s['onnx']:.2f} |",
          f"| torch imported by that answer | {'yes' if ask_torch['torch'] else 'no'} | "
          f"{'yes' if ask_torch['onnx'] else 'no'} |", "",
          f"Largest probability difference from PyTorch: {diff:.1e} on the {len(pairs)} pairs (same arg-max label on "
          f"{same_label:.1%}); the answer's claim scores differ by at most {ask_diff:.1e}. The stage's own check when "
          f"it exported: {ce_cfg['onnx']['pairs']} pairs, {ce_cfg['onnx']['max_abs_diff']:.1e}."]
    write_section("onnx_grounding", "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
