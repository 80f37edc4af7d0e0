"""Fine-tuning the bi-encoder: MultipleNegativesRankingLoss with mined hard negatives.

Loss (Henderson et al. 2017; Karpukhin et al. 2020): for a batch of queries q_i with positives p_i
and hard negatives n_ik, ``CE(scale * cos(q_i, [p_1..p_B, n_11..n_BK]), i)``: every other passage
of the batch is a negative too, except those known relevant to q_i (masked, not punished).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger("ragops.training")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 1
    lr: float = 3e-5
    batch_size: int = 32
    warmup: float = 0.1  # share of steps with a linear warm-up
    max_steps: int = 0  # >0 stops early (the tiny test profile)
    seed: int = 42
    scale: float = 20.0  # MNRL temperature (sentence-transformers default)
    head_lr: float = 0.0  # >0: learning rate of a new head (params named classifier.*/pooler.*)
    precision: str = "fp32"  # fp32 | bf16: the forward passes under bf16 autocast (ragops.encode.models.autocast)


@dataclass
class TrainResult:
    best_epoch: int  # 0 = the untrained model scored best on dev
    dev: list[float] = field(default_factory=list)  # dev score per epoch, epoch 0 = before training
    seconds: float = 0.0
    steps: int = 0
    precision: str = "fp32"


def set_seed(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def linear_schedule(optimizer, warmup_steps: int, total_steps: int):
    import torch

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fit_with_selection(
    model,
    step_fn: Callable[[np.ndarray], float],
    n_examples: int,
    cfg: TrainConfig,
    dev_score: Callable[[object], float] | None,
    dev_untrained: float | None = None,
) -> TrainResult:
    """The loop both models share: seeded batches, AdamW + linear schedule, dev score after each
    epoch, and the best epoch's weights restored at the end (epoch 0 = untouched model)."""
    import torch

    from ragops.encode.models import adamw

    set_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    steps_per_epoch = math.ceil(n_examples / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps > 0:
        total = min(total, cfg.max_steps)
    # A fresh head needs a far larger step than the pretrained encoder, or a few hundred steps move it nowhere.
    head = [p for n, p in model.named_parameters() if cfg.head_lr > 0 and n.startswith(("classifier", "pooler"))]
    body = [p for n, p in model.named_parameters() if not (cfg.head_lr > 0 and n.startswith(("classifier", "pooler")))]
    groups = [{"params": body, "lr": cfg.lr}] + ([{"params": head, "lr": cfg.head_lr}] if head else [])
    opt = adamw(groups, cfg.lr)
    sched = linear_schedule(opt, int(cfg.warmup * total), total)
    result = TrainResult(best_epoch=0, precision=cfg.precision)
    t0 = time.perf_counter()
    best_state = None
    if dev_score is not None:
        # the untrained score may come precomputed (the base vectors are already on disk)
        result.dev.append(dev_untrained if dev_untrained is not None else dev_score(model))
        best_state = copy.deepcopy(model.state_dict())
        log.info("epoch 0 (untrained): dev %.4f", result.dev[0])
    step = 0
    from ragops.logs import Progress
    from ragops.training.data import batches

    progress = Progress(log, "training", total)

    for epoch in range(1, cfg.epochs + 1):
        model.train()
        losses = []
        for batch in batches(n_examples, cfg.batch_size, rng):
            if step >= total:
                break
            loss = step_fn(batch)
            losses.append(loss)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            progress.step(step, float(np.mean(losses[-50:])))
        model.eval()
        log.info(
            "epoch %d: %d steps, loss %.4f, %.0fs", epoch, step, float(np.mean(losses or [0])), time.perf_counter() - t0
        )
        if dev_score is not None:
            result.dev.append(dev_score(model))
            log.info("epoch %d: dev %.4f", epoch, result.dev[-1])
            if result.dev[-1] > max(result.dev[:-1]):
                result.best_epoch = epoch
                best_state = copy.deepcopy(model.state_dict())
        else:
            result.best_epoch = epoch
        if step >= total:
            break
    if best_state is not None:  # the best epoch on dev (epoch 0: training did not help, keep the original)
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - t0
    result.steps = step
    return result


# The passages of an MNRL step (positives and negatives, up to 256 tokens) run through the encoder in length-sorted
# groups of this many, each padded to its own longest, instead of one forward padded to the longest of all: the
# same vectors (padding is masked) and the same loss over the whole batch (every passage still a negative of every
# other query), about a tenth fewer tokens on SciFact's chunks (bench/dropout_step.py).
PASSAGE_GROUP = 16


def by_length(feats: dict, group: int) -> list[dict]:
    """``feats`` (a padded tokenization: tensors of one row per text) cut into length-sorted groups of ``group``
    rows, each trimmed to its own longest row; :func:`inverse_order` puts their outputs back in input order."""
    lengths = feats["attention_mask"].sum(dim=1)
    order = lengths.argsort(stable=True)
    parts = []
    for start in range(0, len(order), group):
        rows = order[start : start + group]
        width = int(lengths[rows].max())
        parts.append({k: v[rows, :width] if hasattr(v, "dim") and v.dim() == 2 else v for k, v in feats.items()})
    return parts


def inverse_order(feats: dict):
    """The index that maps the concatenated outputs of :func:`by_length`'s groups back to the input order."""
    return feats["attention_mask"].sum(dim=1).argsort(stable=True).argsort()


def mnrl_step(
    model, queries: Sequence[str], passages: Sequence[str], n_neg: int, mask: np.ndarray, scale: float,
    precision: str = "fp32", group: int = PASSAGE_GROUP,
) -> float:
    """Forward + backward of one MNRL batch; ``passages`` = B positives then B*n_neg negatives,
    ``mask[i, j]`` True where passage j is relevant to query i but is not its target. Under bf16 the encoder's
    forward runs in autocast; the similarities and the loss in fp32. The passages run in length-sorted groups of
    ``group`` (0: one forward)."""
    import torch

    from ragops.encode.models import autocast

    device = model.device  # the batch goes where the model is (train.embedder.device)

    def embed(texts: Sequence[str], group: int = 0):
        feats = model.preprocess(list(texts))  # sentence-transformers' tokenization (`tokenize` is deprecated)
        feats = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in feats.items()}
        with autocast(precision, str(device)):
            if group <= 0 or len(texts) <= group:
                return model(feats)["sentence_embedding"].float()
            return torch.cat([model(part)["sentence_embedding"].float() for part in by_length(feats, group)])[
                inverse_order(feats)]

    q = torch.nn.functional.normalize(embed(queries), dim=-1)
    p = torch.nn.functional.normalize(embed(passages, group), dim=-1)
    logits = scale * q @ p.T
    logits = logits.masked_fill(torch.as_tensor(mask, device=device), float("-inf"))
    loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(queries), device=device))
    loss.backward()
    return float(loss.detach())


def train_bi_encoder(
    model,
    queries: Sequence[str],
    positives: Sequence[str],
    negatives: Sequence[Sequence[str]],
    relevant: Sequence[set[str]],
    passage_ids: Sequence[Sequence[str]],
    cfg: TrainConfig,
    dev_score: Callable[[object], float] | None = None,
    dev_untrained: float | None = None,
) -> TrainResult:
    """Train ``model`` (a SentenceTransformer) in place on examples i = (queries[i], positives[i],
    negatives[i]); ``passage_ids[i]`` = doc ids of [positive, *negatives] (for the in-batch mask),
    ``relevant[i]`` = every doc relevant to query i. Every example has the same number of negatives."""
    n_neg = min((len(n) for n in negatives), default=0)

    def step(batch: np.ndarray) -> float:
        b = [int(i) for i in batch]
        texts = [positives[i] for i in b] + [negatives[i][k] for k in range(n_neg) for i in b]
        ids = [passage_ids[i][0] for i in b] + [passage_ids[i][1 + k] for k in range(n_neg) for i in b]
        mask = np.zeros((len(b), len(texts)), dtype=bool)
        for r, i in enumerate(b):
            for c, doc in enumerate(ids):
                mask[r, c] = c != r and doc in relevant[i]
        return mnrl_step(model, [queries[i] for i in b], texts, n_neg, mask, cfg.scale, cfg.precision)

    return fit_with_selection(model, step, len(queries), cfg, dev_score, dev_untrained)


def rerank_pool_score(
    encode: Callable[[list[str]], np.ndarray],
    query_texts: Sequence[str],
    pools: Sequence[Sequence[str]],
    doc_chunks: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    query_ids: Sequence[str],
    metric: str = "ndcg@10",
) -> float:
    """Dev score of a bi-encoder on fixed candidate pools: each query's pool ranked by MaxP cosine.

    Cheaper than re-embedding the corpus after every epoch; the pools (the base retrievers' top
    documents) are the same for every checkpoint, so checkpoints compare fairly.
    """
    from ragops.eval.evaluation import as_run
    from ragops.eval.metrics import mean_metrics
    from ragops.retrieval.retriever import max_by_doc

    docs = sorted({d for pool in pools for d in pool})
    texts = [t for d in docs for t in doc_chunks[d]]
    owner = [d for d in docs for _ in doc_chunks[d]]
    vecs = encode(texts)
    qv = encode(list(query_texts))
    hits = []
    for qi, pool in enumerate(pools):
        pool_set = set(pool)
        rows = np.asarray([r for r, d in enumerate(owner) if d in pool_set], dtype=np.int64)
        hits.append(max_by_doc(vecs[rows] @ qv[qi], rows, owner, len(pool_set)))
    return mean_metrics(dict(qrels), as_run(query_ids, hits), [metric])[metric]
