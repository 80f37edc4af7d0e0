"""params.yaml is checked against one schema before any work starts (issue 19)."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ragops.config import load_params, merge
from ragops.errors import ConfigError
from ragops.schema import validate

REPO = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def test_the_shipped_params_and_the_test_profile_are_valid() -> None:
    validate(PARAMS)
    validate(merge(PARAMS, yaml.safe_load((REPO / "tests/profiles/tiny.yaml").read_text())))


def _error(change) -> str:
    params = copy.deepcopy(PARAMS)
    change(params)
    with pytest.raises(ConfigError) as info:
        validate(params)
    return str(info.value)


def test_a_typo_names_the_key_and_the_closest_valid_one() -> None:
    msg = _error(lambda p: p["fusion"].update(alpah=0.3))
    assert msg == "params.yaml: unknown key 'fusion.alpah' (did you mean 'fusion.alpha'?)"
    assert "did you mean 'train.reranker.title_queries'" in _error(
        lambda p: p["train"]["reranker"].update(title_querys=10))
    assert "unknown key 'fusion_fT'" in _error(lambda p: p.update(fusion_fT={}))


@pytest.mark.parametrize(("change", "expected"), [
    (lambda p: p["fusion"].update(alpha=2), "fusion.alpha: Input should be less than or equal to 1 (got 2)"),
    (lambda p: p["retrieve"].update(depth=-5), "retrieve.depth: Input should be greater than or equal to 1"),
    (lambda p: p["retrieve"].update(depth="ten"), "retrieve.depth: Input should be a valid integer (got 'ten')"),
    (lambda p: p["chunk"].update(overlap=256), "chunk: overlap (256) must be smaller than max_tokens (256)"),
    (lambda p: p["evaluate"].update(modes=["hybrid", "hybird"]), "evaluate.modes.1: Input should be 'bm25'"),
    (lambda p: p["index"]["dense"].update(kind="annoy"), "index.dense.kind: Input should be 'flat', 'ivf' or"),
    (lambda p: p["train"]["embedder"].update(enabled="yes"), "train.embedder.enabled: Input should be a valid"),
    (lambda p: p["fusion"].pop("alpha"), "missing key 'fusion.alpha'"),
    (lambda p: p["train"]["reranker"].update(device="gpu"), "train.reranker.device: String should match pattern"),
    (lambda p: p["grounding"]["cross_encoder"].update(precision="fp16"),
     "grounding.cross_encoder.precision: Input should be 'auto', 'fp32' or 'bf16'"),
])
def test_wrong_types_and_ranges_are_errors(change, expected: str) -> None:
    assert expected in _error(change)


def test_every_problem_is_listed_at_once() -> None:
    msg = _error(lambda p: (p["fusion"].update(alpha=2), p["rerank"].update(weight=-1)))
    assert msg.startswith("2 problems: ") and "fusion.alpha" in msg and "rerank.weight" in msg


def test_a_params_file_older_than_a_key_is_told_the_value_that_keeps_its_behaviour() -> None:
    def old(p: dict) -> None:  # a params.yaml written before mixed precision
        for section in (p["train"]["embedder"], p["train"]["reranker"], p["grounding"]["cross_encoder"]):
            section.pop("precision")

    msg = _error(old)
    assert msg.startswith("3 problems: ")
    for key in ("train.embedder.precision", "train.reranker.precision", "grounding.cross_encoder.precision"):
        assert f"missing key '{key}', added in a later version: 'fp32' keeps what this file did before" in msg
    # a key that was always there gets no such hint
    assert _error(lambda p: p["fusion"].pop("alpha")) == "params.yaml: missing key 'fusion.alpha'"
    # the embedder's attention dropout: null keeps the model's own, as before the key
    assert ("missing key 'train.embedder.attention_dropout', added in a later version: 'null' keeps what this file"
            in _error(lambda p: p["train"]["embedder"].pop("attention_dropout")))
    validate(merge(PARAMS, {"train": {"embedder": {"attention_dropout": None}}}))
    assert "train.embedder.attention_dropout" in _error(lambda p: p["train"]["embedder"].update(attention_dropout=1))
    assert ("missing key 'grounding.cross_encoder.group_by_length', added in a later version: 'false' keeps"
            in _error(lambda p: p["grounding"]["cross_encoder"].pop("group_by_length")))
    # every training's dropouts: null keeps the model's own, as before the keys; a probability in [0, 1)
    for section, key in (("train.embedder", "hidden_dropout"), ("train.reranker", "attention_dropout"),
                         ("train.reranker", "hidden_dropout"), ("grounding.cross_encoder", "attention_dropout"),
                         ("grounding.cross_encoder", "hidden_dropout")):
        first, second = section.split(".")
        assert (f"missing key '{section}.{key}', added in a later version: 'null' keeps what this file"
                in _error(lambda p, a=first, b=second, k=key: p[a][b].pop(k)))
        assert f"{section}.{key}" in _error(lambda p, a=first, b=second, k=key: p[a][b].update({k: 1.0}))
        validate(merge(PARAMS, {first: {second: {key: None}}}))
    # and the value it names is valid
    validate(merge(PARAMS, {"train": {"embedder": {"precision": "fp32"}, "reranker": {"precision": "fp32"}},
                            "grounding": {"cross_encoder": {"precision": "fp32"}}}))


def test_load_params_validates_and_a_stage_stops_before_writing(tmp_path: Path) -> None:
    """A stage run with a typo prints one error line naming file and key, exits 2 and writes nothing."""
    params = copy.deepcopy(PARAMS)
    params["chunk"]["overlapp"] = 16
    params["paths"] = {k: str(tmp_path / "out" / Path(v).name) for k, v in params["paths"].items()}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=r"unknown key 'chunk.overlapp' \(did you mean 'chunk.overlap'\?\)"):
        load_params(path)
    assert load_params(path, validate=False)["chunk"]["overlapp"] == 16
    proc = subprocess.run([sys.executable, "-m", "ragops.stages.chunk"], cwd=tmp_path, capture_output=True,
                          text=True, env={"RAGOPS_PARAMS": str(path), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: {path}: unknown key 'chunk.overlapp' (did you mean 'chunk.overlap'?)")
    assert not (tmp_path / "out").exists()
