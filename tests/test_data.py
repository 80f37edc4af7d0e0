"""Data layer: strict BEIR reading, dev carving, sampling, the prepare stage, placing from the mirror."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from ragops.data.beir import load_beir
from ragops.data.fetch import dvc_command, place_dataset, verify_with_dvc
from ragops.data.prepare import prepare_dataset
from ragops.data.split import carve_dev, sample_docs
from ragops.errors import DataError
from ragops.stages import prepare as prepare_stage

REPO = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("RAGOPS_MIRROR", REPO.parent / "shared" / "datasets"))
HEADER = "query-id\tcorpus-id\tscore\n"
CORPUS = (
    '{"_id": "d1", "title": "T1", "text": "alpha"}\n'
    '{"_id": 2, "title": null, "text": "beta"}\n'
    '{"_id": "d3", "text": "gamma", "metadata": {"x": 1}}\n'
)
QUERIES = (
    '{"_id": "q1", "text": "first", "metadata": {"d1": [{"sentences": [0], "label": "SUPPORT"}]}}\n'
    '{"_id": "q2", "text": "second", "metadata": {}}\n'
    '{"_id": "q3", "text": "third"}\n'
)
BASE = {
    "corpus.jsonl": CORPUS,
    "queries.jsonl": QUERIES,
    "qrels/train.tsv": HEADER + "q1\td1\t1\nq2\t2\t1\n",
    "qrels/test.tsv": HEADER + "q3\td3\t1\n",
}


def make_folder(root: Path, files: dict[str, str | bytes | None]) -> Path:
    """A BEIR folder from BASE overridden by ``files`` (None deletes; ``.gz`` names are gzipped)."""
    merged = {**BASE, **files}
    for rel, content in merged.items():
        if content is None:
            continue
        data = content.encode("utf-8") if isinstance(content, str) else content
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(data) if rel.endswith(".gz") else data)
    return root


def lines(*rows: str) -> str:
    return "".join(r + "\n" for r in rows)


D1, D2 = '{"_id": "d1", "text": "a"}', '{"_id": "d2", "text": "b"}'
BAD_CASES = {
    "malformed json": ("corpus.jsonl", lines(D1, '{"_id": "d2", "text": '), 2, "malformed JSON"),
    "not an object": ("corpus.jsonl", lines(D1, D2, '["d3", "c"]'), 3, "expected a JSON object"),
    "missing id": ("corpus.jsonl", lines(D1, '{"text": "b"}'), 2, "'_id' is missing"),
    "empty id": ("corpus.jsonl", lines('{"_id": "", "text": "b"}'), 1, "'_id' is empty"),
    "float id": ("corpus.jsonl", lines(D1, '{"_id": 1.5, "text": "b"}'), 2, "not a string or integer"),
    "missing text": ("corpus.jsonl", lines(D1, '{"_id": "d2", "title": "t"}'), 2, "'text' is missing"),
    "non-string text": ("corpus.jsonl", lines(D1, '{"_id": "d2", "text": 3}'), 2, "'text' is not a string"),
    "bad title": ("corpus.jsonl", lines(D1, '{"_id": "d2", "title": [], "text": "b"}'), 2, "'title'"),
    "duplicate doc": ("corpus.jsonl", lines(D1, D2, '{"_id": "d1", "text": "c"}'), 3, "first on line 1"),
    "blank lines count": ("corpus.jsonl", lines(D1, "", "  ", "{oops"), 4, "malformed JSON"),
    "not utf-8": ("corpus.jsonl", D1.encode() + b'\n{"_id": "d2", "text": "\xff"}\n', 2, "not valid UTF-8"),
    "gz malformed": ("corpus.jsonl.gz", lines(D1, D2, "{"), 3, "malformed JSON"),
    "gz not utf-8": ("corpus.jsonl.gz", b'{"_id": "d1", "text": "\xc3"}\n', 1, "not valid UTF-8"),
    "query malformed": ("queries.jsonl", lines('{"_id": "q1", "text": "x"}', "nope"), 2, "malformed JSON"),
    "duplicate query": ("queries.jsonl", QUERIES + '{"_id": "q2", "text": "y"}\n', 4, "first on line 2"),
    "query text missing": ("queries.jsonl", lines('{"_id": "q1", "metadata": {}}'), 1, "'text' is missing"),
    "qrels header": ("qrels/train.tsv", "q1\td1\t1\n", 1, "expected header"),
    "qrels columns": ("qrels/train.tsv", HEADER + "q1\td1\t1\nq2\t2\n", 3, "3 tab-separated columns"),
    "qrels score": ("qrels/test.tsv", HEADER + "q3\td3\tyes\n", 2, "not an integer"),
    "qrels unknown doc": ("qrels/train.tsv", HEADER + "q1\td1\t1\nq2\td9\t1\n", 3, "'d9' is not in the"),
    "qrels unknown query": ("qrels/test.tsv", HEADER + "\nq9\td3\t1\n", 3, "'q9' is not in the queries"),
    "qrels duplicate": ("qrels/train.tsv", HEADER + "q1\td1\t1\nq1\td1\t1\n", 3, "first on line 2"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_names_file_and_line(tmp_path: Path, case: str) -> None:
    rel, content, line, message = BAD_CASES[case]
    overrides: dict[str, str | bytes | None] = {rel: content}
    if rel == "corpus.jsonl.gz":
        overrides["corpus.jsonl"] = None  # the plain file would win
    folder = make_folder(tmp_path, overrides)
    with pytest.raises(DataError) as info:
        load_beir(folder)
    err = info.value
    assert (err.path, err.line) == (str(folder / rel), line), str(err)
    assert str(err).startswith(f"{folder / rel}:{line}: ") and message in err.message


@pytest.mark.parametrize(
    ("overrides", "rel", "message"),
    [
        ({"corpus.jsonl": "\n\n"}, "corpus.jsonl", "no documents"),
        ({"corpus.jsonl": None}, "corpus.jsonl", "missing corpus"),
        ({"queries.jsonl": None}, "queries.jsonl", "missing queries"),
        ({"qrels/train.tsv": None, "qrels/test.tsv": None}, "qrels", "no qrels"),
        ({"qrels/test.tsv": HEADER}, "qrels/test.tsv", "no judgments"),
        ({"qrels/test.tsv": HEADER + "q1\td3\t1\n"}, "qrels/test.tsv", "also judged in split 'train'"),
    ],
)
def test_bad_folder_names_file(tmp_path: Path, overrides: dict, rel: str, message: str) -> None:
    folder = make_folder(tmp_path, overrides)
    with pytest.raises(DataError) as info:
        load_beir(folder)
    assert info.value.path == str(folder / rel) and message in info.value.message


def test_load_reads_gz_drops_metadata_and_hashes(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, {"corpus.jsonl": None, "corpus.jsonl.gz": CORPUS})
    data = load_beir(folder)
    assert data.docs.to_dict("records") == [
        {"doc_id": "d1", "title": "T1", "text": "alpha"},
        {"doc_id": "2", "title": "", "text": "beta"},
        {"doc_id": "d3", "title": "", "text": "gamma"},
    ]
    assert list(data.queries.columns) == ["query_id", "text"]
    assert data.qrels.to_dict("records")[1] == {"query_id": "q2", "doc_id": "2", "score": 1, "split": "train"}
    expected = hashlib.sha256((folder / "corpus.jsonl.gz").read_bytes()).hexdigest()
    assert data.hashes["corpus.jsonl.gz"] == expected
    assert set(data.hashes) == {"corpus.jsonl.gz", "queries.jsonl", "qrels/train.tsv", "qrels/test.tsv"}
    # the plain file wins over the .gz when both are present
    (folder / "corpus.jsonl").write_text(lines(D1, '{"_id": "2", "text": "b"}', '{"_id": "d3", "text": "c"}'))
    assert load_beir(folder).docs["text"].tolist() == ["a", "b", "c"]


def test_carve_dev_is_deterministic_stable_and_about_the_fraction() -> None:
    ids = [f"q{i}" for i in range(1000)]
    dev = carve_dev(ids, 0.2, seed=7)
    assert dev == carve_dev(list(reversed(ids)), 0.2, seed=7)
    assert dev <= set(ids) and 150 <= len(dev) <= 250
    assert carve_dev([*ids, "new-query"], 0.2, seed=7) - {"new-query"} == dev
    assert carve_dev(ids, 0.2, seed=8) != dev
    assert carve_dev(ids, 0.0, seed=7) == set()


def test_prepare_carves_dev_disjoint_from_train(tmp_path: Path) -> None:
    qids = [f"q{i}" for i in range(200)]
    queries = "".join(json.dumps({"_id": q, "text": q, "metadata": {"d1": "SECRET"}}) + "\n" for q in qids)
    train = HEADER + "".join(f"{q}\td1\t1\n" for q in qids)
    overrides = {"queries.jsonl": queries, "qrels/train.tsv": train, "qrels/test.tsv": None}
    folder = make_folder(tmp_path, overrides)
    prepared = prepare_dataset(folder, dev_fraction=0.25, seed=1)
    by_split = prepared.qrels.groupby("split")["query_id"].apply(set)
    assert set(by_split.index) == {"train", "dev"} and not by_split["train"] & by_split["dev"]
    assert by_split["dev"] == carve_dev(qids, 0.25, seed=1) and prepared.stats["dev_source"] == "carved"
    assert "SECRET" not in prepared.queries.to_json()


def test_only_test_qrels_gives_no_train_or_dev(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, {"qrels/train.tsv": None})
    prepared = prepare_dataset(folder, dev_fraction=0.5, seed=1)
    assert set(prepared.qrels["split"]) == {"test"}
    assert prepared.stats["splits"] == {"test": {"queries": 1, "judgments": 1}}
    assert prepared.stats["dev_source"] == "none" and len(prepared.queries) == 3


def test_beir_dev_is_kept_and_not_carved(tmp_path: Path) -> None:
    overrides = {"qrels/dev.tsv": HEADER + "q2\td3\t0\n", "qrels/train.tsv": HEADER + "q1\td1\t1\n"}
    prepared = prepare_dataset(make_folder(tmp_path, overrides), dev_fraction=0.9, seed=1)
    rows = prepared.qrels[["query_id", "split"]].values.tolist()
    assert rows == [["q1", "train"], ["q2", "dev"], ["q3", "test"]]
    assert prepared.stats["dev_source"] == "beir"


def test_sample_docs_is_deterministic_and_half_relevant() -> None:
    docs = pd.DataFrame({"doc_id": [f"d{i}" for i in range(100)], "title": "", "text": "x"})
    qrels = pd.DataFrame({"query_id": [f"q{i}" for i in range(40)], "doc_id": [f"d{i}" for i in range(40)],
                          "score": 1, "split": "train"})
    a, b = sample_docs(docs, qrels, 20, seed=3), sample_docs(docs, qrels, 20, seed=3)
    pd.testing.assert_frame_equal(a.docs, b.docs)
    pd.testing.assert_frame_equal(a.qrels, b.qrels)
    assert len(a.docs) == 20 and a.docs["doc_id"].isin(qrels["doc_id"]).sum() == 10
    assert set(a.qrels["doc_id"]) <= set(a.docs["doc_id"]) and len(a.qrels) == 10
    assert set(sample_docs(docs, qrels, 20, seed=4).docs["doc_id"]) != set(a.docs["doc_id"])
    assert sample_docs(docs, qrels, 0, seed=3).docs is docs


def test_prepare_with_max_docs_drops_queries_without_judgments(tmp_path: Path) -> None:
    prepared = prepare_dataset(make_folder(tmp_path, {}), dev_fraction=0.0, seed=5, max_docs=2)
    assert len(prepared.docs) == 2
    assert set(prepared.queries["query_id"]) == set(prepared.qrels["query_id"])
    assert set(prepared.qrels["doc_id"]) <= set(prepared.docs["doc_id"])


def stage_params(tmp_path: Path, dataset: Path, max_docs: int = 0) -> dict:
    out = tmp_path / "out"
    return {
        "seed": 42,
        "data": {"source": str(dataset), "judgments": str(tmp_path / "judgments")},
        "prepare": {"dev_fraction": 0.2, "max_docs": max_docs},
        "paths": {"corpus": str(dataset)} | {k: str(out / f) for k, f in [
            ("docs", "docs.parquet"), ("queries", "queries.parquet"), ("qrels", "qrels.parquet"),
            ("prepare_stats", "stats.json"), ("claims", "claims")]},
        "grounding": {"train_file": "claims_train.csv", "eval_file": "claims_dev.csv",
                      "sentences_file": "corpus_sentences.jsonl.gz"},
    }


def test_prepare_copies_the_labelled_claims_byte_for_byte(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "beir", {})
    (folder / "claims_train.csv").write_bytes(b"id,claim\n1,a claim\n")
    params = stage_params(tmp_path, folder)
    prepare_stage.main(params)
    claims = Path(params["paths"]["claims"])
    assert (claims / "claims_train.csv").read_bytes() == (folder / "claims_train.csv").read_bytes()
    record = json.loads((claims / "claims.json").read_text())
    assert record == {"files": ["claims_train.csv"], "missing": ["claims_dev.csv", "corpus_sentences.jsonl.gz"]}
    before = {p.name: p.read_bytes() for p in claims.iterdir()}
    # editing a document changes the corpus, not the copy: the grounding stage (which reads only the copy) stays put
    corpus = folder / "corpus.jsonl"
    corpus.write_text(corpus.read_text().replace('"text": "', '"text": "Edited. ', 1))
    prepare_stage.main(params)
    assert {p.name: p.read_bytes() for p in claims.iterdir()} == before


def test_prepare_stage_writes_outputs(tmp_path: Path) -> None:
    params = stage_params(tmp_path, make_folder(tmp_path / "beir", {}))
    prepare_stage.main(params)
    paths = params["paths"]
    assert list(pd.read_parquet(paths["docs"]).columns) == ["doc_id", "title", "text"]
    assert list(pd.read_parquet(paths["queries"]).columns) == ["query_id", "text"]
    qrels = pd.read_parquet(paths["qrels"])
    assert list(qrels.columns) == ["query_id", "doc_id", "score", "split", "source"] and qrels["score"].dtype == "int64"
    assert set(qrels["source"]) == {"gold"}
    stats = json.loads(Path(paths["prepare_stats"]).read_text())
    assert stats["docs"] == 3 and stats["queries"] == 3 and stats["seed"] == 42 and len(stats["inputs"]) == 4


def test_prepare_stage_writes_nothing_when_validation_fails(tmp_path: Path) -> None:
    bad = make_folder(tmp_path / "beir", {"qrels/test.tsv": HEADER + "q3\tmissing-doc\t1\n"})
    params = stage_params(tmp_path, bad)
    out = tmp_path / "out"
    out.mkdir()
    outputs = [p for k, p in params["paths"].items() if k != "corpus"]
    for path in outputs:
        Path(path).write_text("previous good version")
    with pytest.raises(DataError, match=r"qrels/test.tsv:2: corpus-id 'missing-doc'"):
        prepare_stage.main(params)
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(p).name for p in outputs)
    assert all(Path(p).read_text() == "previous good version" for p in outputs)


@pytest.fixture(scope="module")
def scifact_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = MIRROR / "scifact"
    if not (folder / "queries.jsonl").is_file():
        pytest.fail(f"SciFact mirror not found at {folder}: run `make test MIRROR=<datasets folder>` "
                    "or set RAGOPS_MIRROR", pytrace=False)
    params = stage_params(tmp_path_factory.mktemp("scifact"), folder)
    prepare_stage.main(params)
    return params["paths"]


def test_scifact_mirror_counts(scifact_outputs: dict) -> None:
    docs, queries, qrels = (pd.read_parquet(scifact_outputs[k]) for k in ("docs", "queries", "qrels"))
    assert (len(docs), len(queries)) == (5183, 1109)
    test = qrels[qrels["split"] == "test"]
    assert (test["query_id"].nunique(), len(test)) == (300, 339)
    train_dev = qrels[qrels["split"].isin(["train", "dev"])]
    assert (train_dev["query_id"].nunique(), len(train_dev)) == (809, 919)
    dev, train = (set(qrels.loc[qrels["split"] == s, "query_id"]) for s in ("dev", "train"))
    assert not dev & train and 0.12 < len(dev) / 809 < 0.28


def test_scifact_outputs_hold_no_query_metadata(scifact_outputs: dict) -> None:
    raw = [json.loads(line) for line in (MIRROR / "scifact" / "queries.jsonl").open(encoding="utf-8")]
    queries = pd.read_parquet(scifact_outputs["queries"])
    assert list(queries.columns) == ["query_id", "text"]
    assert queries["text"].tolist() == [q["text"] for q in raw]
    for key in ("queries", "qrels"):
        table = pd.read_parquet(scifact_outputs[key])
        for column in table.columns:
            cells = table[column].astype(str)
            assert not cells.str.contains(r"SUPPORT|CONTRADICT|sentences|\{").any(), (key, column)
    assert "metadata" not in Path(scifact_outputs["prepare_stats"]).read_text()


def make_mirror(root: Path) -> Path:
    files = {"toy/corpus.jsonl": b"c\n", "toy/qrels/test.tsv": b"t\n", "other/x.txt": b"x\n"}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    sums = "".join(f"{hashlib.sha256(d).hexdigest()}  {rel}\n" for rel, d in files.items())
    (root / "SHA256SUMS").write_text(sums)
    return root


def test_place_dataset_copies_verifies_and_is_idempotent(tmp_path: Path) -> None:
    mirror, dest = make_mirror(tmp_path / "mirror"), tmp_path / "data" / "raw" / "toy"
    assert place_dataset(mirror, "toy", dest) == ["corpus.jsonl", "qrels/test.tsv"]
    assert (dest / "qrels" / "test.tsv").read_bytes() == b"t\n" and not (dest / "x.txt").exists()
    mtime = (dest / "corpus.jsonl").stat().st_mtime_ns
    assert place_dataset(mirror, "toy", dest) == []
    assert (dest / "corpus.jsonl").stat().st_mtime_ns == mtime
    assert sorted(p.name for p in dest.parent.iterdir()) == ["toy"]


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_place_dataset_refuses_bad_mirror_and_leaves_dest(tmp_path: Path, damage: str) -> None:
    mirror, dest = make_mirror(tmp_path / "mirror"), tmp_path / "raw" / "toy"
    dest.mkdir(parents=True)
    (dest / "old.txt").write_text("old")
    target = mirror / "toy" / "qrels" / "test.tsv"
    target.write_bytes(b"tampered\n") if damage == "corrupt" else target.unlink()
    with pytest.raises(DataError) as info:
        place_dataset(mirror, "toy", dest)
    assert info.value.path == str(target)
    assert [p.name for p in dest.iterdir()] == ["old.txt"]
    assert [p.name for p in dest.parent.iterdir()] == ["toy"]  # no temporary folder left behind


def test_verify_with_dvc_detects_changed_data(tmp_path: Path) -> None:
    place_dataset(make_mirror(tmp_path / "mirror"), "toy", tmp_path / "repo" / "data" / "toy")
    repo, env = tmp_path / "repo", {**os.environ, "DVC_NO_ANALYTICS": "1"}
    for args in (["init", "--no-scm", "-q"], ["add", "-q", "data/toy"]):
        subprocess.run([*dvc_command(), *args], cwd=repo, env=env, check=True, capture_output=True)
    verify_with_dvc(repo, "data/toy.dvc")
    # A fresh clone has the pointer but an empty DVC cache: the right files still verify.
    shutil.rmtree(repo / ".dvc" / "cache")
    verify_with_dvc(repo, "data/toy.dvc")
    assert (repo / ".dvc" / "cache").exists()  # and are now in the cache, ready for `dvc push`
    pointer = (repo / "data" / "toy.dvc").read_text()
    (repo / "data" / "toy" / "corpus.jsonl").write_bytes(b"changed\n")
    with pytest.raises(DataError, match="pointer says"):
        verify_with_dvc(repo, "data/toy.dvc")
    assert (repo / "data" / "toy.dvc").read_text() == pointer
