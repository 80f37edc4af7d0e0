"""ragops.encode.tokenize: the tokenizers-only tokenizer gives transformers' ids, masks and types, single
texts and pairs, cut and padded alike, without importing transformers (or torch)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ragops.encode.models import resolve_model
from ragops.encode.tokenize import FastTokenizer
from ragops.errors import ConfigError


@pytest.fixture(scope="module")
def folder():
    return resolve_model("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def texts(scifact_sample: pd.DataFrame, scifact_queries: pd.DataFrame) -> tuple[list[str], list[str]]:
    docs = (scifact_sample["title"] + ". " + scifact_sample["text"]).head(20).tolist()
    queries = scifact_queries["text"].head(20).tolist()
    queries[3] = " ".join(queries[:15])  # a query longer than max_length on its own
    return queries, docs


def test_single_texts_match_transformers(folder, texts) -> None:
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    queries, docs = texts
    sample = queries + docs + ["", "naïve Café – µg/mL β-blockers 1.5×10⁻³ (p<0.05)"]
    for max_length in (16, 128):
        ours = FastTokenizer(folder, max_length)(sample)
        theirs = reference(sample, truncation=True, max_length=max_length)
        for name in ("input_ids", "attention_mask", "token_type_ids"):
            assert ours[name] == [list(x) for x in theirs[name]], (name, max_length)
        assert max(len(x) for x in ours["input_ids"]) == max_length  # the long ones are cut


def test_pairs_match_transformers_cut_and_padded(folder, texts) -> None:
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    queries, docs = texts
    for max_length in (24, 96):
        ours = FastTokenizer(folder, max_length, pad=True)(queries, docs)
        theirs = reference(queries, docs, truncation="longest_first", max_length=max_length, padding=True,
                           return_tensors="np")
        for name in ("input_ids", "attention_mask", "token_type_ids"):
            assert ours[name].dtype == np.int64
            np.testing.assert_array_equal(ours[name], theirs[name].astype(np.int64), err_msg=name)


def test_the_answerers_token_count_is_not_cut_by_an_onnx_encoders_tokenizer(folder, texts) -> None:
    """The answerer counts a context's tokens with the embedder's tokenizer; an ONNX encoder's FastTokenizer
    cuts at max_length, the count must not (it sizes the context), and must equal transformers' count."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from ragops.answer.answerer import _token_counter

    queries, docs = texts
    onnx_like = SimpleNamespace(model=SimpleNamespace(tokenizer=FastTokenizer(folder, 16)))
    counts = _token_counter(onnx_like, "all-MiniLM-L6-v2")(docs)
    reference = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    assert counts == [len(x) for x in reference(docs, add_special_tokens=False, verbose=False)["input_ids"]]
    assert max(counts) > 100  # beyond the encoder's cut at 16
    assert len(FastTokenizer(folder, 16)(docs[:1])["input_ids"][0]) == 16  # the encoder's own still cuts


def test_no_transformers_import_and_a_clear_error(folder, tmp_path) -> None:
    code = (f"import sys; from ragops.encode.tokenize import FastTokenizer; FastTokenizer({str(folder)!r}, 8)(['a b']);"
            " print('transformers' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
    with pytest.raises(ConfigError, match="no fast tokenizer"):
        FastTokenizer(tmp_path, 8)
