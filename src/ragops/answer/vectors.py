"""One question's sentence vectors, encoded once.

Answering a question reads the same sentences up to four times: the relevance check (the question against
the first documents' titles and sentences), the extractive answer (the question against every context
sentence), and the claim scorer (its sentence ranking and its features). :class:`QuestionVectors` keeps what
one question has encoded; :class:`RoutedEncoder` is the encoder as the answerer and its scorer hold it, which
sends their calls to the current question's memo. A memo lives for one question only: an answer never
depends on what was asked before it (a vector can differ in the last bits with the batch it was encoded in).

Below the memo, :class:`StoredVectors` reads the corpus's sentence vectors from the store the `sentences` stage
builds (:func:`sentence_texts` of every document, encoded by the query encoder): an answer then encodes only its
question and its claims. The store is keyed by (encoder ``model_id``, text), like the embedding cache whose
format it shares, so it never serves a vector of another model; with the default int8 query encoder (one text
per run) a stored vector is bit-identical to a live one, and answers do not change.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragops.answer.grounding_fit import memo_encode
from ragops.answer.scorers import EncodeFn
from ragops.encode.encoder import EmbeddingCache, cache_keys
from ragops.io import read_json

log = logging.getLogger("ragops.answer")
STORE_META = "meta.json"


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


def sentence_texts(titles: Iterable[str], texts: Iterable[str]) -> list[str]:
    """What an answer encodes of its documents, each text once: every title (the relevance check), sentence
    (the relevance check, the claim scorer) and sentence without its structured-abstract heading (the
    extractive answer's candidates)."""
    from ragops.answer.generators import strip_heading
    from ragops.answer.text import split_sentences

    out: dict[str, None] = {}
    for title, text in zip(titles, texts, strict=True):
        if str(title).strip():
            out[str(title)] = None
        for s in split_sentences(str(text)):
            out[s] = None
            out[strip_heading(s)] = None
    return [t for t in out if t.strip()]


def model_id_of(encode: Any) -> str | None:
    """The ``model_id`` of the encoder under ``encode``'s wrappers (a query cache, an embedding cache)."""
    for _ in range(8):
        if encode is None:
            return None
        model_id = getattr(encode, "model_id", None)
        if isinstance(model_id, str):
            return model_id
        encode = next((getattr(encode, a) for a in ("encode", "encoder", "base") if hasattr(encode, a)), None)
    return None


class StoredVectors:
    """``encode`` with the store's vectors for the texts it holds; the others are encoded live. Read-only (the
    store is a build output) and safe to call from several threads. ``hits`` / ``misses`` count texts."""

    def __init__(self, encode: EncodeFn, store: EmbeddingCache, dim: int) -> None:
        self.encode, self.store, self.dim, self.model_id = encode, store, int(dim), store.model_id
        self.hits = self.misses = 0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.asarray(self.encode(texts))
        keys = cache_keys(self.store.model_id, texts)
        found, missing = self.store.lookup(keys)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if found.any():
            out[found] = self.store.get(keys[found], self.dim)
        if missing:
            out[missing] = np.asarray(self.encode([texts[i] for i in missing]), dtype=np.float32)
        self.hits += len(texts) - len(missing)
        self.misses += len(missing)
        return out

    def __getattr__(self, name: str):
        if name in ("encode", "store", "dim", "model_id"):
            raise AttributeError(name)
        return getattr(self.encode, name)


def store_meta(folder: str | Path | None) -> dict[str, Any]:
    """The meta.json of the sentence store in ``folder`` (count, dim, model_id, ...); {} when there is none."""
    meta_file = Path(folder) / STORE_META if folder else None
    return read_json(meta_file) if meta_file is not None and meta_file.is_file() else {}


def with_stored_vectors(encode: EncodeFn, folder: str | Path | None) -> EncodeFn:
    """``encode`` behind the sentence store in ``folder`` (the `sentences` stage's output, or a package's);
    ``encode`` itself when there is none, it is empty, or it was built for another encoder (said in the log)."""
    meta = store_meta(folder)
    if encode is None or not int(meta.get("count", 0)):
        return encode
    model_id = model_id_of(encode)
    if meta.get("model_id") != model_id:
        log.warning("the sentence vectors in %s are of another encoder (%s, not %s): answers encode their sentences",
                    folder, meta.get("model_id"), model_id)
        return encode
    log.info("answers read %d stored sentence vectors from %s", int(meta["count"]), folder)
    return StoredVectors(encode, EmbeddingCache(folder, model_id), int(meta["dim"]))
