"""Where a claim comes from: sections read from the corpus, a claim located on its page and heading."""

from __future__ import annotations

import json

import pytest

from ragops.answer.where import label, locate, parse_sections, where
from ragops.data.beir import read_corpus
from ragops.errors import DataError

TEXT = ("Reagent handling guide. Labels go on every bottle.\n\n"
        "Cryogenic storage keeps the enzyme active for two years. Thawing twice halves it.\n\n"
        "Results. The assay drifted by three percent.")
PAGE2 = TEXT.index("Cryogenic")
RESULTS = TEXT.index("Results.")
SECTIONS = [[0, 1, None], [PAGE2, 2, None], [RESULTS, 2, "Results"]]


def test_label_takes_the_last_section_starting_at_or_before_the_offset():
    s = parse_sections(json.dumps(SECTIONS))
    assert label(s, 0) == "p. 1"
    assert label(s, PAGE2) == "p. 2"
    assert label(s, RESULTS + 5) == "p. 2, Results"
    assert label([(0, None, "Intro"), (10, None, "Methods")], 12) == "Methods"
    assert label([], 3) == "" and parse_sections("") == [] and parse_sections(None) == []


def test_a_claim_is_located_at_the_sentence_sharing_most_words():
    assert locate("Cryogenic storage keeps the enzyme active for two years.", TEXT) == PAGE2
    # A reworded (generated) claim still lands on its closest source sentence.
    assert locate("The enzyme stays active two years in cryogenic storage", TEXT) == PAGE2
    assert locate("assay drift", TEXT) == TEXT.index("The assay")
    assert locate("nothing in common", TEXT) == 0
    raw = json.dumps(SECTIONS)
    assert where("Thawing twice halves the activity.", TEXT, raw) == "p. 2"
    assert where("The assay drifted by three percent.", TEXT, raw) == "p. 2, Results"
    assert where("Labels go on every bottle.", TEXT, "") == ""  # a document without sections


def _corpus(tmp_path, rows):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_read_corpus_keeps_sections_only_when_a_document_has_them(tmp_path):
    plain = read_corpus(_corpus(tmp_path, [{"_id": "a", "title": "A", "text": "x"}]))
    assert list(plain.columns) == ["doc_id", "title", "text"]  # a BEIR corpus reads as before
    rows = [{"_id": "a.pdf", "title": "A", "text": TEXT, "metadata": {"path": "a.pdf", "sections": SECTIONS}},
            {"_id": "b", "title": "B", "text": "y"}]
    docs = read_corpus(_corpus(tmp_path, rows))
    assert json.loads(docs.at[0, "sections"]) == SECTIONS and docs.at[1, "sections"] == ""


@pytest.mark.parametrize("bad", [[[0, 1]], [["0", 1, None]], [[0, "2", None]], "p. 2", [[True, 1, None]]])
def test_malformed_sections_name_the_file_and_line(tmp_path, bad):
    rows = [{"_id": "a", "title": "A", "text": "x"}, {"_id": "b", "text": "y", "metadata": {"sections": bad}}]
    with pytest.raises(DataError, match=r"corpus\.jsonl:2: .metadata\.sections"):
        read_corpus(_corpus(tmp_path, rows))
