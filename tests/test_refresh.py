"""What keeps a refresh after a small corpus edit cheap, on real files: the embedding cache behind
CachedEncoder (rag's sentences, evaluate's cross-encoder scores) and the training key that lets
`train.retrain: on_train_change` keep a trained model across corpus edits, but not across train data,
param or code changes, nor under RAGOPS_RETRAIN=1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ragops.encode.encoder import CachedEncoder, EmbeddingCache
from ragops.errors import ConfigError
from ragops.io import write_json
from ragops.training.artifacts import MARKER, code_digest, reusable, training_key


class CountingEncoder:
    """Deterministic vectors from the text's bytes; counts what it was asked to encode."""

    dim = 4
    model_id = "counting-encoder-v1"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.asarray([[len(t), sum(map(ord, t)) % 97, t.count(" "), 1.0] for t in texts], dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_cached_encoder_encodes_each_text_once_across_runs(tmp_path: Path) -> None:
    enc = CountingEncoder()
    memo = CachedEncoder(enc, tmp_path)
    first = memo(["a b", "c", "a b"])
    np.testing.assert_array_equal(first, enc(["a b", "c", "a b"]))
    enc.calls.clear()
    np.testing.assert_array_equal(memo(["c", "new text"]), enc(["c", "new text"])[[0, 1]])
    assert enc.calls[0] == ["new text"]  # "c" came from memory, not the model
    assert memo.dim == 4 and memo.model_id == enc.model_id  # the wrapped encoder's attributes
    memo.flush()
    # a later process (a rerun of the stage) reads them from disk and encodes only what is new
    enc2 = CountingEncoder()
    again = CachedEncoder(enc2, tmp_path)
    out = again(["a b", "c", "new text", "edited"])
    assert enc2.calls == [["edited"]]
    np.testing.assert_allclose(out, CountingEncoder()(["a b", "c", "new text", "edited"]), rtol=1e-6)
    assert (again.hits, again.misses) == (3, 1)
    assert len(EmbeddingCache(tmp_path, enc.model_id)) == 3  # flushed: a b, c, new text (not "edited" yet)


def test_an_unflushed_run_leaves_the_cache_as_it_was(tmp_path: Path) -> None:
    memo = CachedEncoder(CountingEncoder(), tmp_path)
    memo(["x"])
    memo.flush()
    memo(["y"])  # the process dies before flush: nothing half-written
    assert len(EmbeddingCache(tmp_path, CountingEncoder.model_id)) == 1


@pytest.fixture
def project(tmp_path: Path) -> dict:
    qrels = pd.DataFrame(
        {"query_id": ["1", "2", "3"], "doc_id": ["d1", "d2", "d3"], "score": [1, 1, 1],
         "split": ["train", "dev", "test"]}
    )
    queries = pd.DataFrame({"query_id": ["1", "2", "3"], "text": ["q one", "q two", "q three"]})
    qrels.to_parquet(tmp_path / "qrels.parquet")
    queries.to_parquet(tmp_path / "queries.parquet")
    code = tmp_path / "train.py"
    code.write_text('"""Training code."""\nSTEPS = 1  # v1\n')
    return {
        "seed": 42,
        "embed": {"model": "all-MiniLM-L6-v2"},
        "paths": {"qrels": str(tmp_path / "qrels.parquet"), "queries": str(tmp_path / "queries.parquet")},
        "_code": code,
    }


def test_training_key_ignores_test_and_corpus_but_not_train_data_params_or_code(project: dict, tmp_path: Path) -> None:
    cfg = {"epochs": 2}
    key = training_key(project, cfg, [project["_code"]])
    assert key == training_key(project, dict(cfg), [project["_code"]])
    # a test query changes: not training data
    q = pd.read_parquet(project["paths"]["queries"])
    q.loc[q["query_id"] == "3", "text"] = "edited test query"
    q.to_parquet(project["paths"]["queries"])
    assert training_key(project, cfg, [project["_code"]]) == key
    # a train query, a dev judgment, a param, the seed, the code: each changes the key
    changed = []
    q.loc[q["query_id"] == "1", "text"] = "edited train query"
    q.to_parquet(project["paths"]["queries"])
    changed.append(training_key(project, cfg, [project["_code"]]))
    r = pd.read_parquet(project["paths"]["qrels"])
    r.loc[r["query_id"] == "2", "doc_id"] = "d9"
    r.to_parquet(project["paths"]["qrels"])
    changed.append(training_key(project, cfg, [project["_code"]]))
    changed.append(training_key(project, {"epochs": 3}, [project["_code"]]))
    changed.append(training_key({**project, "seed": 7}, {"epochs": 3}, [project["_code"]]))
    # what the code computes changes the key; a docstring, a comment or the layout do not (code_digest)
    same = training_key({**project, "seed": 7}, {"epochs": 3}, [project["_code"]])
    project["_code"].write_text('"""Training code, reworded."""\n\nSTEPS = 1    # v1, with a comment\n')
    assert training_key({**project, "seed": 7}, {"epochs": 3}, [project["_code"]]) == same
    project["_code"].write_text('"""Training code."""\nSTEPS = 2  # v1\n')
    changed.append(training_key({**project, "seed": 7}, {"epochs": 3}, [project["_code"]]))
    assert len({key, *changed}) == 6


def test_reusable_follows_the_policy_and_the_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "embedder"
    folder.mkdir()
    assert not reusable(folder, "k1", "on_train_change")  # nothing trained yet
    write_json(folder / MARKER, {"trained": True, "train_key": "k1"})
    assert reusable(folder, "k1", "on_train_change")
    assert not reusable(folder, "k2", "on_train_change")  # train data, params or code changed
    assert not reusable(folder, "k1", "always")
    monkeypatch.setenv("RAGOPS_RETRAIN", "1")  # the scheduled retrain
    assert not reusable(folder, "k1", "on_train_change")
    monkeypatch.setenv("RAGOPS_RETRAIN", "0")
    assert reusable(folder, "k1", "on_train_change")
    write_json(folder / MARKER, {"trained": False, "reason": "disabled", "train_key": "k1"})
    assert not reusable(folder, "k1", "on_train_change")  # a marker is never "a trained model"
    with pytest.raises(ConfigError, match="always"):
        reusable(folder, "k1", "sometimes")


def test_code_digest_reads_what_python_runs(tmp_path: Path) -> None:
    """Docstrings (module, class, function), comments and layout do not count; code, strings that are not
    docstrings and non-Python files do."""
    def digest(text: str, name: str = "m.py") -> bytes:
        (tmp_path / name).write_text(text)
        return code_digest(tmp_path / name)

    base = digest('"""Doc."""\nclass A:\n    """Doc."""\n    def f(self):\n        """Doc."""\n        return 1\n')
    assert digest('"""Other doc."""\n\n\nclass A:  # note\n    """x"""\n    def f(self):\n        return (1)\n') == base
    assert digest('class A:\n    def f(self):\n        return 2\n') != base
    assert digest('X = "a"\n') != digest('X = "b"\n')  # a string that is not a docstring is code
    assert digest("a: 1\n", "c.yaml") != digest("a:  1\n", "c.yaml")  # other files: their bytes
