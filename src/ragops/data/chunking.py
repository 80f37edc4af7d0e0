"""Token-aware chunking: windows of model tokens with overlap, cut on word boundaries, the title
prepended to every chunk so each chunk can be understood (and retrieved) on its own."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ragops.errors import ConfigError

# [CLS] and [SEP] (or <s> and </s>): the model adds them to every input.
SPECIAL_TOKENS = 2


def load_chunk_tokenizer(model: str):
    """The tokenizer chunks are measured with: the model folder's ``tokenizer.json`` run by the ``tokenizers``
    library alone, the file's own truncation and padding turned off (a chunk needs every token of its document).
    transformers' fast tokenizer runs the same Rust tokenizer over the same file, but importing transformers costs
    a chunk run ~2.5 s; the ONNX encoders read this very file too (ragops.encode.tokenize). A model folder
    without ``tokenizer.json`` (a slow tokenizer only) falls back to transformers' AutoTokenizer."""
    from ragops.encode.models import load_tokenizer, resolve_model

    path = resolve_model(model) / "tokenizer.json"
    if not path.is_file():
        return load_tokenizer(model)
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def _offsets(tokenizer, texts: list[str]) -> tuple[list, list]:
    """(offsets, word ids) of every text, no special tokens: a ``tokenizers.Tokenizer`` or a Hugging Face fast
    tokenizer (the same numbers: tests/test_chunking.py)."""
    if hasattr(tokenizer, "encode_batch"):
        encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
        return [e.offsets for e in encodings], [e.word_ids for e in encodings]
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    return enc["offset_mapping"], [enc.word_ids(i) for i in range(len(texts))]


def _windows(word_ids: list[int | None], budget: int, overlap: int) -> list[tuple[int, int]]:
    """Token windows [start, end) of at most ``budget`` tokens, each starting ``overlap`` tokens
    before the previous end, never splitting a word between windows when it can be avoided."""
    n = len(word_ids)
    if n == 0:
        return [(0, 0)]

    def inside(i: int) -> bool:  # token i continues the word of token i - 1
        return 0 < i < n and word_ids[i] is not None and word_ids[i] == word_ids[i - 1]

    def window_end(start: int) -> int:
        # The cut moves back to the start of the word it would split, unless that word alone
        # fills the window (a word longer than the budget must be split).
        end = min(start + budget, n)
        cut = end
        while inside(cut):
            cut -= 1
        return cut if cut > start else end

    out: list[tuple[int, int]] = []
    start = 0
    while True:
        end = window_end(start)
        out.append((start, end))
        if end >= n:
            return out
        # The next window starts at the start of the word holding token end - overlap; when that
        # word starts at or before this window's start, at the next word instead (less overlap, but
        # no split word and no one-token steps through a long word).
        nxt = max(end - overlap, start + 1)
        back = nxt
        while inside(back):
            back -= 1
        if back > start:
            nxt = back
        else:
            while nxt < end and inside(nxt):
                nxt += 1
        # A window that could not get past this one's end (the next word does not fit after the
        # overlap) would repeat part of this one: drop the overlap instead.
        if window_end(nxt) <= end:
            nxt = end
        start = nxt


def chunk_documents(
    doc_ids: Sequence[str],
    titles: Sequence[str],
    texts: Sequence[str],
    tokenizer,
    max_tokens: int = 256,
    overlap: int = 32,
    max_chunks: int = 0,
    report: dict[str, list[str]] | None = None,
) -> pd.DataFrame:
    """Split documents into chunks of at most ``max_tokens`` model tokens (special tokens and the
    title included) with ``overlap`` tokens shared by consecutive chunks.

    A document whose title and text are empty or whitespace gets no chunk (nothing to find it by; an
    empty chunk would be the nearest vector to queries the model cannot read, such as emoji). With
    ``max_chunks`` > 0 a document keeps at most its first ``max_chunks`` chunks, so one huge document cannot
    fill every dense candidate slot. ``report``, when given, receives the ids either rule touched
    (``empty``, ``capped``).

    ``tokenizer`` gives offsets and word ids: a ``tokenizers.Tokenizer`` (``load_chunk_tokenizer``) or a Hugging
    Face fast tokenizer.
    Returns columns chunk_id (``doc_id#i``), doc_id, chunk_index, text, n_tokens.
    """
    if max_chunks < 0:
        raise ConfigError(f"chunk.max_chunks_per_doc must be >= 0 (0 = no cap), got {max_chunks}")
    if max_tokens < 16:
        raise ConfigError(f"chunk.max_tokens must be at least 16, got {max_tokens}")
    if not 0 <= overlap < max_tokens // 2:
        raise ConfigError(f"chunk.overlap must be in [0, max_tokens/2), got {overlap}")
    title_offsets, _ = _offsets(tokenizer, list(titles))
    body_offsets, body_words = _offsets(tokenizer, list(texts))
    rows: list[tuple[str, str, int, str, int]] = []
    empty: list[str] = []
    capped: list[str] = []
    for i, doc_id in enumerate(doc_ids):
        title, text = titles[i], texts[i]
        t_off = title_offsets[i]
        # A title may take at most half the budget; a longer one is cut on a token boundary.
        t_len = min(len(t_off), max_tokens // 2)
        title_part = title[: t_off[t_len - 1][1]] if t_len else ""
        budget = max_tokens - SPECIAL_TOKENS - t_len
        step_overlap = min(overlap, budget // 2)
        offsets = body_offsets[i]
        word_ids = body_words[i]
        if not (title or "").strip() and not (text or "").strip():
            empty.append(doc_id)
            continue
        for j, (s, e) in enumerate(_windows(word_ids, budget, step_overlap)):
            if max_chunks and j >= max_chunks:
                capped.append(doc_id)
                break
            body = text[offsets[s][0] : offsets[e - 1][1]] if e > s else ""
            chunk_text = f"{title_part}\n{body}" if title_part and body else (title_part or body)
            rows.append((f"{doc_id}#{j}", doc_id, j, chunk_text, SPECIAL_TOKENS + t_len + (e - s)))
    if report is not None:
        report.update(empty=empty, capped=capped)
    return pd.DataFrame(rows, columns=["chunk_id", "doc_id", "chunk_index", "text", "n_tokens"])

