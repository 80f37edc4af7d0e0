"""REFERENCE: BM25 (bm25s, and our BM25Index over it) against rank-bm25 on real SciFact documents and
queries; then save/load, empty queries, batch = single, and configuration errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ragops.errors import ConfigError
from ragops.retrieval.index.sparse import BM25_METHODS, STEMMERS, STOPWORDS, UNITS, Analyzer, BM25Config, BM25Index

N_DOCS, N_QUERIES, TOP = 500, 30, 10
SETTINGS = [(1.2, 0.75), (0.9, 0.4)]  # (k1, b): the textbook values and params.yaml's


@pytest.fixture(scope="module")
def corpus(scifact_corpus: pd.DataFrame) -> pd.DataFrame:
    df = scifact_corpus.head(N_DOCS).reset_index(drop=True)
    return df.assign(full=df["title"] + "\n" + df["text"])


@pytest.fixture(scope="module")
def queries(scifact_queries: pd.DataFrame) -> list[str]:
    return scifact_queries["text"].head(N_QUERIES).tolist()


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer("english", "en")


@pytest.fixture(scope="module")
def doc_tokens(corpus: pd.DataFrame, analyzer: Analyzer) -> list[list[str]]:
    return [analyzer(t) for t in corpus["full"]]


def reference_scores(doc_tokens: list[list[str]], query_tokens: list[list[str]], k1: float, b: float) -> np.ndarray:
    from rank_bm25 import BM25Okapi

    ref = BM25Okapi(doc_tokens, k1=k1, b=b, epsilon=0)  # epsilon 0: negative idf -> 0, as in bm25s
    return np.stack([ref.get_scores(q) for q in query_tokens])


def top(scores: np.ndarray, key, k: int = TOP) -> list:
    """The k best rows with a positive score, by (-score, key(row)): one stable rule for both sides."""
    rows = [i for i in range(len(scores)) if scores[i] > 0]
    return sorted(rows, key=lambda i: (-float(scores[i]), key(i)))[:k]


# ---------------------------------------------------------------- bm25s vs rank-bm25


@pytest.mark.parametrize(("k1", "b"), SETTINGS)
def test_bm25s_robertson_equals_rank_bm25(doc_tokens, queries, analyzer, k1: float, b: float) -> None:
    import bm25s

    model = bm25s.BM25(method="robertson", k1=k1, b=b)
    model.index(doc_tokens, show_progress=False)
    q_tokens = [analyzer(q) for q in queries]
    ref = reference_scores(doc_tokens, q_tokens, k1, b)
    matched = 0
    for q, r in zip(q_tokens, ref, strict=True):
        known = [t for t in q if t in model.vocab_dict]
        ours = model.get_scores(known).astype(np.float64) if known else np.zeros(len(doc_tokens))
        # bm25s leaves out rank-bm25's (k1 + 1) factor: same ranking, scaled scores.
        np.testing.assert_allclose(ours * (k1 + 1), r, rtol=1e-5, atol=1e-9)
        assert top(ours, int) == top(r, int)
        matched += int((r > 0).sum() >= TOP)
    assert matched >= N_QUERIES // 2  # the comparison really ranks full top-10 lists


@pytest.mark.parametrize(("k1", "b"), SETTINGS)
def test_our_index_ranks_as_rank_bm25(corpus, doc_tokens, queries, analyzer, k1: float, b: float) -> None:
    cfg = BM25Config(method="robertson", k1=k1, b=b)
    index = BM25Index.build(corpus["doc_id"], corpus["full"], cfg)
    ids = corpus["doc_id"].tolist()
    ref = reference_scores(doc_tokens, [analyzer(q) for q in queries], k1, b)
    for query, r in zip(queries, ref, strict=True):
        hits = index.search(query, TOP)
        want = top(r, lambda i: ids[i])
        assert hits.ids == [ids[i] for i in want], query
        np.testing.assert_allclose(hits.scores * (k1 + 1), r[want], rtol=1e-5)


def test_lucene_by_hand() -> None:
    # Three documents, no stemming or stopwords. Lucene: idf = ln(1 + (N - df + .5) / (df + .5)),
    # tf part = tf / (tf + k1 (1 - b + b dl / avgdl)).
    cfg = BM25Config(method="lucene", k1=1.5, b=0.5, stemmer="none", stopwords="none")
    docs = ["apple apple banana", "banana cherry", "cherry cherry cherry date"]
    index = BM25Index.build(["a", "b", "c"], docs, cfg)
    lengths, avgdl = [3, 2, 4], 3.0

    def term(tf: int, df: int, dl: int) -> float:
        idf = math.log(1 + (3 - df + 0.5) / (df + 0.5))
        return idf * tf / (tf + 1.5 * (1 - 0.5 + 0.5 * dl / avgdl))

    hits = index.search("banana cherry", 10)
    want = {
        "a": term(1, 2, lengths[0]),
        "b": term(1, 2, lengths[1]) + term(1, 2, lengths[1]),
        "c": term(3, 2, lengths[2]),
    }
    assert hits.ids == sorted(want, key=lambda d: (-want[d], d))
    np.testing.assert_allclose(hits.scores, [want[d] for d in hits.ids], rtol=1e-6)
    # A term repeated in the query counts twice (as in rank-bm25 and Lucene's query parser).
    np.testing.assert_allclose(index.search("date date", 1).scores, [2 * term(1, 1, 4)], rtol=1e-6)


def test_ties_break_by_id() -> None:
    cfg = BM25Config(stemmer="none", stopwords="none")
    index = BM25Index.build(["d3", "d1", "d2", "d0"], ["gene x", "gene y", "gene z", "other w"], cfg)
    hits = index.search("gene", 10)
    assert hits.ids == ["d1", "d2", "d3"]
    assert hits.scores[0] == hits.scores[1] == hits.scores[2] > 0
    assert index.search("gene", 2).ids == ["d1", "d2"]


# ---------------------------------------------------------------- behaviour of BM25Index


@pytest.fixture(scope="module")
def lucene_index(corpus: pd.DataFrame) -> BM25Index:
    return BM25Index.build(corpus["doc_id"], corpus["full"], BM25Config())


def test_search_batch_equals_single_searches(lucene_index: BM25Index, queries: list[str]) -> None:
    batch = lucene_index.search_batch(queries + ["the of and", ""], 20)
    assert len(batch) == len(queries) + 2
    for query, hits in zip(queries + ["the of and", ""], batch, strict=True):
        one = lucene_index.search(query, 20)
        assert hits.ids == one.ids
        np.testing.assert_array_equal(hits.scores, one.scores)
        order = sorted(range(len(hits)), key=lambda i: (-hits.scores[i], hits.ids[i]))
        assert order == list(range(len(hits)))  # score desc, id asc
    assert sum(len(h) == 20 for h in batch) >= N_QUERIES // 2


def test_queries_without_known_terms_return_nothing(lucene_index: BM25Index) -> None:
    for query in ("", "the of and is to", "zzyzx qwxqwx", "a b c"):
        hits = lucene_index.search(query, 10)
        assert hits.ids == [] and len(hits.scores) == 0, query
    # one known word is enough
    assert len(lucene_index.search("zzyzx qwxqwx the protein", 10)) == 10


def test_save_load_round_trip(lucene_index: BM25Index, queries: list[str], tmp_path: Path) -> None:
    path = tmp_path / "bm25"
    lucene_index.save(path)
    before = lucene_index.search_batch(queries, 25)
    for mmap in (False, True):
        loaded = BM25Index.load(path, mmap=mmap)
        assert loaded.ids == lucene_index.ids and loaded.cfg == lucene_index.cfg
        for a, b in zip(before, loaded.search_batch(queries, 25), strict=True):
            assert a.ids == b.ids
            np.testing.assert_array_equal(a.scores, b.scores)
    # Saving again replaces the index in place (atomically): a different config is what loads.
    cfg = BM25Config(method="robertson", stemmer="none")
    BM25Index.build(["x", "y", "z"], ["alpha beta", "beta gamma", "delta"], cfg).save(path)
    reloaded = BM25Index.load(path)
    assert reloaded.ids == ["x", "y", "z"] and reloaded.cfg == cfg
    assert reloaded.search("gamma", 5).ids == ["y"]
    assert not [p for p in tmp_path.iterdir() if p.name != "bm25"]  # no temporary folders left
    # Persisted without pickle: JSON and .npy files only.
    assert {p.suffix for p in path.rglob("*") if p.is_file()} <= {".json", ".npy"}


_SAVE_IN_A_PROCESS = """
import hashlib, sys
from pathlib import Path
import pandas as pd
from ragops.retrieval.index.sparse import BM25Config, BM25Index
df = pd.read_parquet(sys.argv[1])
BM25Index.build(df["doc_id"].tolist(), df["full"].tolist(), BM25Config()).save(sys.argv[2])
files = sorted(p for p in Path(sys.argv[2]).rglob("*") if p.is_file())
print(hashlib.sha256(b"".join(p.name.encode() + p.read_bytes() for p in files)).hexdigest())
"""


def test_index_bytes_do_not_depend_on_the_hash_seed(corpus: pd.DataFrame, tmp_path: Path) -> None:
    """The vocabulary is numbered in sorted order, not in set order (which each process's hash seed shuffles):
    two processes with different PYTHONHASHSEED write the same index bytes, so `dvc repro` needs no fixed seed."""
    import os
    import subprocess
    import sys

    data = tmp_path / "docs.parquet"
    corpus[["doc_id", "full"]].head(200).to_parquet(data)
    digests = set()
    for seed in ("1", "2"):
        proc = subprocess.run([sys.executable, "-c", _SAVE_IN_A_PROCESS, str(data), str(tmp_path / seed)],
                              env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, text=True, check=True)
        digests.add(proc.stdout.strip())
    assert len(digests) == 1 and len(digests.pop()) == 64


def test_load_from_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no BM25 index"):
        BM25Index.load(tmp_path)


def test_analyzer() -> None:
    assert Analyzer("english", "en")("The Running cells of a mouse, 2 mice") == ["run", "cell", "mous", "mice"]
    assert Analyzer("none", "none")("The Running cells") == ["the", "running", "cells"]
    assert Analyzer("english", "none")("The cells") == ["the", "cell"]


# ---------------------------------------------------------------- configuration errors


@pytest.mark.parametrize(
    ("field", "value", "valid"),
    [
        ("method", "bm26", BM25_METHODS),
        ("stemmer", "porter", STEMMERS),
        ("stopwords", "fr", STOPWORDS),
        ("unit", "sentence", UNITS),
    ],
)
def test_unknown_names_list_the_valid_ones(field: str, value: str, valid: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError) as err:
        BM25Config(**{field: value})
    message = str(err.value)
    assert repr(value) in message
    assert all(name in message for name in valid)


def test_unknown_keys_are_named() -> None:
    with pytest.raises(ConfigError) as err:
        BM25Config.from_params({"method": "lucene", "k3": 1.0})
    assert "k3" in str(err.value) and "k1" in str(err.value) and "method" in str(err.value)
    assert BM25Config.from_params({"method": "atire", "k1": 1.1}) == BM25Config(method="atire", k1=1.1)
