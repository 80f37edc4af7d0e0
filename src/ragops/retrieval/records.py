"""Small typed records that cross module boundaries (ARCHITECTURE style rule 7)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Hits:
    """A ranked list for one query: ``ids[i]`` has ``scores[i]``, best first.

    Ranked lists are always ordered by score descending, ties broken by id ascending,
    so that every ranking in ragops is deterministic (pyserini's convention).
    """

    ids: list[str]
    scores: np.ndarray

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.scores):
            raise ValueError(f"Hits: {len(self.ids)} ids but {len(self.scores)} scores")

    def __len__(self) -> int:
        return len(self.ids)

    def as_dict(self) -> dict[str, float]:
        return {i: float(s) for i, s in zip(self.ids, self.scores, strict=True)}

    def top(self, k: int) -> Hits:
        return Hits(self.ids[:k], self.scores[:k])

    @staticmethod
    def from_dict(scores: dict[str, float], k: int | None = None) -> Hits:
        """Rank a ``{id: score}`` dict: score descending, then id ascending."""
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        if k is not None:
            ranked = ranked[:k]
        return Hits([i for i, _ in ranked], np.asarray([s for _, s in ranked], dtype=np.float64))


def rank_order(ids: list[str], scores: np.ndarray) -> np.ndarray:
    """Indices that sort (score desc, id asc): the one tie-break rule of ragops."""
    return np.asarray(sorted(range(len(ids)), key=lambda i: (-float(scores[i]), ids[i])), dtype=np.int64)
