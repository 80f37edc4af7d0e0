"""The trained search pipeline as an MLflow pyfunc model: files in, ranked documents out.

The model folder holds only files ragops already saves without pickle — every part its modes need
(``ragops.retrieval.load.PARTS``: the base and the fine-tuned embedder folders (safetensors), their FAISS
indexes, the bm25s index, the reranker, ``chunks.parquet``, ``docs.parquet``), the grounding scorer and
the sentence store that ``/ask`` uses, the query encoders' ONNX exports, and ``config.json``; a model that runs
through an ONNX export travels without its PyTorch weights unless ``registry.package: full``
(``ragops.registry.package``). It is logged
as "models from code" (``pyfunc_code.py``), so MLflow pickles nothing either; the ragops source travels in
the model's ``code/`` folder. Loading goes through ``ragops.retrieval.load.assemble_pipeline``, as the local build does.

``predict`` takes a DataFrame with a ``query`` column (optional per-row ``k`` and ``mode`` columns;
params ``k`` and ``mode`` give the defaults: the registered mode) and returns one row per hit, in input
order then rank: ``query, rank, doc_id, score, title, text``.
"""

# Stays at ragops/pyfunc.py whatever the package layout: the MLflow packages already registered import
# ragops.pyfunc.RetrieverModel (their pyfunc_code.py does), so that name must keep loading.
from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from ragops.encode.models import DEFAULT_ONNX_DIR, offline_env
from ragops.errors import ConfigError, RagopsError
from ragops.retrieval.load import PARTS, assemble_pipeline, parts_for
from ragops.retrieval.pipeline import SearchPipeline
from ragops.retrieval.records import Hits

OUTPUT_COLUMNS = ("query", "rank", "doc_id", "score", "title", "text")
CODE_FILE = Path(__file__).with_name("pyfunc_code.py")
# What the model needs at load time, pinned to the versions it was logged with.
RUNTIME_PACKAGES = ("mlflow", "torch", "sentence-transformers", "transformers", "faiss-cpu", "bm25s",
                    "PyStemmer", "numpy", "pandas", "pyarrow", "pyyaml", "threadpoolctl", "onnxruntime")
EXAMPLE_QUERY = "what is the effect of vitamin D on bone density?"


def search_frame(pipeline: SearchPipeline, docs: pd.DataFrame, frame: pd.DataFrame, k: int,
                 mode: str | None) -> pd.DataFrame:
    """Ranked hits for every ``query`` row of ``frame``; ``docs`` is indexed by doc_id (title, text).

    Rows sharing (mode, k) are searched in one batch, like ``SearchPipeline.search_batch``.
    """
    if "query" not in frame.columns:
        raise ConfigError(f"the input needs a 'query' column; got {list(frame.columns)}")
    queries = frame["query"].astype(str).tolist()
    ks = _column(frame, "k", k, int)
    modes = [pipeline.resolve(m) for m in _column(frame, "mode", pipeline.resolve(mode), str)]
    if any(kk < 1 for kk in ks):
        raise ConfigError(f"k must be >= 1, got {min(ks)}")
    groups: dict[tuple[str, int], list[int]] = {}
    for i, key in enumerate(zip(modes, ks, strict=True)):
        groups.setdefault(key, []).append(i)
    results: list[Hits | None] = [None] * len(queries)
    for (m, kk), rows in groups.items():
        for i, hits in zip(rows, pipeline.search_batch([queries[i] for i in rows], m, kk), strict=True):
            results[i] = hits
    out = [
        (queries[i], rank + 1, doc, float(score), str(docs.at[doc, "title"]), str(docs.at[doc, "text"]))
        for i, hits in enumerate(results)
        for rank, (doc, score) in enumerate(zip(hits.ids, hits.scores.tolist(), strict=True))
    ]
    table = pd.DataFrame(out, columns=list(OUTPUT_COLUMNS))
    return table.astype({"query": str, "rank": "int64", "doc_id": str, "score": "float64", "title": str, "text": str})


def _column(frame: pd.DataFrame, name: str, default, cast) -> list:
    if name not in frame.columns:
        return [cast(default)] * len(frame)
    return [cast(default) if pd.isna(v) else cast(v) for v in frame[name].tolist()]


class RetrieverModel(mlflow.pyfunc.PythonModel):
    """Loads the packaged parts into a :class:`ragops.retrieval.pipeline.SearchPipeline` once, then answers."""

    def load_context(self, context) -> None:
        # No model hub; and TOKENIZERS_PARALLELISM=false: the ONNX paths' tokenizers would otherwise batch on a
        # thread pool of their own that competes with a server's request threads for the cores
        offline_env()
        art = {k: Path(v) for k, v in context.artifacts.items()}
        _warn_on_mismatches(art["config"].parents[1] / "requirements.txt")
        self.config = json.loads(art["config"].read_text(encoding="utf-8"))
        self.parts = {k: art.get(k) for k in PARTS}
        # the packaged sentence store (ragops.answer.vectors), /ask's alone; packages before it have none
        self.sentences_dir: Path | None = art.get("sentences")
        modes = self.config.get("modes") or ["bm25", "dense", "hybrid"]  # format 1: the base modes
        check_parts(self.parts, modes)
        # A fresh process finds the ONNX exports in the package; without them it exports once (~10 s), into
        # ragops' export cache (RAGOPS_ONNX_DIR), never into the package
        cache, parts = os.environ.get("RAGOPS_ONNX_DIR", DEFAULT_ONNX_DIR), dict(self.parts)
        if lacks_encoder_export(parts, self.config, modes):
            log = logging.getLogger("ragops.pyfunc")
            log.warning("the package has no ONNX export of a query encoder it serves (registered before ragops "
                        "packaged them all): it is read from or exported into %s", cache)
            try:
                parts["onnx"] = exports_through_cache(parts["onnx"], cache)
            except OSError as exc:  # no writable cache: the export goes beside the package's own, as before
                log.warning("%s is not writable (%s): exporting into the package", cache, exc)
        pipeline, docs = assemble_pipeline(parts, self.config, modes, onnx_dir=cache)
        self.pipeline: SearchPipeline = pipeline
        self.docs = docs.set_index("doc_id")

    @property
    def grounding_dir(self) -> Path | None:
        """The packaged grounding scorer (``/ask``, ``ragops ask --model``), or None."""
        return self.parts.get("grounding")

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        params = params or {}
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return search_frame(self.pipeline, self.docs, frame, int(params.get("k") or self.config["k"]),
                            params.get("mode") or None)


def check_parts(parts: Mapping[str, Path | None], modes: Sequence[str]) -> None:
    """A package must hold every part its modes need: name the missing one (the old version keeps serving)."""
    for mode in modes:
        for part in parts_for(mode):
            path = parts.get(part)
            if path is None or not Path(path).exists():
                raise RagopsError(f"the package has no {part!r}, which its mode {mode!r} needs")


def lacks_encoder_export(parts: Mapping[str, Path | None], config: Mapping[str, Any], modes: Sequence[str]) -> bool:
    """True when the package's ``onnx`` folder holds fewer query-encoder exports than the encoders its modes load
    under an ONNX query backend: a package registered before `register` exported each one it serves."""
    from ragops.encode.export_prune import EXPORT_NAME
    from ragops.encode.onnx_encoder import FILES

    folder = parts.get("onnx")
    if folder is None or str(config["embed"].get("query_backend", "torch")) not in FILES:
        return False
    encoders = {p for m in modes for p in parts_for(m)} & {"embedder", "embedder_ft"}
    # an encoder's export is named by its fingerprint and, since recipe 2, "-r2"; the reranker's by "-ce<N>"
    exports = [d for d in Path(folder).iterdir()
               if (m := EXPORT_NAME.match(d.name)) and m["kind"] != "ce" and (d / "meta.json").is_file()]
    return len(exports) < len(encoders)


def exports_through_cache(folder: Path, cache: str | Path) -> Path:
    """``cache`` (ragops' ONNX export folder) with a link to each export of the package's ``folder`` it does not
    hold: the pipeline reads the package's exports through it and makes a missing one there, never in the
    package (a local store's versions are loaded in place, their files shared by hard links). An export is named
    by its model's fingerprint (and recipe), so one name is one content, wherever it lies."""
    cache = Path(cache).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    for export in sorted(Path(folder).iterdir()):
        link = cache / export.name
        if link.is_symlink() and not link.exists():  # a link into a package that is gone: point it here
            link.unlink(missing_ok=True)
        if link.exists():
            continue
        tmp = cache / f".{export.name}.{os.getpid()}.link"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(export.resolve(), target_is_directory=True)
        try:
            os.replace(tmp, link)
        except OSError:  # another process put the export there meanwhile
            tmp.unlink(missing_ok=True)
    return cache


def _warn_on_mismatches(requirements: Path) -> None:
    if requirements.is_file():
        mismatches = requirement_mismatches(requirements.read_text(encoding="utf-8").splitlines())
        if mismatches:
            logging.getLogger("ragops.pyfunc").warning("the model was logged with other package versions: %s",
                                                       "; ".join(mismatches))


def requirement_mismatches(requirements: Sequence[str]) -> list[str]:
    """``name==version`` pins that the running environment does not satisfy (other lines are skipped)."""
    out = []
    for line in requirements:
        name, sep, pinned = line.strip().partition("==")
        if not sep or not name or name.startswith(("-", "#")):
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != pinned:
            out.append(f"{name} (installed: {installed or 'none'}, model: {pinned})")
    return out


def load_model(uri: str):
    """``mlflow.pyfunc.load_model(uri)`` without MLflow's dependency check, which maps every installed
    distribution to its modules first (about 0.5 s; the model checks its own pins when it loads), and,
    for a registry URI whose version lives in a local artifact store, loaded from that folder in place
    rather than copied out of it first (a full SciFact version is ~0.4 GB). Any other URI that is not a folder
    here (a version in a remote store, ``runs:/...``, ``s3://...``) is downloaded into a temporary folder removed
    when the process exits (MLflow's own would stay in the temporary directory)."""
    local = local_model_path(uri) or (uri if Path(uri.removeprefix("file://")).is_dir() else None)
    if local:
        return mlflow.pyfunc.load_model(local, suppress_warnings=True)
    dst = tempfile.mkdtemp(prefix="ragops-model-")
    atexit.register(shutil.rmtree, dst, ignore_errors=True)
    return mlflow.pyfunc.load_model(uri, dst_path=dst, suppress_warnings=True)


def local_model_path(uri: str) -> str | None:
    """The folder of ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` when the version's files lie in a
    local artifact store (read in place: artifacts are never changed after logging); else None."""
    if not uri.startswith("models:/"):
        return None
    from mlflow.exceptions import MlflowException

    from ragops.registry.blobstore import local_path

    rest = uri[len("models:/"):].strip("/")
    client = mlflow.MlflowClient()
    try:
        if "@" in rest:
            name, alias = rest.split("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
        else:
            name, _, version = rest.rpartition("/")
            mv = client.get_model_version(name, version)
        folder = local_path(client.get_model_version_download_uri(name, str(mv.version)))
    except (MlflowException, ValueError):
        return None  # MLflow's own loader says what is wrong
    return str(folder) if folder is not None and (folder / "MLmodel").is_file() else None


def signature(k: int, mode: str):
    """Input: ``query`` (required), ``k``, ``mode`` (optional); params k, mode; output: ranked rows."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    inputs = Schema([ColSpec("string", "query"), ColSpec("long", "k", required=False),
                     ColSpec("string", "mode", required=False)])
    outputs = Schema([ColSpec("string", "query"), ColSpec("long", "rank"), ColSpec("string", "doc_id"),
                      ColSpec("double", "score"), ColSpec("string", "title"), ColSpec("string", "text")])
    params = ParamSchema([ParamSpec("k", "long", int(k)), ParamSpec("mode", "string", mode)])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def pip_requirements(packages: Sequence[str] = RUNTIME_PACKAGES) -> list[str]:
    """The installed versions of what the model imports (skipping any that is absent)."""
    out = []
    for name in packages:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def log_pipeline_model(parts: Mapping[str, Path | None], config: dict[str, Any], registered_model_name: str | None,
                       name: str = "retriever"):
    """Log the packaged pipeline (``parts`` that are not None, and ``config``) into the active run and
    register it; returns MLflow's ModelInfo. MLflow loads the model once while logging, to check the input
    example answers."""
    import ragops

    with tempfile.TemporaryDirectory(prefix="ragops-model-") as tmp:
        config_path = Path(tmp) / "config.json"
        config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        artifacts = {key: path for key, path in parts.items() if path is not None} | {"config": config_path}
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(CODE_FILE),
            artifacts={key: str(Path(path).resolve()) for key, path in artifacts.items()},
            code_paths=[str(Path(ragops.__file__).parent)],
            signature=signature(config["k"], config["mode"]),
            input_example=pd.DataFrame({"query": [EXAMPLE_QUERY], "k": [3]}),
            pip_requirements=pip_requirements(),
            registered_model_name=registered_model_name,
        )
