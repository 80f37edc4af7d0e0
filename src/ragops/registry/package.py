"""What a registered version carries (``registry.package``).

``full``: every part as the build left it. ``serving`` (the default): the same, less the PyTorch weights of each
model the package only ever runs through its ONNX export: the fine-tuned query encoder (``embed.query_backend``
onnx / onnx-int8), the reranker (``rerank.backend: onnx-int8``) and the grounding scorer's cross-encoder
(``answer.grounding_backend: onnx``). What is served is byte for byte what `full` serves; the weights stay in the
build's DVC-tracked outputs (``models/``), from which training and exports start anyway. The base encoder keeps its
weights: its fingerprint keys the packaged sentence store, and it is one model file of ~90 MB.

A slimmed model folder holds every other file (hard links) and :data:`PACKAGE_FILE`, which names what was left out
and the fingerprint of the folder it came from. The copy's own fingerprint (``ragops.encode.models.model_fingerprint``
hashes its .json files) is therefore this model's alone, never that of another model with the same config and
tokenizer, and the package files the model's ONNX export under it, where the loaders look.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragops.answer.vectors import store_meta
from ragops.encode.models import DEFAULT_ONNX_DIR, model_fingerprint, resolve_model
from ragops.encode.onnx_encoder import FILES as ONNX_FILES
from ragops.encode.onnx_encoder import ensure_export as ensure_encoder_export
from ragops.encode.onnx_encoder import export_dir as encoder_export_dir
from ragops.encode.onnx_reranker import ensure_export as ensure_reranker_export
from ragops.encode.onnx_reranker import export_dir as reranker_export_dir
from ragops.errors import ConfigError
from ragops.io import read_json, write_json
from ragops.registry.blobstore import link_or_copy
from ragops.registry.tracking import check_package
from ragops.retrieval.load import local_parts, pipeline_config

WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # a model's PyTorch weights, by the names transformers saves
PACKAGE_FILE = "ragops_package.json"


def slim_copy(src: str | Path, dst: str | Path, left_out: Sequence[str]) -> Path:
    """``src`` copied to ``dst`` (files hard-linked) without the files ``left_out`` (paths relative to ``src``),
    plus :data:`PACKAGE_FILE` naming them and ``src``'s fingerprint."""
    src, dst = Path(src), Path(dst)
    dropped = sorted(rel for rel in left_out if (src / rel).is_file())

    def ignore(folder: str, names: list[str]) -> set[str]:
        rel = Path(folder).relative_to(src)
        return {n for n in names if (rel / n).as_posix() in dropped}

    shutil.copytree(src, dst, ignore=ignore, copy_function=link_or_copy)
    write_json(dst / PACKAGE_FILE, {"package": "serving", "left_out": dropped,
                                    "source_fingerprint": model_fingerprint(src)})
    return dst


def left_out(folder: str | Path | None) -> list[str]:
    """The files a package left out of ``folder`` (``[]`` for a build's own folder or a ``full`` package)."""
    record = Path(folder) / PACKAGE_FILE if folder is not None else None
    return list(read_json(record).get("left_out", [])) if record is not None and record.is_file() else []


def require_weights(folder: str | Path | None, what: str, setting: str) -> None:
    """A :class:`ConfigError` when ``folder`` (a package's) was registered without the PyTorch weights that
    ``setting`` needs to run ``what``."""
    missing = left_out(folder)
    if missing:
        raise ConfigError(f"{setting}, but this version was registered without the PyTorch weights of {what} "
                          f"({', '.join(missing)} in {folder}; registry.package: serving): use the ONNX backend, "
                          "or register with registry.package: full")


def _copy_encoder_export(src: Path, dst: Path, backend: str) -> None:
    """The files of encoder export ``src`` that ``backend`` runs, linked at ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("meta.json", ONNX_FILES[backend]):
        link_or_copy(src / name, dst / name)
    shutil.copytree(src / "tokenizer", dst / "tokenizer", copy_function=link_or_copy)


def package_parts(params: dict[str, Any], tmp: Path, package: str = "serving") -> dict[str, Path | None]:
    """The build's parts as files to package: the base embedder resolved to its folder, the sentence store
    (when built and not empty), and the ONNX exports the package runs (the query encoders' for
    embed.query_backend, the reranker's for rerank.backend onnx-int8) in ``tmp/onnx``, each exported into
    ``embed.onnx_dir`` first where it is not there; under ``package: serving`` the models those exports (or the
    grounding cross-encoder's own) run are slimmed copies in ``tmp/slim``."""
    slim = check_package(package) == "serving"
    parts: dict[str, Any] = dict(local_parts(params))
    parts["embedder"] = resolve_model(params["embed"]["model"])
    store = params["paths"].get("sentences")
    if store and store_meta(store).get("count"):
        parts["sentences"] = Path(store)  # /ask's sentence vectors (ragops.answer.vectors): packaged, as served
    config = pipeline_config(params)
    backend = config["embed"]["query_backend"]
    onnx_dir = Path(params["embed"].get("onnx_dir", DEFAULT_ONNX_DIR)).expanduser()
    exports = tmp / "onnx"

    def slimmed(key: str, files: Sequence[str]) -> Path:
        parts[key] = slim_copy(parts[key], tmp / "slim" / key / Path(parts[key]).name, files)
        return parts[key]

    if parts.get("reranker") is not None and config["rerank"]["backend"] == "onnx-int8":
        src = ensure_reranker_export(parts["reranker"], onnx_dir)
        dst = reranker_export_dir(exports, model_fingerprint(slimmed("reranker", WEIGHTS))) if slim \
            else exports / src.name
        shutil.copytree(src, dst, copy_function=link_or_copy)
        parts["onnx"] = exports
    if backend in ONNX_FILES:
        for key in ("embedder", "embedder_ft"):
            if parts.get(key) is None:
                continue
            # exported here when the build's stages left no export in onnx_dir (a cache emptied, outputs pulled
            # onto another machine): the package always carries what it serves, so no process loading it
            # exports again (torch, ~10-20 s) and the check of its input example loads what is served
            src = ensure_encoder_export(parts[key], model_fingerprint(parts[key]), onnx_dir)
            if slim and key == "embedder_ft":  # the base keeps its weights: its fingerprint keys the sentence store
                _copy_encoder_export(src, encoder_export_dir(exports, model_fingerprint(slimmed(key, WEIGHTS))),
                                     backend)
            else:
                _copy_encoder_export(src, exports / src.name, backend)
            parts["onnx"] = exports
    grounding = parts.get("grounding")
    if slim and grounding is not None and params.get("answer", {}).get("grounding_backend", "onnx") == "onnx":
        scorers = Path(grounding) / "scorers.json"
        ce = read_json(scorers).get("trained", {}).get("cross_encoder") if scorers.is_file() else None
        if ce and ce.get("onnx") and (Path(grounding) / ce["dir"] / ce["onnx"]["dir"] / ce["onnx"]["file"]).is_file():
            slimmed("grounding", [f"{ce['dir']}/{w}" for w in WEIGHTS])
    return parts
