"""What the two retrieval training stages (train_embedder, train_reranker) share: whether to train at all and
on which device, the examples with hard negatives they mine, and the marker a trained model carries."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

import pandas as pd

from ragops.training.artifacts import MARKER, file_sha256, reusable, training_key, write_skipped
from ragops.training.data import Example, build_examples, train_positives


class Started(NamedTuple):
    positives: dict[str, set[str]]  # train query id -> its relevant doc ids
    key: str  # the training key the model will carry
    text_of: pd.Series  # query id -> query text
    cfg: dict[str, Any]  # train.<name>
    seed: int
    device: str  # train.<name>.device, one torch sees
    precision: str  # train.<name>.precision resolved for the device: fp32 or bf16
    retriever: Any  # the base retriever (ragops.retrieval.load.load_retriever)
    qids: list[str]  # the train queries, sorted
    examples: list[Example]  # each judged (query, document) pair with its hard negatives (``mine``)


def start(params: dict[str, Any], name: str, code: Sequence) -> Started | None:
    """What training model ``name`` (``train.<name>``, saved at ``paths.<name>``) starts from, or None when
    there is nothing to train: disabled or no train judgments (a skipped marker is written), or a model
    whose training key is unchanged is kept (``train.retrain: on_train_change``). A device the machine lacks
    (``train.<name>.device``) is a ConfigError here, before the corpus is read or a model loaded. Otherwise the
    base retriever mines the examples (``mine``)."""
    from ragops.encode.models import checked_device, training_precision
    from ragops.retrieval.load import load_retriever

    log = logging.getLogger(f"ragops.train_{name}")
    paths, cfg = params["paths"], params["train"][name]
    positives = train_positives(pd.read_parquet(paths["qrels"]))
    if not cfg.get("enabled", True) or not positives:
        reason = f"disabled (train.{name}.enabled)" if positives else "no train judgments in the dataset"
        log.info("%s not trained: %s", name, reason)
        write_skipped(paths[name], reason)
        return None
    # "auto" means one arithmetic on this machine and maybe another elsewhere: the key holds the resolved one
    precision = training_precision(str(cfg["precision"]), str(cfg["device"]))
    key = training_key(params, {**cfg, "precision": precision}, code)
    if reusable(paths[name], key, str(params["train"].get("retrain", "always"))):
        log.info("%s kept: its training key is unchanged (train.retrain: on_train_change; RAGOPS_RETRAIN=1 "
                 "retrains)", name)
        return None
    device = checked_device(str(cfg["device"]), f"train.{name}.device")
    text_of = pd.read_parquet(paths["queries"]).set_index("query_id")["text"]
    retriever, qids, seed = load_retriever(params), sorted(positives), int(params["seed"])
    log.info("%s trains on %s in %s (train.%s.precision: %s)", name, device, precision, name, cfg["precision"])
    return Started(positives, key, text_of, cfg, seed, device, precision, retriever, qids,
                   mine(retriever, positives, text_of, qids, cfg, seed))


def mine(retriever, positives: dict[str, set[str]], text_of, qids: Sequence[str], cfg: dict[str, Any],
         seed: int) -> list[Example]:
    """Each judged (query, document) pair of ``qids`` with ``cfg["negatives"]`` hard negatives drawn (seeded)
    from the query's base dense and BM25 lists, past their first ``skip_top``, among the first ``neg_pool``."""
    return build_examples(positives, mined_runs(retriever, text_of, qids), int(cfg["negatives"]), int(cfg["skip_top"]),
                          int(cfg["neg_pool"]), seed)


def mined_runs(retriever, text_of, qids: Sequence[str]) -> dict[str, list]:
    """Each query's base dense and BM25 lists, ``{query_id: [dense hits, bm25 hits]}``: where hard
    negatives are mined."""
    dense, sparse = retriever.components([text_of[q] for q in qids])
    return {q: [d, s] for q, d, s in zip(qids, dense, sparse, strict=True)}


def marker(params: dict[str, Any], name: str, key: str, result, **counts: Any) -> dict[str, Any]:
    """The ``training.json`` of a model just trained: its key, the corpus, the base model, the seed,
    ``counts`` (examples, queries, ...), the epoch chosen on dev and the training's time."""
    return {
        "trained": True,
        "train_key": key,
        "corpus_chunks_sha256": file_sha256(params["paths"]["chunks"]),  # the corpus it was trained on
        "base": params["embed"]["model"],
        "seed": int(params["seed"]),
        **counts,
        "precision": result.precision,
        "best_epoch": result.best_epoch,
        "dev_ndcg@10_by_epoch": result.dev,
        "steps": result.steps,
        "seconds": round(result.seconds, 1),
        "config": params["train"][name],
    }


__all__ = ["MARKER", "Started", "marker", "mine", "mined_runs", "start"]
