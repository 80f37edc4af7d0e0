"""One question's sentence vectors, encoded once.

Answering a question reads the same sentences up to four times: the relevance check (the question against
the first documents' titles and sentences), the extractive answer (the question against every context
sentence), and the claim scorer (its sentence ranking and its features). :class:`QuestionVectors` keeps what
one question has encoded; :class:`RoutedEncoder` is the encoder as the answerer and its scorer hold it, which
sends their calls to the current question's memo. A memo lives for one question only: an answer never
depends on what was asked before it (a vector can differ in the last bits with the batch it was encoded in).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np

from ragops.answer.grounding_fit import memo_encode
from ragops.answer.scorers import EncodeFn


class QuestionVectors:
    """``encode`` with the vectors of the texts it has already been given (each text encoded once: the grounding
    stage's ``memo_encode``); an empty list goes to the model as it is (its own empty shape)."""

    def __init__(self, encode: EncodeFn) -> None:
        self.encode, self._cached = encode, memo_encode(encode)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        return self._cached(texts) if texts else np.asarray(self.encode(texts))


class RoutedEncoder:
    """The sentence encoder as the answerer and its scorer hold it: inside :meth:`using` a memo, calls go
    through that memo, otherwise to the model. Used under the answerer's lock only (one caller at a time).
    Any other attribute (``model``, ``dim``, ``path``) is the model's."""

    def __init__(self, encode: EncodeFn) -> None:
        self.base = encode
        self._memo: QuestionVectors | None = None

    def __call__(self, texts: list[str]) -> np.ndarray:
        return (self._memo if self._memo is not None else self.base)(texts)

    def memo(self) -> QuestionVectors:
        """A new memo for one question."""
        return QuestionVectors(self.base)

    @contextlib.contextmanager
    def using(self, memo: QuestionVectors | None) -> Iterator[None]:
        previous, self._memo = self._memo, memo
        try:
            yield
        finally:
            self._memo = previous

    def __getattr__(self, name: str):
        if name in ("base", "_memo"):  # not set yet (copy, pickle): no recursion into the model
            raise AttributeError(name)
        return getattr(self.base, name)
