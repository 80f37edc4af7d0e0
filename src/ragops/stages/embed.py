"""Stage `embed`: chunks.parquet -> embeddings.npy (row i = chunk i), through the content cache.

``embed.dask`` picks where the model runs (this process, or a Dask cluster: ragops.encode.dask);
the vectors and the cache are the same either way.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import pandas as pd
from tqdm import tqdm

from ragops.encode.dask import open_encoder
from ragops.encode.encoder import EmbeddingCache, embed_with_cache
from ragops.io import write_json, write_npy
from ragops.timing import run_stage

log = logging.getLogger("ragops.embed")


def main(params: dict[str, Any]) -> None:
    paths, cfg = params["paths"], params["embed"]
    chunks = pd.read_parquet(paths["chunks"], columns=["text", "n_tokens"])
    dask = str(cfg.get("dask", "none"))
    with (
        open_encoder(cfg["model"], cfg.get("device", "cpu"), int(cfg["batch_size"]), dask,
                     str(cfg.get("backend", "torch")), str(cfg.get("onnx_dir", "~/.cache/ragops/onnx"))) as encoder,
        tqdm(total=len(chunks), desc="embed", unit="chunk") as bar,
    ):
        cache = EmbeddingCache(cfg["cache_dir"], encoder.model_id)
        emb, stats = embed_with_cache(
            chunks["text"].tolist(),
            encoder,
            cache,
            encoder.dim,
            block_size=int(cfg.get("block_size", 2048)),
            lengths=chunks["n_tokens"].tolist(),
            progress=bar.update,
            map_blocks=getattr(encoder, "map_blocks", None),
        )
    write_npy(paths["embeddings"], emb)
    tps = stats.tokens_encoded / stats.seconds if stats.encoded else 0.0
    write_json(
        paths["embed_stats"],
        {**asdict(stats), "model": cfg["model"], "model_id": encoder.model_id, "dim": encoder.dim,
         "tokens_per_second": round(tps, 1), "dask": dask,
         "backend": str(cfg.get("backend", "torch"))},
    )
    log.info("%d chunks: %d from cache, %d encoded in %.1fs", stats.total, stats.cached, stats.encoded, stats.seconds)


if __name__ == "__main__":
    run_stage("embed", main)
