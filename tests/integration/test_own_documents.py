"""Your own documents (issue 16): a folder of PDF, DOCX, Markdown, text, HTML and JSONL files (written by real
writers) goes through the whole DAG
with no judgments at all (builds, registers its first version as champion, searches), re-ingests exactly
what changed (edit, delete, rename, duplicate), and once questions are judged, evaluates on them and gates.

The documents are real SciFact abstracts written out as files, so search has real text to rank.
"""

from __future__ import annotations

import gzip
import html
import json
from pathlib import Path

import pytest
import yaml

from tests.ingest_fixtures import write_docx, write_pdf

from .conftest import copy_project, run

pytestmark = pytest.mark.integration


def _abstracts(mirror_root: Path, n: int) -> list[dict]:
    out = []
    with gzip.open(mirror_root / "scifact" / "corpus.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if len(row["text"]) > 400:
                out.append(row)
            if len(out) == n:
                return out
    return out


def _write_docs(folder: Path, rows: list[dict]) -> dict[str, dict]:
    """One file per abstract, cycling through the formats; returns {document id: row}."""
    ids: dict[str, dict] = {}
    for i, row in enumerate(rows[:-4]):
        kind = ("md", "txt", "html")[i % 3]
        rel = f"{('notes', 'papers', 'wiki')[i % 3]}/doc{i:02d}.{kind}"
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "md":
            path.write_text(f"# {row['title']}\n\n{row['text']}\n", encoding="utf-8")
        elif kind == "txt":
            path.write_text(f"{row['text']}\n", encoding="utf-8")
        else:
            path.write_text(f"<html><head><title>{html.escape(row['title'])}</title></head><body>"
                            f"<nav>menu</nav><h1>{html.escape(row['title'])}</h1><p>{html.escape(row['text'])}</p>"
                            "</body></html>", encoding="utf-8")
        ids[rel] = row
    with open(folder / "papers" / "more.jsonl", "w", encoding="utf-8") as fh:
        for row in rows[-4:]:
            fh.write(json.dumps({"id": f"r{row['_id']}", "title": row["title"], "text": row["text"]}) + "\n")
            ids[f"papers/more.jsonl#r{row['_id']}"] = row
    return ids


PAGE2 = ("Cryogenic storage of the reagent at minus eighty degrees preserved enzyme activity for "
         "thirty six months, whereas storage at four degrees lost half of it within eleven weeks.")


def _write_office_files(folder: Path) -> None:
    """A two-page PDF (the passage the test looks for is on page 2) and a DOCX, by real writers."""
    (folder / "lab").mkdir(parents=True, exist_ok=True)
    write_pdf(folder / "lab" / "storage.pdf", ["Reagent handling guide. Section one covers ordering and labels.",
                                               PAGE2], title="Reagent storage guide")
    write_docx(folder / "lab" / "safety.docx", [("h1", "Bench safety"),
                                                ("p", "Wear goggles near centrifuges and keep the lids closed.")],
               title="Bench safety rules")


def _search(project: Path, query: str) -> list[str]:
    out = run(["ragops", "search", query, "-k", "5", "--json"], project).stdout
    return [hit["doc_id"] for hit in json.loads(out)["results"]]


def _json(project: Path, rel: str) -> dict:
    return json.loads((project / rel).read_text(encoding="utf-8"))


def test_own_documents_build_change_and_judge(mirror_root: Path, tmp_path: Path, embedding_cache: Path) -> None:
    project = copy_project(tmp_path / "project", embedding_cache)
    source = tmp_path / "handbook"
    docs = _write_docs(source, _abstracts(mirror_root, 28))
    _write_office_files(source)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["source"] = str(source)
    params["prepare"]["max_docs"] = 0
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # no `ragops data fetch` here (a team's own folder, no mirror): an empty nli/ folder, as the README says,
    # makes grounding_pretrain write its marker only
    (project / "data/raw/nli").mkdir(parents=True)

    # 1. No judgments: builds, records the status, registers v1 as champion, searches.
    run(["dvc", "repro"], project)
    summary = _json(project, "data/interim/corpus/summary.json")
    assert summary["kind"] == "documents" and summary["documents"] == len(docs) + 2
    assert summary["status"] == {"ok": 28 - 4 + 1 + 2}
    corpus = {r["_id"]: r for r in map(json.loads, (project / "data/interim/corpus/corpus.jsonl").open())}
    pdf = corpus["lab/storage.pdf"]
    assert pdf["title"] == "Reagent storage guide" and pdf["metadata"]["pages"] == 2
    page2 = next(start for start, page, _ in pdf["metadata"]["sections"] if page == 2)
    assert pdf["text"].index("Cryogenic storage") >= page2  # the passage is where page 2 starts or after
    assert corpus["lab/safety.docx"]["title"] == "Bench safety rules"
    metrics = _json(project, "reports/metrics.json")
    assert metrics["status"] == "no judgments"
    assert _json(project, "reports/grounding_pretrain.json")["reason"].startswith("no files in")
    registry = _json(project, "reports/registry.json")
    assert registry["promoted"] is True and registry["decision"]["reason"].startswith("no judgments")
    target_id, target = next(iter(docs.items()))
    assert _search(project, target["title"])[0] == target_id
    question = "How long does the reagent keep its enzyme activity in cryogenic storage?"
    assert _search(project, question)[0] == "lab/storage.pdf"
    answer = json.loads(run(["ragops", "ask", question, "--json"], project).stdout)
    assert answer["found"] and answer["citations"][0] == "lab/storage.pdf", answer
    assert "[lab/storage.pdf]" in answer["text"]
    # The citation says where: the claim taken from the page-2 passage is located on page 2.
    places = [c["where"].get("lab/storage.pdf", "") for c in answer["claims"] if "lab/storage.pdf" in c["citations"]]
    assert any(w.startswith("p. 2") for w in places), answer["claims"]

    # 2. Change the folder: edit one, delete one, rename one, add a copy of another.
    ids = list(docs)
    edited, deleted, renamed, copied = ids[1], ids[2], ids[3], ids[4]
    (source / edited).write_text((source / edited).read_text(encoding="utf-8") + "\nAn added sentence.\n",
                                 encoding="utf-8")
    (source / deleted).unlink()
    new_name = "archive/" + Path(renamed).name
    (source / "archive").mkdir()
    (source / renamed).rename(source / new_name)
    (source / "zz").mkdir()
    (source / "zz" / "copy.txt").write_bytes((source / copied).read_bytes())  # sorts after the original
    run(["dvc", "repro"], project)
    summary = _json(project, "data/interim/corpus/summary.json")
    assert summary["changed"] == [edited] and summary["removed"] == [deleted]
    assert summary["renamed"] == [{"from": renamed, "to": new_name}] and summary["added"] == []
    assert summary["duplicates"] == [{"path": "zz/copy.txt", "same_as": copied}]
    assert summary["status"]["reused"] == 27 - 2  # 27 files: all but the edited and the deleted one
    embed = _json(project, "models/index/embed_stats.json")
    assert 0 < embed["encoded"] < embed["total"] / 4, embed  # only the changed documents' chunks were encoded
    assert deleted not in _search(project, docs[deleted]["title"])
    assert _search(project, docs[renamed]["title"])[0] == new_name

    # 3. Judgments: a person's (the CLI) and generated ones; evaluate and the gate use them.
    query = docs[target_id]["title"]
    run(["ragops", "judge", query, "--yes", target_id], project)
    run(["ragops", "generate-questions", "--max-docs", "20", "--seed", "1"], project)
    run(["dvc", "repro"], project)
    stats = _json(project, "data/processed/stats.json")
    assert stats["judged_here"]["by_source"].keys() == {"human", "silver"}
    metrics = _json(project, "reports/metrics.json")
    assert "status" not in metrics and metrics["test"]["hybrid"]["ndcg@10"] > 0.3
    assert all(kind.startswith(("silver", "human", "mixed")) for kind in metrics["judgments"].values())
    registry = _json(project, "reports/registry.json")
    assert registry["promoted"] is True and "registered without judgments" in registry["decision"]["reason"]
