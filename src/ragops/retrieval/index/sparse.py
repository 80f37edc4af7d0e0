"""BM25 with bm25s (Lù 2024): lower-case word tokens, optional English stopwords and Snowball
stemming. rank-bm25 is the reference implementation (tests/test_reference_bm25.py).

Saved as bm25s' numpy/JSON files plus our tokenizer config and id list: no pickle.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ragops.errors import ConfigError, checked_keys, unknown_name
from ragops.io import atomic_dir
from ragops.retrieval.records import Hits

BM25_METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")
STEMMERS = ("english", "none")
STOPWORDS = ("en", "none")
UNITS = ("doc", "chunk")
_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # bm25s' and scikit-learn's default word pattern


@dataclass(frozen=True)
class BM25Config:
    method: str = "lucene"
    k1: float = 0.9
    b: float = 0.4
    stemmer: str = "english"
    stopwords: str = "en"
    unit: str = "doc"

    def __post_init__(self) -> None:
        for kind, value, valid in (
            ("BM25 method", self.method, BM25_METHODS),
            ("stemmer", self.stemmer, STEMMERS),
            ("stopwords", self.stopwords, STOPWORDS),
            ("BM25 unit", self.unit, UNITS),
        ):
            if value not in valid:
                raise unknown_name(kind, value, valid)

    @staticmethod
    def from_params(p: dict) -> BM25Config:
        checked_keys("index.bm25", p, BM25Config.__dataclass_fields__)
        return BM25Config(**p)


class Analyzer:
    """Text -> BM25 terms. The same analyzer must index and query."""

    def __init__(self, stemmer: str = "english", stopwords: str = "en") -> None:
        self._stem = None
        if stemmer == "english":
            import Stemmer

            self._stem = Stemmer.Stemmer("english").stemWords
        self._stop: frozenset[str] = frozenset()
        if stopwords == "en":
            from bm25s.stopwords import STOPWORDS_EN

            self._stop = frozenset(STOPWORDS_EN)

    def __call__(self, text: str) -> list[str]:
        words = [w for w in _TOKEN.findall(text.lower()) if w not in self._stop]
        return self._stem(words) if self._stem else words


class BM25Index:
    """A bm25s index plus the ids of its rows and the analyzer that built it."""

    def __init__(self, ids: Sequence[str], cfg: BM25Config, retriever=None) -> None:
        self.ids = list(ids)
        self.cfg = cfg
        self.analyzer = Analyzer(cfg.stemmer, cfg.stopwords)
        self.retriever = retriever

    @staticmethod
    def build(ids: Sequence[str], texts: Sequence[str], cfg: BM25Config) -> BM25Index:
        import bm25s

        index = BM25Index(ids, cfg)
        tokens = [index.analyzer(t) for t in texts]
        # the vocabulary numbered in sorted order (bm25s would number it in set order, which the process's hash
        # seed shuffles): a rebuild writes the same index bytes in any process
        vocab = {t: i for i, t in enumerate(sorted({t for doc in tokens for t in doc}))}
        retriever = bm25s.BM25(method=cfg.method, k1=cfg.k1, b=cfg.b)
        retriever.index(([[vocab[t] for t in doc] for doc in tokens], vocab), show_progress=False)
        index.retriever = retriever
        return index

    def _query_terms(self, text: str) -> list[str]:
        vocab = self.retriever.vocab_dict
        return [t for t in self.analyzer(text) if t in vocab]

    def search(self, query: str, k: int) -> Hits:
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: Sequence[str], k: int) -> list[Hits]:
        """Top-k rows per query, ordered score desc then id asc; queries with no indexed term
        (or a zero score everywhere) return no hits."""
        terms = [self._query_terms(q) for q in queries]
        out: list[Hits] = [Hits([], np.zeros(0))] * len(queries)
        todo = [i for i, t in enumerate(terms) if t]
        if not todo or not self.ids:
            return out
        # A little extra depth so ties at the cut are resolved by id, not by argpartition.
        kk = min(len(self.ids), k + 32)
        for qi in todo:
            # get_scores + argpartition, not bm25s.retrieve: retrieve starts a thread pool on every
            # call (~0.4 ms, most of a one-query search here); the scores are the same.
            all_scores = self.retriever.get_scores(terms[qi])
            rows = np.argpartition(-all_scores, kk - 1)[:kk] if kk < len(all_scores) else np.arange(len(all_scores))
            scores = all_scores[rows]
            keep = scores != 0  # rows with no query term score exactly 0
            pairs = sorted(
                ((self.ids[r], float(s)) for r, s in zip(rows[keep], scores[keep], strict=True)),
                key=lambda p: (-p[1], p[0]),
            )[:k]
            out[qi] = Hits([p[0] for p in pairs], np.asarray([p[1] for p in pairs], dtype=np.float64))
        return out

    def save(self, path: str | Path) -> None:
        with atomic_dir(path) as tmp:
            self.retriever.save(str(tmp / "bm25s"), show_progress=False)
            (tmp / "config.json").write_text(json.dumps(asdict(self.cfg), indent=2))
            (tmp / "ids.json").write_text(json.dumps(self.ids))

    @staticmethod
    def load(path: str | Path, mmap: bool = False) -> BM25Index:
        import bm25s

        path = Path(path)
        if not (path / "config.json").exists():
            raise ConfigError(f"{path}: no BM25 index here (run `dvc repro index_bm25`)")
        cfg = BM25Config(**json.loads((path / "config.json").read_text()))
        ids = json.loads((path / "ids.json").read_text())
        retriever = bm25s.BM25.load(str(path / "bm25s"), mmap=mmap, load_corpus=False)
        return BM25Index(ids, cfg, retriever)
