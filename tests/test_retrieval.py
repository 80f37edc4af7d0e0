"""ragops.retrieval.retriever: hand-worked max_by_doc, then a Retriever over small real indexes (BM25 and FAISS
flat over 300 SciFact documents, chunked by the real tokenizer) with a fake, deterministic encoder."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from ragops.data.chunking import chunk_documents
from ragops.errors import ConfigError
from ragops.retrieval.fusion import fuse
from ragops.retrieval.index.dense import DenseConfig, build_dense
from ragops.retrieval.index.sparse import Analyzer, BM25Config, BM25Index
from ragops.retrieval.records import Hits
from ragops.retrieval.retriever import MODES, FusionConfig, Retriever, max_by_doc

DIM = 64
_ANALYZE = Analyzer("english", "en")


def _term_vector(term: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(term.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(DIM)


def fake_encode(texts: list[str]) -> np.ndarray:
    """Bag of hashed word vectors, L2-normalized: texts that share words get similar vectors."""
    out = np.zeros((len(texts), DIM))
    for i, text in enumerate(texts):
        for term in _ANALYZE(text):
            out[i] += _term_vector(term)
        if not out[i].any():
            out[i, 0] = 1.0
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def ranked(hits: Hits) -> bool:
    order = sorted(range(len(hits)), key=lambda i: (-float(hits.scores[i]), hits.ids[i]))
    return order == list(range(len(hits))) and len(set(hits.ids)) == len(hits.ids)


def same(a: Hits, b: Hits) -> None:
    assert a.ids == b.ids
    np.testing.assert_array_equal(a.scores, b.scores)


# ---------------------------------------------------------------- max_by_doc, by hand


def test_max_by_doc_by_hand() -> None:
    row_doc = ["a", "a", "b", "c", "d"]
    scores = np.asarray([0.5, 0.9, 5.0, 0.7, 0.7, 0.2])
    rows = np.asarray([1, 0, -1, 3, 2, 4])  # row -1 (FAISS: no result) is skipped, whatever its score
    hits = max_by_doc(scores, rows, row_doc, k=10)
    # a: max(0.5 (row 1), 0.9 (row 0)); c and b tie at 0.7 -> by id, although c came first
    assert hits.ids == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(hits.scores, [0.9, 0.7, 0.7, 0.2])
    top2 = max_by_doc(scores, rows, row_doc, k=2)
    assert top2.ids == ["a", "b"]
    # a later, lower chunk does not lower a doc's best score; a higher one raises it
    assert max_by_doc(np.asarray([0.3, 0.1]), np.asarray([0, 1]), ["x", "x"], 5).as_dict() == {"x": 0.3}
    assert max_by_doc(np.asarray([0.1, 0.3]), np.asarray([0, 1]), ["x", "x"], 5).as_dict() == {"x": 0.3}
    empty = max_by_doc(np.asarray([1.0, 2.0]), np.asarray([-1, -1]), row_doc, 5)
    assert empty.ids == [] and len(empty.scores) == 0


# ---------------------------------------------------------------- a small real retriever


@pytest.fixture(scope="module")
def docs(scifact_sample: pd.DataFrame) -> pd.DataFrame:
    return scifact_sample


@pytest.fixture(scope="module")
def chunks(docs: pd.DataFrame, tokenizer) -> pd.DataFrame:
    return chunk_documents(docs["doc_id"], docs["title"], docs["text"], tokenizer, 128, 16)


@pytest.fixture(scope="module")
def chunk_emb(chunks: pd.DataFrame) -> np.ndarray:
    return fake_encode(chunks["text"].tolist())


@pytest.fixture(scope="module")
def bm25(docs: pd.DataFrame) -> BM25Index:
    return BM25Index.build(docs["doc_id"], docs["title"] + "\n" + docs["text"], BM25Config())


@pytest.fixture(scope="module")
def retriever(bm25: BM25Index, chunks: pd.DataFrame, chunk_emb: np.ndarray) -> Retriever:
    return Retriever(
        bm25=bm25,
        dense_index=build_dense(chunk_emb, DenseConfig(kind="flat")),
        encode=fake_encode,
        row_doc=chunks["doc_id"].tolist(),
        depth=20,
        dense_chunk_k=len(chunks),  # every chunk: max-aggregation is then exact
    )


@pytest.fixture(scope="module")
def queries(scifact_queries: pd.DataFrame) -> list[str]:
    return scifact_queries["text"].head(20).tolist() + ["zzyzx the of"]


def test_chunks_span_several_per_doc(chunks: pd.DataFrame, docs: pd.DataFrame) -> None:
    assert len(chunks) > 1.5 * len(docs)  # so that max-aggregation over chunks is exercised


@pytest.mark.parametrize("mode", MODES)
def test_modes_are_ranked_and_batch_equals_single(retriever: Retriever, queries: list[str], mode: str) -> None:
    batch = retriever.search_batch(queries, mode=mode, k=15)
    assert len(batch) == len(queries)
    full = 0
    for query, hits in zip(queries, batch, strict=True):
        assert ranked(hits), (mode, query)
        assert len(hits) <= 15 and all("#" not in i for i in hits.ids)
        same(hits, retriever.search(query, mode=mode, k=15))
        full += len(hits) == 15
    assert full >= len(queries) - 1  # all but the no-word query fill k (dense always does)


def test_bm25_mode_is_the_bm25_index(retriever: Retriever, bm25: BM25Index, queries: list[str]) -> None:
    for query in queries:
        same(retriever.search(query, "bm25", k=10), bm25.search(query, 20).top(10))
    assert retriever.search(queries[-1], "bm25").ids == []  # no known word: no BM25 hit


def test_dense_mode_is_max_over_chunks(
    retriever: Retriever, chunks: pd.DataFrame, chunk_emb: np.ndarray, queries: list[str]
) -> None:
    sims = fake_encode(queries).astype(np.float64) @ chunk_emb.T.astype(np.float64)
    for query, row in zip(queries, sims, strict=True):
        best: dict[str, float] = defaultdict(lambda: -np.inf)
        for doc, s in zip(chunks["doc_id"], row, strict=True):
            best[doc] = max(best[doc], s)
        want = sorted(best, key=lambda d: (-best[d], d))[:10]
        hits = retriever.search(query, "dense", k=10)
        assert hits.ids == want, query
        np.testing.assert_allclose(hits.scores, [best[d] for d in want], atol=1e-5)
    assert len(retriever.search(queries[-1], "dense", k=10)) == 10


@pytest.mark.parametrize(
    "fusion", [FusionConfig(), FusionConfig(method="convex", alpha=0.3, norm="zscore"), FusionConfig(method="rrf")]
)
def test_hybrid_fuses_both_lists(retriever: Retriever, queries: list[str], fusion: FusionConfig) -> None:
    r = dataclasses.replace(retriever, fusion=fusion)
    dense, sparse = r.components(queries)
    hybrid = r.search_batch(queries, "hybrid", k=1000)
    for d, s, h in zip(dense, sparse, hybrid, strict=True):
        assert len(d) == r.depth and len(s) <= r.depth
        same(h, fuse(fusion.method, [d, s], alpha=fusion.alpha, norm=fusion.norm, rrf_k=fusion.rrf_k, k=1000))
        assert set(h.ids) == set(d.ids) | set(s.ids)
    # the components equal the single modes
    for q, d, s in zip(queries, dense, sparse, strict=True):
        same(d, r.search(q, "dense"))
        same(s, r.search(q, "bm25"))


def test_hybrid_contains_docs_from_both_lists(retriever: Retriever, queries: list[str]) -> None:
    dense, sparse = retriever.components(queries)
    both = 0
    for q, d, s in zip(queries, dense, sparse, strict=True):
        h = retriever.search(q, "hybrid", k=20)
        assert ranked(h)
        if len(s) and d.ids[0] != s.ids[0]:
            # with alpha 0.5 and min-max, each list's best doc scores >= 0.5 and lands in the top 20
            assert d.ids[0] in h.ids and s.ids[0] in h.ids, q
            both += 1
    assert both > 0


def test_unknown_mode_lists_the_modes(retriever: Retriever) -> None:
    with pytest.raises(ConfigError) as err:
        retriever.search("protein", mode="semantic")
    assert "'semantic'" in str(err.value) and "bm25, dense, hybrid" in str(err.value)
    assert retriever.search_batch([], mode="hybrid") == []


def test_default_k_is_the_depth(retriever: Retriever, queries: list[str]) -> None:
    assert len(retriever.search(queries[0], "dense")) == retriever.depth
    hits, ms = retriever.timed_search(queries[0], "hybrid")
    same(hits, retriever.search(queries[0], "hybrid"))
    assert ms > 0


def test_bm25_over_chunks_aggregates_to_docs(chunks: pd.DataFrame, queries: list[str]) -> None:
    index = BM25Index.build(chunks["chunk_id"], chunks["text"], BM25Config(unit="chunk"))
    r = Retriever(
        bm25=index,
        dense_index=None,
        encode=None,
        depth=10,
        dense_chunk_k=len(chunks),
        bm25_row_doc=dict(zip(chunks["chunk_id"], chunks["doc_id"], strict=True)),
    )
    doc_of = dict(zip(chunks["chunk_id"], chunks["doc_id"], strict=True))
    merged = 0
    for query in queries:
        hits = r.search(query, "bm25")
        assert ranked(hits) and len(hits) <= 10
        assert all("#" not in i for i in hits.ids)
        best: dict[str, float] = {}
        every = index.search(query, len(chunks))
        for cid, s in zip(every.ids, every.scores.tolist(), strict=True):
            best[doc_of[cid]] = max(best.get(doc_of[cid], -np.inf), s)
        same(hits, Hits.from_dict(best, 10))
        merged += len({doc_of[c] for c in every.ids}) < len(every.ids)
    assert merged > len(queries) // 2  # several chunks of one doc matched: aggregation really merged


def test_feedback_moves_the_query_towards_the_first_lists_top(retriever: Retriever, queries: list[str]) -> None:
    plain = FusionConfig(method="convex", alpha=0.5, norm="zscore")
    prf = dataclasses.replace(plain, prf_docs=2, prf_beta=0.7)
    assert not plain.feedback and prf.feedback and not dataclasses.replace(prf, prf_beta=0.0).feedback
    vecs = fake_encode(queries)
    dense, sparse = retriever.components(queries)
    first = retriever.hybrid(vecs, dense, sparse, plain, retriever.depth)
    moved = retriever.feedback_vectors(vecs, first, 2, 0.7)
    for q, v, f in zip(vecs, moved, first, strict=True):
        top = np.mean([retriever.doc_vector(d) for d in f.ids[:2]], axis=0)
        want = q + 0.7 * top
        np.testing.assert_allclose(v, want / np.linalg.norm(want), atol=1e-5)
        assert float(v @ top) > float(q @ top)  # closer to the feedback documents than the query was
    # the doc vector is the mean of the document's chunk vectors
    doc = first[0].ids[0]
    rows = [i for i, d in enumerate(retriever.row_doc) if d == doc]
    stored = retriever.dense_index.reconstruct_n(0, max(rows) + 1)[rows]
    np.testing.assert_allclose(retriever.doc_vector(doc), stored.mean(0))
    # search_batch with feedback = fusing BM25 with the dense list of the moved vectors
    r = dataclasses.replace(retriever, fusion=prf)
    got = r.search_batch(queries, "hybrid", k=50)
    again = retriever.dense_search(moved)
    for h, d2, s in zip(got, again, sparse, strict=True):
        same(h, fuse("convex", [d2, s], alpha=0.5, norm="zscore", k=50))
    assert any(a.ids != b.ids for a, b in zip(got, retriever.search_batch(queries, "hybrid", k=50), strict=True))


# ---------------------------------------------------------------- the search pipeline over those parts


def shifted_encode(texts: list[str]) -> np.ndarray:
    """Another 'embedder' (the fine-tuned one's stand-in): other vectors for the same texts."""
    v = fake_encode(texts)
    v[:, 0] += 0.5
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def passage_scorer(calls: list):
    """A cross-encoder stand-in: the number of query words the passage contains."""

    def score(query: str, passages) -> np.ndarray:
        calls.append(len(passages))
        words = set(_ANALYZE(query))
        return np.asarray([len(words & set(_ANALYZE(p))) for p in passages], dtype=np.float64)

    return score


@pytest.fixture(scope="module")
def pipeline(retriever: Retriever, docs: pd.DataFrame):
    from ragops.retrieval.pipeline import Reranker, SearchPipeline

    ft = dataclasses.replace(retriever, encode=shifted_encode)
    passages = dict(zip(docs["doc_id"], docs["title"] + ". " + docs["text"], strict=True))
    return SearchPipeline(retriever, ft, Reranker(passage_scorer([]), passages, n=5, weight=0.5))


def test_pipeline_carries_the_modes_of_its_parts(retriever: Retriever, pipeline) -> None:
    from ragops.retrieval.pipeline import MODES, SearchPipeline

    assert pipeline.modes == MODES
    assert SearchPipeline(retriever).modes == ("bm25", "dense", "hybrid")
    assert SearchPipeline(retriever.with_encoder(None), default_mode="bm25").modes == ("bm25",)  # no encoder
    assert SearchPipeline(retriever, reranker=pipeline.reranker).modes == ("bm25", "dense", "hybrid",
                                                                            "hybrid_rerank")
    with pytest.raises(ConfigError, match="unknown mode 'hybrid_ft'; valid: bm25, dense, hybrid$"):
        SearchPipeline(retriever).search("statins", "hybrid_ft")
    with pytest.raises(ConfigError, match="unknown mode 'colbert'; valid: bm25, dense, dense_ft"):
        pipeline.search("statins", "colbert")
    with pytest.raises(ConfigError, match="default mode 'dense' is not one this pipeline carries: bm25"):
        SearchPipeline(retriever.with_encoder(None), default_mode="dense")
    assert pipeline.resolve(None) == "hybrid"
    assert dataclasses.replace(pipeline, default_mode="hybrid_ft_rerank").resolve(None) == "hybrid_ft_rerank"


def test_pipeline_modes_compose_the_parts(retriever: Retriever, pipeline, queries: list[str]) -> None:
    from ragops.retrieval.rerank import rerank_hits

    for mode in ("bm25", "dense", "hybrid"):
        for a, b in zip(pipeline.search_batch(queries, mode, 10), retriever.search_batch(queries, mode, 10),
                        strict=True):
            same(a, b)
    ft = dataclasses.replace(retriever, encode=shifted_encode)
    for a, b in zip(pipeline.search_batch(queries, "hybrid_ft", 10), ft.search_batch(queries, "hybrid", 10),
                    strict=True):
        same(a, b)
    assert pipeline.search(queries[0], "dense_ft").ids != pipeline.search(queries[0], "dense").ids
    # rerank: the first stage's whole list, its top n rescored, then cut to k
    scorer = pipeline.reranker.score
    for q in queries[:5]:
        for mode, first_mode in (("hybrid_rerank", "hybrid"), ("hybrid_ft_rerank", "hybrid_ft")):
            first = pipeline.search(q, first_mode)
            top = first.ids[:5]
            want = rerank_hits(first, scorer(q, [pipeline.reranker.passages[d] for d in top]), 0.5).top(7)
            same(pipeline.search(q, mode, 7), want)
            assert ranked(pipeline.search(q, mode, 7))


def test_pipeline_cached_scores_in_batches_fresh_when_timed(pipeline, queries: list[str]) -> None:
    calls: list[int] = []
    cached = pipeline.with_reranker(pipeline.reranker.with_cache(passage_scorer(calls)))
    fresh_calls: list[int] = []
    cached = cached.with_reranker(dataclasses.replace(cached.reranker, score=passage_scorer(fresh_calls)))
    batch = cached.search_batch(queries[:3], "hybrid_rerank", 10)
    assert calls == [5, 5, 5] and fresh_calls == []  # batch evaluation reads the cache
    hits, ms = cached.timed_search(queries[0], "hybrid_rerank", 10)
    assert fresh_calls == [5] and calls == [5, 5, 5] and ms > 0  # latency: always fresh scoring
    same(hits, batch[0])
    assert pipeline.reranker.cached_score is None  # the original is unchanged (frozen, copied)


def test_pipeline_map_encoders_wraps_every_query_encoder(pipeline, queries: list[str]) -> None:
    seen: list[str] = []

    def wrap(encode):
        def wrapped(texts):
            seen.append(encode.__name__)
            return encode(texts)

        wrapped.__name__ = encode.__name__
        return wrapped

    wrapped = pipeline.map_encoders(wrap)
    for mode in ("dense", "dense_ft", "hybrid_ft_rerank"):
        same(wrapped.search(queries[0], mode), pipeline.search(queries[0], mode))
    assert seen == ["fake_encode", "shifted_encode", "shifted_encode"]
    assert pipeline.base.encode is fake_encode and wrapped.encode is not fake_encode
