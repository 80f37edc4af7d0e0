"""Silver judgments: generated questions, each judged relevant to the document it was generated from.

A team with its own documents has no judgments; generated ("silver") questions give the evaluation, the
gate and the registry something to compare systems on. How far they can be trusted is measured on SciFact,
where gold exists (``bench/silver_tau.py``, docs/benchmarks.md): that is what a silver figure means.

Two generators, chosen by name (:data:`GENERATORS`):

- ``offline`` (deterministic for a seed, no model): :func:`offline_questions`, from the document's own
  sentences and title;
- ``anthropic``: the Messages API through the real SDK (``ragops.eval.silver_anthropic``), falling back to the
  offline question for a document whose reply is empty or malformed.

Rows are the judgments file format of :mod:`ragops.eval.judgments` (one JSON object a line, query ids ``s-...``),
``source: "silver"`` so every report can say so.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from ragops.answer.generators import strip_heading
from ragops.answer.text import split_sentences
from ragops.errors import ConfigError, unknown_name
from ragops.eval.judgments import make_row, now_utc

log = logging.getLogger(__name__)

GENERATORS = ("offline", "anthropic")
SELECT = ("centroid", "idf", "title")
WEIGHTING = ("idf", "uniform", "inverse")
FORMS = ("keywords", "fluent")
SOURCE = "silver"

# Words: decimals ("0.05", "12.5%"), or word characters joined by hyphens/apostrophes ("IL-6", "8th", "Crohn's").
_WORD = re.compile(r"\d+\.\d+%?|\w+(?:[-']\w+)*%?")
_NUMBER = re.compile(r"^\d+(?:\.\d+)?%?$")


# How abstracts report, not what they report: a user asks about the finding, not about "our study".
_DISCOURSE = frozenset(
    "study studies studied result results show shows showed shown found find finding findings investigated "
    "investigate examined examine whether suggest suggests suggested data analysis analyses using used use "
    "report reported reports demonstrate demonstrated demonstrates observed conclusion conclusions aim aims "
    "here present evidence also however therefore thus including".split()
)


@functools.cache
def stopword_set() -> frozenset[str]:
    """Words a question never keeps: scikit-learn's English list (318 function words, a superset in spirit
    of BM25's 33, which the index ignores anyway), BM25's own, and abstract-reporting words (_DISCOURSE)."""
    from bm25s.stopwords import STOPWORDS_EN
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(STOPWORDS_EN) | frozenset(ENGLISH_STOP_WORDS) | _DISCOURSE


def words(text: str) -> list[str]:
    return _WORD.findall(text or "")


@dataclass(frozen=True)
class OfflineConfig:
    """Knobs of the offline generator (see :func:`offline_questions` for what each one does)."""

    min_words: int = 8  # a usable sentence has this many words at least ...
    max_words: int = 45  # ... and at most this many
    max_number_share: float = 0.25  # sentences more numeric than this (statistics) are not questions
    select: str = "centroid"  # how sentences are ranked: centroid | idf | title (candidate_sentences)
    # share of the sentence's content words kept: 0.8 chosen on SciFact dev by bench/silver_tau.py (the best tau
    # among variants with <= 5% near-verbatim questions; every offline variant stays far from gold: docs/benchmarks.md)
    keep: float = 0.8
    weighting: str = "idf"  # which words survive: idf (rare ones more likely) | uniform | inverse (common ones)
    form: str = "keywords"  # keywords (content words only) | fluent (the sentence minus the dropped words)
    min_terms: int = 3  # a question has at least this many words, at most max_terms
    max_terms: int = 10  # SciFact's real queries have 9 content words (median)

    def __post_init__(self) -> None:
        if self.select not in SELECT:
            raise unknown_name("sentence selection", self.select, SELECT)
        if self.weighting not in WEIGHTING:
            raise unknown_name("word weighting", self.weighting, WEIGHTING)
        if self.form not in FORMS:
            raise unknown_name("question form", self.form, FORMS)
        if not 0.0 < self.keep <= 1.0:
            raise ConfigError(f"keep must be in (0, 1], got {self.keep}")


def idf_table(texts: Iterable[str]) -> dict[str, float]:
    """BM25's idf per lower-cased word over ``texts`` (one text a document): log(1 + (N - df + .5)/(df + .5))."""
    df: Counter[str] = Counter()
    n = 0
    for text in texts:
        n += 1
        df.update({w.lower() for w in words(text)})
    return {w: math.log(1.0 + (n - d + 0.5) / (d + 0.5)) for w, d in df.items()}


def _content(tokens: Sequence[str], stop: frozenset[str], distinct: bool = True) -> list[str]:
    """Content words in order (first occurrences only when ``distinct``): no stopword, no one-letter token
    except a digit."""
    seen: set[str] = set()
    out = []
    for t in tokens:
        low = t.lower()
        if low in stop or (distinct and low in seen) or (len(t) < 2 and not t.isdigit()):
            continue
        seen.add(low)
        out.append(t)
    return out


def candidate_sentences(title: str, text: str, idf: Mapping[str, float], cfg: OfflineConfig,
                        stop: frozenset[str]) -> list[str]:
    """The text's usable sentences, best first, then the title (when usable) as a last resort.

    Usable: ``min_words..max_words`` words, at least ``min_terms`` content words, at most ``max_number_share``
    numbers. Best, by ``cfg.select``: ``centroid`` = the cosine between the sentence's and the whole
    document's tf-idf vectors (the sentence that says what the document is about: centroid summarization,
    Radev et al. 2004), ``idf`` = the idf mass of its distinct content words (the most specific sentence);
    ``title`` puts the title first, then the sentences by centroid. Numbers never score: a sentence of
    p-values is rare words, not a topic. Ties keep text order."""
    sents = []
    for sent in (strip_heading(s) for s in split_sentences(text)):
        toks = words(sent)
        content = [w.lower() for w in _content(toks, stop) if not _NUMBER.match(w)]
        numbers = sum(bool(_NUMBER.match(t)) for t in toks)
        if (cfg.min_words <= len(toks) <= cfg.max_words and len(_content(toks, stop)) >= cfg.min_terms
                and numbers <= cfg.max_number_share * len(toks)):
            sents.append((sent, content))
    doc = _tfidf([w.lower() for w in _content(words(f"{title} {text}"), stop, distinct=False)], idf)
    scored = []
    for pos, (sent, content) in enumerate(sents):
        if cfg.select == "idf":
            score = sum(idf.get(w, 0.0) for w in set(content))
        else:
            vec = _tfidf(content, idf)
            norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
            score = sum(v * doc.get(w, 0.0) for w, v in vec.items()) / norm
        scored.append((-score, pos, sent))
    out = [s for _, _, s in sorted(scored)]
    if len(_content(words(title), stop)) >= cfg.min_terms:
        out.insert(0 if cfg.select == "title" else len(out), title.strip())
    return out


def _tfidf(terms: Sequence[str], idf: Mapping[str, float]) -> dict[str, float]:
    counts = Counter(t for t in terms if not _NUMBER.match(t))
    return {w: c * idf.get(w, 0.0) for w, c in counts.items()}


def _rng(seed: int, doc_id: str, i: int) -> random.Random:
    """One generator per (seed, document, question): a document's question does not depend on which other
    documents were sampled, nor on their order."""
    digest = hashlib.sha256(f"{seed}\0{doc_id}\0{i}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def sentence_question(sentence: str, idf: Mapping[str, float], rng: random.Random, cfg: OfflineConfig,
                      stop: frozenset[str]) -> str:
    """A question from ``sentence``: of its content words a seeded ``keep`` share (``min_terms..max_terms``)
    survives, drawn without replacement (Efraimidis-Spirakis keys u^(1/w)) with weight idf (``weighting:
    idf``: rare terms and numbers tend to stay, not all of them), 1 (``uniform``) or 1/idf (``inverse``: the
    words a user who has not read the document is likelier to know). ``form: keywords`` joins the survivors
    in sentence order; ``fluent`` keeps the sentence's function words around them (a sentence with holes:
    sentence encoders read phrases better than keyword bags)."""
    toks = words(sentence)
    content = _content(toks, stop)
    n = max(cfg.min_terms, min(cfg.max_terms, round(cfg.keep * len(content))))

    def weight(w: str) -> float:
        value = max(idf.get(w.lower(), 1.0), 1e-6)
        return value if cfg.weighting == "idf" else 1.0 / value if cfg.weighting == "inverse" else 1.0

    keys = [(rng.random() ** (1.0 / weight(w)), i) for i, w in enumerate(content)]
    kept = {content[i].lower() for _, i in sorted(keys, reverse=True)[:n]}
    if cfg.form == "keywords":
        return " ".join(w for w in content if w.lower() in kept)
    dropped = {w.lower() for w in content} - kept
    out = [t for t in toks if t.lower() not in dropped]
    while out and out[-1].lower() in stop:  # no dangling "of the"
        out.pop()
    while out and out[0].lower() in stop:
        out.pop(0)
    return " ".join(out)


def offline_questions(doc_id: str, title: str, text: str, n: int, idf: Mapping[str, float], seed: int,
                      cfg: OfflineConfig = OfflineConfig(), stop: frozenset[str] | None = None) -> list[str]:
    """Up to ``n`` distinct questions for one document, from its ``n`` most informative usable sentences
    (:func:`candidate_sentences`; the title when the text runs out), each made a keyword question by
    :func:`sentence_question`. Why not the sentence itself: a verbatim sentence shares every rare word with
    its document, so BM25 would find it trivially and the silver set would reward lexical matching only.
    Dropping a seeded share of the words (idf-weighted) leaves a partial, keyword-style query instead. An
    empty list means no usable sentence or title."""
    stop = stopword_set() if stop is None else stop
    out: list[str] = []
    for i, sent in enumerate(candidate_sentences(title, text, idf, cfg, stop)):
        if len(out) >= n:
            break
        q = sentence_question(sent, idf, _rng(seed, doc_id, i), cfg, stop)
        if q and q.lower() not in {o.lower() for o in out}:
            out.append(q)
    return out


def silver_row(question: str, doc_id: str, by: str, time: str) -> dict:
    """One judgments row (``ragops.eval.judgments``' format, query id ``s-...``): the generated question is judged
    relevant to the document it came from."""
    return make_row(question, doc_id, 1, by, None, source=SOURCE, time=time)


def generate_offline(docs: pd.DataFrame, per_doc: int, seed: int, idf: Mapping[str, float] | None = None,
                     cfg: OfflineConfig = OfflineConfig(), time: str | None = None) -> list[dict]:
    """Silver rows for ``docs`` by the offline generator; ``idf`` defaults to one over ``docs`` (pass the whole
    corpus's when ``docs`` is a sample). A document with no usable sentence or title is skipped, logged."""
    stop = stopword_set()
    idf = idf if idf is not None else idf_table(docs["title"] + " " + docs["text"])
    time = time or now_utc()
    rows: list[dict] = []
    for doc_id, title, text in zip(docs["doc_id"], docs["title"], docs["text"], strict=True):
        questions = offline_questions(doc_id, title, text, per_doc, idf, seed, cfg, stop)
        if not questions:
            log.info("silver: document %s skipped: no usable sentence or title (%d-%d words, %d content words)",
                     doc_id, cfg.min_words, cfg.max_words, cfg.min_terms)
        rows.extend(silver_row(q, doc_id, "offline", time) for q in questions)
    return rows


def as_qrels(rows: Iterable[Mapping]) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """({query_id: text}, {query_id: {doc_id: 1}}) from silver rows (the form ragops.eval.metrics reads)."""
    texts: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for r in rows:
        texts[r["query_id"]] = r["query"]
        qrels.setdefault(r["query_id"], {})[r["doc_id"]] = int(r["relevant"])
    return texts, qrels


def copy_overlap(question: str, title: str, text: str) -> tuple[float, float]:
    """How much ``question`` copies from one sentence of its document (a leakage check): (share of the
    question's words found in its best-matching sentence or title, share of that sentence's words the
    question repeats). Words are lower-cased word tokens, stopwords included, as sets."""
    q = {w.lower() for w in words(question)}
    if not q:
        return 0.0, 0.0
    best = (0.0, 0.0)
    for sent in [title, *split_sentences(text)]:
        s = {w.lower() for w in words(sent)}
        if s:
            best = max(best, (len(q & s) / len(q), len(q & s) / len(s)))
    return best
