"""Question -> retrieval -> context in a token budget -> answer with citations -> claims scored.

``build_answerer`` loads every model once; ``Answerer.ask`` is thread-safe (the CPU-bound parts,
retrieval and scoring, take one lock: on a few cores, parallel torch calls only fight for them)
and ``aask`` overlaps the network wait of the anthropic generator between questions.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ragops.answer.context import ContextDoc, pack_context
from ragops.answer.generators import (
    GENERATORS,
    KEY_ENV,
    AnthropicConfig,
    AnthropicGenerator,
    ExtractiveConfig,
    extractive_answer,
    valid_citations,
)
from ragops.answer.records import Answer, Claim
from ragops.answer.scorers import Scorer, load_scorer
from ragops.answer.text import parse_citations, split_claims, split_sentences
from ragops.answer.vectors import QuestionVectors, RoutedEncoder, with_stored_vectors
from ragops.answer.where import where
from ragops.errors import ConfigError, unknown_name

log = logging.getLogger("ragops.answer")
NOT_FOUND = "Not found in the documents: nothing retrieved is close enough to the question to answer it."


@dataclass(frozen=True)
class AnswerConfig:
    k: int = 5  # documents retrieved for the context
    mode: str = "default"  # a retrieval mode, or "default": the pipeline's (a package's registered mode)
    context_tokens: int = 1500  # the context budget, in embedding-tokenizer tokens
    generator: str = "auto"  # auto (anthropic when ANTHROPIC_API_KEY is set, else extractive) | extractive | anthropic
    scorer: str = "trained"
    # "not found in the documents" below this relevance (max cosine of the question to a title or sentence of
    # the first relevance_docs context documents); 0 = always answer. Chosen on dev: bench/not_found.py
    min_relevance: float = 0.0
    relevance_docs: int = 3

    @staticmethod
    def from_params(p: dict[str, Any]) -> AnswerConfig:
        a = p.get("answer", {})
        return AnswerConfig(
            int(a.get("k", 5)),
            str(a.get("mode", "default")),
            int(a.get("context_tokens", 1500)),
            str(a.get("generator", "auto")),
            str(a.get("scorer", "trained")),
            float(a.get("min_relevance", 0.0)),
            int(a.get("relevance_docs", 3)),
        )


def resolve_generator(name: str) -> str:
    import os

    if name == "auto":
        return "anthropic" if os.environ.get(KEY_ENV, "").strip() else "extractive"
    if name not in GENERATORS:
        raise unknown_name("generator", name, ("auto",) + GENERATORS)
    return name


class Answerer:
    def __init__(
        self,
        pipeline,
        docs: pd.DataFrame,
        encode,
        count,
        scorer: Scorer,
        generator: str,
        cfg: AnswerConfig,
        extractive: ExtractiveConfig,
        anthropic: AnthropicGenerator | None,
    ) -> None:
        self.pipeline, self.count, self.scorer = pipeline, count, scorer
        # one question's sentences are encoded once (ragops.answer.vectors); build_answerer's scorer holds the same
        self.encode = encode if isinstance(encode, RoutedEncoder) else RoutedEncoder(encode)
        self.generator, self.cfg, self.extractive, self.anthropic = generator, cfg, extractive, anthropic
        self.docs = docs
        self.degraded: str | None = None  # why answers are checked with a weaker scorer than configured
        self._lock = threading.RLock()

    def _context(self, question: str, k: int | None) -> list[ContextDoc]:
        if not question.strip():
            raise ConfigError("the question is empty")
        with self._lock:
            hits = self.pipeline.search(question, self.cfg.mode, k or self.cfg.k)
            rows = [
                (d, str(self.docs.at[d, "title"]), str(self.docs.at[d, "text"]), float(s))
                for d, s in zip(hits.ids, hits.scores.tolist(), strict=True)
                if d in self.docs.index
            ]
            return pack_context(rows, self.cfg.context_tokens, self.count)

    def _generate(self, question: str, ctx: list[ContextDoc], memo: QuestionVectors | None = None) -> str:
        if not ctx:
            return ""
        if self.generator == "extractive":
            with self._lock, self.encode.using(memo):
                return extractive_answer(question, ctx, self.encode, self.extractive)
        return self.anthropic.generate(question, ctx)

    def _finish(self, question: str, text: str, ctx: list[ContextDoc], memo: QuestionVectors | None = None) -> Answer:
        """Claims with their valid citations, scored against the cited documents (all of the context when
        a claim cites none of them)."""
        by_id = {d.doc_id: d for d in ctx}
        sentences = {d.doc_id: split_sentences(d.text) for d in ctx}
        citations, dropped = valid_citations(parse_citations(text), ctx)
        if dropped:
            log.warning("dropped citations of documents not in the context: %s", ", ".join(dropped))
        parts = [(claim, [c for c in cited if c in by_id]) for claim, cited in split_claims(text)]
        docs_per_claim = [[sentences[c] for c in (cited or list(by_id))] for _, cited in parts]
        with self._lock, self.encode.using(memo):
            scores = self.scorer.score([c for c, _ in parts], docs_per_claim).tolist()
        claims = [
            Claim(c, round(float(s), 4), bool(s >= self.scorer.threshold), cited, self._where(c, cited))
            for (c, cited), s in zip(parts, scores, strict=True)
        ]
        rate = sum(c.supported for c in claims) / len(claims) if claims else 1.0
        hits = [{"doc_id": d.doc_id, "title": d.title, "score": round(d.score, 6), "text": d.text} for d in ctx]
        return Answer(question, text, self.generator, self.scorer.name, citations, claims, hits, rate, dropped)

    def _where(self, claim: str, cited: list[str]) -> dict[str, str]:
        """Cited doc id -> the page / heading the claim comes from, for documents that have sections."""
        if "sections" not in self.docs.columns:
            return {}
        places = {d: where(claim, str(self.docs.at[d, "text"]), self.docs.at[d, "sections"])
                  for d in cited if d in self.docs.index}
        return {d: w for d, w in places.items() if w}

    def relevance(self, question: str, ctx: list[ContextDoc], memo: QuestionVectors | None = None) -> float:
        """How close the context comes to the question: the max cosine between the question and a title or
        sentence of the first ``relevance_docs`` documents (0 with no context)."""
        texts = [t for d in ctx[: self.cfg.relevance_docs] for t in (d.title, *split_sentences(d.text)) if t.strip()]
        if not texts:
            return 0.0
        with self._lock, self.encode.using(memo):
            vecs = np.asarray(self.encode([question, *texts]), dtype=np.float32)
        vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return float(np.max(vecs[1:] @ vecs[0]))

    def question_relevance(self, question: str, k: int | None = None) -> float:
        """:meth:`relevance` of what ``question`` retrieves (bench/not_found.py chooses the threshold on it)."""
        return self.relevance(question, self._context(question, k))

    def _not_found(self, question: str, ctx: list[ContextDoc], memo: QuestionVectors | None = None
                   ) -> tuple[bool, float | None]:
        """(found, relevance): with ``min_relevance`` > 0 the context must come close enough to the question."""
        if self.cfg.min_relevance <= 0:
            return True, None
        rel = self.relevance(question, ctx, memo)
        return rel >= self.cfg.min_relevance, round(rel, 4)

    def _refusal(self, question: str, ctx: list[ContextDoc], relevance: float | None) -> Answer:
        hits = [{"doc_id": d.doc_id, "title": d.title, "score": round(d.score, 6), "text": d.text} for d in ctx]
        return Answer(question, NOT_FOUND, self.generator, self.scorer.name, [], [], hits, 1.0, found=False,
                      relevance=relevance)

    def ask(self, question: str, k: int | None = None) -> Answer:
        ctx, memo = self._context(question, k), self.encode.memo()
        found, rel = self._not_found(question, ctx, memo)
        if not found:
            return self._refusal(question, ctx, rel)
        answer = self._finish(question, self._generate(question, ctx, memo), ctx, memo)
        answer.relevance = rel
        return answer

    async def aask(self, question: str, k: int | None = None) -> Answer:
        ctx, memo = await asyncio.to_thread(self._context, question, k), self.encode.memo()
        found, rel = await asyncio.to_thread(self._not_found, question, ctx, memo)
        if not found:
            return self._refusal(question, ctx, rel)
        if self.generator == "anthropic" and ctx:
            text = await self.anthropic.agenerate(question, ctx)
        else:
            text = await asyncio.to_thread(self._generate, question, ctx, memo)
        answer = await asyncio.to_thread(self._finish, question, text, ctx, memo)
        answer.relevance = rel
        return answer


def _token_counter(encode, model_name: str):
    """``count(texts)``: each text's tokens under the embedder's tokenizer, without special tokens or a cut."""
    tokenizer = getattr(getattr(encode, "model", None), "tokenizer", None)
    fast = getattr(tokenizer, "tokenizer", None)  # an ONNX encoder's ragops.encode.tokenize.FastTokenizer
    if fast is not None and hasattr(fast, "encode_batch"):
        from tokenizers import Tokenizer

        counter = Tokenizer.from_str(fast.to_str())  # a copy: the encoder's own one cuts at max_length
        counter.no_truncation()
        counter.no_padding()
        return lambda texts: [len(e.ids) for e in counter.encode_batch(list(texts), add_special_tokens=False)]
    if tokenizer is None:
        from ragops.encode.models import load_tokenizer

        tokenizer = load_tokenizer(model_name)

    def count(texts: list[str]) -> list[int]:
        # verbose=False: counting a long document is not an error (nothing is fed to the model)
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]]

    return count


def build_answerer(
    pipeline,
    docs: pd.DataFrame,
    params: dict[str, Any],
    generator: str | None = None,
    scorer: str | None = None,
    mode: str | None = None,
    grounding_dir: str | Path | None = None,
    sentences_dir: str | Path | None = None,
    packaged: bool = False,
) -> Answerer:
    """An Answerer over a loaded :class:`ragops.retrieval.pipeline.SearchPipeline` and the docs frame (doc_id, title,
    text); params is the full params dict (sections ``answer``, ``grounding``, ``paths``); the arguments
    override params. ``grounding_dir`` is the grounding scorer's folder (a package's own; default: the
    build's ``paths.grounding_model``); ``sentences_dir`` the sentence store (ragops.answer.vectors; default: the
    build's ``paths.sentences``). ``packaged``: the pipeline is a package's, so the scorer is the package's own
    ``grounding_dir`` or none, never the build's, which may have been trained for another version."""
    cfg = AnswerConfig.from_params(params)
    mode = mode or cfg.mode
    mode = pipeline.resolve(None if mode == "default" else mode)
    cfg = AnswerConfig(cfg.k, mode, cfg.context_tokens, generator or cfg.generator, scorer or cfg.scorer,
                       cfg.min_relevance, cfg.relevance_docs)
    gen = resolve_generator(cfg.generator)
    a = params.get("answer", {})
    encode = pipeline.encode
    model_name = params.get("embed", {}).get("model", "all-MiniLM-L6-v2")
    if encode is None:
        from ragops.encode.encoder import Encoder

        encode = Encoder(model_name, device=params.get("embed", {}).get("device", "cpu"))
    if "doc_id" in docs.columns:
        docs = docs.set_index("doc_id")
    g = params.get("grounding", {})
    model_dir = grounding_dir if packaged else grounding_dir or params.get("paths", {}).get("grounding_model")
    folder, defaults = Path(model_dir) if model_dir else None, {"embedding": float(g.get("embedding_threshold", 0.6))}
    # the corpus's sentences come from the store: an answer encodes its question and claims
    encode = with_stored_vectors(encode, sentences_dir or params.get("paths", {}).get("sentences"))
    routed = RoutedEncoder(encode)  # the answerer's own: inside an answer, the scorer reads that question's memo
    ce_backend = str(a.get("grounding_backend", "onnx"))
    if ce_backend == "torch" and cfg.scorer == "trained":
        from ragops.registry.package import require_weights

        require_weights(folder, "the grounding cross-encoder", "answer.grounding_backend is torch")
    try:
        scorer_obj = load_scorer(cfg.scorer, folder, routed, defaults, ce_backend)
    except ConfigError:
        if scorer is not None or cfg.scorer != "trained":
            raise
        # the default scorer is not built (no labelled claims, or no grounding stage yet): say so, carry on
        missing = "the package carries no grounding scorer" if folder is None and packaged else \
            f"the trained grounding scorer is missing ({folder})"
        log.warning("%s; using the embedding scorer", missing)
        scorer_obj = load_scorer("embedding", folder, routed, defaults)
        degraded = f"{missing}: claims are checked by the embedding scorer"
    else:
        degraded = None
    anthropic = AnthropicGenerator(AnthropicConfig(**a.get("anthropic", {}))) if gen == "anthropic" else None
    answerer = Answerer(
        pipeline,
        docs,
        routed,
        _token_counter(encode, model_name),
        scorer_obj,
        gen,
        cfg,
        ExtractiveConfig(**a.get("extractive", {})),
        anthropic,
    )
    answerer.degraded = degraded
    return answerer
