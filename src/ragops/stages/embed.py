"""Stage `embed`: chunks.parquet -> embeddings.npy (row i = chunk i), through the content cache.

``embed.dask`` picks where the model runs (this process, or a Dask cluster: ragops.encode.dask);
the vectors and the cache are the same either way. When the cache already holds every chunk's vector
and knows the model (ragops.encode.identity), no model is loaded at all.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from ragops.encode.encoder import EmbedStats
from ragops.encode.identity import Identity, from_cache, remember
from ragops.encode.models import DEFAULT_ONNX_DIR
from ragops.io import write_json, write_npy
from ragops.timing import run_stage

log = logging.getLogger("ragops.embed")


def encode(texts: list[str], lengths: list[int], cfg: dict[str, Any]) -> tuple[np.ndarray, EmbedStats, Identity]:
    """Load the encoder (here or on Dask) and embed what the cache lacks; records the model's identity."""
    from tqdm import tqdm

    from ragops.encode.dask import open_encoder
    from ragops.encode.encoder import EmbeddingCache, embed_with_cache

    backend = str(cfg.get("backend", "torch"))
    with (
        open_encoder(cfg["model"], cfg.get("device", "cpu"), int(cfg["batch_size"]), str(cfg.get("dask", "none")),
                     backend, str(cfg.get("onnx_dir", DEFAULT_ONNX_DIR))) as encoder,
        tqdm(total=len(texts), desc="embed", unit="chunk") as bar,
    ):
        identity = Identity(encoder.model_id, int(encoder.dim))
        emb, stats = embed_with_cache(
            texts,
            encoder,
            EmbeddingCache(cfg["cache_dir"], encoder.model_id),
            encoder.dim,
            block_size=int(cfg.get("block_size", 2048)),
            lengths=lengths,
            progress=bar.update,
            map_blocks=getattr(encoder, "map_blocks", None),
        )
    remember(cfg["cache_dir"], cfg["model"], backend, identity)
    return emb, stats, identity


def main(params: dict[str, Any]) -> None:
    paths, cfg = params["paths"], params["embed"]
    chunks = pd.read_parquet(paths["chunks"], columns=["text", "n_tokens"])
    texts, backend = chunks["text"].tolist(), str(cfg.get("backend", "torch"))
    hit = from_cache(texts, cfg["cache_dir"], cfg["model"], backend)
    if hit is not None:
        emb, stats, identity = hit
        log.info("every chunk's vector is in the embedding cache: no model loaded")
    else:
        emb, stats, identity = encode(texts, chunks["n_tokens"].tolist(), cfg)
    write_npy(paths["embeddings"], emb)
    tps = stats.tokens_encoded / stats.seconds if stats.encoded else 0.0
    write_json(
        paths["embed_stats"],
        {**asdict(stats), "model": cfg["model"], "model_id": identity.model_id, "dim": identity.dim,
         "tokens_per_second": round(tps, 1), "dask": str(cfg.get("dask", "none")), "backend": backend},
    )
    log.info("%d chunks: %d from cache, %d encoded in %.1fs", stats.total, stats.cached, stats.encoded, stats.seconds)


if __name__ == "__main__":
    run_stage("embed", main)
