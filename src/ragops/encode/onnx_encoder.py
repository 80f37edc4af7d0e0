"""A faster encoder path: the sentence-transformers model exported to ONNX (optionally int8), run
by onnxruntime.

``embed.backend`` picks it: ``torch`` (sentence-transformers itself), ``onnx`` (the same graph in
fp32 under onnxruntime) or ``onnx-int8`` (weights of the linear layers quantized to int8 per
channel, activations quantized on the fly: onnxruntime's dynamic quantization, which uses the
CPU's VNNI int8 dot products where it has them).

Mixed precision (recipe 2): the feed-forward output MatMuls (out of the GELU, 1,536 wide) of the first
``FP32_FFN_OUT`` layers stay fp32, every other product is int8. Int8 activations take one scale per tensor, and
those inputs carry the outliers the scale spends its range on: on the fine-tuned SciFact embedder (a fp32 and a
bf16 training) the vectors' mean cosine to fp32 rises from 0.9937 to 0.9968, and dense nDCG@10 lands within 0.007
of fp32 ONNX's on dev and at or above it on test (recipe 1: up to 0.0065 below on dev, 0.009-0.015 below on test);
the corpus encodes 14-22% slower than under recipe 1 and 1.7x faster than fp32 (``bench/embedder_int8.py``;
docs/DECISIONS.md, "The embedder's int8 recipe"). Recipe 1 (every
product int8) exports are named ``<fingerprint[:16]>``; a registered package that carries one still serves it
(what was gated is what is served), while a local cache re-exports under the new name.

The export runs once per model, offline, from any sentence-transformers folder (the packaged
MiniLM or a fine-tuned one): the whole module chain (transformer, pooling, normalize) is traced, so
the ONNX graph outputs the sentence embedding itself and a fine-tuned model's own pooling comes with
it. Exports live in ``<onnx_dir>/<model fingerprint[:16]>/`` (a cache, like the embedding cache),
written atomically; running an exported model needs neither torch nor sentence-transformers.
``OnnxModel`` runs one text per session run, two runs side by side on 2 cores (why: its docstring).
"""

from __future__ import annotations

import json
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ragops.encode.onnx_export import export_fused, input_names, quantize_int8
from ragops.errors import ConfigError, unknown_name
from ragops.io import atomic_dir

BACKENDS = ("torch", "onnx", "onnx-int8")
FILES = {"onnx": "model.onnx", "onnx-int8": "model_int8.onnx"}
RECIPE = 2  # 1: every product int8; 2: the feed-forward output MatMuls of the first FP32_FFN_OUT layers fp32
FP32_FFN_OUT = 3
# the feed-forward output MatMul of a BERT-style encoder layer as the TorchScript exporter names it (not the
# attention's output projection, ".../layer.N/attention/output/dense/MatMul")
FFN_OUT = re.compile(r"/encoder/layer\.(\d+)/output/dense/MatMul$")
log = logging.getLogger("ragops.onnx_encoder")


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise unknown_name("embed.backend", backend, BACKENDS)
    return backend


def export_dir(onnx_dir: str | Path, fingerprint: str, recipe: int = RECIPE) -> Path:
    """Where the export of the model with ``fingerprint`` under ``recipe`` lies in ``onnx_dir``."""
    return Path(onnx_dir) / (fingerprint[:16] + (f"-r{recipe}" if recipe > 1 else ""))


def fp32_nodes(graph_nodes, layers: int = FP32_FFN_OUT) -> list[str]:
    """The names of the feed-forward output MatMuls of encoder layers ``0 .. layers - 1``: kept in fp32."""
    return [n.name for n in graph_nodes
            if n.op_type == "MatMul" and (m := FFN_OUT.search(n.name)) and int(m.group(1)) < layers]


def export_onnx(model_path: str | Path, out: str | Path) -> Path:
    """Export the model at ``model_path`` to ``out/model.onnx`` (fp32) and ``out/model_int8.onnx``.

    Both files and ``meta.json`` (max_seq_length, dim, input names) appear together (atomic folder).
    """
    import onnx
    from sentence_transformers import SentenceTransformer

    # eager attention: what the optimizer fuses (ragops.encode.onnx_export)
    model = SentenceTransformer(
        str(model_path), device="cpu", local_files_only=True, model_kwargs={"attn_implementation": "eager"}
    ).eval()
    tokenizer = model.tokenizer
    names = input_names(tokenizer)
    sample = tokenizer(
        ["a short sentence", "another, slightly longer sentence to pad"], padding=True, return_tensors="pt"
    )

    with atomic_dir(out) as tmp:
        fp32 = export_fused(model, lambda m, batch: m(batch)["sentence_embedding"], sample, names, "embedding",
                            model[0].auto_model.config, tmp / FILES["onnx"])
        keep = fp32_nodes(onnx.load(str(fp32), load_external_data=False).graph.node)
        if len(keep) < FP32_FFN_OUT:  # an exporter that names them otherwise would silently give recipe 1
            log.warning("recipe %d: %d of the %d feed-forward output MatMuls to keep in fp32 were found by name in "
                        "%s; the rest are quantized to int8", RECIPE, len(keep), FP32_FFN_OUT, model_path)
        quantize_int8(fp32, tmp / FILES["onnx-int8"], keep)
        tokenizer.save_pretrained(str(tmp / "tokenizer"))
        meta = {
            "max_seq_length": int(model.max_seq_length),
            "dim": int(model.get_embedding_dimension()),
            "input_names": names,
            "source": str(model_path),
            "recipe": RECIPE,
            "fp32_nodes": keep,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    return Path(out)


def ensure_export(model_path: str | Path, fingerprint: str, onnx_dir: str | Path, packaged: bool = False) -> Path:
    """The export folder for this model, exporting it first if it is not there yet.

    ``packaged``: ``onnx_dir`` is a registered package's, whose export is served whatever its recipe (an older
    package's recipe-1 export included); a cache gets the current recipe."""
    out = export_dir(onnx_dir, fingerprint)
    old = export_dir(onnx_dir, fingerprint, recipe=1)
    if packaged and not (out / "meta.json").exists() and (old / "meta.json").exists():
        return old
    if not (out / "meta.json").exists():
        export_onnx(model_path, out)
    return out


class OnnxModel:
    """Tokenizer + onnxruntime session: ``encode(texts) -> float32 [n, dim]``, L2-normalized.

    One text per session run, ``workers`` runs at a time (threads sharing the session: ORT releases
    the GIL), each on ``threads`` intra-op threads. On 2 cores one text per run pads nothing and keeps a
    layer's activations in cache, and two single-threaded runs side by side beat one run on two threads:
    int8 24,300 tokens/s against 13,600 with length-sorted batches of 64 (bench/onnx_encoder.py, this
    version and the previous one; docs/benchmarks.md).
    For int8 it also makes a text's vector independent of the texts encoded with it: the activation
    scale is per run, so in a batch it would depend on the batchmates (and the cache, keyed by text,
    would keep whichever batch it came from).
    """

    def __init__(
        self,
        folder: str | Path,
        backend: str,
        threads: int | None = None,
        workers: int | None = None,
        spinning: bool = True,
    ) -> None:
        from ragops.encode.tokenize import FastTokenizer

        folder = Path(folder)
        if backend not in FILES:
            raise unknown_name("ONNX backend", backend, tuple(FILES))
        if not (folder / FILES[backend]).exists():
            raise ConfigError(f"{folder / FILES[backend]}: no exported model (delete {folder} to re-export)")
        self.path = folder / FILES[backend]
        self.backend = backend
        self.meta = json.loads((folder / "meta.json").read_text())
        # The embedding-cache tag: int8 vectors from batched runs (before one text per run: ".1") and from
        # another recipe (recipe 2: "-r2") differ a little; the fp32 graph is the same in every recipe.
        recipe = int(self.meta.get("recipe", 1))
        self.cache_tag = f"{backend}.1{f'-r{recipe}' if recipe > 1 else ''}" if backend == "onnx-int8" else backend
        self.names = list(self.meta["input_names"])
        self.dim = int(self.meta["dim"])
        self.max_seq_length = int(self.meta["max_seq_length"])
        self.tokenizer = FastTokenizer(folder / "tokenizer", self.max_seq_length)
        self.configure(threads, workers, spinning)

    def configure(self, threads: int | None = None, workers: int | None = None, spinning: bool = True) -> None:
        """(Re)build the session: ``threads`` intra-op threads per run (default 1), ``workers`` runs at a
        time in one ``encode`` (default: the cores divided by ``threads``), and whether idle intra-op
        threads spin (ORT's default; a server running searches in several threads turns it off so an
        idle pool does not take the cores from the other threads)."""
        import onnxruntime as ort

        cores = len(os.sched_getaffinity(0))
        self.threads = max(1, int(threads or 1))
        self.workers = max(1, int(workers or cores // self.threads))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """``batch_size`` is accepted for the Encoder interface and ignored: one text per run (see above)."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        # Tokenized here, in one call: the workers only run the session.
        enc = self.tokenizer(list(texts))
        inputs = [[enc[n][i] for n in self.names] for i in range(len(texts))]

        def run(i: int) -> None:
            feeds = {n: np.asarray([ids], dtype=np.int64) for n, ids in zip(self.names, inputs[i], strict=True)}
            out[i] = self.session.run(None, feeds)[0][0]

        if len(texts) == 1 or self.workers == 1:
            for i in range(len(texts)):
                run(i)
        else:
            # Longest first, dealt round-robin: the workers finish together.
            order = sorted(range(len(texts)), key=lambda i: -len(inputs[i][0]))

            def work(k: int) -> None:
                for i in order[k :: self.workers]:
                    run(i)

            with ThreadPoolExecutor(self.workers, thread_name_prefix="ragops-onnx") as pool:
                list(pool.map(work, range(self.workers)))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)
