"""Why a rebuild from a cold embedding cache can differ in the last digits: the CPU kernels round differently
for different batch shapes, and the cache keeps each vector as first encoded (docs/ARCHITECTURE.md,
"How reproducible a rebuild is").

    python bench/batch_shape.py [--model models/embedder] [--n 96]

Encodes the first --n chunks of data/processed/chunks.parquet in batches of 64 and of 5, and six chunks alone
against in batches of 4 and 37 identical copies; prints the max absolute difference per component, and that
the same batching twice is bit-identical. Needs the built pipeline (`dvc repro`).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/embedder")
    ap.add_argument("--n", type=int, default=96)
    args = ap.parse_args()
    from ragops.encode.models import load_sentence_transformer

    m = load_sentence_transformer(args.model)
    texts = pd.read_parquet("data/processed/chunks.parquet")["text"].tolist()[: args.n]

    def enc(batch: list[str], size: int) -> np.ndarray:
        return m.encode(batch, batch_size=size, normalize_embeddings=True)

    a, again = enc(texts, 64), enc(texts, 64)
    b = np.vstack([enc(texts[i : i + 5], 5) for i in range(0, len(texts), 5)])
    alone = [enc([t], 1)[0] for t in texts[:6]]
    four = [enc([t] * 4, 4)[0] for t in texts[:6]]
    many = [enc([t] * 37, 64)[0] for t in texts[:6]]
    print(json.dumps({
        "batch_64_vs_5_max_abs": float(np.abs(a - b).max()),
        "same_batching_twice_max_abs": float(np.abs(a - again).max()),
        "alone_vs_4_copies_max_abs": float(max(np.abs(x - y).max() for x, y in zip(alone, four, strict=True))),
        "alone_vs_37_copies_max_abs": float(max(np.abs(x - y).max() for x, y in zip(alone, many, strict=True))),
    }, indent=2))


if __name__ == "__main__":
    main()
