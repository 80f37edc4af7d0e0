"""Loading the built pipeline — the DVC outputs named in params.yaml, or a packaged model's copy of them —
into a :class:`ragops.retrieval.pipeline.SearchPipeline`.

Both go through :func:`assemble_pipeline` over the same two things: a map of *parts* (file or folder per
name, :data:`PARTS`) and a *config* (everything else that shapes the rankings, :func:`pipeline_config`). The
registered package is those parts plus ``config.json``, so a served version ranks as the evaluation did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ragops.encode.models import DEFAULT_ONNX_DIR
from ragops.errors import ConfigError, RagopsError
from ragops.retrieval.index.dense import load_dense
from ragops.retrieval.index.sparse import BM25Index
from ragops.retrieval.pipeline import MODES, RERANK_MODES, Reranker, SearchPipeline, check_mode
from ragops.retrieval.retriever import FusionConfig, Retriever

# Every part a pipeline can be made of. Required: bm25, chunks, docs; the others only for the modes that
# need them (:func:`parts_for`). ``grounding`` is the answerer's scorer, ``onnx`` the query encoders'
# ONNX exports (a package carries them so a fresh process does not export again).
PARTS = ("embedder", "faiss", "bm25", "chunks", "docs", "embedder_ft", "faiss_ft", "reranker", "grounding", "onnx")
CONFIG_FORMAT = 2


def parts_for(mode: str) -> tuple[str, ...]:
    """The parts that ``mode`` needs."""
    need = ["bm25", "chunks", "docs"]
    if mode != "bm25":
        need += ["embedder_ft", "faiss_ft"] if "_ft" in mode else ["embedder", "faiss"]
    if mode in RERANK_MODES:
        need.append("reranker")
    return tuple(need)


def fusion_config(params: dict[str, Any], section: str = "fusion") -> FusionConfig:
    f = params.get(section) or {}
    return FusionConfig(
        method=f.get("method", "convex"),
        alpha=float(f.get("alpha", 0.5)),
        norm=f.get("norm", "minmax"),
        rrf_k=int(f.get("rrf_k", 60)),
        prf_docs=int(f.get("prf_docs", 0)),
        prf_beta=float(f.get("prf_beta", 0.0)),
    )


def query_backend(embed: Mapping[str, Any]) -> str:
    """``embed.query_backend``, where ``same`` (the default) means ``embed.backend``."""
    backend = str(embed.get("query_backend", "same"))
    return str(embed.get("backend", "torch")) if backend == "same" else backend


def query_batch_size(backend: str, batch_size: int) -> int:
    """1 for int8: its activations are quantized with one scale per batch, so a query's vector would
    depend on the queries batched with it and batched evaluation would not rank like one-query search.
    One at a time, a short query costs ~1.5 ms (docs/benchmarks.md)."""
    return 1 if backend == "onnx-int8" else batch_size


def pipeline_config(params: dict[str, Any], mode: str = "hybrid", k: int | None = None,
                    model_id: str | None = None) -> dict[str, Any]:
    """Everything besides the parts that shapes a pipeline's answers (a package's ``config.json``)."""
    embed, retrieve, rerank = params["embed"], params.get("retrieve", {}), params.get("rerank", {})
    fusion_ft = "fusion_ft" if params.get("fusion_ft") else "fusion"
    return {
        "format": CONFIG_FORMAT,
        "mode": check_mode(mode),
        "k": int(k if k is not None else params.get("registry", {}).get("k", 10)),
        "embed": {"model": str(embed.get("model")), "model_id": model_id, "device": str(embed.get("device", "cpu")),
                  "batch_size": int(embed.get("batch_size", 64)), "query_backend": query_backend(embed)},
        "retrieve": {"depth": int(retrieve.get("depth", 100)),
                     "dense_chunk_k": int(retrieve.get("dense_chunk_k", 400))},
        "fusion": asdict(fusion_config(params)),
        "fusion_ft": asdict(fusion_config(params, fusion_ft)),
        "rerank": {"n": int(rerank.get("n", 10)), "weight": float(rerank.get("weight", 1.0)),
                   "max_length": int(rerank.get("max_length", 160)), "batch_size": int(rerank.get("batch_size", 32)),
                   "backend": str(rerank.get("backend", "torch"))},
    }


def local_parts(params: dict[str, Any]) -> dict[str, Path | str | None]:
    """The built project's parts (None where a model was not trained or a stage has not run)."""
    from ragops.training.artifacts import effective_reranker, is_trained

    paths = params["paths"]
    trained = is_trained(paths.get("embedder"))
    grounding = paths.get("grounding_model")
    return {
        "embedder": str(params["embed"]["model"]),  # a packaged model name or a folder: the Encoder resolves it
        "faiss": Path(paths["faiss"]),
        "bm25": Path(paths["bm25"]),
        "chunks": Path(paths["chunks"]),
        "docs": Path(paths["docs"]),
        "embedder_ft": Path(paths["embedder"]) if trained else None,
        "faiss_ft": Path(paths["faiss_ft"]) if trained and paths.get("faiss_ft") else None,
        "reranker": effective_reranker(params),
        "grounding": Path(grounding) if grounding and Path(grounding).is_dir() else None,
        "onnx": None,
    }


def available_modes(parts: Mapping[str, Any]) -> tuple[str, ...]:
    """The modes whose parts are all present in ``parts``."""
    return tuple(m for m in MODES if all(parts.get(p) is not None for p in parts_for(m)))


def load_pipeline(params: dict[str, Any], modes: Sequence[str] | None = None, default_mode: str | None = None,
                  encoder=None) -> tuple[SearchPipeline, pd.DataFrame]:
    """The built project's pipeline for ``modes`` (None: every mode it has the models for) and its docs
    frame (doc_id, title, text). ``encoder`` replaces the base query encoder (benchmarks)."""
    parts = local_parts(params)
    for key in ("chunks", "bm25"):
        if not Path(parts[key]).exists():
            raise ConfigError(f"{parts[key]} is missing: build the pipeline first (`dvc repro`)")
    if modes is not None:
        have = available_modes(parts)
        for m in modes:
            if check_mode(m) not in have:
                missing = [p for p in parts_for(m) if parts.get(p) is None]
                raise ConfigError(f"mode {m!r} needs {', '.join(missing)}, which this build has not trained "
                                  f"(train judgments? train.*.enabled?); it has: {', '.join(have)}")
    config = pipeline_config(params)
    return assemble_pipeline(parts, config, modes, default_mode, onnx_dir=params["embed"].get("onnx_dir"),
                             encoder=encoder)


def assemble_pipeline(parts: Mapping[str, Any], config: Mapping[str, Any], modes: Sequence[str] | None = None,
                      default_mode: str | None = None, onnx_dir: str | Path | None = None,
                      encoder=None) -> tuple[SearchPipeline, pd.DataFrame]:
    """A :class:`SearchPipeline` over ``parts`` under ``config``, loading only what ``modes`` need (None:
    every mode the parts allow)."""
    from ragops.encode.encoder import Encoder

    want = available_modes(parts) if modes is None else tuple(modes)
    need = {p for m in want for p in parts_for(m)}
    emb = config["embed"]
    backend = str(emb.get("query_backend", "torch"))
    onnx_dir = parts.get("onnx") or onnx_dir or DEFAULT_ONNX_DIR

    def make_encoder(model) -> Any:
        return Encoder(str(model), device=emb.get("device", "cpu"), backend=backend,
                       batch_size=query_batch_size(backend, int(emb.get("batch_size", 64))), onnx_dir=onnx_dir,
                       packaged=bool(parts.get("onnx")))

    # The indexes load on a second thread while this one loads the encoders and the reranker. Those stay on
    # this thread: a model seen for the first time is exported to ONNX here, and torch's exporter must not
    # run twice at once.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragops-load") as pool:
        base_f = pool.submit(assemble_retriever, parts["chunks"], parts["bm25"],
                             parts["faiss"] if "faiss" in need else None, None, config["retrieve"],
                             FusionConfig(**config["fusion"]))
        docs_f = pool.submit(read_docs, parts["docs"])
        faiss_ft_f = pool.submit(load_dense, parts["faiss_ft"]) if "faiss_ft" in need else None
        base_enc = encoder if encoder is not None else (make_encoder(parts["embedder"]) if "embedder" in need else None)
        ft_enc = make_encoder(parts["embedder_ft"]) if "embedder_ft" in need else None
        base, docs = base_f.result().with_encoder(base_enc), docs_f.result()
        ft = None
        if ft_enc is not None:
            ft = replace(base, dense_index=faiss_ft_f.result(), encode=ft_enc,
                         fusion=FusionConfig(**config.get("fusion_ft") or config["fusion"]))
    reranker = (load_reranker(parts["reranker"], config["rerank"], docs, onnx_dir, packaged=bool(parts.get("onnx")))
                if "reranker" in need else None)
    default = default_mode or (config.get("mode") if config.get("mode") in want else None) or \
        next((m for m in ("hybrid", "bm25") if m in want), want[0])
    return SearchPipeline(base=base, ft=ft, reranker=reranker, default_mode=default), docs


def read_docs(path: str | Path) -> pd.DataFrame:
    """docs.parquet's ``doc_id, title, text`` and, for ingested documents, ``sections`` (pages, headings)."""
    import pyarrow.parquet as pq

    names = set(pq.read_schema(path).names)
    return pd.read_parquet(path, columns=[c for c in ("doc_id", "title", "text", "sections") if c in names])


def load_reranker(folder: str | Path, cfg: Mapping[str, Any], docs: pd.DataFrame,
                  onnx_dir: str | Path | None = None, packaged: bool = False) -> Reranker:
    """The cross-encoder in ``folder`` over ``docs`` under ``cfg`` (n, weight, max_length, batch_size,
    backend: torch, or onnx-int8 exported once into ``onnx_dir``; ``packaged``: a registered package's
    folder, whose export is served as it is: ``ragops.encode.onnx_reranker.ensure_export``)."""
    from ragops.encode.onnx_reranker import OnnxCrossEncoder, check_backend, ensure_export
    from ragops.retrieval.rerank import CrossEncoderScorer, doc_passage

    if not Path(folder).is_dir():
        raise RagopsError(f"the reranker folder {folder} is missing")
    max_length = int(cfg.get("max_length", 160))
    if check_backend(str(cfg.get("backend", "torch"))) == "onnx-int8":
        scorer = OnnxCrossEncoder(ensure_export(folder, onnx_dir or DEFAULT_ONNX_DIR, packaged), max_length)
    else:
        scorer = CrossEncoderScorer(folder, max_length, int(cfg.get("batch_size", 32)))
    passages = {d: doc_passage(t, x) for d, t, x in zip(docs["doc_id"], docs["title"], docs["text"], strict=True)}
    return Reranker(scorer.score, passages, int(cfg.get("n", 10)), float(cfg.get("weight", 1.0)), model=scorer)


def load_retriever(params: dict[str, Any], need_dense: bool = True, encoder=None) -> Retriever:
    """The base embedder's retriever alone (the training stages mine negatives with it)."""
    modes = ["hybrid"] if need_dense else ["bm25"]
    return load_pipeline(params, modes, encoder=encoder)[0].base


def assemble_retriever(
    chunks_path: str | Path,
    bm25_path: str | Path,
    faiss_path: str | Path | None,
    encoder,
    retrieve: Mapping[str, Any],
    fusion: FusionConfig,
) -> Retriever:
    """A Retriever over saved indexes. ``faiss_path=None`` loads no dense index (BM25 only)."""
    chunks = pd.read_parquet(chunks_path, columns=["chunk_id", "doc_id"])
    bm25 = BM25Index.load(bm25_path)
    bm25_row_doc = None
    if bm25.cfg.unit == "chunk":
        bm25_row_doc = dict(zip(chunks["chunk_id"], chunks["doc_id"], strict=True))
    return Retriever(
        bm25=bm25,
        dense_index=load_dense(faiss_path) if faiss_path is not None else None,
        encode=encoder,
        row_doc=chunks["doc_id"].tolist(),
        depth=int(retrieve.get("depth", 100)),
        dense_chunk_k=int(retrieve.get("dense_chunk_k", 400)),
        fusion=fusion,
        bm25_row_doc=bm25_row_doc,
    )

