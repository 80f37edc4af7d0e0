"""Stage `train_embedder`: fine-tune the embedding model on train queries -> models/embedder/.

Hard negatives come from the base BM25 and dense retrievers; the epoch is chosen on dev (scored on
fixed pools of the base retrievers' top documents). Without train judgments, or with
``train.embedder.enabled: false``, it writes only a marker and everything uses the base model.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ragops.dagdeps import training_code
from ragops.eval.evaluation import qrels_for_split
from ragops.io import atomic_dir, read_npy, write_json
from ragops.timing import run_stage
from ragops.training.data import best_chunk_rows, interleave
from ragops.training.embedder import TrainConfig, rerank_pool_score, train_bi_encoder
from ragops.training.stage import MARKER, marker, start

log = logging.getLogger("ragops.train_embedder")
# the training code, part of the training key: every file this stage runs (its dvc.yaml code deps)
CODE = training_code("train_embedder")


def train_config(cfg: dict[str, Any], seed: int, precision: str = "fp32") -> TrainConfig:
    return TrainConfig(
        epochs=int(cfg["epochs"]),
        lr=float(cfg["lr"]),
        batch_size=int(cfg["batch_size"]),
        warmup=float(cfg.get("warmup", 0.1)),
        max_steps=int(cfg.get("max_steps", 0)),
        head_lr=float(cfg.get("head_lr", 0.0)),
        seed=seed,
        precision=precision,
    )


def main(params: dict[str, Any]) -> None:
    job = start(params, "embedder", CODE)
    if job is None:
        return
    from ragops.encode.models import load_sentence_transformer, set_dropout

    chunks = pd.read_parquet(params["paths"]["chunks"], columns=["doc_id", "text"])
    doc_rows = chunks.groupby("doc_id").indices
    paths, positives, key, text_of = params["paths"], job.positives, job.key, job.text_of
    cfg, seed, device = job.cfg, job.seed, job.device
    retriever, qids, examples = job.retriever, job.qids, job.examples
    # Each doc is read through its chunk closest to the query under the base model (MaxP's chunk).
    qpos = {q: i for i, q in enumerate(qids)}
    qvecs = retriever.encode([text_of[q] for q in qids])
    chunk_vecs = read_npy(paths["embeddings"], mmap=True)
    docs_of = [(ex.positive, *ex.negatives) for ex in examples]
    rows = best_chunk_rows(
        qvecs,
        chunk_vecs,
        doc_rows,
        [(qpos[ex.query_id], d) for ex, ds in zip(examples, docs_of, strict=True) for d in ds],
    )
    texts, it = chunks["text"].tolist(), iter(rows)
    passages = [[texts[next(it)] for _ in ds] for ds in docs_of]
    n_neg = min(len(ds) - 1 for ds in docs_of)
    log.info("%d examples from %d train queries, %d hard negatives each", len(examples), len(qids), n_neg)

    model = load_sentence_transformer(params["embed"]["model"], device=device)
    model.max_seq_length = int(cfg["max_seq_length"])
    set_dropout(model, cfg["attention_dropout"], cfg.get("hidden_dropout"), "train.embedder")
    dev_score, dev_untrained = dev_scorer(params, retriever, text_of, chunks, chunk_vecs, int(cfg["dev_pool"]),
                                          job.precision)
    tcfg = train_config(cfg, seed, job.precision)
    result = train_bi_encoder(
        model,
        [text_of[ex.query_id] for ex in examples],
        [p[0] for p in passages],
        [p[1 : 1 + n_neg] for p in passages],
        [positives[ex.query_id] for ex in examples],
        [list(ds) for ds in docs_of],
        tcfg,
        dev_score,
        dev_untrained,
    )
    with atomic_dir(paths["embedder"]) as tmp:
        model.save(str(tmp), safe_serialization=True)
        write_json(tmp / MARKER, marker(params, "embedder", key, result, examples=len(examples),
                                        train_queries=len(qids), negatives=n_neg))
    log.info("embedder: best epoch %d, dev by epoch %s, %.0fs", result.best_epoch, result.dev, result.seconds)


def dev_scorer(params, retriever, text_of, chunks: pd.DataFrame, chunk_vecs, pool: int, precision: str = "fp32"):
    """Dev nDCG@10 of a checkpoint on each dev query's pool: the first ``pool`` documents of the base
    dense and BM25 lists interleaved. The checkpoint encodes under the training's ``precision`` (bf16: 1.7x
    faster on an AVX512-BF16 CPU, vectors at cosine >= 0.99997 of fp32: bench/dev_selection.py)."""
    from ragops.encode.models import autocast

    dev = qrels_for_split(pd.read_parquet(params["paths"]["qrels"]), "dev")
    if not dev or pool <= 0:
        return None, None
    qids = sorted(dev)
    qtexts = [text_of[q] for q in qids]
    pools = [interleave([d, s], pool) for d, s in zip(*retriever.components(qtexts), strict=True)]
    doc_chunks = chunks.groupby("doc_id")["text"].apply(list).to_dict()

    def score(model) -> float:
        def encode(texts: list[str]):
            with autocast(precision, str(model.device)):
                return model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)

        return rerank_pool_score(encode, qtexts, pools, doc_chunks, dev, qids)

    # The untrained model's score from the base vectors on disk (the same model: no re-encoding).
    row_of = {t: i for i, t in enumerate(chunks["text"].tolist())}
    base_queries = retriever.encode(qtexts)

    def base_encode(texts: list[str]):
        if len(texts) == len(qtexts) and list(texts) == qtexts:
            return base_queries
        return np.asarray(chunk_vecs[[row_of[t] for t in texts]])

    return score, rerank_pool_score(base_encode, qtexts, pools, doc_chunks, dev, qids)


if __name__ == "__main__":
    run_stage("train_embedder", main)
