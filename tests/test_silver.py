"""Silver judgments: the offline generator on real SciFact documents, the anthropic generator through the
real SDK against the local Messages-API server, and `ragops generate-questions` on a docs file written here."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from ragops.answer.generators import AnthropicConfig
from ragops.answer.text import split_sentences
from ragops.cli.silver import read_docs, sample_docs
from ragops.errors import RagopsError
from ragops.eval.judgments import query_id
from ragops.eval.silver import (
    OfflineConfig,
    copy_overlap,
    generate_offline,
    idf_table,
    sentence_question,
    stopword_set,
    words,
)
from ragops.eval.silver_anthropic import SYSTEM_PROMPT, generate_anthropic, parse_questions
from tests.fake_anthropic import FakeAnthropic, Step

REPO = Path(__file__).resolve().parents[1]
ROW_KEYS = {"query", "query_id", "doc_id", "relevant", "source", "time", "by", "mode"}
TIME = "2025-01-01T00:00:00+00:00"
EMPTY = pd.DataFrame({"doc_id": ["empty"], "title": ["Note"], "text": ["Too short. See above."]})


@pytest.fixture(scope="module")
def docs(scifact_sample: pd.DataFrame) -> pd.DataFrame:
    return scifact_sample.head(60).astype(str)


@pytest.fixture(scope="module")
def idf(scifact_sample: pd.DataFrame) -> dict[str, float]:
    return idf_table(scifact_sample["title"] + " " + scifact_sample["text"])


def expected_id(text: str) -> str:
    return "s-" + hashlib.sha1(" ".join(text.lower().split()).encode()).hexdigest()[:12]


def test_offline_is_deterministic_for_a_seed_and_differs_across_seeds(docs, idf) -> None:
    a = generate_offline(docs, 2, seed=7, idf=idf, time=TIME)
    b = generate_offline(docs, 2, seed=7, idf=idf, time=TIME)
    c = generate_offline(docs, 2, seed=8, idf=idf, time=TIME)
    assert a == b
    assert [r["query"] for r in a] != [r["query"] for r in c]
    # a document's question does not depend on which other documents are in the sample
    alone = generate_offline(docs.iloc[[5]], 2, seed=7, idf=idf, time=TIME)
    assert alone == [r for r in a if r["doc_id"] == docs["doc_id"].iloc[5]]


def test_offline_rows_are_valid_and_never_copy_a_sentence(docs, idf) -> None:
    rows = generate_offline(docs, 2, seed=7, idf=idf)
    cfg, stop = OfflineConfig(), stopword_set()
    assert {r["doc_id"] for r in rows} == set(docs["doc_id"])  # every SciFact abstract has a usable sentence
    by_doc = docs.set_index("doc_id")
    for r in rows:
        assert set(r) == ROW_KEYS
        assert (r["relevant"], r["source"], r["by"], r["mode"]) == (1, "silver", "offline", None)
        assert r["query_id"] == expected_id(r["query"]) == query_id(r["query"], prefix="s")
        assert datetime.fromisoformat(r["time"]).utcoffset().total_seconds() == 0
        doc = by_doc.loc[r["doc_id"]]
        q = words(r["query"])
        assert cfg.min_terms <= len(q) <= cfg.max_terms
        assert not {w.lower() for w in q} & stop
        assert r["query"] not in split_sentences(doc["text"])
        # keywords of one sentence, in order, but far from all of its words
        share, coverage = copy_overlap(r["query"], doc["title"], doc["text"])
        assert share == 1.0 and coverage <= 0.8
    assert len(rows) == len({(r["query_id"], r["doc_id"]) for r in rows})


def test_the_judgments_reader_reads_a_silver_file(docs, idf, tmp_path: Path) -> None:
    from ragops.cli.silver import write_rows
    from ragops.eval.judgments import read

    rows = generate_offline(docs.head(5), 2, seed=7, idf=idf)
    frame = read(write_rows(tmp_path / "silver.jsonl", rows))
    assert len(frame) == len(rows) and set(frame["source"]) == {"silver"}
    assert sorted(frame["query_id"]) == sorted(r["query_id"] for r in rows)


def test_query_ids_are_stable_and_normalized() -> None:
    assert query_id("Does  vitamin D\tprevent falls?", "s") == query_id("does vitamin d prevent falls?", "s")
    assert query_id("a question", "s") == expected_id("a question")
    assert query_id("a question") != query_id("another question")
    assert query_id("x y z", prefix="g").startswith("g-")


def test_a_document_without_a_usable_sentence_is_skipped_and_logged(docs, idf, caplog) -> None:
    mixed = pd.concat([docs.head(2), EMPTY], ignore_index=True)
    with caplog.at_level(logging.INFO, logger="ragops.eval.silver"):
        rows = generate_offline(mixed, 1, seed=1, idf=idf)
    assert "empty" not in {r["doc_id"] for r in rows} and len(rows) == 2
    assert any("document empty skipped" in m for m in caplog.messages)


def test_sentence_question_forms_by_hand() -> None:
    import random

    sent = "The vitamin D supplements reduced hip fractures in elderly women of Sweden"
    stop = stopword_set()
    full = OfflineConfig(keep=1.0, max_terms=40)
    kw = sentence_question(sent, {}, random.Random(0), full, stop)
    assert kw == "vitamin supplements reduced hip fractures elderly women Sweden"  # "D": one letter, dropped
    fluent = sentence_question(sent, {}, random.Random(0), replace(full, form="fluent"), stop)
    assert fluent == "vitamin D supplements reduced hip fractures in elderly women of Sweden"
    half = sentence_question(sent, {}, random.Random(0), OfflineConfig(keep=0.5), stop).split()
    assert len(half) == 4 and half == [w for w in kw.split() if w in half]  # a subset, in sentence order


def test_copy_overlap_by_hand() -> None:
    text = "Alpha beta gamma delta. Epsilon zeta eta theta iota."
    assert copy_overlap("alpha beta", "", text) == (1.0, 0.5)
    assert copy_overlap("alpha zeta", "", text) == (0.5, 0.25)
    assert copy_overlap("kappa", "", text) == (0.0, 0.0)


def test_offline_config_rejects_unknown_names() -> None:
    with pytest.raises(RagopsError, match="valid: centroid, idf, title"):
        OfflineConfig(select="random")


def test_parse_questions_strips_numbering_and_rejects_prose() -> None:
    reply = "1. What lowers blood pressure in adults?\n- How is sleep linked to memory?\n\nOk\n"
    assert parse_questions(reply, 5) == ["What lowers blood pressure in adults?", "How is sleep linked to memory?"]
    assert parse_questions('{"questions": ["What is it made of?"]}', 3) == []
    assert parse_questions(" ".join(["word"] * 60), 3) == []


def cfg_for(url: str, **kw) -> AnthropicConfig:
    return AnthropicConfig(model="claude-test-model", max_tokens=200, base_url=url,
                           **{"timeout_s": 5.0, "max_retries": 2, **kw})


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-silver")


def test_anthropic_questions_through_the_sdk_after_a_429(key, docs, idf) -> None:
    two = docs.head(2)
    script = [Step(429), Step(200, "What controls X in cells?\nHow is Y measured in mice?"),
              Step(200, "Which drug reduces Z?")]
    with FakeAnthropic(script=script) as fake:
        rows = generate_anthropic(two, 2, 7, cfg_for(fake.url), idf, time=TIME)
    assert len(fake.requests) == 3  # the 429 was retried by the SDK
    body = fake.requests[0].body
    assert body["model"] == "claude-test-model" and body["system"] == SYSTEM_PROMPT
    assert docs["text"].iloc[0][:80] in body["messages"][0]["content"]
    first, second = two["doc_id"].tolist()
    assert [(r["doc_id"], r["query"], r["by"]) for r in rows[:3]] == [
        (first, "What controls X in cells?", "anthropic:claude-test-model"),
        (first, "How is Y measured in mice?", "anthropic:claude-test-model"),
        (second, "Which drug reduces Z?", "anthropic:claude-test-model"),
    ]
    # one question short for the second document: topped up by the offline generator
    offline = generate_offline(two.tail(1), 1, 7, idf, time=TIME)
    assert rows[3:] == offline and all(set(r) == ROW_KEYS and r["source"] == "silver" for r in rows)


def test_malformed_or_failed_reply_falls_back_to_offline_for_that_document(key, docs, idf, caplog) -> None:
    three = docs.head(3)
    script = [Step(200, "I cannot help with that. " * 10), Step(500), Step(500), Step(500),
              Step(200, "Does exercise change the outcome?")]
    with caplog.at_level(logging.INFO), FakeAnthropic(script=script) as fake:
        rows = generate_anthropic(three, 1, 7, cfg_for(fake.url), idf, time=TIME)
    ids = three["doc_id"].tolist()
    assert [r["by"] for r in rows] == ["offline", "offline", "anthropic:claude-test-model"]
    assert rows[:2] == generate_offline(three.head(2), 1, 7, idf, time=TIME)
    assert rows[2]["doc_id"] == ids[2]
    assert any(f"document {ids[0]}: malformed or empty reply" in m for m in caplog.messages)
    assert any("InternalServerError HTTP 500" in m for m in caplog.messages)


def test_an_authentication_error_stops_at_once(key, docs, idf) -> None:
    with FakeAnthropic(script=[Step(401)]) as fake:
        with pytest.raises(RagopsError, match="HTTP 401.*ANTHROPIC_API_KEY"):
            generate_anthropic(docs.head(3), 1, 7, cfg_for(fake.url), idf)
    assert len(fake.requests) == 1


@pytest.fixture
def project(tmp_path: Path, docs) -> Path:
    """A params file whose paths.docs is a parquet written here (the repo's params, one path changed)."""
    path = tmp_path / "docs.parquet"
    pd.concat([docs.head(8), EMPTY], ignore_index=True).to_parquet(path, index=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["paths"]["docs"] = str(path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return tmp_path


def invoke(project: Path, *args: str):
    from ragops.cli.main import app

    return CliRunner().invoke(app, ["generate-questions", "--params", str(project / "params.yaml"), *args])


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cli_writes_offline_silver_rows(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    out = project / "judgments" / "silver.jsonl"
    res = invoke(project, "--out", str(out), "--per-doc", "2", "--seed", "3")
    assert res.exit_code == 0, res.output
    rows = read_jsonl(out)
    docs = read_docs(project / "docs.parquet")
    assert len(rows) == 16 and {r["doc_id"] for r in rows} == set(docs["doc_id"]) - {"empty"}
    assert all(set(r) == ROW_KEYS and r["by"] == "offline" for r in rows)
    assert "16 silver questions for 8 of 9 documents" in " ".join(res.output.split())
    again = project / "again.jsonl"
    assert invoke(project, "--out", str(again), "--per-doc", "2", "--seed", "3").exit_code == 0
    strip = [{k: v for k, v in r.items() if k != "time"} for r in rows]
    assert strip == [{k: v for k, v in r.items() if k != "time"} for r in read_jsonl(again)]
    sample = project / "sample.jsonl"
    assert invoke(project, "--out", str(sample), "--max-docs", "3", "--seed", "3").exit_code == 0
    chosen = sample_docs(docs, 3, 3)["doc_id"].tolist()
    assert [r["doc_id"] for r in read_jsonl(sample)] == [d for d in chosen if d != "empty"]


def test_cli_uses_anthropic_when_the_key_is_set(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-silver")
    out = project / "s.jsonl"
    with FakeAnthropic(script=[Step(200, "What does the first study find?")]) as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)  # answer.anthropic.base_url is null: the SDK reads it
        res = invoke(project, "--out", str(out), "--max-docs", "2")
    assert res.exit_code == 0, res.output
    rows = read_jsonl(out)
    assert len(fake.requests) == 2 and rows[0]["query"] == "What does the first study find?"
    model = yaml.safe_load((REPO / "params.yaml").read_text())["answer"]["anthropic"]["model"]
    assert rows[0]["by"] == f"anthropic:{model}" and len(rows) == 2


def test_cli_bad_docs_file_is_one_line_naming_it(project: Path) -> None:
    pd.DataFrame({"doc_id": ["1"], "body": ["x"]}).to_parquet(project / "docs.parquet", index=False)
    res = invoke(project, "--generator", "offline", "--out", str(project / "x.jsonl"))
    assert res.exit_code == 2
    assert f"{project / 'docs.parquet'}: missing column(s) title, text" in " ".join(res.output.split())
    assert not (project / "x.jsonl").exists()
    res = invoke(project, "--generator", "gpt")
    assert res.exit_code == 2 and "unknown generator 'gpt'" in res.output
