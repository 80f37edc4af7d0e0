"""Labelled (evidence, claim) pairs from the dataset mirror's ``nli/`` folder, as one list of :class:`Pair`.

Why: ~900 SciFact training claims are too few to teach a small cross-encoder to read support and
contradiction; these collections (COVID-19 health claims, Wikipedia facts) are for pre-training it. None of
their claims is a SciFact claim, so SciFact claims_dev stays the benchmark. This module only reads them.

Files, relative to ``<mirror>/nli/`` (``mirror`` is the datasets folder holding ``SHA256SUMS``):

- ``healthver``: ``healthver/healthver_{dev,test}.csv``, header ``id,evidence,claim,label,topic_ip,question``,
  label ``Supports`` / ``Refutes`` / ``Neutral``. Split ``dev`` / ``test``.
- ``covidfact``: ``covidfact/COVIDFACT_dataset.jsonl``, one object per line ``{"claim", "label": SUPPORTED |
  REFUTED, "evidence": [sentences], ...}``. One pair per claim, its evidence sentences joined by a single
  space. Split ``all`` (the file has none).
- ``covidfact_rte``: ``covidfact/rte_{train,dev}.raw.input0`` (evidence) / ``.raw.input1`` (claim) / ``.label``
  (``entailment`` / ``not_entailment``): line i of the three files is one pair. Split ``train`` / ``dev``.
- ``fever``: ``fever_rte_dev/dev.*``, the same three-file layout. Split ``dev``.

Labels: ``support``, ``contradict``, ``neutral`` and ``not_support``. ``not_support`` is RTE
``not_entailment``: in FEVER it mixes refuted and not-enough-info claims, so calling it ``contradict`` or
``neutral`` would teach a wrong class; it only says the evidence does not support the claim.

``group`` is ``<family>:<16 hex of sha1(normalised claim)>`` (HealthVer: ``healthver:<topic_ip>:<hash>``):
pairs that share a claim share a group, for group cross-validation. ``covidfact`` and ``covidfact_rte`` are
one family because they are the same claims in two forms (3,670 of the 3,682 RTE claims are in the jsonl):
load one of the two, not both, or the same claim is counted twice (in one group, at least).

Each file is checked against its ``SHA256SUMS`` entry before it is read; every problem is a
:class:`~ragops.errors.DataError` naming the file and, where there is one, the 1-based line.
Claim and evidence text lose surrounding whitespace and are otherwise as in the file.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ragops.data.beir import json_objects, sha256_file
from ragops.data.fetch import SUMS, read_sums
from ragops.errors import ConfigError, DataError, unknown_name

FOLDER = "nli"
LABELS = ("support", "contradict", "neutral", "not_support")
SOURCES = ("healthver", "covidfact", "covidfact_rte", "fever")
HEALTHVER_HEADER = ("id", "evidence", "claim", "label", "topic_ip", "question")
_HEALTHVER_LABELS = {"Supports": "support", "Refutes": "contradict", "Neutral": "neutral"}
_COVIDFACT_LABELS = {"SUPPORTED": "support", "REFUTED": "contradict"}
_RTE_LABELS = {"entailment": "support", "not_entailment": "not_support"}
# source -> (file or RTE stem relative to nli/, split)
_FILES: dict[str, tuple[tuple[str, str], ...]] = {
    "healthver": (("healthver/healthver_dev.csv", "dev"), ("healthver/healthver_test.csv", "test")),
    "covidfact": (("covidfact/COVIDFACT_dataset.jsonl", "all"),),
    "covidfact_rte": (("covidfact/rte_train", "train"), ("covidfact/rte_dev", "dev")),
    "fever": (("fever_rte_dev/dev", "dev"),),
}
_RTE_SUFFIXES = (".raw.input0", ".raw.input1", ".label")  # evidence, claim, label
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")


@dataclass(frozen=True)
class Pair:
    """One labelled pair: ``label`` in :data:`LABELS`, ``source`` in :data:`SOURCES`, ``split`` the file's
    own split name, ``group`` shared by the pairs of one claim (see the module docstring)."""

    evidence: str
    claim: str
    label: str
    source: str
    split: str
    group: str


def normalise_claim(text: str) -> str:
    """Lowercase, whitespace runs collapsed to one space, punctuation stripped at both ends."""
    return _EDGE_PUNCT.sub("", " ".join(text.lower().split()))


def claim_group(family: str, claim: str) -> str:
    """``<family>:<16 hex>``: the same normalised claim gives the same group, whichever file it is in."""
    return f"{family}:{hashlib.sha1(normalise_claim(claim).encode('utf-8')).hexdigest()[:16]}"


def cv_groups(pairs: Sequence[Pair]) -> list[str]:
    """Each pair's fold group for cross-validation: pairs are joined when they share a claim group or, within
    a family, a normalised evidence text. Grouping by claim alone leaks: COVID-Fact's refuted claims are
    one-word rewrites of true ones over the same evidence, and FEVER reuses evidence sentences across
    claims. Returns an opaque id per pair (the joined set's smallest key), in order."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in pairs:
        family = p.group.split(":", 1)[0]
        evidence = f"{family}:evidence:{hashlib.sha1(normalise_claim(p.evidence).encode('utf-8')).hexdigest()[:16]}"
        a, b = find(p.group), find(evidence)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return [find(p.group) for p in pairs]


def _files(source: str) -> list[str]:
    """The paths (relative to nli/) one source reads."""
    rte = source in ("covidfact_rte", "fever")
    return [rel + s for rel, _ in _FILES[source] for s in (_RTE_SUFFIXES if rte else ("",))]


def _verify(mirror: Path, rels: list[str]) -> None:
    """Each file must be listed in ``mirror/SHA256SUMS`` under nli/ and hash to its entry."""
    sums = read_sums(sums_path := mirror / SUMS, FOLDER)
    for rel in rels:
        path = mirror / FOLDER / rel
        expected = sums.get(rel)
        if expected is None:
            raise DataError(path, f"no entry for {FOLDER}/{rel} in {sums_path}: cannot verify it")
        if not path.is_file():
            raise DataError(path, f"listed in {SUMS} but missing from the mirror")
        actual = sha256_file(path)
        if actual != expected:
            raise DataError(path, f"sha256 mismatch: expected {expected}, got {actual} (changed or corrupt copy)")


def _label(mapping: dict[str, str], raw: str, path: Path, lineno: int) -> str:
    label = mapping.get(raw.strip())
    if label is None:
        raise DataError(path, f"unknown label {raw.strip()!r}; expected one of {', '.join(mapping)}", lineno)
    return label


def _text(raw: object, what: str, path: Path, lineno: int) -> str:
    if not isinstance(raw, str):
        raise DataError(path, f"{what} is not a string ({type(raw).__name__})", lineno)
    if not raw.strip():
        raise DataError(path, f"empty {what}", lineno)
    return raw.strip()


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(first line of the row, fields)``; a quoted field may span lines, so the row's own line is kept."""
    start = 1
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, strict=True)
            for row in reader:
                lineno, start = start, reader.line_num + 1
                if row:
                    yield lineno, row
    except csv.Error as exc:
        raise DataError(path, f"malformed CSV: {exc}", start) from exc
    except UnicodeDecodeError as exc:
        raise DataError(path, "not valid UTF-8 (in the row starting here or the next)", start) from exc


def _healthver(path: Path, split: str) -> list[Pair]:
    pairs: list[Pair] = []
    header_seen = False
    for lineno, row in _csv_rows(path):
        if not header_seen:
            if tuple(c.strip() for c in row) != HEALTHVER_HEADER:
                raise DataError(path, f"expected header {','.join(HEALTHVER_HEADER)!r}, got {','.join(row)!r}", lineno)
            header_seen = True
            continue
        if len(row) != len(HEALTHVER_HEADER):
            raise DataError(path, f"expected {len(HEALTHVER_HEADER)} fields, got {len(row)}", lineno)
        fields = dict(zip(HEALTHVER_HEADER, row, strict=True))
        claim = _text(fields["claim"], "claim", path, lineno)
        topic = _text(fields["topic_ip"], "topic_ip", path, lineno)
        pairs.append(Pair(_text(fields["evidence"], "evidence", path, lineno), claim,
                          _label(_HEALTHVER_LABELS, fields["label"], path, lineno), "healthver", split,
                          claim_group(f"healthver:{topic}", claim)))
    if not header_seen:
        raise DataError(path, "empty file (no header)")
    return pairs


def _covidfact(path: Path, split: str) -> list[Pair]:
    pairs: list[Pair] = []
    for lineno, obj in json_objects(path):
        sentences = obj.get("evidence")
        if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
            raise DataError(path, "'evidence' must be a list of sentences (strings)", lineno)
        # one pair per claim: the model sees all the evidence sentences the authors gave, as one passage
        evidence = _text(" ".join(s.strip() for s in sentences if s.strip()), "evidence", path, lineno)
        claim = _text(obj.get("claim"), "claim", path, lineno)
        label = _label(_COVIDFACT_LABELS, _text(obj.get("label"), "label", path, lineno), path, lineno)
        pairs.append(Pair(evidence, claim, label, "covidfact", split, claim_group("covidfact", claim)))
    return pairs


def _rte_lines(path: Path, what: str) -> list[str]:
    """Every line of one RTE file, stripped; a blank line is an error, not skipped (it would shift the pairing)."""
    data = path.read_bytes()
    try:
        lines = data.decode("utf-8").removeprefix("\ufeff").split("\n")
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not valid UTF-8 (byte {exc.start})", data.count(b"\n", 0, exc.start) + 1) from exc
    if lines[-1] == "":
        lines.pop()  # the newline that ends the last line
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            raise DataError(path, f"empty {what}", lineno)
    return [line.strip() for line in lines]


def _rte(mirror: Path, stem: str, source: str, split: str) -> list[Pair]:
    paths = [mirror / FOLDER / (stem + s) for s in _RTE_SUFFIXES]
    evidence, claims, labels = (_rte_lines(p, w) for p, w in zip(paths, ("evidence", "claim", "label"), strict=True))
    for path, lines in zip(paths[1:], (claims, labels), strict=True):
        if len(lines) != len(evidence):
            raise DataError(path, f"{len(lines)} lines, but {paths[0].name} has {len(evidence)}: "
                                  "the three files must pair line by line")
    family = "covidfact" if source == "covidfact_rte" else source
    return [Pair(ev, claim, _label(_RTE_LABELS, lab, paths[2], i), source, split, claim_group(family, claim))
            for i, (ev, claim, lab) in enumerate(zip(evidence, claims, labels, strict=True), start=1)]


def load_source(mirror: Path, source: str, verify: bool = True) -> list[Pair]:
    """Every pair of one source, in file order (files in the order of :data:`_FILES`), verified first against
    ``mirror/SHA256SUMS``. ``verify=False`` for a copy placed by ``ragops data fetch --name nli`` (checked when
    placed, then tracked by its DVC pointer), which has no SHA256SUMS beside it."""
    if source not in SOURCES:
        raise unknown_name("nli source", source, SOURCES)
    mirror = Path(mirror)
    if verify:
        _verify(mirror, _files(source))
    pairs: list[Pair] = []
    for rel, split in _FILES[source]:
        if source == "healthver":
            pairs += _healthver(mirror / FOLDER / rel, split)
        elif source == "covidfact":
            pairs += _covidfact(mirror / FOLDER / rel, split)
        else:
            pairs += _rte(mirror, rel, source, split)
    return pairs


def load_all(mirror: Path, sources: Sequence[str], verify: bool = True) -> list[Pair]:
    """The pairs of each named source, in the order named; every name is checked before any file is read."""
    if isinstance(sources, str):
        raise ConfigError(f"nli sources must be a list of names, got the string {sources!r}")
    for name in sources:
        if name not in SOURCES:
            raise unknown_name("nli source", name, SOURCES)
    twice = sorted(n for n, c in Counter(sources).items() if c > 1)
    if twice:
        raise ConfigError(f"nli sources listed twice: {', '.join(twice)} (their pairs would be counted twice)")
    return [p for name in sources for p in load_source(mirror, name, verify)]


def summary(pairs: Sequence[Pair]) -> dict:
    """``{"pairs": n, "by_label": {label: n}, "by_source": {source: {label: n}}}``: only labels and sources that
    occur, in the order of :data:`LABELS` and :data:`SOURCES` (any other name after them, sorted)."""
    by_source: dict[str, Counter[str]] = {}
    for p in pairs:
        by_source.setdefault(p.source, Counter())[p.label] += 1

    def ordered(counts: dict, known: tuple[str, ...]) -> list[str]:
        return [k for k in known if k in counts] + sorted(set(counts) - set(known))

    labels = Counter(p.label for p in pairs)
    return {"pairs": len(pairs), "by_label": {lab: labels[lab] for lab in ordered(labels, LABELS)},
            "by_source": {s: {lab: by_source[s][lab] for lab in ordered(by_source[s], LABELS)}
                          for s in ordered(by_source, SOURCES)}}
