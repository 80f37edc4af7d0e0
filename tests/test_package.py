"""What a registered version carries (ragops.registry.package): a slimmed model folder leaves its PyTorch weights
out, says so, and stays its own model; a torch backend over one is a clear error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ragops.encode.models import model_fingerprint
from ragops.errors import ConfigError
from ragops.registry.package import WEIGHTS, check_package, left_out, require_weights, slim_copy
from ragops.registry.tracking import RegistryConfig


def model_folder(root: Path, weights: bytes) -> Path:
    (root / "1_Pooling").mkdir(parents=True)
    (root / "config.json").write_text('{"hidden_size": 4}')
    (root / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    (root / "model.safetensors").write_bytes(weights)
    return root


def test_a_slim_copy_names_what_it_left_out_and_stays_its_own_model(tmp_path: Path) -> None:
    a_src, b_src = model_folder(tmp_path / "a", b"weights of a"), model_folder(tmp_path / "b", b"weights of b")
    a, b = slim_copy(a_src, tmp_path / "pa", WEIGHTS), slim_copy(b_src, tmp_path / "pb", WEIGHTS)
    assert not (a / "model.safetensors").exists() and (a_src / "model.safetensors").exists()
    assert os.path.samefile(a / "1_Pooling" / "config.json", a_src / "1_Pooling" / "config.json")  # hard links
    assert left_out(a) == ["model.safetensors"] and left_out(a_src) == [] and left_out(None) == []
    # the same config and tokenizer, other weights: still two models, whose exports never share a name
    assert model_fingerprint(a) != model_fingerprint(b)
    assert model_fingerprint(a) == model_fingerprint(slim_copy(a_src, tmp_path / "again", WEIGHTS))
    nested = slim_copy(tmp_path, tmp_path.parent / f"{tmp_path.name}-nested", ["a/model.safetensors", "no/such"])
    assert left_out(nested) == ["a/model.safetensors"] and (nested / "b" / "model.safetensors").exists()


def test_a_torch_backend_over_a_slim_folder_is_a_clear_error(tmp_path: Path) -> None:
    slim = slim_copy(model_folder(tmp_path / "m", b"w"), tmp_path / "p", WEIGHTS)
    with pytest.raises(ConfigError, match=r"answer.grounding_backend is torch, but this version was registered "
                                          r"without the PyTorch weights of the cross-encoder \(model.safetensors"):
        require_weights(slim, "the cross-encoder", "answer.grounding_backend is torch")
    require_weights(tmp_path / "m", "the cross-encoder", "answer.grounding_backend is torch")  # a build's folder
    require_weights(None, "the cross-encoder", "answer.grounding_backend is torch")


def test_the_package_setting_is_checked() -> None:
    assert check_package("full") == "full" and RegistryConfig().package == "serving"
    with pytest.raises(ConfigError, match="registry.package"):
        check_package("slim")
    with pytest.raises(ConfigError, match="registry.package"):
        RegistryConfig(package="slim")
