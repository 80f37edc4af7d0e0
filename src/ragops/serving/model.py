"""What the server serves: one loaded model version (:class:`Served`), where it comes from
(:class:`ModelSource`), and how it is loaded (the built project's, or a packaged version). The
:class:`ragops.serving.holder.ModelHolder` swaps in a newly promoted one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ragops.errors import ConfigError, RagopsError
from ragops.retrieval.pipeline import SearchPipeline
from ragops.serving.cache import QueryCache

log = logging.getLogger("ragops.serve")


@dataclass(frozen=True)
class ModelSource:
    """``local`` (the built index named by params), or a packaged model URI; ``alias`` set = watched."""

    uri: str
    name: str | None = None  # registered model name (models:/ URIs)
    alias: str | None = None  # models:/NAME@ALIAS: the watcher follows it
    version: str | None = None  # models:/NAME/VERSION: pinned

    @property
    def local(self) -> bool:
        return self.uri == "local"

    @staticmethod
    def parse(uri: str) -> ModelSource:
        if uri == "local":
            return ModelSource("local")
        if uri.startswith("models:/"):
            rest = uri[len("models:/") :].strip("/")
            if "@" in rest:
                name, alias = rest.split("@", 1)
                if name and alias:
                    return ModelSource(uri, name, alias=alias)
            elif "/" in rest:
                name, version = rest.rsplit("/", 1)
                if name and version.isdigit():
                    return ModelSource(uri, name, version=version)
            raise ConfigError(f"cannot read model URI {uri!r}: use models:/NAME@ALIAS or models:/NAME/VERSION")
        return ModelSource(uri)  # runs:/..., a folder: loaded once, not watched


@dataclass
class Served:
    """One loaded model version: everything a request needs, never changed after loading."""

    pipeline: SearchPipeline  # every mode the version carries; its default is the registered mode
    docs: pd.DataFrame  # indexed by doc_id: title, text
    name: str
    version: str  # "local" for the built index
    alias: str | None
    uri: str
    caches: list[QueryCache] = field(default_factory=list)  # one per query encoder
    answerer: Any = None  # ragops.answer.Answerer, or None (answer_error says why)
    answer_error: str | None = None
    grounding: str | None = None  # where the answerer's grounding scorer came from
    loaded_at: float = field(default_factory=time.time)
    load_s: float = 0.0

    @property
    def default_mode(self) -> str:
        return self.pipeline.default_mode

    @property
    def modes(self) -> tuple[str, ...]:
        return self.pipeline.modes

    def search(self, query: str, mode: str, k: int, snippet_chars: int) -> tuple[list[dict], float]:
        """(results, milliseconds): ranked ``doc_id, title, snippet, score``."""
        t0 = time.perf_counter()
        results = self._results(self.pipeline.search(query, mode, k), snippet_chars)
        return results, (time.perf_counter() - t0) * 1000.0

    def search_many(self, queries: list[str], mode: str, k: int, snippet_chars: int) -> list[list[dict]]:
        """Results per query from one ``search_batch`` (one encoder pass for all of them)."""
        return [self._results(hits, snippet_chars) for hits in self.pipeline.search_batch(queries, mode, k)]

    def _results(self, hits, snippet_chars: int) -> list[dict]:
        return [
            {
                "doc_id": doc,
                "title": str(self.docs.at[doc, "title"]),
                "snippet": snippet(str(self.docs.at[doc, "text"]), snippet_chars),
                "score": float(score),
            }
            for doc, score in zip(hits.ids, hits.scores.tolist(), strict=True)
        ]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "uri": self.uri,
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at)),
            "load_s": round(self.load_s, 3),
            "modes": list(self.modes),
            "default_mode": self.default_mode,
            "answers": self.answerer is not None,
            "answers_error": self.answer_error,
            "grounding": self.grounding,
            "scorer": getattr(getattr(self.answerer, "scorer", None), "name", None),
            "degraded": getattr(self.answerer, "degraded", None),  # a fallback the operator should fix
        }


def quiet_onnx(encode, threads: int) -> None:
    """An ONNX query encoder gets ``threads`` intra-op threads that do not spin, one run at a time. ONNX
    Runtime's pool spins between runs by default: harmless in a loop, but in the server it takes the cores
    from the other search thread and the HTTP loop (the torch backend is capped per search thread:
    ragops.serving.runner)."""
    from ragops.encode.onnx_encoder import OnnxModel

    model = getattr(encode, "model", None)
    if threads > 0 and isinstance(model, OnnxModel):
        model.configure(threads=threads, workers=1, spinning=False)


def snippet(text: str, limit: int) -> str:
    """The first ``limit`` characters, cut at a word boundary, with an ellipsis when cut."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:.") + "…"


def finish(
    pipeline: SearchPipeline,
    docs: pd.DataFrame,
    *,
    params: dict[str, Any],
    name: str,
    version: str,
    alias: str | None,
    uri: str,
    cache_size: int,
    on_lookup,
    t0: float,
    encoder_threads: int = 0,
    grounding_dir: Path | None = None,
    sentences_dir: Path | None = None,
    packaged: bool = False,
) -> Served:
    """Wrap each query encoder in a query cache and build the answerer: a version is ready only when both are.
    A packaged version's answers are checked by its own grounding scorer or, without one, by the embedding
    scorer (degraded): never by the build's, which may have been trained for another version."""
    for retriever in (pipeline.base, pipeline.ft):
        if retriever is not None:
            quiet_onnx(retriever.encode, encoder_threads)
    # One query per mode first, off the request path: torch's first call is ~0.6 s, and a version that
    # cannot answer in a mode it carries is never swapped in.
    for mode in pipeline.modes:
        pipeline.search("warm up the model", mode, 1)
    caches: list[QueryCache] = []

    def cached(encode):
        cache = QueryCache(encode, cache_size, on_lookup)
        caches.append(cache)
        return cache

    pipeline = pipeline.map_encoders(cached)
    answerer, error = None, None
    try:
        from ragops.answer.answerer import build_answerer

        answerer = build_answerer(pipeline, docs.reset_index(), params, grounding_dir=grounding_dir,
                                  sentences_dir=sentences_dir, packaged=packaged)
    except Exception as exc:  # noqa: BLE001 - /search still works; /ask says why it cannot (503)
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        log.warning("answers unavailable for %s v%s: %s", name, version, error)
    local = None if packaged else params.get("paths", {}).get("grounding_model")
    grounding = str(grounding_dir or local or "") or None
    return Served(pipeline, docs, name, version, alias, uri, caches, answerer, error, grounding,
                  load_s=time.perf_counter() - t0)


def load_local(
    params: dict[str, Any], cache_size: int, on_lookup=None, default_mode: str | None = None, encoder_threads: int = 0
) -> Served:
    """The built project's pipeline, every mode it has the models for."""
    from ragops.retrieval.load import load_pipeline

    t0 = time.perf_counter()
    pipeline, docs = load_pipeline(params, default_mode=default_mode)
    return finish(
        pipeline,
        docs.set_index("doc_id"),
        params=params,
        name="local",
        version="local",
        alias=None,
        uri="local",
        cache_size=cache_size,
        on_lookup=on_lookup,
        t0=t0,
        encoder_threads=encoder_threads,
    )


def load_packaged(
    uri: str,
    dst: Path,
    params: dict[str, Any],
    cache_size: int,
    on_lookup=None,
    *,
    name: str | None = None,
    version: str | None = None,
    alias: str | None = None,
    encoder_threads: int = 0,
) -> Served:
    """A packaged pipeline (``models:/NAME/VERSION``, ``runs:/...`` or a folder): its modes, its registered
    default mode and its grounding scorer. A version in a local artifact store is read in place; anything
    else is downloaded into ``dst``."""
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    from ragops.pyfunc import local_model_path

    t0 = time.perf_counter()
    local = local_model_path(uri)
    if local is None:
        dst.mkdir(parents=True, exist_ok=True)
    try:  # suppress_warnings: skip MLflow's scan of every installed package (the model checks its own pins)
        loaded = mlflow.pyfunc.load_model(local, suppress_warnings=True) if local else \
            mlflow.pyfunc.load_model(uri, dst_path=str(dst), suppress_warnings=True)
        model = loaded.unwrap_python_model()
    except (MlflowException, OSError) as exc:
        raise RagopsError(f"cannot load {uri}: {str(exc).splitlines()[0]}") from None
    return finish(
        model.pipeline,
        model.docs,
        params=params,
        name=name or uri,
        version=version or "",
        alias=alias,
        uri=uri,
        cache_size=cache_size,
        on_lookup=on_lookup,
        t0=t0,
        encoder_threads=encoder_threads,
        grounding_dir=model.grounding_dir,
        sentences_dir=model.sentences_dir,
        packaged=True,
    )
