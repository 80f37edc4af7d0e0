"""Training the cross-encoder reranker: a MiniLM with a fresh one-logit head, listwise loss.

Each example is a group (query, positive, k hard negatives); the loss is the cross-entropy of the
softmax over the group's logits with the positive as target (a listwise softmax loss, as in
Nogueira & Cho's monoBERT successors; sentence-transformers calls it MultipleNegativesRankingLoss
for cross-encoders). The head is initialised from the seed, the encoder from the MiniLM weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ragops.training.embedder import TrainConfig, TrainResult, fit_with_selection, set_seed


def init_cross_encoder(base_path: str | Path, seed: int, layers: int = 0, device: str = "cpu"):
    """(model, tokenizer): the base folder's encoder with a seeded, new 1-logit classification head, on torch
    ``device``; ``layers`` > 0 keeps only its first ``layers`` transformer layers (a shallower, faster reranker,
    like the 2- and 4-layer MiniLM cross-encoders; 0 keeps them all)."""
    from ragops.encode.models import offline_env

    offline_env()
    set_seed(seed)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base_path), local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(str(base_path), num_labels=1, local_files_only=True)
    encoder = model.base_model.encoder
    if 0 < layers < len(encoder.layer):
        encoder.layer = encoder.layer[:layers]
        model.config.num_hidden_layers = layers  # saved with the model: it loads back with these layers
    return model.to(device), tok


def train_cross_encoder(
    model,
    tokenizer,
    queries: Sequence[str],
    groups: Sequence[Sequence[str]],
    max_length: int,
    cfg: TrainConfig,
    dev_score: Callable[[object], float] | None = None,
) -> TrainResult:
    """Train in place on ``groups[i]`` = [positive, *negatives] passages of ``queries[i]``."""
    import torch

    from ragops.encode.models import autocast

    n = min((len(g) for g in groups), default=0)

    def step(batch: np.ndarray) -> float:
        b = [int(i) for i in batch]
        qs = [queries[i] for i in b for _ in range(n)]
        ps = [groups[i][j] for i in b for j in range(n)]
        feats = tokenizer(qs, ps, truncation="longest_first", max_length=max_length, padding=True, return_tensors="pt")
        with autocast(cfg.precision, str(model.device)):  # bf16: the forward only; the loss in fp32
            logits = model(**feats.to(model.device)).logits[:, 0].float().view(len(b), n)
        loss = torch.nn.functional.cross_entropy(logits, torch.zeros(len(b), dtype=torch.long, device=logits.device))
        loss.backward()
        return float(loss.detach())

    # Epoch 0 is no candidate: the head is random, so its dev score is recorded as 0 without computing it.
    return fit_with_selection(model, step, len(queries), cfg, dev_score, dev_untrained=0.0)
