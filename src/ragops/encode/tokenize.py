"""The ONNX paths' tokenizer: an export's ``tokenizer.json`` run by the ``tokenizers`` library alone.

transformers' AutoTokenizer runs the same Rust tokenizer over the same file, but importing transformers
imports torch (~3 s of a fresh process's model load, most of what `@champion` took to load), and a served
package running ONNX encoders needs neither. Truncation (``longest_first``, special tokens included in
``max_length``) and padding (right, to the longest of a call) are set once here and never changed, so one
tokenizer may serve several threads (transformers sets them on every call: "Already borrowed").
tests/test_fast_tokenizer.py checks the ids against AutoTokenizer's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ragops.errors import ConfigError

NAMES = ("input_ids", "attention_mask", "token_type_ids")


class FastTokenizer:
    """``tokenizer(texts)`` or ``tokenizer(queries, passages)`` -> ``{name: ids}``: lists of int lists, or
    with ``pad`` int64 arrays padded to the call's longest."""

    def __init__(self, folder: str | Path, max_length: int, pad: bool = False) -> None:
        from tokenizers import Tokenizer

        folder = Path(folder)
        if not (folder / "tokenizer.json").is_file():
            raise ConfigError(f"{folder / 'tokenizer.json'}: no fast tokenizer in this export (delete the export "
                              "folder to re-export)")
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.max_length = int(max_length)
        self.tokenizer.enable_truncation(self.max_length, strategy="longest_first")
        self.pad = pad
        if pad:
            config = folder / "tokenizer_config.json"
            settings = json.loads(config.read_text()) if config.is_file() else {}
            token = settings.get("pad_token", "[PAD]")
            token = token.get("content", "[PAD]") if isinstance(token, dict) else str(token)
            pad_id = self.tokenizer.token_to_id(token)
            if pad_id is None:
                raise ConfigError(f"{folder / 'tokenizer.json'}: the pad token {token!r} is not in its vocabulary")
            self.tokenizer.enable_padding(pad_id=pad_id, pad_token=token,
                                          pad_type_id=int(settings.get("pad_token_type_id", 0)))
        else:
            self.tokenizer.no_padding()

    def __call__(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> dict:
        inputs = list(texts) if pairs is None else list(zip(texts, pairs, strict=True))
        encodings = self.tokenizer.encode_batch(inputs, add_special_tokens=True)
        fields = {"input_ids": [e.ids for e in encodings], "attention_mask": [e.attention_mask for e in encodings],
                  "token_type_ids": [e.type_ids for e in encodings]}
        if self.pad:
            return {n: np.asarray(v, dtype=np.int64).reshape(len(encodings), -1) for n, v in fields.items()}
        return fields
