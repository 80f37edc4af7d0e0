"""A faster encoder path: the sentence-transformers model exported to ONNX (optionally int8), run
by onnxruntime.

``embed.backend`` picks it: ``torch`` (sentence-transformers itself), ``onnx`` (the same graph in
fp32 under onnxruntime) or ``onnx-int8`` (weights of the linear layers quantized to int8 per
channel, activations quantized on the fly: onnxruntime's dynamic quantization, which uses the
CPU's VNNI int8 dot products where it has them).

The export runs once per model, offline, from any sentence-transformers folder (the packaged
MiniLM or a fine-tuned one): the whole module chain (transformer, pooling, normalize) is traced, so
the ONNX graph outputs the sentence embedding itself and a fine-tuned model's own pooling comes with
it. Exports live in ``<onnx_dir>/<model fingerprint[:16]>/`` (a cache, like the embedding cache),
written atomically; running an exported model needs neither torch nor sentence-transformers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ragops.errors import ConfigError, unknown_name
from ragops.io import atomic_dir

BACKENDS = ("torch", "onnx", "onnx-int8")
FILES = {"onnx": "model.onnx", "onnx-int8": "model_int8.onnx"}
# Opset 17 is the newest the TorchScript exporter writes without onnxscript; ORT 1.32 runs it.
OPSET = 17


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise unknown_name("embed.backend", backend, BACKENDS)
    return backend


def export_dir(onnx_dir: str | Path, fingerprint: str) -> Path:
    return Path(onnx_dir) / fingerprint[:16]


def export_onnx(model_path: str | Path, out: str | Path) -> Path:
    """Export the model at ``model_path`` to ``out/model.onnx`` (fp32) and ``out/model_int8.onnx``.

    Both files and ``meta.json`` (max_seq_length, dim, input names) appear together (atomic folder).
    """
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model
    from sentence_transformers import SentenceTransformer

    # Eager attention exports as plain MatMul/Softmax, the pattern onnxruntime's transformer
    # optimizer fuses into one Attention op (the SDPA export is not recognised and runs ~2x slower).
    model = SentenceTransformer(
        str(model_path), device="cpu", local_files_only=True, model_kwargs={"attn_implementation": "eager"}
    ).eval()
    tokenizer = model.tokenizer
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]
    sample = tokenizer(
        ["a short sentence", "another, slightly longer sentence to pad"], padding=True, return_tensors="pt"
    )

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(dict(zip(names, inputs, strict=True)))["sentence_embedding"]

    dynamic = {n: {0: "batch", 1: "seq"} for n in names} | {"embedding": {0: "batch"}}
    with atomic_dir(out) as tmp:
        traced, fp32 = tmp / "traced.onnx", tmp / FILES["onnx"]
        with torch.no_grad():
            torch.onnx.export(
                Wrapped(),
                tuple(sample[n] for n in names),
                str(traced),
                input_names=names,
                output_names=["embedding"],
                dynamic_axes=dynamic,
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        # Fused Attention / SkipLayerNorm / BiasGelu. Heads and width from the model's config: the
        # optimizer's own detection fails on this graph and then silently skips the Attention fusion.
        config = model[0].auto_model.config
        optimize_model(
            str(traced),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
        ).save_model_to_file(str(fp32))
        traced.unlink()
        # int8 weights per output channel, only where the weight is a constant (activation x
        # activation products stay fp32): MiniLM's embeddings stay at cosine ~0.99 of fp32 (tested).
        quantize_dynamic(
            str(fp32),
            str(tmp / FILES["onnx-int8"]),
            per_channel=True,
            weight_type=QuantType.QInt8,
            extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        tokenizer.save_pretrained(str(tmp / "tokenizer"))
        meta = {
            "max_seq_length": int(model.max_seq_length),
            "dim": int(model.get_embedding_dimension()),
            "input_names": names,
            "source": str(model_path),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    return Path(out)


def ensure_export(model_path: str | Path, fingerprint: str, onnx_dir: str | Path) -> Path:
    """The export folder for this model, exporting it first if it is not there yet."""
    out = export_dir(onnx_dir, fingerprint)
    if not (out / "meta.json").exists():
        export_onnx(model_path, out)
    return out


class OnnxModel:
    """Tokenizer + onnxruntime session: ``encode(texts, batch_size) -> float32 [n, dim]``, L2-normalized."""

    def __init__(self, folder: str | Path, backend: str, threads: int | None = None) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        folder = Path(folder)
        if backend not in FILES:
            raise unknown_name("ONNX backend", backend, tuple(FILES))
        if not (folder / FILES[backend]).exists():
            raise ConfigError(f"{folder / FILES[backend]}: no exported model (delete {folder} to re-export)")
        self.meta = json.loads((folder / "meta.json").read_text())
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"), local_files_only=True)
        opts = ort.SessionOptions()
        # torch's default: one thread per core. ORT's own default spins extra threads on a busy machine.
        opts.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(folder / FILES[backend]), opts, providers=["CPUExecutionProvider"])
        self.names = list(self.meta["input_names"])
        self.dim = int(self.meta["dim"])
        self.max_seq_length = int(self.meta["max_seq_length"])

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        # Longest first, like sentence-transformers: batches of similar length pad little.
        lengths = [len(t) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            enc = self.tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=self.max_seq_length,
                return_tensors="np",
            )
            feeds = {n: enc[n].astype(np.int64) for n in self.names}
            out[rows] = self.session.run(None, feeds)[0]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)
