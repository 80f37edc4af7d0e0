"""The schema of params.yaml: every key, its type and its range, checked before any work starts (issue 19).

``ragops.config.load_params`` validates the file against :class:`Params` whenever a stage, a flow or a
command loads it, so a typo (``fusion.alpah``) names the file, the key and the closest valid key; a wrong
type or a value out of range (``fusion.alpha: 2``, ``chunk.overlap >= chunk.max_tokens``) is an error
before a stage writes anything. The values themselves live in params.yaml (DVC's templating and its
params tracking read that file); the schema declares no defaults except for keys that may be null.
Everything here is pure pydantic: no ragops module but ``errors``, so the stages' code deps stay small.
The sections are in ``base`` (types), ``pipeline`` (what the build reads) and ``serving`` (the rest).
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from ragops.errors import ConfigError
from ragops.schema.base import Section
from ragops.schema.pipeline import (
    Chunk,
    Data,
    Embed,
    Evaluate,
    Fusion,
    Index,
    Ingest,
    Paths,
    Prepare,
    Rerank,
    Retrieve,
    Train,
)
from ragops.schema.serving import Answer, Grounding, Orchestration, Rag, Registry, Serve


class Params(Section):
    seed: int
    data: Data
    paths: Paths
    ingest: Ingest
    prepare: Prepare
    embed: Embed
    chunk: Chunk
    index: Index
    retrieve: Retrieve
    fusion: Fusion
    train: Train
    fusion_ft: Fusion
    rerank: Rerank
    evaluate: Evaluate
    registry: Registry
    orchestration: Orchestration
    serve: Serve
    answer: Answer
    grounding: Grounding
    rag: Rag


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The section model holding the key at ``loc`` (for suggestions), or None."""
    model: type[BaseModel] | None = Params
    for part in loc[:-1]:
        field = model.model_fields.get(str(part)) if model else None
        if field is None:
            return None
        ann = field.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return model


# keys that moved: an old params.yaml gets the new name, not a guess
RENAMED = {"data.dataset": "data.source"}
# keys added since a params.yaml could be written without them: the value that keeps what such a file did
ADDED = {"train.embedder.precision": "fp32", "train.reranker.precision": "fp32",
         "grounding.cross_encoder.precision": "fp32", "train.embedder.attention_dropout": "null",
         "grounding.cross_encoder.group_by_length": "false", "train.embedder.hidden_dropout": "null",
         "train.reranker.attention_dropout": "null", "train.reranker.hidden_dropout": "null",
         "grounding.cross_encoder.attention_dropout": "null", "grounding.cross_encoder.hidden_dropout": "null"}


def describe(exc: ValidationError, source: str) -> list[str]:
    """One readable line per problem: ``params.yaml: fusion.alpha: ... (got 2)``."""
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))
        key = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden" and key in RENAMED:
            lines.append(f"{source}: '{key}' was renamed to '{RENAMED[key]}'")
        elif err["type"] == "extra_forbidden":
            model = _model_at(loc)
            names = list(model.model_fields) if model else []
            close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
            hint = f" (did you mean '{'.'.join(map(str, loc[:-1] + (close[0],)))}'?)" if close else (
                f" (valid here: {', '.join(names)})" if names else "")
            lines.append(f"{source}: unknown key '{key}'{hint}")
        elif err["type"] == "missing" and key in ADDED:
            lines.append(f"{source}: missing key '{key}', added in a later version: '{ADDED[key]}' keeps what this "
                         "file did before (the repository's params.yaml explains the key)")
        elif err["type"] == "missing":
            lines.append(f"{source}: missing key '{key}'")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            got = err.get("input")
            lines.append(f"{source}: {key}: {msg}" + ("" if isinstance(got, dict) else f" (got {got!r})"))
    return lines


def validate(params: dict[str, Any], source: str = "params.yaml") -> None:
    """Raise :class:`ConfigError` listing every problem of ``params`` (nothing when it is valid)."""
    try:
        Params.model_validate(params)
    except ValidationError as exc:
        lines = describe(exc, source)
        raise ConfigError(lines[0] if len(lines) == 1 else f"{len(lines)} problems: " + "; ".join(lines)) from None
