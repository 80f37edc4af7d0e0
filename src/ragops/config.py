"""Reading params.yaml. Only stages, flows and the CLI call this; the core takes values."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from ragops.errors import ConfigError

DEFAULT_PARAMS = "params.yaml"


def load_params(path: str | Path | None = None, validate: bool = True) -> dict[str, Any]:
    """Load params (``$RAGOPS_PARAMS`` or ``params.yaml`` in the working directory), checked against
    ``ragops.schema`` (unknown keys, types, ranges): a problem is a :class:`ConfigError` naming the file
    and the key before any work starts. The dict is returned as read."""
    path = Path(path or os.environ.get("RAGOPS_PARAMS", DEFAULT_PARAMS))
    if not path.exists():
        raise ConfigError(f"{path}: params file not found (run from the project root)")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    if validate:
        from ragops.schema import validate as check

        check(params, str(path))
    return params


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base`` (used for params profiles)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (for logging params)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out
