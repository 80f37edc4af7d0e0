"""Choosing the trained pipeline's serving knobs on dev (never test), each trial an MLflow run.

Searched: fusion of BM25 with the fine-tuned dense retriever (``fusion_ft``: the fusion grid of
``ragops.tuning``) and the reranker's ``n`` x ``max_length`` x ``weight`` within the latency budget
(``n * max_length <= budget_tokens``: the cross-encoder reads ~5,500 tokens/s on 2 cores). Each
setting is a nested run under one parent run in the project's tracking store; the winners are
written into params.yaml with the command that found them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ragops.errors import ConfigError
from ragops.evaluation import as_run, qrels_for_split
from ragops.fusion import fuse
from ragops.io import atomic_path
from ragops.metrics import mean_metrics
from ragops.rerank import rerank_hits
from ragops.tuning import fusion_grid


def rerank_grid(ns: list[int], lengths: list[int], weights: list[float], budget_tokens: int) -> list[dict[str, Any]]:
    return [
        {"n": n, "max_length": m, "weight": w} for m in lengths for n in ns for w in weights if n * m <= budget_tokens
    ]


def tune_trained(params: dict[str, Any], split: str, metric: str, budget_tokens: int, log_run=None) -> dict[str, Any]:
    """Best ``fusion_ft`` then best rerank setting on ``split``; ``log_run(name, params, metrics)``
    records each trial. Returns {"fusion_ft": {...}, "rerank": {...}, "trials": [...]}."""
    from ragops.modes import load_router
    from ragops.rerank import CrossEncoderScorer, doc_passage
    from ragops.training.artifacts import effective_reranker

    if split == "test":
        raise ConfigError("refusing to tune on the test split: tune on dev, report on test")
    paths = params["paths"]
    qrels = qrels_for_split(pd.read_parquet(paths["qrels"]), split)
    if not qrels:
        raise ConfigError(f"split {split!r} has no judgments: nothing to tune on")
    texts = pd.read_parquet(paths["queries"]).set_index("query_id")["text"]
    qids = sorted(qrels)
    qtexts = [texts[q] for q in qids]
    router = load_router(params, ["hybrid_ft"])
    dense, sparse = router.ft.components(qtexts)
    trials: list[dict[str, Any]] = []
    best_fusion, best_score = None, -1.0
    for setting in fusion_grid():
        hits = [
            fuse(
                setting["method"],
                [d, s],
                alpha=setting["alpha"],
                norm=setting["norm"],
                rrf_k=setting["rrf_k"],
                k=router.ft.depth,
            )
            for d, s in zip(dense, sparse, strict=True)
        ]
        score = mean_metrics(qrels, as_run(qids, hits), [metric])[metric]
        trials.append({"stage": "fusion_ft", **setting, metric: score})
        if log_run:
            log_run(
                f"fusion_ft {setting['method']} {setting['norm']} {setting['alpha']} {setting['rrf_k']}",
                {"stage": "fusion_ft", **setting},
                {metric: score},
            )
        if score > best_score:
            best_fusion, best_score = setting, score
    first = [
        fuse(
            best_fusion["method"],
            [d, s],
            alpha=best_fusion["alpha"],
            norm=best_fusion["norm"],
            rrf_k=best_fusion["rrf_k"],
            k=router.ft.depth,
        )
        for d, s in zip(dense, sparse, strict=True)
    ]
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
    docs = pd.read_parquet(paths["docs"])
    passage = {d: doc_passage(t, x) for d, t, x in zip(docs["doc_id"], docs["title"], docs["text"], strict=True)}
    best_rerank, best_rr = {"n": 0, "max_length": 128, "weight": 1.0}, best_score
    for length in sorted({g["max_length"] for g in grid}):
        scorer = CrossEncoderScorer(folder, length, 64)
        n_max = max(g["n"] for g in grid if g["max_length"] == length)
        ce = [scorer.score(q, [passage[d] for d in h.ids[:n_max]]) for q, h in zip(qtexts, first, strict=True)]
        for g in (g for g in grid if g["max_length"] == length):
            hits = [rerank_hits(h, s[: g["n"]], g["weight"]) for h, s in zip(first, ce, strict=True)]
            score = mean_metrics(qrels, as_run(qids, hits), [metric])[metric]
            trials.append({"stage": "rerank", **g, metric: score})
            if log_run:
                log_run(
                    f"rerank n={g['n']} len={g['max_length']} w={g['weight']}",
                    {"stage": "rerank", **g},
                    {metric: score},
                )
            if score > best_rr:
                best_rerank, best_rr = g, score
    out.update(rerank=best_rerank, rerank_score=best_rr)
    return out


def write_block(params_file: str | Path, block: str, values: dict[str, Any], command: str) -> None:
    """Rewrite keys of the top-level ``block:`` in params.yaml in place (comments kept), noting the command."""
    lines = Path(params_file).read_text(encoding="utf-8").splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip() == f"{block}:")
    except StopIteration:
        raise ConfigError(f"{params_file}: no top-level `{block}:` block") from None
    out = lines[: start + 1] + [f"  # chosen on dev by: {command}\n"]
    i = start + 1
    keys = "|".join(re.escape(k) for k in values)
    while i < len(lines) and (lines[i].startswith(" ") or not lines[i].strip()):
        line = lines[i]
        i += 1
        if line.strip().startswith("# chosen on dev by:"):
            continue
        m = re.match(rf"^(\s+)({keys}):\s*([^#\n]*?)(\s*#.*)?$", line.rstrip("\n"))
        if m:
            line = f"{m.group(1)}{m.group(2)}: {values[m.group(2)]}{m.group(4) or ''}\n"
        out.append(line)
    out += lines[i:]
    with atomic_path(params_file) as tmp:
        tmp.write_text("".join(out), encoding="utf-8")


def mlflow_logger(params: dict[str, Any], parent_name: str):
    """(context manager, log_run): a parent run in the project's store; log_run adds a nested run."""
    import contextlib

    import mlflow

    from ragops.tracking import RegistryConfig, connect, experiment_id, resolve_store

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
            mlflow.log_metrics({k.replace("@", "_at_"): float(np.round(v, 6)) for k, v in metrics.items()})

    return parent, log_run
