"""Batches by length: one epoch's batches of examples whose token counts are alike, in a seeded order.

No imports beyond the standard library, so a model's training code (the grounding cross-encoder's, which is
also loaded at answer time) can use it without pulling the retriever's training data in.
"""

from __future__ import annotations

import random
from collections.abc import Sequence


def epoch_batches(order: list[int], lengths: Sequence[int], batch_size: int, rng: random.Random, group: bool,
                  window: int = 50) -> list[list[int]]:
    """One epoch's batches of example indices. ``order`` is shuffled in place (each epoch reshuffles the last);
    without ``group`` the batches are its consecutive slices. With ``group``, each run of ``window`` batches'
    worth of examples is sorted by token length (``lengths``) and cut into batches, and all the epoch's batches
    are then shuffled: every example still comes once an epoch in a seeded order, but a batch pads to the length
    of examples like its own instead of to the longest of a random 16 (on the pretraining pairs, 1.6x the real
    tokens; the megabatches of Hugging Face's ``group_by_length``)."""
    rng.shuffle(order)
    if not group:
        return [order[b : b + batch_size] for b in range(0, len(order), batch_size)]
    out: list[list[int]] = []
    span = batch_size * max(1, window)
    for s in range(0, len(order), span):
        mega = sorted(order[s : s + span], key=lambda i: lengths[i])
        out += [mega[b : b + batch_size] for b in range(0, len(mega), batch_size)]
    rng.shuffle(out)
    return out
