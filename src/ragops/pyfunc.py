"""The retriever as an MLflow pyfunc model: files in, ranked documents out.

The model folder holds only files ragops already saves without pickle: the embedder folder
(safetensors), the FAISS index, the bm25s index, ``chunks.parquet``, ``docs.parquet`` and
``config.json``. It is logged as "models from code" (``pyfunc_code.py``), so MLflow pickles
nothing either; the ragops source travels in the model's ``code/`` folder.

``predict`` takes a DataFrame with a ``query`` column (optional per-row ``k`` and ``mode``
columns; params ``k`` and ``mode`` give the defaults) and returns one row per hit, in input
order then rank: ``query, rank, doc_id, score, title, text``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from ragops.artifacts import assemble_retriever, query_backend, query_batch_size
from ragops.errors import ConfigError
from ragops.records import Hits
from ragops.retrieval import FusionConfig, Retriever

OUTPUT_COLUMNS = ("query", "rank", "doc_id", "score", "title", "text")
CODE_FILE = Path(__file__).with_name("pyfunc_code.py")
# What the model needs at load time, pinned to the versions it was logged with.
RUNTIME_PACKAGES = ("mlflow", "torch", "sentence-transformers", "transformers", "faiss-cpu", "bm25s",
                    "PyStemmer", "numpy", "pandas", "pyarrow", "pyyaml", "threadpoolctl")
EXAMPLE_QUERY = "what is the effect of vitamin D on bone density?"


@dataclass(frozen=True)
class ModelFiles:
    """The built pipeline's files that make up one packaged retriever."""

    embedder: Path  # a sentence-transformers folder
    faiss: Path
    bm25: Path
    chunks: Path
    docs: Path


def packaged_config(embed: Mapping[str, Any], retrieve: Mapping[str, Any], fusion: FusionConfig,
                    mode: str, k: int, model_id: str | None = None) -> dict[str, Any]:
    """config.json of a packaged retriever: everything besides the files that shapes its answers."""
    return {
        "format": 1,
        "mode": mode,
        "k": int(k),
        "embed": {"model": str(embed.get("model")), "model_id": model_id, "device": str(embed.get("device", "cpu")),
                  "batch_size": int(embed.get("batch_size", 64)), "query_backend": query_backend(embed)},
        "retrieve": {"depth": int(retrieve.get("depth", 100)),
                     "dense_chunk_k": int(retrieve.get("dense_chunk_k", 400))},
        "fusion": asdict(fusion),
    }


def search_frame(retriever: Retriever, docs: pd.DataFrame, frame: pd.DataFrame, k: int, mode: str) -> pd.DataFrame:
    """Ranked hits for every ``query`` row of ``frame``; ``docs`` is indexed by doc_id (title, text).

    Rows sharing (mode, k) are searched in one batch, like ``Retriever.search_batch``.
    """
    if "query" not in frame.columns:
        raise ConfigError(f"the input needs a 'query' column; got {list(frame.columns)}")
    queries = frame["query"].astype(str).tolist()
    ks = _column(frame, "k", k, int)
    modes = _column(frame, "mode", mode, str)
    if any(kk < 1 for kk in ks):
        raise ConfigError(f"k must be >= 1, got {min(ks)}")
    groups: dict[tuple[str, int], list[int]] = {}
    for i, key in enumerate(zip(modes, ks, strict=True)):
        groups.setdefault(key, []).append(i)
    results: list[Hits | None] = [None] * len(queries)
    for (m, kk), rows in groups.items():
        for i, hits in zip(rows, retriever.search_batch([queries[i] for i in rows], m, kk), strict=True):
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
    """Loads the packaged files into a :class:`ragops.retrieval.Retriever` once, then answers."""

    def load_context(self, context) -> None:
        from ragops.embedding import Encoder

        art = context.artifacts
        _warn_on_mismatches(Path(art["config"]).parents[1] / "requirements.txt")
        self.config = json.loads(Path(art["config"]).read_text(encoding="utf-8"))
        emb = self.config["embed"]
        # The indexes load on a second thread while this one imports torch and loads the encoder.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragops-load") as pool:
            indexes = pool.submit(assemble_retriever, art["chunks"], art["bm25"], art["faiss"], None,
                                  self.config["retrieve"], FusionConfig(**self.config["fusion"]))
            docs = pool.submit(pd.read_parquet, art["docs"], columns=["doc_id", "title", "text"])
            # An ONNX query backend is exported from the packaged embedder on first load (offline, ~10 s).
            backend = emb.get("query_backend", "torch")
            encoder = Encoder(art["embedder"], device=emb["device"], backend=backend,
                              batch_size=query_batch_size(backend, int(emb["batch_size"])),
                              onnx_dir=os.environ.get("RAGOPS_ONNX_DIR", "~/.cache/ragops/onnx"))
            self.retriever = indexes.result()
            self.docs = docs.result().set_index("doc_id")
        self.retriever.encode = encoder

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        params = params or {}
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return search_frame(self.retriever, self.docs, frame, int(params.get("k") or self.config["k"]),
                            str(params.get("mode") or self.config["mode"]))


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
    distribution to its modules first (about 0.5 s); the model checks its own pins when it loads."""
    return mlflow.pyfunc.load_model(uri, suppress_warnings=True)


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


def log_retriever_model(files: ModelFiles, config: dict[str, Any], registered_model_name: str | None,
                        name: str = "retriever"):
    """Log the packaged retriever into the active run (and register it); returns MLflow's ModelInfo.

    MLflow loads the model once while logging, to check the input example answers.
    """
    import ragops

    with tempfile.TemporaryDirectory(prefix="ragops-model-") as tmp:
        config_path = Path(tmp) / "config.json"
        config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        artifacts = {"embedder": files.embedder, "faiss": files.faiss, "bm25": files.bm25,
                     "chunks": files.chunks, "docs": files.docs, "config": config_path}
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
