"""ragops.answer.nli_data: the real nli/ mirror (counts from its README, labels, no SciFact claim) and small
hand-made mirrors in tmp_path for every refusal (hash, malformed line, unknown label, RTE line counts)."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from ragops.answer.nli_data import (
    LABELS,
    SOURCES,
    Pair,
    claim_group,
    cv_groups,
    load_all,
    load_source,
    normalise_claim,
    summary,
)
from ragops.errors import ConfigError, DataError

# ---------------------------------------------------------------- the real mirror


@pytest.fixture(scope="module")
def nli_pairs(mirror: Path) -> dict[str, list[Pair]]:
    """Every source of the real mirror, read once (``mirror`` is <datasets>/scifact; nli/ is its sibling)."""
    return {s: load_source(mirror.parent, s) for s in SOURCES}


def test_counts_match_the_readme(nli_pairs):
    splits = {s: Counter(p.split for p in pairs) for s, pairs in nli_pairs.items()}
    assert splits == {"healthver": {"dev": 1917, "test": 1823}, "covidfact": {"all": 4086},
                      "covidfact_rte": {"train": 3263, "dev": 419}, "fever": {"dev": 13332}}
    assert all(p.source == s for s, pairs in nli_pairs.items() for p in pairs)


def test_labels(nli_pairs):
    labels = {s: set(p.label for p in pairs) for s, pairs in nli_pairs.items()}
    assert set().union(*labels.values()) <= set(LABELS)
    assert labels["healthver"] == {"support", "contradict", "neutral"}
    assert labels["covidfact"] == {"support", "contradict"}
    # RTE not_entailment mixes refuted and not-enough-info: never read as contradict or neutral
    assert labels["covidfact_rte"] == labels["fever"] == {"support", "not_support"}
    # the README says FEVER's dev pairs are balanced
    assert Counter(p.label for p in nli_pairs["fever"]) == {"support": 6666, "not_support": 6666}


def test_text_is_never_empty_and_groups_follow_claims(nli_pairs):
    for pairs in nli_pairs.values():
        assert all(p.claim and p.evidence and p.claim == p.claim.strip() for p in pairs)
        by_group: dict[str, set[str]] = {}
        for p in pairs:
            by_group.setdefault(p.group, set()).add(normalise_claim(p.claim))
        assert all(len(claims) == 1 for claims in by_group.values())
    # the same COVID-Fact claim in the jsonl and in the RTE files is one group (no leak across folds)
    shared = {p.group for p in nli_pairs["covidfact"]} & {p.group for p in nli_pairs["covidfact_rte"]}
    assert len(shared) > 3000


def test_fold_groups_join_claims_that_share_evidence(nli_pairs):
    """A refuted COVID-Fact claim is a rewrite of a true one over the same evidence: one fold group."""
    pairs = nli_pairs["covidfact"]
    groups = cv_groups(pairs)
    by_claim = {p.group for p in pairs}
    assert len(set(groups)) < len(by_claim)  # some claims were joined through their evidence
    evidence_group: dict[str, str] = {}
    for p, g in zip(pairs, groups, strict=True):
        assert evidence_group.setdefault(normalise_claim(p.evidence), g) == g  # one evidence, one group
    joined = Counter(groups)
    mixed = [g for g in joined if {p.label for p, h in zip(pairs, groups, strict=True) if h == g} == {
        "support", "contradict"}]
    assert mixed  # a true claim and its refuted rewrite now share a fold


def test_fold_groups_by_hand():
    def pair(claim: str, evidence: str, family: str = "covidfact") -> Pair:
        return Pair(evidence, claim, "support", family, "all", claim_group(family, claim))

    pairs = [pair("Masks cut spread", "E1"), pair("Masks raise spread", "e1."), pair("Masks cut spread", "E2"),
             pair("Vitamin D helps", "E3"), pair("Other claim", "E1", family="fever")]
    g = cv_groups(pairs)
    assert g[0] == g[1] == g[2]  # shared evidence (normalised), then a shared claim
    assert len({g[0], g[3], g[4]}) == 3  # other evidence; the same text in another family stays apart
    assert cv_groups([]) == []


def test_no_claim_is_a_scifact_claim(nli_pairs, mirror: Path):
    scifact: set[str] = set()
    for split in ("train", "dev"):
        with open(mirror / f"claims_{split}.csv", encoding="utf-8", newline="") as f:
            scifact |= {normalise_claim(row["claim"]) for row in csv.DictReader(f)}
    assert len(scifact) > 1000
    for source, pairs in nli_pairs.items():
        assert not scifact & {normalise_claim(p.claim) for p in pairs}, source


def test_normalise_claim():
    assert normalise_claim("  Vitamin D   REDUCES\tRisk . ") == "vitamin d reduces risk"
    assert normalise_claim("“Masks work!”") == "masks work"
    assert normalise_claim("COVID-19 is 5% deadlier.") == "covid-19 is 5% deadlier"
    assert claim_group("x", "A claim.") == claim_group("x", "a  CLAIM") != claim_group("y", "a claim")


# ---------------------------------------------------------------- hand-made mirrors

HEALTHVER_DEV = ('id,evidence,claim,label,topic_ip,question\n'
                 '1,"Zinc helps.\nIt does.",Zinc cures COVID-19.,Supports,7,q\n'
                 '2,Zinc does not help.,Zinc cures COVID-19,Refutes,7,q\n')
HEALTHVER_TEST = "id,evidence,claim,label,topic_ip,question\n3,Masks filter.,Masks work.,Neutral,8,q\n"
COVIDFACT = (json.dumps({"claim": "Drug A works", "label": "SUPPORTED", "evidence": ["S one.", " S two. "]}) + "\n"
             + json.dumps({"claim": "Drug B works", "label": "REFUTED", "evidence": ["S three."]}) + "\n")


def _rte(stem: str, evidence: list[str], claims: list[str], labels: list[str]) -> dict[str, str]:
    return {f"{stem}.raw.input0": "".join(e + "\n" for e in evidence),
            f"{stem}.raw.input1": "".join(c + "\n" for c in claims),
            f"{stem}.label": "".join(lab + "\n" for lab in labels)}


def _files() -> dict[str, str]:
    return {"healthver/healthver_dev.csv": HEALTHVER_DEV, "healthver/healthver_test.csv": HEALTHVER_TEST,
            "covidfact/COVIDFACT_dataset.jsonl": COVIDFACT,
            **_rte("covidfact/rte_train", ["S one.", "S three."], ["Drug A works.", "Drug B works"],
                   ["entailment", "not_entailment"]),
            **_rte("covidfact/rte_dev", ["S four."], ["Drug C works"], ["not_entailment"]),
            **_rte("fever_rte_dev/dev", ["Paris is in France ."], ["Paris is in France."], ["entailment"])}


def _mirror(root: Path, files: dict[str, str], unlisted: tuple[str, ...] = ()) -> Path:
    """A datasets folder holding ``nli/<rel>`` for each file and a SHA256SUMS listing all but ``unlisted``."""
    lines = []
    for rel, text in files.items():
        path = root / "nli" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
        if rel not in unlisted:
            lines.append(f"{hashlib.sha256(text.encode('utf-8')).hexdigest()}  nli/{rel}\n")
    (root / "SHA256SUMS").write_text("".join(lines), encoding="utf-8")
    return root


def _error(root: Path, source: str) -> DataError:
    with pytest.raises(DataError) as info:
        load_source(root, source)
    return info.value


def test_fake_mirror_reads_every_source(tmp_path):
    pairs = load_all(_mirror(tmp_path, _files()), SOURCES)
    hv = [p for p in pairs if p.source == "healthver"]
    assert hv[0] == Pair("Zinc helps.\nIt does.", "Zinc cures COVID-19.", "support", "healthver", "dev",
                         claim_group("healthver:7", "zinc cures covid-19"))
    assert hv[1].group == hv[0].group and hv[1].label == "contradict" and hv[2].split == "test"
    cf = [p for p in pairs if p.source == "covidfact"]
    assert [(p.evidence, p.label, p.split) for p in cf] == [("S one. S two.", "support", "all"),
                                                           ("S three.", "contradict", "all")]
    rte = [p for p in pairs if p.source == "covidfact_rte"]
    assert [(p.label, p.split) for p in rte] == [("support", "train"), ("not_support", "train"),
                                                 ("not_support", "dev")]
    assert rte[0].group == cf[0].group  # same claim, same family, whichever file
    assert summary(pairs) == {
        "pairs": 9, "by_label": {"support": 4, "contradict": 2, "neutral": 1, "not_support": 2},
        "by_source": {"healthver": {"support": 1, "contradict": 1, "neutral": 1},
                      "covidfact": {"support": 1, "contradict": 1},
                      "covidfact_rte": {"support": 1, "not_support": 2}, "fever": {"support": 1}}}


def test_corrupted_file_is_refused_by_hash(tmp_path):
    root = _mirror(tmp_path, _files())
    (root / "nli/fever_rte_dev/dev.raw.input1").write_text("Paris is in Spain.\n", encoding="utf-8")
    err = _error(root, "fever")
    assert err.path.endswith("fever_rte_dev/dev.raw.input1") and "sha256 mismatch" in err.message
    load_source(root, "healthver")  # the other sources' files are intact


def test_unlisted_file_is_refused(tmp_path):
    root = _mirror(tmp_path, _files(), unlisted=("covidfact/rte_dev.label",))
    err = _error(root, "covidfact_rte")
    assert err.path.endswith("covidfact/rte_dev.label") and "no entry" in err.message


JSONL, CSV = "covidfact/COVIDFACT_dataset.jsonl", "healthver/healthver_dev.csv"


@pytest.mark.parametrize(("source", "rel", "text", "line", "words"), [
    ("covidfact", JSONL, COVIDFACT + '{"claim": "x", \n', 3, "malformed JSON"),
    ("covidfact", JSONL, COVIDFACT + json.dumps({"claim": "x", "label": "REFUTED", "evidence": "a string"}),
     3, "'evidence' must be a list"),
    ("covidfact", JSONL, json.dumps({"claim": " ", "label": "REFUTED", "evidence": ["e"]}), 1, "empty claim"),
    ("covidfact", JSONL, COVIDFACT + json.dumps({"claim": "x", "label": "NEI", "evidence": ["e"]}),
     3, "unknown label 'NEI'"),
    # the first data row spans lines 2-3 (a quoted newline), the second is line 4: the appended row is line 5
    ("healthver", CSV, HEALTHVER_DEV + "4,Only evidence,A claim,Neutral\n", 5, "expected 6 fields, got 4"),
    ("healthver", CSV, HEALTHVER_DEV + '5,"",A claim,Neutral,7,q\n', 5, "empty evidence"),
    ("healthver", CSV, HEALTHVER_DEV + "6,Evidence,A claim,Maybe,7,q\n", 5, "unknown label 'Maybe'"),
    ("healthver", CSV, HEALTHVER_DEV + '7,"Two\nlines",A claim,Maybe,7,q\n', 5, "unknown label"),  # row 5-6
    ("covidfact_rte", "covidfact/rte_train.label", "entailment\ncontradiction\n", 2, "unknown label 'contradiction'"),
    ("covidfact_rte", "covidfact/rte_train.raw.input1", "Drug A works.\n   \n", 2, "empty claim"),
])
def test_bad_line_names_file_and_line(tmp_path, source, rel, text, line, words):
    root = _mirror(tmp_path, {**_files(), rel: text})  # listed with its own hash: only the content is wrong
    err = _error(root, source)
    assert err.path == str(root / "nli" / rel) and err.line == line
    assert f"{rel.split('/')[-1]}:{line}: " in str(err) and words in err.message


def test_rte_files_of_different_lengths_are_refused(tmp_path):
    root = _mirror(tmp_path, {**_files(), "covidfact/rte_train.label": "entailment\n"})
    err = _error(root, "covidfact_rte")
    assert err.path.endswith("rte_train.label") and "1 lines, but rte_train.raw.input0 has 2" in err.message


def test_unknown_source_lists_the_valid_ones(tmp_path):
    root = _mirror(tmp_path, _files())
    for call in (lambda: load_source(root, "scifact"), lambda: load_all(root, ["healthver", "snli"])):
        with pytest.raises(ConfigError) as info:
            call()
        assert all(name in str(info.value) for name in SOURCES)
    with pytest.raises(ConfigError, match="twice"):
        load_all(root, ["fever", "fever"])
