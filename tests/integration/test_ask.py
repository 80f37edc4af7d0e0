"""`ragops ask` end to end on the tiny built project: extractive and anthropic (a local Messages API
server), JSON output, batch mode with resumption, and the grounding + rag sections of metrics.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fake_anthropic import FakeAnthropic
from tests.integration.conftest import run

QUESTION = "Does vitamin D supplementation reduce fractures?"


def ask(root: Path, *args: str, env: dict[str, str] | None = None, check: bool = True):
    return run(["ragops", "ask", *args], root, check=check, env={"ANTHROPIC_API_KEY": "", **(env or {})})


def test_extractive_answer_cites_only_retrieved_documents(built_project: Path) -> None:
    out = json.loads(ask(built_project, QUESTION, "--json").stdout)
    assert set(out) == {"question", "text", "generator", "scorer", "citations", "claims", "hits", "support_rate",
                        "found", "relevance"}
    assert out["found"] is True and out["relevance"] is None  # answer.min_relevance 0: never refuses
    assert out["generator"] == "extractive" and out["scorer"] == "trained"  # no key set: extractive by default
    hit_ids = [h["doc_id"] for h in out["hits"]]
    assert out["citations"] and set(out["citations"]) <= set(hit_ids)
    assert len(out["claims"]) == 3 and all(c["citations"] for c in out["claims"])
    assert all(0.0 <= c["score"] <= 1.0 for c in out["claims"])
    assert out["support_rate"] == sum(c["supported"] for c in out["claims"]) / 3
    table = ask(built_project, QUESTION, "--scorer", "lexical", "-k", "2").stdout
    assert "lexical scorer" in table and "support rate" in table


def test_off_topic_question_is_not_found(built_project: Path, tmp_path: Path) -> None:
    """With answer.min_relevance set, a question nothing in the corpus comes close to gets "not found in the
    documents": no claims, no citations, the closest documents still listed."""
    import yaml

    def with_threshold(value: float) -> str:
        params = yaml.safe_load((built_project / "params.yaml").read_text())
        params["answer"]["min_relevance"] = value
        path = tmp_path / f"params-{value}.yaml"
        path.write_text(yaml.safe_dump(params, sort_keys=False))
        return str(path)

    off_topic = "What is the capital of France?"
    low = with_threshold(1e-6)  # checks, never refuses: both relevances are reported
    near = json.loads(ask(built_project, QUESTION, "--json", "--params", low).stdout)["relevance"]
    far = json.loads(ask(built_project, off_topic, "--json", "--params", low).stdout)["relevance"]
    assert near > far + 0.1, (near, far)  # the signal separates them
    middle = with_threshold(round((near + far) / 2, 4))
    refused = json.loads(ask(built_project, off_topic, "--json", "--params", middle).stdout)
    assert refused["found"] is False and refused["text"].startswith("Not found in the documents")
    assert refused["claims"] == [] and refused["citations"] == [] and refused["hits"]
    answered = json.loads(ask(built_project, QUESTION, "--json", "--params", middle).stdout)
    assert answered["found"] is True and answered["claims"]
    printed = ask(built_project, off_topic, "--params", middle).stdout
    assert "Not found in the documents" in printed and "below answer.min_relevance" in printed


def test_anthropic_answer_through_the_sdk(built_project: Path) -> None:
    with FakeAnthropic() as fake:
        res = ask(
            built_project,
            QUESTION,
            "--json",
            "--scorer",
            "embedding",
            env={"ANTHROPIC_API_KEY": "sk-e2e", "ANTHROPIC_BASE_URL": fake.url},
        )
    out = json.loads(res.stdout)
    assert out["generator"] == "anthropic"  # auto: the key is set
    (req,) = fake.requests
    assert QUESTION in req.body["messages"][0]["content"]
    first = out["hits"][0]["doc_id"]
    assert out["citations"] == [first]  # the fake cites the first document and an id never provided
    assert [c["citations"] for c in out["claims"]] == [[first], []]  # the unknown id is dropped
    assert "99999999" in res.stderr  # ... and reported (a warning), the key is not
    assert "sk-e2e" not in res.stdout + res.stderr


def test_batch_is_resumable_and_rejects_bad_lines(built_project: Path, tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        "\n".join(
            json.dumps({"id": f"q{i}", "question": q})
            for i, q in enumerate([QUESTION, "What causes insulin resistance?", "Is obesity linked to cancer?"])
        )
        + "\n"
    )
    answers = tmp_path / "a.jsonl"
    answers.write_text(json.dumps({"id": "q1", "text": "from an earlier run"}) + "\n")
    res = ask(
        built_project, "--batch", str(questions), "--out", str(answers), "--concurrency", "2", "--scorer", "lexical"
    )
    assert "2 answered, 1 already there" in res.stdout
    lines = [json.loads(line) for line in answers.read_text().splitlines()]
    assert sorted(r["id"] for r in lines) == ["q0", "q1", "q2"]
    assert all(r["citations"] for r in lines if r["id"] != "q1")
    again = ask(built_project, "--batch", str(questions), "--out", str(answers), "--scorer", "lexical")
    assert "0 answered, 3 already there" in again.stdout
    questions.write_text(json.dumps({"id": "x", "question": "ok?"}) + "\n{broken\n")
    bad = ask(built_project, "--batch", str(questions), "--out", str(answers), check=False)
    assert bad.returncode == 2 and f"{questions}:2: not JSON" in bad.stderr


def test_unknown_generator_and_missing_key_are_one_line_errors(built_project: Path) -> None:
    res = ask(built_project, QUESTION, "--generator", "poet", check=False)
    assert res.returncode == 2 and "unknown generator 'poet'; valid: anthropic, auto, extractive" in res.stderr
    res = ask(built_project, QUESTION, "--generator", "anthropic", check=False)
    assert res.returncode == 2 and "ANTHROPIC_API_KEY" in res.stderr and "Traceback" not in res.stderr


def test_metrics_hold_grounding_and_rag(built_project: Path) -> None:
    metrics = json.loads((built_project / "reports" / "metrics.json").read_text())
    assert set(metrics["grounding"]) == {"lexical", "embedding", "trained", "lexical_baseline"}
    for values in metrics["grounding"].values():
        assert 0.0 <= values["auroc"] <= 1.0 and 0.0 <= values["f1"] <= 1.0
        assert "auroc_support_vs_contradict" in values
    rag = metrics["rag"]["extractive"]
    assert 0.0 < rag["citation_precision"] <= 1.0 and 0.0 <= rag["support_rate"] <= 1.0
    assert rag["n_queries"] == 12
    saved = json.loads((built_project / "models" / "grounding" / "scorers.json").read_text())
    # the cross-encoder's served form: exported by the stage and checked there against PyTorch
    export = saved["trained"]["cross_encoder"]["onnx"]
    assert export["pairs"] > 0 and export["max_abs_diff"] < 1e-4 and export["same_argmax"] == 1.0
    assert (built_project / "models/grounding/cross_encoder/onnx/model.onnx").is_file()


@pytest.mark.parametrize("scorer", ["trained"])
def test_registry_model_answers(built_project: Path, scorer: str) -> None:
    res = ask(built_project, QUESTION, "--json", "--model", "models:/ragops-retriever@champion", "--scorer", scorer)
    out = json.loads(res.stdout)
    assert out["citations"] and set(out["citations"]) <= {h["doc_id"] for h in out["hits"]}
