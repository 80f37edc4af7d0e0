"""Choosing the trained pipeline's serving knobs on dev (never test), each trial an MLflow run.

Searched: fusion of BM25 with the fine-tuned dense retriever (``fusion_ft``: the fusion grid of
``ragops.retrieval.tuning``) and the reranker's ``n`` x ``max_length`` x ``weight`` within the latency budget
(``n * max_length <= budget_tokens``: the cross-encoder reads ~5,500 tokens/s on 2 cores). Each
setting is a nested run under one parent run in the project's tracking store; the winners are
written into params.yaml with the command that found them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ragops.eval.evaluation import as_run
from ragops.eval.metrics import mean_metrics
from ragops.retrieval.rerank import rerank_hits
from ragops.retrieval.retriever import FusionConfig
from ragops.retrieval.tuning import grid_search, split_queries, write_block

__all__ = ["rerank_grid", "tune_trained", "write_block", "mlflow_logger"]


def rerank_grid(ns: list[int], lengths: list[int], weights: list[float], budget_tokens: int) -> list[dict[str, Any]]:
    return [
        {"n": n, "max_length": m, "weight": w} for m in lengths for n in ns for w in weights if n * m <= budget_tokens
    ]


def tune_trained(params: dict[str, Any], split: str, metric: str, budget_tokens: int, log_run=None) -> dict[str, Any]:
    """Best ``fusion_ft`` (fusion then feedback grid) then best rerank setting on ``split``;
    ``log_run(name, params, metrics)`` records each trial. Returns {"fusion_ft", "rerank", "trials", ...}."""
    from ragops.retrieval.load import load_pipeline, load_reranker
    from ragops.training.artifacts import effective_reranker

    qids, qtexts, qrels = split_queries(params, split)
    pipeline, docs = load_pipeline(params, ["hybrid_ft"])
    trials: list[dict[str, Any]] = []

    def on_trial(result: dict[str, Any]) -> None:
        trials.append({"stage": "fusion_ft", **result})
        if log_run:
            setting = {k: v for k, v in result.items() if k != metric}
            name = " ".join(str(v) for v in setting.values())
            log_run(f"fusion_ft {name}", {"stage": "fusion_ft", **setting}, {metric: result[metric]})

    ft = pipeline.retriever("hybrid_ft")
    ranked = grid_search(ft, qtexts, qids, qrels, metric, on_trial)
    best_fusion = {k: v for k, v in ranked[0].items() if k != metric}
    best_score = ranked[0][metric]
    vecs = ft.encode(qtexts)
    first = ft.hybrid(vecs, ft.dense_search(vecs), ft.bm25_search(qtexts), FusionConfig(**best_fusion), ft.depth)
    out: dict[str, Any] = {"fusion_ft": best_fusion, "fusion_ft_score": best_score, "trials": trials}
    folder = effective_reranker(params)
    if folder is None:
        return out
    cfg = params["train"].get("tune", {})
    grid = rerank_grid(
        list(cfg.get("n", [5, 10, 15, 20])),
        list(cfg.get("max_length", [128, 160])),
        list(cfg.get("weight", [0.3, 0.5, 0.7, 0.85, 1.0])),
        budget_tokens,
    )
    # the best reranking setting within the budget, even when it does not beat the first stage: whether
    # reranking is worth serving is the registry's choice of mode (registry.mode: auto), made on dev too
    best_rerank, best_rr = None, float("-inf")
    backend = {"backend": params["rerank"].get("backend", "torch"), "batch_size": 64}
    onnx_dir = params["embed"].get("onnx_dir")
    for length in sorted({g["max_length"] for g in grid}):
        reranker = load_reranker(folder, {"max_length": length, **backend}, docs, onnx_dir)
        # scores of each query's top n; a list-dependent scorer (int8 ONNX) scores every n's list as served
        ns = sorted({g["n"] for g in grid if g["max_length"] == length})
        if not getattr(reranker.model, "list_dependent", False):
            ns = ns[-1:]
        pairs = list(zip(qtexts, first, strict=True))
        ce = {n: [reranker.score(q, [reranker.passages[d] for d in h.ids[:n]]) for q, h in pairs] for n in ns}
        for g in (g for g in grid if g["max_length"] == length):
            scores = ce.get(g["n"]) or ce[ns[-1]]
            hits = [rerank_hits(h, s[: g["n"]], g["weight"]) for h, s in zip(first, scores, strict=True)]
            score = mean_metrics(qrels, as_run(qids, hits), [metric])[metric]
            trials.append({"stage": "rerank", **g, metric: score})
            if log_run:
                name = f"rerank n={g['n']} len={g['max_length']} w={g['weight']}"
                log_run(name, {"stage": "rerank", **g}, {metric: score})
            if score > best_rr:
                best_rerank, best_rr = g, score
    if best_rerank is None:
        return out
    out.update(rerank=best_rerank, rerank_score=best_rr, rerank_gain=best_rr - best_score)
    return out


def mlflow_logger(params: dict[str, Any], parent_name: str):
    """(context manager, log_run): a parent run in the project's store; log_run adds a nested run."""
    import contextlib

    import mlflow

    from ragops.registry.tracking import RegistryConfig, connect, experiment_id, resolve_store

    cfg = RegistryConfig.from_params(params.get("registry"))
    store = resolve_store(cfg, Path.cwd())
    client = connect(store)
    exp = experiment_id(client, f"{cfg.experiment}-tuning", store.artifact_location)

    @contextlib.contextmanager
    def parent():
        with mlflow.start_run(experiment_id=exp, run_name=parent_name) as run:
            yield run

    def log_run(name: str, trial: dict[str, Any], metrics: dict[str, float]) -> None:
        with mlflow.start_run(experiment_id=exp, run_name=name, nested=True):
            mlflow.log_params({k: str(v) for k, v in trial.items()})
            mlflow.log_metrics({k.replace("@", "_at_"): round(float(v), 6) for k, v in metrics.items()})

    return parent, log_run
