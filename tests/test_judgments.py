"""ragops.eval.judgments (the judgments files people and generators append to) and `ragops judge` without an index.

The file is JSON Lines, appended by several writers at once (the server, the CLI): these tests write real
files, run real processes against one file, and cut lines the way a killed writer would."""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from ragops.errors import DataError
from ragops.eval import judgments

REPO = Path(__file__).resolve().parents[1]


def row(query: str, doc: str, rel: int, time: str, source: str = "human", by: str = "cli") -> dict:
    return judgments.make_row(query, doc, rel, by, "hybrid", source=source, time=time)


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_query_id_is_the_normalised_text_hash() -> None:
    qid = judgments.query_id("  Does Vitamin D\n prevent   fractures? ")
    assert re.fullmatch(r"j-[0-9a-f]{12}", qid)
    assert qid == judgments.query_id("does vitamin d prevent fractures?")
    assert qid == "j-" + hashlib.sha1(b"does vitamin d prevent fractures?").hexdigest()[:12]
    assert qid != judgments.query_id("does vitamin d prevent fracture?")
    assert judgments.query_id("x", prefix="s").startswith("s-")
    from ragops.eval.silver import silver_row  # the generator's ids are the same function's, prefix "s"

    row = silver_row("Does vitamin D prevent fractures?", "doc", "offline", "2025-01-01T00:00:00+00:00")
    assert row["query_id"] == "s" + qid[1:]


def test_missing_file_reads_as_an_empty_frame(tmp_path: Path) -> None:
    df = judgments.read(tmp_path / "none.jsonl")
    assert df.empty and list(df.columns) == judgments.COLUMNS
    assert judgments.read_many([]).empty and judgments.summary(df)["judgments"] == 0


def test_append_creates_the_file_and_the_latest_judgment_wins(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "judgments.jsonl"
    assert judgments.append(path, [row("vitamin D", "d1", 1, "2025-01-01T10:00:00Z"),
                                   row("statins", "d2", 1, "2025-01-01T10:00:01+00:00")]) == 2
    # the same question, other case and spacing, a minute later in another zone: the user changed their mind
    assert judgments.append(path, [row("Vitamin  d", "d1", 0, "2025-01-01T11:01:00+01:00")]) == 3
    assert len(lines(path)) == 3 and lines(path)[0]["time"] == "2025-01-01T10:00:00+00:00"
    df = judgments.read(path)
    assert list(df.columns) == judgments.COLUMNS and df["score"].dtype == "int64"
    got = {(r.query_id, r.doc_id): r.score for r in df.itertuples()}
    assert got == {(judgments.query_id("vitamin d"), "d1"): 0, (judgments.query_id("statins"), "d2"): 1}
    assert judgments.summary(df) == {"queries": 2, "judgments": 2, "relevant": 1,
                                     "by_source": {"human": {"queries": 2, "judgments": 2, "relevant": 1}}}


def test_read_many_merges_human_and_silver_latest_wins_by_time(tmp_path: Path) -> None:
    human, silver = tmp_path / "judgments.jsonl", tmp_path / "silver.jsonl"
    sid = judgments.query_id("statins", prefix="s")
    judgments.append(silver, [row("statins", "d2", 1, "2025-01-02T00:00:00Z", "silver", "offline"),
                              row("statins", "d3", 1, "2025-01-02T00:00:00Z", "silver", "offline")])
    # a person later says d2 is not relevant to the silver question (same id): that wins although read first
    judgments.append(human, [{**row("statins", "d2", 0, "2025-01-03T00:00:00Z"), "query_id": sid},
                             row("vitamin D", "d1", 1, "2025-01-01T00:00:00Z")])
    df = judgments.read_many([human, silver])
    assert len(df) == 3
    assert df.set_index(["query_id", "doc_id"]).loc[(sid, "d2"), "score"] == 0
    s = judgments.summary(df)
    assert s["by_source"] == {"human": {"queries": 2, "judgments": 2, "relevant": 1},
                              "silver": {"queries": 1, "judgments": 1, "relevant": 1}}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ('{"query": "q", "doc_id": ', "not valid JSON"),
        ('["q", "d1", 1]', "a judgment is a JSON object"),
        ('{"query": "q", "relevant": 1, "source": "human", "time": "2025-01-01T00:00:00Z", "by": "cli"}',
         "missing field(s) doc_id"),
        ('{"query": "q", "doc_id": "d", "relevant": 2, "source": "human", "time": "2025-01-01T00:00:00Z", "by": "x"}',
         "'relevant' must be 1 or 0"),
        ('{"query": "q", "doc_id": "d", "relevant": 1, "source": "gold", "time": "2025-01-01T00:00:00Z", "by": "x"}',
         "'source' must be one of human, silver"),
        ('{"query": "q", "doc_id": "d", "relevant": 1, "source": "human", "time": "yesterday", "by": "x"}',
         "'time' 'yesterday' is not an ISO-8601 time"),
        ('{"query": " ", "doc_id": "d", "relevant": 1, "source": "human", "time": "2025-01-01T00:00:00Z", "by": "x"}',
         "'query' must be a non-empty string"),
    ],
)
def test_a_malformed_line_is_an_error_naming_file_and_line(tmp_path: Path, bad: str, message: str) -> None:
    path = tmp_path / "judgments.jsonl"
    good = json.dumps(row("q", "d1", 1, "2025-01-01T00:00:00Z"))
    path.write_text(f"{good}\n\n{good}\n{bad}\n{good}\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        judgments.read(path)
    assert info.value.line == 4 and info.value.path == str(path)
    assert str(info.value).startswith(f"{path}:4: ") and message in str(info.value)


def test_a_torn_last_line_is_ignored_then_cut_before_the_next_append(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "judgments.jsonl"
    judgments.append(path, [row("q", "d1", 1, "2025-01-01T00:00:00Z")])
    full = json.dumps(row("q", "d2", 1, "2025-01-01T00:00:01Z")).encode()
    with open(path, "ab") as f:
        f.write(full[: len(full) // 2])  # a writer killed in the middle of its line
    with caplog.at_level(logging.WARNING, logger="ragops.eval.judgments"):
        assert judgments.read(path)["doc_id"].tolist() == ["d1"]
    assert f"{path}:2: the last line has no newline" in caplog.text
    assert judgments.append(path, [row("q", "d3", 0, "2025-01-01T00:00:02Z")]) == 2
    assert "unfinished last line" in caplog.text
    assert [r["doc_id"] for r in lines(path)] == ["d1", "d3"]


def test_a_complete_last_line_without_newline_is_kept_when_appending(tmp_path: Path) -> None:
    path = tmp_path / "judgments.jsonl"
    path.write_text(json.dumps(row("q", "d1", 1, "2025-01-01T00:00:00Z")), encoding="utf-8")  # an editor's save
    assert judgments.append(path, [row("q", "d2", 0, "2025-01-01T00:00:01Z")]) == 2
    assert judgments.read(path)["doc_id"].tolist() == ["d1", "d2"]


def test_the_count_an_append_returns_follows_every_writer(tmp_path: Path) -> None:
    """append reads only what was added since it last counted: lines other writers added, a file cut short
    in place, and a file replaced by another (an editor's save) are all counted right."""
    path = tmp_path / "judgments.jsonl"

    def other(n: int, mode: str = "a") -> None:
        with open(path, mode, encoding="utf-8") as f:
            f.writelines(json.dumps(row(f"o{i}", "d", 1, "2025-01-01T00:00:00Z")) + "\n\n" for i in range(n))

    assert judgments.append(path, [row(f"q{i}", "d", 1, "2025-01-01T00:00:00Z") for i in range(3)]) == 3
    other(2)  # another process, blank lines between its rows
    assert judgments.append(path, [row("q", "d", 0, "2025-01-01T00:00:01Z")]) == 6
    other(1, "r+")  # cut short in place: one row (and a blank line) where there were more
    with open(path, "r+") as f:
        f.truncate(len(f.readline()) + 1)
    assert judgments.append(path, [row("q", "d", 0, "2025-01-01T00:00:02Z")]) == 2
    tmp = tmp_path / "saved.jsonl"
    tmp.write_text("".join(json.dumps(row(f"e{i}", "d", 1, "2025-01-01T00:00:00Z")) + "\n" for i in range(4)))
    tmp.replace(path)  # a new file under the old name
    assert judgments.append(path, [row("q", "d", 0, "2025-01-01T00:00:03Z")]) == 5
    assert judgments.append(path, []) == 5 and len(lines(path)) == 5


def test_a_bad_row_appends_nothing(tmp_path: Path) -> None:
    path = tmp_path / "judgments.jsonl"
    judgments.append(path, [row("q", "d1", 1, "2025-01-01T00:00:00Z")])
    before = path.read_bytes()
    with pytest.raises(DataError, match=r"judgments.jsonl: judgment 2 to append: 'relevant' must be 1 or 0"):
        judgments.append(path, [row("q", "d2", 1, "2025-01-01T00:00:00Z"), {**row("q", "d3", 1, "x"), "relevant": 5}])
    assert path.read_bytes() == before


def _writer(path: str, name: str, batches: int, out) -> None:
    totals = []
    for i in range(batches):
        size = 1 + i % 3
        # long lines (about 6 kB) make any interleaving of unlocked writers visible
        rows = [judgments.make_row(f"{name} {i} {j} " + "x" * 6000, f"{name}-{i}-{j}", j % 2, name)
                for j in range(size)]
        totals.append(judgments.append(path, rows))
    out.put(totals)


def test_concurrent_appends_from_four_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "judgments.jsonl"
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(path), f"w{n}", 60, out)) for n in range(4)]
    for p in procs:
        p.start()
    totals = [t for _ in procs for t in out.get(timeout=120)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    written = lines(path)  # every line whole JSON
    expected = {f"w{n}-{i}-{j}" for n in range(4) for i in range(60) for j in range(1 + i % 3)}
    assert len(written) == len(expected) == 480 and {r["doc_id"] for r in written} == expected
    # each append counted the file under its own lock: every total distinct, the last one the whole file
    assert len(set(totals)) == 240 and max(totals) == 480
    assert len(judgments.read(path)) == 480


# ---------------------------------------------------------------- `ragops judge` without an index


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The repo's params with paths.docs a small parquet and data.judgments a folder, both written here."""
    docs = pd.DataFrame({"doc_id": ["a1", "b2", "c3"], "title": ["A", "B", "C"], "text": ["aa", "bb", "cc"]})
    docs.to_parquet(tmp_path / "docs.parquet", index=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["paths"]["docs"] = str(tmp_path / "docs.parquet")
    params.setdefault("data", {})["judgments"] = str(tmp_path / "judged")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return tmp_path


def judge(project: Path, *args: str):
    from ragops.cli.main import app

    return CliRunner().invoke(app, ["judge", *args, "--params", str(project / "params.yaml")])


def test_cli_records_given_judgments_in_the_default_file(project: Path) -> None:
    res = judge(project, "Which is A?", "--yes", "a1", "--no", "b2", "--no", "c3", "--mode", "bm25")
    assert res.exit_code == 0, res.output
    written = lines(project / "judged" / "judgments.jsonl")
    assert [(r["doc_id"], r["relevant"], r["by"], r["mode"], r["source"]) for r in written] == [
        ("a1", 1, "cli", "bm25", "human"), ("b2", 0, "cli", "bm25", "human"), ("c3", 0, "cli", "bm25", "human")]
    assert {r["query_id"] for r in written} == {judgments.query_id("which is a?")}
    res = judge(project, "--summary")
    assert res.exit_code == 0, res.output
    assert "3 judgments of 1 questions, 1 relevant" in res.output and "human: 3 judgments" in res.output


def test_cli_refuses_an_unknown_doc_id_and_writes_nothing(project: Path) -> None:
    res = judge(project, "q", "--yes", "a1", "--no", "zz9")
    assert res.exit_code == 2
    assert "docs.parquet: no document with id 'zz9' in the corpus" in " ".join(res.output.split())
    assert not (project / "judged" / "judgments.jsonl").exists()
    res = judge(project, "q", "--yes", "a1", "--no", "a1")
    assert res.exit_code == 2 and "a1 given to both --yes and --no" in res.output
    res = judge(project, "q", "--yes", "a1", "--file", str(project / "other.jsonl"))
    assert res.exit_code == 0 and len(lines(project / "other.jsonl")) == 1
    res = judge(project, "--summary", "--file", str(project / "other.jsonl"))
    assert "1 judgments of 1 questions, 1 relevant" in res.output


def test_cli_summary_names_a_malformed_line(project: Path) -> None:
    folder = project / "judged"
    folder.mkdir()
    (folder / "silver.jsonl").write_text("{not json}\n", encoding="utf-8")
    res = judge(project, "--summary")
    assert res.exit_code == 2 and f"{folder / 'silver.jsonl'}:1: not valid JSON" in " ".join(res.output.split())
