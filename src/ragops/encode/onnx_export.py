"""The ONNX export the three served encoders share: trace a PyTorch module, fuse it for onnxruntime.

The document/query encoder (:mod:`ragops.encode.onnx_encoder`), the reranker (:mod:`ragops.encode.onnx_reranker`)
and the grounding cross-encoder (:mod:`ragops.answer.cross_encoder_onnx`) are all BERT-style encoders exported the
same way: the TorchScript exporter (opset :data:`OPSET`, batch and sequence axes dynamic), then onnxruntime's BERT
optimizer (fused Attention, SkipLayerNorm, BiasGelu); the int8 copies are made by :func:`quantize_int8`. Each caller
loads its model with eager attention, which exports as plain MatMul/Softmax: the pattern the optimizer fuses (the
SDPA export is not recognised and runs ~2x slower).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

# Opset 17 is the newest the TorchScript exporter writes without onnxscript; ORT 1.32 runs it.
OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def input_names(tokenizer) -> list[str]:
    """The model inputs the tokenizer produces, in the graph's order."""
    return [n for n in INPUTS if n in tokenizer.model_input_names]


def export_fused(model, forward: Callable[[Any, dict], Any], sample: dict, names: list[str], output: str,
                 config, out_file: Path) -> Path:
    """Trace ``forward(model, batch)`` (``batch``: the inputs by name) on ``sample`` into ``out_file``, fused.

    ``config`` (the transformer's config) gives the optimizer the heads and the width: its own detection fails
    on these graphs and then silently skips the Attention fusion. The traced, unfused file is removed."""
    import torch
    from onnxruntime.transformers.optimizer import optimize_model

    class Wrapped(torch.nn.Module):  # positional inputs (what the exporter passes), the model as a submodule
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return forward(self.model, dict(zip(names, inputs, strict=True)))

    out_file = Path(out_file)
    traced = out_file.with_name("traced.onnx")
    with torch.no_grad():
        torch.onnx.export(Wrapped(), tuple(sample[n] for n in names), str(traced), input_names=names,
                          output_names=[output], dynamic_axes={n: {0: "batch", 1: "seq"} for n in names}
                          | {output: {0: "batch"}}, opset_version=OPSET, do_constant_folding=True, dynamo=False)
    optimize_model(str(traced), model_type="bert", num_heads=int(config.num_attention_heads),
                   hidden_size=int(config.hidden_size)).save_model_to_file(str(out_file))
    traced.unlink()
    return out_file


def quantize_int8(fp32: str | Path, out: str | Path, keep: list[str]) -> None:
    """``out``: the export ``fp32`` with int8 weights per output channel, only where the weight is a constant
    (activation x activation products stay fp32), except the nodes named in ``keep`` (the recipe's fp32
    nodes). MiniLM's embeddings stay at cosine ~0.99 of fp32 (tests/test_onnx_encoder.py)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(out), per_channel=True, weight_type=QuantType.QInt8, nodes_to_exclude=keep,
                     extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT})
