"""The embedder's dev selection in fp32 against bf16: what train_embedder pays after each epoch, and whether the
cheaper arithmetic could choose another epoch.

    python bench/dev_selection.py [--models models/embedder OTHER ...] [--render]

train_embedder chooses its epoch on dev (ragops.stages.train_embedder.dev_scorer): after each epoch the PyTorch
model encodes every chunk of each dev query's first train.embedder.dev_pool base candidates and the queries, and
ranks each pool by MaxP cosine. Since 2026-12-05 that encoding runs under the training's precision (bf16 where
train.embedder.precision resolves to it). For the base model and each model folder given (the build's fine-tuned
embedder by default) this runs the same scorer in fp32 and in bf16: seconds per scoring (one after the other, on
the threads torch has) and dev nDCG@10, and the cosine of the bf16 vectors to the fp32 ones on the same texts.
The difference of the two nDCG@10 is what bf16 could move a comparison of two epochs by; the committed
training.json's dev by epoch says how far apart the epochs were. Needs the built project (dvc repro).
Writes reports/bench/dev_selection.json and the ``dev_selection`` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from _common import REPO, machine, machine_line, write_result, write_section


def measure(params: dict, folders: list[str]) -> dict:
    import pandas as pd

    from ragops.encode.models import autocast, load_sentence_transformer, training_precision
    from ragops.io import read_npy
    from ragops.retrieval.load import load_retriever
    from ragops.stages.train_embedder import dev_scorer

    paths, cfg = params["paths"], params["train"]["embedder"]
    chunks = pd.read_parquet(paths["chunks"], columns=["doc_id", "text"])
    text_of = pd.read_parquet(paths["queries"]).set_index("query_id")["text"]
    retriever = load_retriever(params)
    vecs = read_npy(paths["embeddings"], mmap=True)
    sample = chunks["text"].sample(n=min(512, len(chunks)), random_state=int(params["seed"])).tolist()
    out = {"auto": training_precision("auto", "cpu"), "dev_pool": int(cfg["dev_pool"]), "models": {}}
    # the stage's own scorer in each precision (its pools are the same for every model: built once)
    scorers = {p: dev_scorer(params, retriever, text_of, chunks, vecs, int(cfg["dev_pool"]), p)[0]
               for p in ("fp32", "bf16")}
    for folder in [params["embed"]["model"], *folders]:
        model = load_sentence_transformer(folder)
        model.max_seq_length = int(cfg["max_seq_length"])
        row: dict = {}
        encoded = {}
        for precision, score in scorers.items():
            t = time.perf_counter()
            row[precision] = {"ndcg@10": round(score(model), 5), "seconds": round(time.perf_counter() - t, 1)}
            with autocast(precision, "cpu"):
                encoded[precision] = model.encode(sample, batch_size=64, normalize_embeddings=True)
        cos = (encoded["fp32"] * encoded["bf16"]).sum(axis=1)
        row["cosine_bf16_fp32"] = {"texts": len(sample), "min": round(float(cos.min()), 6),
                                   "mean": round(float(cos.mean()), 6)}
        row["ndcg_diff"] = round(row["bf16"]["ndcg@10"] - row["fp32"]["ndcg@10"], 5)
        marker = Path(folder) / "training.json"
        if marker.exists():
            training = json.loads(marker.read_text())
            row["dev_by_epoch"] = [round(x, 5) for x in training["dev_ndcg@10_by_epoch"]]
            row["precision_trained"] = training["precision"]
        out["models"][folder] = row
        print(folder, row, flush=True)
    return out


def render(result: dict) -> str:
    lines = [
        "## The embedder's dev selection, fp32 against bf16 (`python bench/dev_selection.py`)", "",
        machine_line(result["machine"]), "",
        f"Each dev query's first {result['dev_pool']} base candidates re-encoded and ranked, as train_embedder does "
        f"after every epoch (`precision: auto` resolves to **{result['auto']}** here); the cosine is of 512 seeded "
        "chunks' vectors, bf16 to fp32. A training's epoch 0 is scored from the base vectors on disk (the `embed` "
        "stage's, through embed.backend), not by PyTorch, so the base model's row need not equal it.", "",
        "| model | fp32 s | bf16 s | speed-up | dev nDCG@10 fp32 | bf16 | difference | min cosine | its dev by epoch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in result["models"].items():
        epochs = ", ".join(f"{x:.4f}" for x in r.get("dev_by_epoch", [])) or "(base model)"
        lines.append(f"| {name} | {r['fp32']['seconds']:.1f} | {r['bf16']['seconds']:.1f} | "
                     f"{r['fp32']['seconds'] / r['bf16']['seconds']:.2f}x | {r['fp32']['ndcg@10']:.4f} | "
                     f"{r['bf16']['ndcg@10']:.4f} | {r['ndcg_diff']:+.4f} | {r['cosine_bf16_fp32']['min']:.5f} | "
                     f"{epochs} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["models/embedder"])
    ap.add_argument("--render", action="store_true", help="rewrite the docs section from the saved result only")
    args = ap.parse_args()
    if args.render:
        write_section("dev_selection", render(json.loads((REPO / "reports/bench/dev_selection.json").read_text())))
        return
    from ragops.config import load_params

    os.chdir(REPO)
    params = load_params(REPO / "params.yaml")
    result = {"machine": machine(), **measure(params, args.models)}
    write_result("dev_selection", result)
    write_section("dev_selection", render(result))


if __name__ == "__main__":
    main()
