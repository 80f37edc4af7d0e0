"""The grounding cross-encoder as served: an fp32 ONNX export run by onnxruntime, without torch.

`rag`, `ragops ask` and `ragops serve` check every claim of an answer with the grounding scorer, whose
cross-encoder (ragops.answer.cross_encoder) is a MiniLM with a 3-label head. Loading it through torch and
transformers' BERT costs a fresh process ~4 s, nearly all imports (bench/onnx_grounding.py); the same
graph in onnxruntime, tokenized by the ``tokenizers`` library alone (ragops.encode.tokenize), loads in
a fraction of a second. The weights stay fp32 (no int8, unlike the reranker's export): the scorer's
thresholds were chosen on PyTorch's probabilities, and fp32 gives the same ones to ~1e-6.

The grounding stage writes the export beside the model it trained (``<cross_encoder>/onnx/``: model.onnx,
the tokenizer, meta.json) and checks it there against PyTorch on the evaluation claims, recording the
largest difference (:func:`export_and_check`). It is part of the stage's output, so DVC versions it and a
registered package carries it with the rest of the scorer. ``answer.grounding_backend`` picks what loads
(:func:`load_cross_encoder`): ``onnx`` (the default; a folder built before the export falls back to
PyTorch, with a warning) or ``torch``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ragops.answer.grounding_data import LABELS
from ragops.errors import ConfigError, RagopsError, checked_choice

BACKENDS = ("onnx", "torch")
ONNX_DIR = "onnx"  # inside the cross-encoder's folder
FILE = "model.onnx"
# the export is rejected (the stage fails) when a probability differs from PyTorch's by more than this
MAX_DIFF = 1e-3
log = logging.getLogger("ragops.grounding")


def check_backend(backend: str) -> str:
    return checked_choice("answer.grounding_backend", backend, BACKENDS)


class OnnxGroundingCrossEncoder:
    """``probs(claims, texts) -> [n, 3]`` in LABELS order, like ``GroundingCrossEncoder.probs``: the same
    tokens (pairs cut ``longest_first`` to ``max_length``, padded per batch) through the exported graph."""

    def __init__(self, folder: str | Path, max_length: int, top_k: int, threads: int | None = None) -> None:
        import onnxruntime as ort

        from ragops.encode.tokenize import FastTokenizer

        folder = Path(folder)
        if not (folder / FILE).is_file() or not (folder / "meta.json").is_file():
            raise ConfigError(f"{folder}: no exported grounding cross-encoder ({FILE} and meta.json)")
        self.path, self.max_length, self.top_k = folder, int(max_length), int(top_k)
        self.names = list(json.loads((folder / "meta.json").read_text())["input_names"])
        # settings fixed once: one tokenizer may serve several request threads (no lock, unlike transformers')
        self.tokenizer = FastTokenizer(folder, self.max_length, pad=True)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(threads or len(os.sched_getaffinity(0))))
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(folder / FILE), opts, providers=["CPUExecutionProvider"])

    def probs(self, claims: Sequence[str], texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        if not len(claims):
            return np.zeros((0, len(LABELS)))
        out = []
        for b in range(0, len(claims), batch_size):
            enc = self.tokenizer(list(claims[b : b + batch_size]), list(texts[b : b + batch_size]))
            out.append(self.session.run(None, {n: enc[n] for n in self.names})[0])
        return np.concatenate(out).astype(np.float64)


def load_cross_encoder(folder: str | Path, max_length: int, top_k: int, backend: str = "onnx") -> Any:
    """The trained cross-encoder at ``folder`` (a GroundingCrossEncoder's): its ONNX export when ``backend``
    is ``onnx`` and the folder has one, else the PyTorch model."""
    folder = Path(folder)
    if check_backend(backend) == "onnx":
        if (folder / ONNX_DIR / FILE).is_file():
            return OnnxGroundingCrossEncoder(folder / ONNX_DIR, max_length, top_k)
        log.warning("%s has no ONNX export (trained before the grounding stage made one; a `dvc repro` with this "
                    "ragops re-runs the stage, which adds it): the cross-encoder runs on PyTorch", folder)
    from ragops.answer.cross_encoder import GroundingCrossEncoder

    return GroundingCrossEncoder.load(folder, max_length, top_k)


def export(folder: str | Path) -> Path:
    """Export the GroundingCrossEncoder saved in ``folder`` to ``folder/onnx/``: encoder, mean pooling, head
    and softmax in one fp32 graph, fused by onnxruntime's BERT optimizer, with the tokenizer and meta.json."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from ragops.answer.cross_encoder import HEAD_FILE
    from ragops.encode.models import offline_env
    from ragops.encode.onnx_export import OPSET, export_fused, input_names
    from ragops.io import atomic_dir

    offline_env()
    folder = Path(folder)
    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    # eager attention: what the optimizer fuses (ragops.encode.onnx_export)
    encoder = AutoModel.from_pretrained(str(folder), local_files_only=True, attn_implementation="eager").eval()
    head = torch.nn.Linear(encoder.config.hidden_size, len(LABELS))
    head.load_state_dict(load_file(folder / HEAD_FILE))
    names = input_names(tokenizer)
    sample = tokenizer(["a claim", "another claim"], ["some evidence to read", "a second, longer evidence to read"],
                       padding=True, return_tensors="pt")

    def forward(parts: torch.nn.ModuleDict, batch: dict) -> torch.Tensor:  # GroundingCrossEncoder.logits, softmax
        hidden = parts["encoder"](**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return torch.softmax(parts["head"]((hidden * mask).sum(1) / mask.sum(1)), -1)

    with atomic_dir(folder / ONNX_DIR) as tmp:
        export_fused(torch.nn.ModuleDict({"encoder": encoder, "head": head.eval()}), forward, sample, names, "probs",
                     encoder.config, tmp / FILE)
        tokenizer.save_pretrained(str(tmp))
        (tmp / "meta.json").write_text(json.dumps({"input_names": names, "labels": list(LABELS), "opset": OPSET},
                                                  indent=2))
    return folder / ONNX_DIR


def export_and_check(folder: str | Path, max_length: int, top_k: int, claims: Sequence[str],
                     texts: Sequence[str]) -> dict[str, Any]:
    """:func:`export`, then both backends' probabilities on (claims[i], texts[i]); fails when they differ by
    more than :data:`MAX_DIFF`. Returns what scorers.json records of the export."""
    from ragops.answer.cross_encoder import GroundingCrossEncoder

    out = export(folder)
    want = GroundingCrossEncoder.load(folder, max_length, top_k).probs(claims, texts)
    got = OnnxGroundingCrossEncoder(out, max_length, top_k).probs(claims, texts)
    diff = float(np.abs(got - want).max()) if len(claims) else 0.0
    if diff > MAX_DIFF:
        raise RagopsError(f"{out / FILE}: the ONNX export's probabilities differ from PyTorch's by {diff:.2e} "
                          f"(> {MAX_DIFF}) on {len(claims)} evaluation pairs; set answer.grounding_backend: torch")
    same = float((got.argmax(1) == want.argmax(1)).mean()) if len(claims) else 1.0
    log.info("grounding: ONNX export of the cross-encoder: %d pairs, largest difference from PyTorch %.1e, "
             "same label on %.1f%%", len(claims), diff, 100 * same)
    return {"dir": ONNX_DIR, "file": FILE, "pairs": len(claims), "max_abs_diff": diff, "same_argmax": same}
