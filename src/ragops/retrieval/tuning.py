"""Choosing fusion settings on the dev split (never on test).

One grid search serves both ``ragops tune-fusion`` (base hybrid, the ``fusion`` block) and
``ragops tune-training`` (``fusion_ft``): every fusion setting with feedback off, then dense
pseudo-relevance feedback (``prf_docs`` x ``prf_beta``) around the best alpha.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ragops.errors import ConfigError
from ragops.eval.evaluation import as_run, qrels_for_split
from ragops.eval.metrics import mean_metrics
from ragops.io import atomic_path
from ragops.retrieval.retriever import FusionConfig, Retriever

PRF_DOCS = (1, 2, 3)
PRF_BETA = (0.2, 0.4, 0.7, 1.0)


def fusion_grid() -> list[dict[str, Any]]:
    off = {"prf_docs": 0, "prf_beta": 0.0}
    grid = [
        {"method": "convex", "norm": norm, "alpha": round(a, 2), "rrf_k": 60, **off}
        for norm, a in itertools.product(("minmax", "zscore"), [i / 20 for i in range(4, 17)])
    ]
    grid += [{"method": "rrf", "norm": "minmax", "alpha": 0.5, "rrf_k": k, **off} for k in (10, 20, 40, 60, 100)]
    return grid


def feedback_grid(best: dict[str, Any]) -> list[dict[str, Any]]:
    """Feedback settings around the best fusion setting (the second search re-weighs dense, so alpha moves)."""
    alphas = [best["alpha"]]
    if best["method"] == "convex":
        alphas = sorted({round(min(0.95, max(0.05, best["alpha"] + d)), 2) for d in (-0.05, 0.0, 0.05, 0.1)})
    keys = ("method", "norm", "alpha", "rrf_k")
    return [
        {**{k: best[k] for k in keys}, "alpha": a, "prf_docs": n, "prf_beta": b}
        for n, b, a in itertools.product(PRF_DOCS, PRF_BETA, alphas)
    ]


def grid_search(
    retriever: Retriever,
    queries: Sequence[str],
    qids: Sequence[str],
    qrels: dict[str, dict[str, int]],
    metric: str,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Every setting of ``fusion_grid``, then ``feedback_grid`` around the best; each result is the
    setting plus ``metric``; best first (ties: the order tried, so feedback must beat plain fusion)."""
    queries = list(queries)
    vecs = retriever.encode(queries)
    dense, sparse = retriever.dense_search(vecs), retriever.bm25_search(queries)

    def trial(setting: dict[str, Any]) -> dict[str, Any]:
        hits = retriever.hybrid(vecs, dense, sparse, FusionConfig(**setting), retriever.depth)
        result = {**setting, metric: round(mean_metrics(qrels, as_run(qids, hits), [metric])[metric], 5)}
        if on_trial:
            on_trial(result)
        return result

    results = [trial(s) for s in fusion_grid()]
    best = min(results, key=lambda r: -r[metric])
    results += [trial(s) for s in feedback_grid(best)]
    order = sorted(range(len(results)), key=lambda i: (-results[i][metric], i))
    return [results[i] for i in order]


def split_queries(params: dict[str, Any], split: str) -> tuple[list[str], list[str], dict[str, dict[str, int]]]:
    """(query ids, query texts, qrels) of a tuning split; refuses test and splits without judgments."""
    if split == "test":
        raise ConfigError("refusing to tune on the test split: tune on dev, report on test")
    paths = params["paths"]
    qrels = qrels_for_split(pd.read_parquet(paths["qrels"]), split)
    if not qrels:
        raise ConfigError(f"split {split!r} has no judgments: nothing to tune on (a dataset without train data?)")
    texts = pd.read_parquet(paths["queries"]).set_index("query_id")["text"]
    qids = sorted(qrels)
    return qids, [texts[q] for q in qids], qrels


def tune_fusion_on_split(params: dict[str, Any], split: str, metric: str) -> list[dict]:
    """The base hybrid's fusion settings scored on ``split``; best first."""
    from ragops.retrieval.load import load_pipeline

    qids, queries, qrels = split_queries(params, split)
    pipeline, _ = load_pipeline(params, ["hybrid"])
    return grid_search(pipeline.retriever("hybrid"), queries, qids, qrels, metric)


def write_block(params_file: str | Path, block: str, values: dict[str, Any], command: str) -> None:
    """Rewrite the keys of the top-level ``block:`` in params.yaml that ``values`` names, in place (every
    comment and other line kept), and record the command that chose them."""
    lines = Path(params_file).read_text(encoding="utf-8").splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip() == f"{block}:")
    except StopIteration:
        raise ConfigError(f"{params_file}: no top-level `{block}:` block") from None
    out = lines[: start + 1] + [f"  # chosen on dev by: {command}\n"]
    i = start + 1
    keys = "|".join(re.escape(k) for k in values)
    seen: set[str] = set()
    while i < len(lines) and (lines[i].startswith(" ") or not lines[i].strip()):
        line = lines[i]
        i += 1
        if line.strip().startswith("# chosen on dev by:"):
            continue
        m = re.match(rf"^(\s+)({keys}):\s*([^#\n]*?)(\s*#.*)?$", line.rstrip("\n"))
        if m:
            line = f"{m.group(1)}{m.group(2)}: {values[m.group(2)]}{m.group(4) or ''}\n"
            seen.add(m.group(2))
        out.append(line)
    end = len(out)
    while end > start + 2 and not out[end - 1].strip():  # new keys go before the block's trailing blank lines
        end -= 1
    if end == len(out) and out and not out[-1].endswith("\n"):
        out[-1] += "\n"
    out[end:end] = [f"  {k}: {v}\n" for k, v in values.items() if k not in seen]
    out += lines[i:]
    with atomic_path(params_file) as tmp:
        tmp.write_text("".join(out), encoding="utf-8")


def write_fusion_params(params_file: str | Path, best: dict[str, Any], command: str) -> None:
    """The fusion settings of ``best`` (other keys, such as the metric, are left out) into ``fusion:``."""
    write_block(params_file, "fusion", {k: v for k, v in best.items() if k in FusionConfig.__dataclass_fields__},
                command)
