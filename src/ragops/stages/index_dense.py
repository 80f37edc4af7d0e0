"""Stage `index_dense`: embeddings.npy -> FAISS index (flat, ivf or hnsw by name)."""

from __future__ import annotations

import logging
from typing import Any

from ragops.io import read_npy
from ragops.retrieval.index.dense import DenseConfig, build_dense, save_dense
from ragops.timing import run_stage

log = logging.getLogger("ragops.index_dense")


def main(params: dict[str, Any]) -> None:
    paths = params["paths"]
    cfg = DenseConfig.from_params(params["index"]["dense"])
    emb = read_npy(paths["embeddings"])
    index = build_dense(emb, cfg, seed=int(params["seed"]))
    save_dense(index, cfg, paths["faiss"])
    log.info("%s index over %d vectors of dim %d", cfg.kind, emb.shape[0], emb.shape[1])


if __name__ == "__main__":
    run_stage("index_dense", main)
