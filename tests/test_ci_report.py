"""The pull-request report and the baseline checks behind `ragops gate`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ragops.errors import DataError
from ragops.registry.ci_report import load_per_query, metrics_table, render, scores, top_drops
from ragops.registry.gate import gate


def write(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def rows(values: dict[str, float], mode: str = "hybrid", split: str = "test") -> list[dict]:
    return [{"split": split, "mode": mode, "query_id": q, "ndcg@10": v} for q, v in values.items()]


def test_missing_baseline_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="baseline file not found") as info:
        load_per_query(tmp_path / "nope.csv", "ndcg@10")
    assert info.value.path.endswith("nope.csv")


def test_malformed_baseline_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="missing column"):
        load_per_query(tmp_path / "a.csv", "ndcg@10")
    (tmp_path / "b.csv").write_text("split,mode,query_id,ndcg@10\ntest,hybrid,1,0.5\ntest,hybrid,2,oops\n")
    with pytest.raises(DataError, match="not a number") as info:
        load_per_query(tmp_path / "b.csv", "ndcg@10")
    assert info.value.line == 3  # the header is line 1
    (tmp_path / "c.csv").write_bytes(b"")
    with pytest.raises(DataError, match="not a per-query CSV"):
        load_per_query(tmp_path / "c.csv", "ndcg@10")


def test_scores_select_split_and_mode(tmp_path: Path) -> None:
    path = write(tmp_path / "p.csv", rows({"1": 0.5, "2": 1.0}) + rows({"1": 0.1}, mode="bm25"))
    df = load_per_query(path, "ndcg@10")
    assert scores(df, "test", "hybrid", "ndcg@10") == {"1": 0.5, "2": 1.0}
    with pytest.raises(DataError, match="has test/bm25, test/hybrid"):
        scores(df, "dev", "hybrid", "ndcg@10", path)


def test_top_drops_lists_the_worst_first() -> None:
    base = {"a": 1.0, "b": 0.8, "c": 0.5, "d": 0.2}
    head = {"a": 0.5, "b": 0.7, "c": 0.9, "d": 0.2}
    md = top_drops(base, head, {"a": "alpha | pipe", "b": "beta"}, n=5)
    lines = md.splitlines()
    assert lines[2].startswith("| a | alpha \\| pipe | 1.0000 | 0.5000 | -0.5000 |")
    assert lines[3].startswith("| b | beta |")
    assert len(lines) == 4  # c improved and d did not move: not listed
    assert top_drops(base, base, {}) == "No query got worse."


def test_metrics_table_shows_every_change() -> None:
    base = {"test": {"hybrid": {"ndcg@10": 0.7}}}
    head = {"test": {"hybrid": {"ndcg@10": 0.75, "mrr@10": 0.7}}}
    md = metrics_table(base, head)
    assert "| test | hybrid | ndcg@10 | 0.7000 | 0.7500 | +0.0500 |" in md
    assert "| test | hybrid | mrr@10 | — | 0.7000 |  |" in md


def test_report_says_pass_or_fail() -> None:
    worse = gate({str(i): 0.5 for i in range(30)}, {str(i): 0.9 for i in range(30)}, tolerance=0.01)
    md = render(worse, "ndcg@10", "test", "hybrid", "table", "drops")
    assert "❌ fails" in md and worse.reason in md and "over 30 queries" in md
    same = gate({"1": 0.5}, {"1": 0.5}, tolerance=0.01)
    assert "✅ passes" in render(same, "ndcg@10", "test", "hybrid", "t", "d")
