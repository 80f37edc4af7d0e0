"""Stage `evaluate`: every split x mode -> reports/metrics.json, per_query.csv and plot data.

``metrics.json`` also says where each split's judgments come from (``judgments``: gold, human, silver or
mixed; prepare's ``judgment_sources``), so every report built on it can mark silver figures as such. Without
any judgments (your own documents, nothing judged yet) it records ``status: no judgments`` and no figures
instead of failing: the pipeline still builds, registers (``ragops.stages.register``) and serves."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from ragops.answer.rag_eval import answer_metrics
from ragops.eval.evaluation import DEFAULT_METRICS, evaluate_mode, qrels_for_split, summarize
from ragops.io import atomic_dir, read_json, write_csv, write_json
from ragops.retrieval.load import available_modes, load_pipeline, local_parts
from ragops.timing import run_stage

log = logging.getLogger("ragops.evaluate")
NO_JUDGMENTS = "no judgments"


def main(params: dict[str, Any]) -> None:
    paths, cfg = params["paths"], params["evaluate"]
    have = available_modes(local_parts(params))
    modes = [m for m in cfg["modes"] if m in have]
    skipped = [m for m in cfg["modes"] if m not in have]
    if skipped:  # no train judgments (or training disabled): the trained modes do not exist
        log.info("not evaluated (their models were not trained): %s", ", ".join(skipped))
    pipeline, _ = load_pipeline(params, modes)  # base, fine-tuned and reranking modes (ragops.retrieval.pipeline)
    pipeline, memo = cache_rerank_scores(pipeline, params["embed"]["cache_dir"])
    latency_splits = set(cfg.get("latency_splits", cfg["splits"]))
    queries = pd.read_parquet(paths["queries"])
    text_of = dict(zip(queries["query_id"], queries["text"], strict=True))
    qrels = pd.read_parquet(paths["qrels"])
    metrics: dict[str, dict[str, dict[str, float]]] = {}
    rows: list[dict[str, Any]] = []
    for split in cfg["splits"]:
        split_qrels = qrels_for_split(qrels, split)
        if not split_qrels:
            log.info("split %s: no judgments, skipped", split)
            continue
        qids = sorted(split_qrels)
        texts = [text_of[q] for q in qids]
        metrics[split] = {}
        for mode in modes:
            n_latency = int(cfg.get("latency_sample", 100)) if split in latency_splits else 0
            res = evaluate_mode(pipeline, qids, texts, split_qrels, mode, DEFAULT_METRICS, n_latency,
                                int(params["seed"]))
            if memo is not None:
                memo.flush()
            metrics[split][mode] = summarize(res)
            rows += [{"split": split, "mode": mode, "query_id": q, **m} for q, m in res.per_query.items()]
            log.info("%s %-7s %s", split, mode, metrics[split][mode])
    sources = read_json(paths["prepare_stats"]).get("judgment_sources", {})
    if metrics:
        metrics["judgments"] = {split: sources.get(split, "gold") for split in metrics}
    else:
        log.warning("evaluate: no judgments in splits %s: no retrieval figures (status recorded in %s)",
                    ", ".join(cfg["splits"]), paths["metrics"])
        metrics = {"status": NO_JUDGMENTS}
    per_query = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["split", "mode", "query_id", *DEFAULT_METRICS])
    metrics.update(answer_metrics(paths.get("grounding_report"), paths.get("rag_report")))  # issue 6
    write_json(paths["metrics"], metrics)
    write_csv(paths["per_query"], per_query)
    write_plots(per_query, Path(paths["plots"]))


def cache_rerank_scores(pipeline, cache_dir: str):
    """(pipeline, memo): batch evaluation reads cross-encoder scores through the embedding cache (keyed by
    the reranker's fingerprint, max_length and the pair's text); latency is always measured on fresh scoring.
    A scorer whose pair scores depend on the list (the int8 ONNX one) is not cached: it scores each query's
    list fresh, exactly as a server does."""
    from ragops.encode.encoder import CachedEncoder
    from ragops.retrieval.rerank import PairEncoder

    reranker = pipeline.reranker
    if reranker is None or reranker.model is None or getattr(reranker.model, "list_dependent", False):
        return pipeline, None
    memo = CachedEncoder(PairEncoder(reranker.model), cache_dir)
    cached = reranker.with_cache(lambda query, passages: memo(PairEncoder.join(query, passages))[:, 0])
    return pipeline.with_reranker(cached), memo


def write_plots(per_query: pd.DataFrame, out: Path) -> None:
    """Plot data for `dvc plots`: per-query nDCG@10 of every mode side by side, per split."""
    with atomic_dir(out) as tmp:  # the folder as a whole: a split no longer evaluated leaves no stale file
        if per_query.empty:
            return
        wide = per_query.pivot_table(index=["split", "query_id"], columns="mode", values="ndcg@10").reset_index()
        for split, frame in wide.groupby("split"):
            write_csv(tmp / f"ndcg_{split}.csv", frame.drop(columns="split").round(4))


if __name__ == "__main__":
    run_stage("evaluate", main)
