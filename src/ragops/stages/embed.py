"""Stage `embed`: chunks.parquet -> embeddings.npy (row i = chunk i), through the content cache."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import pandas as pd
from tqdm import tqdm

from ragops.config import load_params
from ragops.embedding import EmbeddingCache, Encoder, embed_with_cache
from ragops.io import write_json, write_npy
from ragops.logs import setup as setup_logging

log = logging.getLogger("ragops.embed")


def main(params: dict[str, Any]) -> None:
    paths, cfg = params["paths"], params["embed"]
    chunks = pd.read_parquet(paths["chunks"], columns=["text", "n_tokens"])
    encoder = Encoder(cfg["model"], device=cfg.get("device", "cpu"), batch_size=int(cfg["batch_size"]))
    cache = EmbeddingCache(cfg["cache_dir"], encoder.model_id)
    with tqdm(total=len(chunks), desc="embed", unit="chunk") as bar:
        emb, stats = embed_with_cache(
            chunks["text"].tolist(),
            encoder,
            cache,
            encoder.dim,
            block_size=int(cfg.get("block_size", 2048)),
            lengths=chunks["n_tokens"].tolist(),
            progress=bar.update,
        )
    write_npy(paths["embeddings"], emb)
    tps = stats.tokens_encoded / stats.seconds if stats.encoded else 0.0
    write_json(
        paths["embed_stats"],
        {**asdict(stats), "model": cfg["model"], "model_id": encoder.model_id, "dim": encoder.dim,
         "tokens_per_second": round(tps, 1)},
    )
    log.info("%d chunks: %d from cache, %d encoded in %.1fs", stats.total, stats.cached, stats.encoded, stats.seconds)


if __name__ == "__main__":
    setup_logging()
    main(load_params())
