"""Judgments made here join the data set's own in prepare (ragops.data.judged, issue 16)."""

from __future__ import annotations

import pandas as pd

from ragops.data.judged import add_judgments, sources_by_split


def _judged(rows: list[tuple[str, str, int, str]]) -> pd.DataFrame:
    return pd.DataFrame([{"query_id": q, "query": f"question {q}", "doc_id": d, "score": s, "source": src,
                          "time": "2026-11-30T00:00:00Z", "by": "test", "mode": None} for q, d, s, src in rows])


def _empty() -> tuple[pd.DataFrame, pd.DataFrame]:
    queries = pd.DataFrame({"query_id": pd.Series([], dtype=str), "text": pd.Series([], dtype=str)})
    qrels = pd.DataFrame({"query_id": pd.Series([], dtype=str), "doc_id": pd.Series([], dtype=str),
                          "score": pd.Series([], dtype="int64"), "split": pd.Series([], dtype=str)})
    return queries, qrels


def test_judged_questions_become_dev_or_test_queries_never_train() -> None:
    queries, qrels = _empty()
    rows = [(f"j-{i:03d}", "a", 1, "human") for i in range(200)] + [(f"s-{i:03d}", "b", 1, "silver") for i in range(50)]
    q, r, stats = add_judgments(queries, qrels, ["a", "b"], _judged(rows), dev_fraction=0.2, seed=42)
    assert set(r["split"]) == {"dev", "test"} and len(q) == 250
    share = (r.drop_duplicates("query_id")["split"] == "dev").mean()
    assert 0.1 < share < 0.3
    assert stats["by_source"] == {"human": 200, "silver": 50}
    # stable: the same question lands in the same split whatever else was judged
    _, r2, _ = add_judgments(queries, qrels, ["a", "b"], _judged(rows[:10]), dev_fraction=0.2, seed=42)
    first = dict(zip(r["query_id"], r["split"], strict=True))
    assert all(first[q] == s for q, s in zip(r2["query_id"], r2["split"], strict=True))


def test_deleted_documents_and_questions_without_a_relevant_one_are_dropped() -> None:
    queries, qrels = _empty()
    rows = [("j-1", "gone", 1, "human"), ("j-1", "a", 0, "human"), ("j-2", "a", 1, "human"), ("j-2", "b", 0, "human")]
    q, r, stats = add_judgments(queries, qrels, ["a", "b"], _judged(rows), dev_fraction=0.0, seed=1)
    assert stats["dropped_missing_docs"] == 1 and stats["dropped_no_relevant"] == 1
    assert list(q["query_id"]) == ["j-2"] and sorted(r["doc_id"]) == ["a", "b"]
    assert set(r["split"]) == {"test"}


def test_gold_rows_are_marked_and_splits_say_their_source() -> None:
    queries = pd.DataFrame({"query_id": ["1"], "text": ["gold question"]})
    qrels = pd.DataFrame({"query_id": ["1"], "doc_id": ["a"], "score": [1], "split": ["test"]})
    _, r, _ = add_judgments(queries, qrels, ["a"], _judged([("s-9", "a", 1, "silver")]), dev_fraction=0.0, seed=1)
    assert sources_by_split(r) == {"test": "mixed (gold, silver)"}
    _, r, _ = add_judgments(queries, qrels, ["a"], _judged([]).reindex(columns=["query_id", "query", "doc_id", "score",
                                                                                  "source", "time", "by", "mode"]),
                            dev_fraction=0.0, seed=1)
    assert sources_by_split(r) == {"test": "gold"}
