"""The built grounding scorers on the evaluation claims, read with the sentence vectors they are served with.

    python bench/grounding_encoder.py

The `grounding` stage fits the scorers' thresholds and the trained scorer's MiniLM pair features on fp32 vectors:
the MiniLM's ONNX export on a CPU (since 2026-12-04; within 3e-7 of PyTorch's), PyTorch on a GPU. An answer
(`rag`, `ragops ask`, `ragops serve`) scores its claims with the pipeline's query encoder instead
(``embed.query_backend``, onnx-int8 by default: ~0.99 cosine to PyTorch's).
This scores the saved scorers (models/grounding, as built) on the stage's evaluation pairs (claims_dev, the same
sample and seed) under both encoders, with the saved thresholds and the served ONNX cross-encoder, so the
difference is the encoder alone. The fitted encoder's column must reproduce reports/grounding.json.
Writes reports/bench/grounding_encoder.json and the `grounding_encoder` section of docs/benchmarks.md.
"""

from __future__ import annotations

import time

from _common import REPO, machine, machine_line, write_result, write_section

from ragops.answer.grounding_data import read_pairs, read_sentences
from ragops.answer.grounding_fit import memo_encode, pair_docs
from ragops.answer.grounding_metrics import grounding_report
from ragops.answer.scorers import SCORERS_FILE, load_scorer
from ragops.config import load_params
from ragops.encode.encoder import Encoder
from ragops.io import read_json
from ragops.retrieval.load import query_backend
from ragops.stages.grounding import sample

SCORERS = ("embedding", "trained")
FIGURES = ("auroc", "f1", "precision", "recall")


def main() -> None:
    params = load_params(REPO / "params.yaml")
    g, paths, emb = params["grounding"], params["paths"], params["embed"]
    folder = REPO / paths["claims"]
    sentences = read_sentences(folder / g["sentences_file"])
    test = sample(read_pairs(folder / g["eval_file"], sentences), int(g.get("max_eval_pairs", 0)), int(params["seed"]))
    claims, docs, labels = [p.claim for p in test], [pair_docs(p, sentences) for p in test], [p.label for p in test]
    built = read_json(REPO / paths["grounding_report"])["scorers"]
    served = query_backend(emb)
    # the backend the built scorers were fit on (scorers.json; a build from before it was recorded: PyTorch)
    fitted = str(read_json(REPO / paths["grounding_model"] / SCORERS_FILE).get("embed_backend", "torch"))
    result: dict = {"machine": machine(), "pairs": len(test), "fitted_backend": fitted, "served_backend": served,
                    "scorers": {}}
    for backend in dict.fromkeys((fitted, served)):
        encoder = Encoder(emb["model"], backend=backend, onnx_dir=emb["onnx_dir"])
        encode = memo_encode(encoder)
        for name in SCORERS:
            scorer = load_scorer(name, REPO / paths["grounding_model"], encode)
            t0 = time.perf_counter()
            scores = scorer.score(claims, docs)
            report = grounding_report(scores, labels, scorer.threshold)
            result["scorers"].setdefault(name, {})[backend] = {
                **{k: report[k] for k in FIGURES}, "seconds": round(time.perf_counter() - t0, 1)}
    for name in SCORERS:
        result["scorers"][name]["report"] = {k: built[name][k] for k in FIGURES}
    write_result("grounding_encoder", result)
    md = ["## The grounding scorers read with the served query encoder (`python bench/grounding_encoder.py`)", "",
          machine_line(result["machine"]), "",
          f"The built scorers (models/grounding) on the stage's {len(test)} evaluation pairs (claims_dev), saved "
          f"thresholds, the served ONNX cross-encoder; sentence vectors from `{fitted}` (what the stage fits on) or "
          f"from `{served}` (embed.query_backend: what `rag`, `ragops ask` and `ragops serve` read).", "",
          "| scorer | vectors | AUROC | F1 | precision | recall |", "|---|---|---:|---:|---:|---:|"]
    for name, rows in result["scorers"].items():
        columns = (("report", "reports/grounding.json"), *((b, b) for b in dict.fromkeys((fitted, served))))
        for backend, label in columns:
            r = rows[backend]
            md.append(f"| {name} | {label} | " + " | ".join(f"{r[k]:.4f}" for k in FIGURES) + " |")
    write_section("grounding_encoder", "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
