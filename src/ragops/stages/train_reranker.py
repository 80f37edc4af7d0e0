"""Stage `train_reranker`: a cross-encoder from the MiniLM weights, trained on train queries ->
models/reranker/.

Groups are (query, positive, hard negatives from the base dense and BM25 lists: the documents the
reranker sees at query time). The epoch is chosen on dev by nDCG@10 of the reranked candidates. Without
train judgments, or with ``train.reranker.enabled: false``, it writes only a marker.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ragops.dagdeps import training_code
from ragops.encode.models import resolve_model, set_dropout
from ragops.eval.evaluation import as_run, qrels_for_split
from ragops.eval.metrics import mean_metrics
from ragops.io import atomic_dir, write_json
from ragops.retrieval.records import Hits
from ragops.retrieval.rerank import doc_passage, rerank_hits
from ragops.stages.train_embedder import train_config
from ragops.timing import run_stage
from ragops.training.data import build_examples, interleave
from ragops.training.reranker import init_cross_encoder, train_cross_encoder
from ragops.training.stage import MARKER, marker, start

log = logging.getLogger("ragops.train_reranker")
# the training code, part of the training key: every file this stage runs (its dvc.yaml code deps)
CODE = training_code("train_reranker")


def main(params: dict[str, Any]) -> None:
    job = start(params, "reranker", CODE)
    if job is None:
        return
    docs = pd.read_parquet(params["paths"]["docs"])
    passage = {d: doc_passage(t, x) for d, t, x in zip(docs["doc_id"], docs["title"], docs["text"], strict=True)}
    paths, key, text_of, cfg, seed, device = params["paths"], job.key, job.text_of, job.cfg, job.seed, job.device
    retriever, qids, examples = job.retriever, job.qids, job.examples
    n = min(len(ex.negatives) for ex in examples) + 1
    queries = [text_of[ex.query_id] for ex in examples]
    groups = [[passage[ex.positive], *(passage[d] for d in ex.negatives)][:n] for ex in examples]
    log.info("%d groups from %d train queries, %d passages each", len(examples), len(qids), n)
    extra_q, extra_groups = title_groups(docs, retriever, int(cfg.get("title_queries", 0)), n, cfg, seed)
    if extra_q:
        log.info("%d more groups: corpus titles as queries for their own abstracts", len(extra_q))
        queries, groups = queries + extra_q, groups + extra_groups

    model, tok = init_cross_encoder(resolve_model(params["embed"]["model"]), seed, int(cfg.get("layers", 0)), device)
    set_dropout(model, cfg.get("attention_dropout"), cfg.get("hidden_dropout"), "train.reranker")
    max_length = int(cfg["max_length"])
    dev_score = dev_scorer(params, retriever, text_of, passage, tok, max_length)
    result = train_cross_encoder(model, tok, queries, groups, max_length, train_config(cfg, seed, job.precision),
                                 dev_score)
    with atomic_dir(paths["reranker"]) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))
        write_json(tmp / MARKER, marker(params, "reranker", key, result, groups=len(examples),
                                        train_queries=len(qids), group_size=n))
    log.info("reranker: best epoch %d, dev by epoch %s, %.0fs", result.best_epoch, result.dev, result.seconds)


def title_groups(docs: pd.DataFrame, retriever, count: int, size: int, cfg: dict[str, Any], seed: int):
    """(queries, groups): ``count`` seeded corpus documents whose title (a claim-like sentence in a
    scientific collection) becomes a query for its own abstract, with hard negatives mined by the same base
    lists as for the judged queries. Every passage is an abstract without its title, so the title cannot be
    matched verbatim. Reads the corpus only (no judgments): more training signal than ~650 judged queries."""
    if count <= 0:
        return [], []
    titled = docs[docs["title"].fillna("").str.split().str.len() >= 4]
    rows = titled.sample(n=min(count, len(titled)), random_state=seed) if len(titled) else titled
    titles, ids = rows["title"].astype(str).tolist(), rows["doc_id"].astype(str).tolist()
    abstract = dict(zip(docs["doc_id"].astype(str), docs["text"].astype(str), strict=True))
    dense, sparse = retriever.components(titles)
    runs = {d: [x, y] for d, x, y in zip(ids, dense, sparse, strict=True)}
    examples = build_examples({d: {d} for d in ids}, runs, size - 1, int(cfg["skip_top"]), int(cfg["neg_pool"]), seed)
    by_id = dict(zip(ids, titles, strict=True))
    kept = [ex for ex in examples if len(ex.negatives) >= size - 1]
    return ([by_id[ex.query_id] for ex in kept],
            [[abstract[ex.positive], *(abstract[d] for d in ex.negatives[: size - 1])] for ex in kept])


def dev_scorer(params, retriever, text_of, passage: dict[str, str], tok, max_length: int):
    """Dev nDCG@10 of a checkpoint reranking the first ``dev_n`` documents of the base dense and BM25
    lists interleaved (no fusion settings: tuning fusion never retrains the reranker)."""
    import torch

    dev = qrels_for_split(pd.read_parquet(params["paths"]["qrels"]), "dev")
    n = int(params["train"]["reranker"]["dev_n"])
    if not dev or n <= 0:
        return None
    qids = sorted(dev)
    qtexts = [text_of[q] for q in qids]
    pools = [interleave([d, s], 100) for d, s in zip(*retriever.components(qtexts), strict=True)]
    hybrid = [Hits(p, -np.arange(len(p), dtype=np.float64)) for p in pools]

    def score(model) -> float:
        out = []
        with torch.inference_mode():
            for q, h in zip(qtexts, hybrid, strict=True):
                top = h.ids[:n]
                feats = tok(
                    [q] * len(top),
                    [passage[d] for d in top],
                    truncation="longest_first",
                    max_length=max_length,
                    padding=True,
                    return_tensors="pt",
                )
                out.append(rerank_hits(h, model(**feats.to(model.device)).logits[:, 0].float().cpu().numpy()))
        return mean_metrics(dev, as_run(qids, out), ["ndcg@10"])["ndcg@10"]

    return score


if __name__ == "__main__":
    run_stage("train_reranker", main)
