"""Stage `sentences`: docs.parquet -> the sentence store the answerer reads (``paths.sentences``).

Every text an answer encodes of its documents (``ragops.answer.vectors.sentence_texts``: titles, sentences,
sentences without their abstract heading) is encoded here once, by the query encoder that search and answers
use (``embed.model`` under ``embed.query_backend``), through the embedding cache: a rerun after a small corpus
edit encodes only the new sentences; ``embed.dask`` runs the encoding on a Dask cluster, as in the `embed`
stage. At answer time only the question and the claims are left to encode.

The output is one segment in the embedding cache's format (``<model_id[:16]>/seg-*.keys.npy`` + ``.vecs.npy``,
keys sorted, a fixed name) and ``meta.json`` (model id, count, dim): the same corpus and encoder give the same
files, so a rerun that changed nothing leaves the downstream stages up to date. ``answer.sentence_vectors:
false`` writes an empty store (meta only): answers then encode their sentences.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from ragops.answer.vectors import STORE_META, sentence_texts
from ragops.encode.dask import open_encoder
from ragops.encode.encoder import EmbeddingCache, cache_keys, embed_with_cache
from ragops.encode.models import DEFAULT_ONNX_DIR
from ragops.io import atomic_dir, write_json
from ragops.retrieval.load import query_backend, query_batch_size
from ragops.timing import run_stage

log = logging.getLogger("ragops.sentences")
SEGMENT = "seg-00000000000000000000-0"


def main(params: dict[str, Any]) -> dict[str, Any]:
    """Build the store; returns what was encoded (``count``, ``encoded``, ``cached``, ``seconds``), also logged."""
    paths, emb = params["paths"], params["embed"]
    docs = pd.read_parquet(paths["docs"], columns=["title", "text"])
    with atomic_dir(paths["sentences"]) as tmp:
        if not params["answer"].get("sentence_vectors", True):
            write_json(tmp / STORE_META, {"count": 0, "reason": "answer.sentence_vectors is false"})
            log.info("answer.sentence_vectors is false: an empty store")
            return {"count": 0, "encoded": 0, "cached": 0, "seconds": 0.0}
        backend = query_backend(emb)
        texts = sentence_texts(docs["title"].tolist(), docs["text"].tolist())
        with (
            open_encoder(emb["model"], emb.get("device", "cpu"), query_batch_size(backend, int(emb["batch_size"])),
                         str(emb.get("dask", "none")), backend, str(emb.get("onnx_dir", DEFAULT_ONNX_DIR)))
            as encoder,
            tqdm(total=len(texts), desc="sentences", unit="text", mininterval=5) as bar,
        ):
            vecs, stats = embed_with_cache(texts, encoder, EmbeddingCache(emb["cache_dir"], encoder.model_id),
                                           encoder.dim, block_size=int(emb.get("block_size", 2048)),
                                           progress=bar.update, map_blocks=getattr(encoder, "map_blocks", None))
        keys = cache_keys(encoder.model_id, texts)
        order = np.argsort(keys, kind="stable")
        seg = tmp / encoder.model_id[:16]
        seg.mkdir()
        # vectors before keys, as the embedding cache writes a segment: a reader never sees keys without vectors
        np.save(seg / f"{SEGMENT}.vecs.npy", np.ascontiguousarray(vecs[order], dtype=np.float32), allow_pickle=False)
        np.save(seg / f"{SEGMENT}.keys.npy", keys[order], allow_pickle=False)
        # what was stored, not how long it took: the same corpus and encoder give the same output
        write_json(tmp / STORE_META, {"count": len(texts), "dim": int(encoder.dim), "model_id": encoder.model_id,
                                      "backend": backend, "documents": len(docs)})
    log.info("%d texts of %d documents: %d from the embedding cache, %d encoded in %.1fs",
             len(texts), len(docs), stats.cached, stats.encoded, stats.seconds)
    return {"count": len(texts), "encoded": stats.encoded, "cached": stats.cached, "seconds": stats.seconds}


if __name__ == "__main__":
    run_stage("sentences", main)
