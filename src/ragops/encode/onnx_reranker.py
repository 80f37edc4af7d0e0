"""The reranker's fast path: the trained cross-encoder exported to ONNX with int8 weights, run by
onnxruntime — the same recipe as the query encoder's (``ragops.encode.onnx_encoder``).

``rerank.backend`` picks it: ``torch`` (transformers, ``ragops.retrieval.rerank.CrossEncoderScorer``) or
``onnx-int8`` (this module). The export is made once per model, offline, from the reranker folder into
``<onnx_dir>/<fingerprint[:16]>-ce/`` (written atomically, like the encoder's exports); a registered
package carries it, so a fresh process does not export again.

One query's passages per session run (``OnnxCrossEncoder``): on 2 cores six 64-token pairs take ~19 ms
batched against ~30 ms one pair per run, since int8 GEMMs want rows. The nDCG@10 against PyTorch is
measured on dev and test by ``bench/onnx_reranker.py``.

Mixed precision (recipe 2): the feed-forward MatMuls of the first ``FP32_LAYERS`` encoder layers stay fp32,
every other weight is int8 per output channel. Int8 activations take one scale per tensor, and the early
layers' feed-forward inputs carry the outliers that scale wastes its range on: on the SciFact reranker
(dev, each query's reranked top n) leaving those four MatMuls in fp32 halves the scores' deviation from
PyTorch (0.096 -> 0.043 z-units a passage) at 36.5 ms a query against 32.6 all-int8 and 40.8 fp32
(``bench/reranker_recipes.py``; docs/DECISIONS.md, "Reranker recipe").
Recipe 1 (all int8) exports are named ``<fingerprint>-ce``; a registered package that carries one still
serves it (what was gated is what is served), while a local cache re-exports under the new name.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ragops.encode.onnx_export import export_fused, input_names, quantize_int8
from ragops.errors import ConfigError, checked_choice
from ragops.io import atomic_dir

BACKENDS = ("torch", "onnx-int8")
FILE = "model_int8.onnx"
RECIPE = 2  # 1: every MatMul int8; 2: the first FP32_LAYERS layers' feed-forward MatMuls fp32
FP32_LAYERS = 2
# the feed-forward MatMuls of a BERT-style encoder as the TorchScript exporter names them (not the
# attention's output projection, ".../layer.N/attention/output/dense/MatMul")
FFN_MATMUL = re.compile(r"/encoder/layer\.(\d+)/(?:intermediate|output)/dense/MatMul$")
log = logging.getLogger("ragops.onnx_reranker")


def check_backend(backend: str) -> str:
    return checked_choice("rerank.backend", backend, BACKENDS)


def export_dir(onnx_dir: str | Path, fingerprint: str, recipe: int = RECIPE) -> Path:
    """Where the export of the model with ``fingerprint`` under ``recipe`` lies in ``onnx_dir``."""
    return Path(onnx_dir).expanduser() / f"{fingerprint[:16]}-ce{recipe if recipe > 1 else ''}"


def fp32_nodes(graph_nodes, layers: int = FP32_LAYERS) -> list[str]:
    """The names of the feed-forward MatMuls of encoder layers ``0 .. layers - 1``: kept in fp32."""
    out = []
    for node in graph_nodes:
        m = FFN_MATMUL.search(node.name) if node.op_type == "MatMul" else None
        if m and int(m.group(1)) < layers:
            out.append(node.name)
    return out


def export_cross_encoder(model_path: str | Path, out: str | Path) -> Path:
    """Export the one-logit sequence classifier at ``model_path`` to ``out/model_int8.onnx`` (fused, then
    int8 weights per output channel but for :func:`fp32_nodes`), with its tokenizer and ``meta.json``; all
    appear together."""
    import onnx
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ragops.encode.models import model_fingerprint, offline_env

    offline_env()
    tokenizer = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
    # eager attention: what the optimizer fuses (ragops.encode.onnx_export)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(model_path), local_files_only=True, attn_implementation="eager").eval()
    names = input_names(tokenizer)
    sample = tokenizer(["a query", "another query"], ["a passage to read", "a second, longer passage to read"],
                       padding=True, return_tensors="pt")

    with atomic_dir(out) as tmp:
        fp32 = export_fused(model, lambda m, batch: m(**batch).logits[:, 0], sample, names, "score", model.config,
                            tmp / "model.onnx")
        keep = fp32_nodes(onnx.load(str(fp32), load_external_data=False).graph.node)
        if len(keep) < 2 * FP32_LAYERS:  # two feed-forward MatMuls a layer; an exporter that names them
            # otherwise would silently give recipe 1's deviation under recipe 2's name
            log.warning("recipe %d: %d of the %d feed-forward MatMuls to keep in fp32 were found by name "
                        "in %s; the rest are quantized to int8", RECIPE, len(keep), 2 * FP32_LAYERS, model_path)
        quantize_int8(fp32, tmp / FILE, keep)
        fp32.unlink()  # only the int8 model is run; the fp32 one would double the package
        tokenizer.save_pretrained(str(tmp / "tokenizer"))
        # the source's fingerprint, not its path: the export's own fingerprint (its meta.json and tokenizer,
        # what ragops.encode.models.model_fingerprint reads) names the model and the backend, wherever they lie
        meta = {"input_names": names, "backend": "onnx-int8", "recipe": RECIPE, "fp32_nodes": keep,
                "source_fingerprint": model_fingerprint(model_path)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    return Path(out)


def _complete(folder: Path) -> bool:
    return (folder / "meta.json").is_file() and (folder / FILE).is_file()


def ensure_export(model_path: str | Path, onnx_dir: str | Path, packaged: bool = False) -> Path:
    """The export folder of the reranker at ``model_path``, exporting it first if it is not there yet.

    ``packaged``: ``onnx_dir`` is a registered package's, whose export is served whatever its recipe (an
    older package's recipe-1 export included); a cache gets the current recipe."""
    from ragops.encode.models import model_fingerprint

    fingerprint = model_fingerprint(model_path)
    out = export_dir(onnx_dir, fingerprint)
    if packaged and not _complete(out) and _complete(export_dir(onnx_dir, fingerprint, recipe=1)):
        return export_dir(onnx_dir, fingerprint, recipe=1)
    if not _complete(out):
        export_cross_encoder(model_path, out)
    return out


class OnnxCrossEncoder:
    """``score(query, passages) -> float32 [n]`` from an exported cross-encoder: one query's passages per
    run, padded together, on ``threads`` intra-op threads (default: every core this process may use).

    ``max_length`` bounds query + passage in tokens (the passage is cut first). Int8 activations are
    quantized with one scale per run, so a passage's score depends (slightly: ≤ 0.02 logits on SciFact) on
    the passages scored beside it; it is a function of the query and its whole list, computed the same way
    by evaluate, the tuning command and every server. Pairs are therefore never cached one by one.
    """

    def __init__(self, folder: str | Path, max_length: int, threads: int | None = None,
                 spinning: bool = False) -> None:
        import onnxruntime as ort

        from ragops.encode.tokenize import FastTokenizer

        folder = Path(folder)
        if not (folder / FILE).is_file():
            raise ConfigError(f"{folder / FILE}: no exported reranker (delete {folder} to re-export)")
        self.path = folder  # its fingerprint (ragops.encode.models.model_fingerprint) names the model
        self.list_dependent = True  # a pair's score depends on its list: no per-pair score cache
        self.max_length = int(max_length)
        self.names = list(json.loads((folder / "meta.json").read_text())["input_names"])
        self.tokenizer = FastTokenizer(folder / "tokenizer", self.max_length, pad=True)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads or len(os.sched_getaffinity(0))))
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(folder / FILE), opts, providers=["CPUExecutionProvider"])

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        if not len(passages):
            return np.empty(0, dtype=np.float32)
        # longest_first cuts the passage alone while it is the longer side (the usual case: the same inputs as
        # only_second), and a query itself longer than max_length too, where only_second would raise
        enc = self.tokenizer([query] * len(passages), list(passages))
        feeds = {n: enc[n] for n in self.names}
        return np.asarray(self.session.run(None, feeds)[0], dtype=np.float32).reshape(len(passages))

    def score_pairs(self, queries: Sequence[str], passages: Sequence[str]) -> np.ndarray:
        """Scores of (query, passage) pairs; each run of consecutive pairs with one query is one list."""
        out = np.empty(len(passages), dtype=np.float32)
        start = 0
        for end in range(1, len(passages) + 1):
            if end == len(passages) or queries[end] != queries[start]:
                out[start:end] = self.score(queries[start], passages[start:end])
                start = end
        return out
