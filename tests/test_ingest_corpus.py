"""The corpus builder of `ragops ingest` and the ingest stage (issue 16): ids from paths, incremental and exact
re-ingests, duplicates, failures listed without losing the rest, strict mode, BEIR folders copied."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragops.data.beir import load_beir
from ragops.errors import DataError
from ragops.ingest.corpus import IngestConfig, ingest

CFG = IngestConfig(workers=2, timeout_s=30.0, max_mb=1.0, strict=False)


def _tree(root: Path) -> Path:
    (root / "guides").mkdir(parents=True)
    (root / "guides" / "setup.md").write_text("# Setup\n\nInstall the tool with pip.\n\n## Upgrade\n\nRun pip again.\n")
    (root / "notes.txt").write_text("Meeting notes: the index is rebuilt nightly.\n")
    (root / "page.html").write_text("<html><head><title>Status page</title></head><body><script>x()</script>"
                                    "<h1>Status</h1><p>All systems nominal.</p></body></html>")
    (root / "rows.jsonl").write_text(json.dumps({"id": "a", "title": "Row A", "text": "alpha text"}) + "\n"
                                     + json.dumps({"_id": "b", "text": "beta text"}) + "\n")
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / ".hidden.md").write_text("# never read\n")
    return root


def _corpus(out: Path) -> dict[str, dict]:
    return {r["_id"]: r for r in map(json.loads, (out / "corpus.jsonl").read_text().splitlines())}


def _manifest(out: Path) -> dict[str, dict]:
    return {r["path"]: r for r in map(json.loads, (out / "manifest.jsonl").read_text().splitlines())}


def test_a_folder_becomes_a_beir_corpus_with_a_manifest(tmp_path: Path) -> None:
    src, out = _tree(tmp_path / "src"), tmp_path / "out"
    summary = ingest(src, out, CFG)
    corpus = _corpus(out)
    assert set(corpus) == {"guides/setup.md", "notes.txt", "page.html", "rows.jsonl#a", "rows.jsonl#b"}
    assert corpus["guides/setup.md"]["title"] == "Setup" and corpus["page.html"]["title"] == "Status page"
    assert "x()" not in corpus["page.html"]["text"]
    headings = [s[2] for s in corpus["guides/setup.md"]["metadata"]["sections"]]
    assert "Upgrade" in headings
    manifest = _manifest(out)
    assert manifest["image.png"]["status"] == "unsupported" and ".hidden.md" not in manifest
    assert all(len(manifest[p]["sha256"]) == 64 for p in ("notes.txt", "page.html"))
    assert summary["status"] == {"ok": 4, "unsupported": 1}
    assert summary["added"] == ["guides/setup.md", "notes.txt", "page.html", "rows.jsonl"]  # first run: all new
    data = load_beir(out, require_qrels=False)  # what prepare reads
    assert len(data.docs) == 5 and data.qrels.empty and data.queries.empty


def test_reingest_changes_exactly_what_changed(tmp_path: Path) -> None:
    src, out = _tree(tmp_path / "src"), tmp_path / "out"
    ingest(src, out, CFG)
    before = _corpus(out)
    (src / "notes.txt").write_text("Meeting notes: the index is rebuilt hourly.\n")  # edited
    (src / "page.html").unlink()  # deleted
    (src / "guides" / "setup.md").rename(src / "install.md")  # renamed
    (src / "zcopy.txt").write_text("Meeting notes: the index is rebuilt hourly.\n")  # same content as notes.txt
    (src / "new.md").write_text("# New\n\nA new page.\n")  # added
    summary = ingest(src, out, CFG)
    after = _corpus(out)
    assert summary["changed"] == ["notes.txt"] and summary["removed"] == ["page.html"]
    assert summary["renamed"] == [{"from": "guides/setup.md", "to": "install.md"}] and summary["added"] == ["new.md"]
    assert summary["duplicates"] == [{"path": "zcopy.txt", "same_as": "notes.txt"}]  # the first in sorted order
    manifest = _manifest(out)
    assert manifest["install.md"]["status"] == "reused" and manifest["rows.jsonl"]["status"] == "reused"
    assert manifest["new.md"]["status"] == "ok" and manifest["notes.txt"]["status"] == "ok"
    assert "page.html" not in after and "guides/setup.md" not in after
    assert after["install.md"]["text"] == before["guides/setup.md"]["text"]
    assert after["rows.jsonl#a"] == before["rows.jsonl#a"]
    assert "hourly" in after["notes.txt"]["text"] and "zcopy.txt" not in after


def test_bad_files_are_listed_and_the_rest_is_ingested(tmp_path: Path) -> None:
    src, out = _tree(tmp_path / "src"), tmp_path / "out"
    (src / "empty.txt").write_bytes(b"")
    (src / "junk.txt").write_bytes(bytes(range(256)) * 8)
    (src / "broken.jsonl").write_text('{"id": "x", "text": "ok"}\n{not json\n')
    (src / "big.txt").write_text("word " * 300_000)  # 1.5 MB > max_mb 1
    summary = ingest(src, out, CFG)
    manifest = _manifest(out)
    assert manifest["empty.txt"]["status"] == "empty" and manifest["junk.txt"]["status"] == "binary"
    assert manifest["broken.jsonl"]["status"] == "corrupt" and "2" in manifest["broken.jsonl"]["reason"]
    assert manifest["big.txt"]["status"] == "too_large"
    assert {f["path"] for f in summary["failed"]} == {"empty.txt", "junk.txt", "broken.jsonl", "big.txt",
                                                      "image.png"}
    assert len(_corpus(out)) == 5


def test_strict_fails_on_the_first_bad_file_and_keeps_the_last_corpus(tmp_path: Path) -> None:
    src, out = _tree(tmp_path / "src"), tmp_path / "out"
    ingest(src, out, CFG)
    good = (out / "corpus.jsonl").read_bytes()
    (src / "empty.txt").write_bytes(b"")
    strict = IngestConfig(workers=1, timeout_s=30.0, max_mb=1.0, strict=True)
    (src / "image.png").unlink()
    with pytest.raises(DataError, match="empty.txt.*empty"):
        ingest(src, out, strict)
    assert (out / "corpus.jsonl").read_bytes() == good


def test_a_beir_folder_is_checked_and_copied(tmp_path: Path) -> None:
    src = tmp_path / "beir"
    (src / "qrels").mkdir(parents=True)
    (src / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "title": "T", "text": "x"}) + "\n")
    (src / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "x?"}) + "\n")
    (src / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    summary = ingest(src, tmp_path / "out", CFG)
    assert summary["kind"] == "beir" and summary["documents"] == 1 and summary["judgments"] == 1
    assert (tmp_path / "out" / "qrels" / "test.tsv").read_bytes() == (src / "qrels" / "test.tsv").read_bytes()
    (src / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tnope\t1\n")
    with pytest.raises(DataError, match=r"test.tsv:2: corpus-id 'nope'"):
        ingest(src, tmp_path / "out", CFG)
