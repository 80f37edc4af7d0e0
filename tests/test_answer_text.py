"""Hand-worked cases: claims and citations, the lexical scorer, negation, packing, MMR, metrics, input errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ragops.answer.batch import answered_ids, read_questions
from ragops.answer.context import pack_context, word_count
from ragops.answer.generators import _cite, mmr, strip_heading, word_overlap
from ragops.answer.grounding_data import read_pairs
from ragops.answer.grounding_metrics import auroc, best_threshold, f1_at, grounding_report
from ragops.answer.negate import negate
from ragops.answer.scorers import lexical_score, load_scorer
from ragops.answer.text import parse_citations, split_claims, split_sentences, strip_citations
from ragops.errors import ConfigError, DataError


def test_citations_in_order_of_first_appearance() -> None:
    assert parse_citations("a [1] b [2, 3] c [1] d [4;5]") == ["1", "2", "3", "4", "5"]
    assert parse_citations("no citations here") == []
    assert strip_citations("Vitamin D raises density [12]. Next [3, 4].") == "Vitamin D raises density. Next."


def test_split_claims_attaches_citations_to_their_sentence() -> None:
    text = "Vitamin D raises bone density [12]. It also helps muscles. [13] Yes [1]. Third claim is here [4, 5]."
    assert split_claims(text) == [
        ("Vitamin D raises bone density.", ["12"]),
        ("It also helps muscles.", ["13"]),
        ("Third claim is here.", ["4", "5"]),
    ]  # "Yes." is too short to be a claim
    assert split_sentences("One. Two!  Three? four") == ["One.", "Two!", "Three?", "four"]


def test_lexical_score_is_the_baseline_fraction_in_the_best_single_document() -> None:
    # claim words: vitamin, d, increases, bone, density. (5) — substring test, as the baseline does
    claim = "Vitamin D increases bone density."
    doc_a = ["Vitamin D was given.", "Bone density increases."]  # vitamin d increases bone (4/5: "density." absent)
    doc_b = ["Calcium helps."]  # "d" occurs inside "helps"? no; nothing else: 0/5... "d" is not in it
    assert lexical_score(claim, [doc_a]) == pytest.approx(4 / 5)
    assert lexical_score(claim, [doc_b, doc_a]) == pytest.approx(4 / 5)  # the best single document
    assert lexical_score(claim, [["vitamin d increases bone density."]]) == 1.0
    assert lexical_score("", [doc_a]) == 0.0 and lexical_score(claim, []) == 0.0
    scorer = load_scorer("lexical", None, None)
    assert scorer.threshold == 0.7  # the baseline's threshold when nothing was fit
    assert scorer.score([claim], [[doc_a]]).tolist() == [pytest.approx(0.8)]


def test_unknown_scorer_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match="embedding, lexical, trained"):
        load_scorer("magic", None, None)


def test_negate_flips_meaning_with_few_words() -> None:
    assert negate("Aspirin does not reduce pain.") == "Aspirin reduces pain."
    assert negate("Exercise increases insulin sensitivity.") == "Exercise decreases insulin sensitivity."
    assert negate("TLR signaling is involved in MDS.") == "TLR signaling is not involved in MDS."
    assert negate("There is no known interaction.") == "There is a known interaction."


def test_pack_context_respects_the_budget_and_cuts_at_sentences() -> None:
    docs = [("1", "T1", "a b c. d e f.", 1.0), ("2", "T2", "g h. i j k. l m n o.", 0.5), ("3", "T3", "x y z.", 0.1)]
    # word counts with titles: doc1 = 7, doc2 = 10, doc3 = 4
    packed = pack_context(docs, budget=13, count=word_count, min_tokens=3)
    assert [d.doc_id for d in packed] == ["1", "2"]
    assert packed[1].truncated and packed[1].text == "g h. i j k." and sum(d.tokens for d in packed) == 13
    assert [d.doc_id for d in pack_context(docs, 100, word_count)] == ["1", "2", "3"]
    first = pack_context(docs, budget=2, count=word_count, min_tokens=1)
    assert first == []  # not even the first sentence of the first document fits


def test_mmr_prefers_diverse_sentences() -> None:
    rel = np.array([1.0, 0.99, 0.5])
    sim = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]], dtype=float)
    assert mmr(rel, sim, 2, lam=0.5) == [0, 2]  # the near-duplicate of 0 loses to the distinct one
    assert mmr(rel, sim, 2, lam=1.0) == [0, 1]
    assert word_overlap("Does vitamin D help?", "Vitamin D helps bone.") == pytest.approx(2 / 3)
    assert _cite("X rises.", "7") == "X rises [7]." and _cite("Why", "7") == "Why [7]."
    assert _cite("Given HRZE [H, isoniazid] daily [2].", "7") == "Given HRZE (H, isoniazid) daily (2) [7]."
    assert strip_heading("RESULTS: We found X.") == "We found X."
    assert strip_heading("BACKGROUND AND AIMS The study.") == "The study."
    assert strip_heading("DNA damage occurs.") == "DNA damage occurs."  # an acronym is not a heading


def test_grounding_metrics_by_hand() -> None:
    assert auroc([0.9, 0.8, 0.1], [True, False, False]) == 1.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert f1_at([0.9, 0.6, 0.2], [True, False, True], 0.5) == pytest.approx(2 * 1 / (2 + 2))
    assert best_threshold([0.9, 0.6, 0.2], [True, False, False]) == pytest.approx(0.75)
    r = grounding_report([0.9, 0.2, 0.6, 0.1], ["SUPPORT", "CONTRADICT", "NEI", "NEI"], 0.5)
    assert r["auroc"] == 1.0 and r["auroc_support_vs_contradict"] == 1.0 and r["f1"] == pytest.approx(2 / 3, abs=1e-4)


def test_claims_file_errors_name_the_line(tmp_path) -> None:
    header = "id,claim,evidence_doc_id,evidence_label,evidence_sentences,cited_doc_ids\n"
    good = tmp_path / "c.csv"
    good.write_text(header + "1,X causes Y.,10,SUPPORT,[0],[10 11]\n1,X causes Y.,10,SUPPORT,[2],[10 11]\n")
    pairs = read_pairs(good)
    assert [(p.doc_id, p.label, p.rationales) for p in pairs] == [("10", "SUPPORT", [[0], [2]]), ("11", "NEI", [])]
    bad = tmp_path / "b.csv"
    bad.write_text(header + "1,X causes Y.,10,SUPPORT,[0],[10]\n2,Z.,10,MAYBE,[0],[10]\n")
    with pytest.raises(DataError, match=r"b.csv:3: unknown evidence_label 'MAYBE'"):
        read_pairs(bad)


def test_batch_input_errors_name_file_and_line(tmp_path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a", "question": "Why?"}\n\n{"question": "How?"}\n')
    assert read_questions(path) == [("a", "Why?"), ("3", "How?")]
    path.write_text('{"id": "a", "question": "Why?"}\nnot json\n')
    with pytest.raises(DataError, match=r"q.jsonl:2: not JSON"):
        read_questions(path)
    path.write_text('{"id": "a", "text": "Why?"}\n')
    with pytest.raises(DataError, match=r"q.jsonl:1: expected"):
        read_questions(path)
    out = tmp_path / "a.jsonl"
    out.write_text(json.dumps({"id": "a"}) + "\n" + '{"id": "b", "text": "torn')
    assert answered_ids(out) == {"a"}
