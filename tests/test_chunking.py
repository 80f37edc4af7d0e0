"""ragops.data.chunking: hand-worked windows, then the real MiniLM tokenizer on real SciFact documents."""

from __future__ import annotations

import random
import re

import pandas as pd
import pytest

from ragops.data.chunking import SPECIAL_TOKENS, _windows, chunk_documents
from ragops.errors import ConfigError

WORD = re.compile(r"[^\W_]+")  # letters and digits: what a reader calls a word (BERT splits on `_` too)

# (max_tokens, overlap): the pipeline's setting, two smaller ones, and a tight one where titles take
# half the budget and long chemical names come close to filling a window.
SETTINGS = [(256, 32), (128, 32), (64, 16), (32, 8)]


# ---------------------------------------------------------------- _windows, by hand


def test_windows_empty() -> None:
    assert _windows([], 4, 1) == [(0, 0)]


def test_windows_one_token_words() -> None:
    ids = list(range(10))
    assert _windows(ids, 4, 1) == [(0, 4), (3, 7), (6, 10)]
    assert _windows(ids, 4, 0) == [(0, 4), (4, 8), (8, 10)]
    assert _windows(ids, 4, 2) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert _windows(ids, 10, 3) == [(0, 10)]
    assert _windows(ids, 20, 3) == [(0, 10)]


def test_windows_multi_token_words() -> None:
    # words: 0 = 2 tokens, 1 = 3 tokens, 2 = 1 token, 3 = 2 tokens
    ids = [0, 0, 1, 1, 1, 2, 3, 3]
    # [0, 4) would split word 1, so the first window ends where word 1 starts. The overlap token (1)
    # falls inside word 0, which starts the window: the next window starts at the next word (2),
    # not mid-word at token 1.
    assert _windows(ids, 4, 1) == [(0, 2), (2, 6), (5, 8)]
    assert _windows(ids, 5, 0) == [(0, 5), (5, 8)]
    # budget 6 ends at token 6, the start of word 3: no move; overlap 2 -> token 4 is inside
    # word 1, whose start (2) is after the window start, so the next window starts at 2.
    assert _windows(ids, 6, 2) == [(0, 6), (2, 8)]


def test_windows_word_longer_than_budget_is_cut_in_full_windows() -> None:
    ids = [0, 0, 0, 0, 0, 0, 1]
    # The word cannot fit: it is cut at the budget (not one token per window), and the windows
    # that continue it carry no overlap inside it.
    assert _windows(ids, 3, 1) == [(0, 3), (3, 6), (6, 7)]


def test_windows_never_repeat_a_window_before_a_long_word() -> None:
    # words 0..3 of one token, then word 4 of five tokens. From start 2 (overlap 2), a window
    # of 6 cannot hold word 4 and would end at 4 again: a chunk inside the previous one. The
    # overlap is dropped instead and the next window takes word 4 whole.
    ids = [0, 1, 2, 3, 4, 4, 4, 4, 4]
    assert _windows(ids, 6, 2) == [(0, 4), (4, 9)]


def test_windows_special_tokens_are_boundaries() -> None:
    assert _windows([None, 0, 0, None], 2, 0) == [(0, 1), (1, 3), (3, 4)]


@pytest.mark.parametrize("seed", range(20))
def test_windows_invariants_on_random_words(seed: int) -> None:
    rng = random.Random(seed)
    word_ids: list[int | None] = []
    for w in range(rng.randint(1, 120)):
        word_ids += [w] * rng.choice([1, 1, 1, 2, 3, 5, 9])
    budget = rng.randint(2, 24)
    overlap = rng.randint(0, budget // 2)
    wins = _windows(word_ids, budget, overlap)
    n = len(word_ids)

    def starts_word(i: int) -> bool:
        return i in (0, n) or word_ids[i] != word_ids[i - 1]

    def word_len(i: int) -> int:
        return word_ids.count(word_ids[i])

    assert wins[0][0] == 0 and wins[-1][1] == n
    for (s0, e0), (s1, e1) in zip(wins, wins[1:], strict=False):
        assert s0 < s1 <= e0 < e1, wins  # progress, no gap
    for s, e in wins:
        assert 0 < e - s <= budget
        # A cut falls inside a word only when that word alone is longer than the budget.
        for cut in (s, e):
            if not starts_word(cut):
                assert word_len(cut) > budget, (wins, cut)
    # Where no word is longer than the budget, the next window starts at the last word start
    # at least `overlap` tokens before the end (else the first word start after the window's
    # start), unless from there the word after the window would not fit: then at the end.
    if max(word_len(i) for i in range(n)) <= budget:
        for (s0, e0), (s1, _) in zip(wins, wins[1:], strict=False):
            starts = [p for p in range(s0 + 1, e0 + 1) if starts_word(p)]
            enough = [p for p in starts if p <= e0 - overlap]
            expected = enough[-1] if enough else starts[0]
            next_word_end = next(i for i in range(e0 + 1, n + 1) if starts_word(i))
            if next_word_end - expected > budget:
                expected = e0
            assert s1 == expected, (wins, s0, e0)


# ---------------------------------------------------------------- chunk_documents, real data


def _locate(chunks: pd.DataFrame, docs: pd.DataFrame) -> dict[str, list[tuple[str, int, int]]]:
    """doc_id -> [(title part, body start, body end)] with each body found in the doc's text."""
    texts = dict(zip(docs["doc_id"], docs["text"], strict=True))
    out: dict[str, list[tuple[str, int, int]]] = {}
    for doc_id, group in chunks.groupby("doc_id", sort=False):
        text, prev, spans = texts[doc_id], -1, []
        for chunk in group.sort_values("chunk_index")["text"]:
            head, sep, body = chunk.partition("\n")
            assert sep, f"{doc_id}: chunk without title/body separator: {chunk[:80]!r}"
            start = text.find(body, prev + 1)
            assert start > prev, f"{doc_id}: body is not a later slice of the text: {body[:80]!r}"
            spans.append((head, start, start + len(body)))
            prev = start
        out[doc_id] = spans
    return out


@pytest.fixture(scope="module", params=SETTINGS, ids=[f"max{m}-ov{o}" for m, o in SETTINGS])
def chunked(request, scifact_sample: pd.DataFrame, tokenizer) -> tuple[int, int, pd.DataFrame]:
    max_tokens, overlap = request.param
    df = scifact_sample
    chunks = chunk_documents(df["doc_id"], df["title"], df["text"], tokenizer, max_tokens, overlap)
    return max_tokens, overlap, chunks


def test_chunks_fit_the_model_budget(chunked, tokenizer) -> None:
    max_tokens, _, chunks = chunked
    lengths = [len(ids) for ids in tokenizer(chunks["text"].tolist(), add_special_tokens=True)["input_ids"]]
    assert max(lengths) <= max_tokens
    # n_tokens is the count the model will see, special tokens included.
    assert lengths == chunks["n_tokens"].tolist()


def test_every_chunk_starts_with_the_title(chunked, scifact_sample: pd.DataFrame, tokenizer) -> None:
    max_tokens, _, chunks = chunked
    titles = dict(zip(scifact_sample["doc_id"], scifact_sample["title"], strict=True))
    n_title = {d: len(tokenizer(t, add_special_tokens=False)["input_ids"]) for d, t in titles.items()}
    cut = 0
    for doc_id, text in zip(chunks["doc_id"], chunks["text"], strict=True):
        title = titles[doc_id]
        if n_title[doc_id] <= max_tokens // 2:  # whole (a trailing space is not a token)
            assert text.startswith(title.rstrip() + "\n"), (doc_id, text[:120])
        else:  # a title longer than half the budget is cut to its first max_tokens/2 tokens
            head = text.partition("\n")[0]
            assert head and title.startswith(head) and len(head) < len(title), (doc_id, head)
            assert len(tokenizer(head, add_special_tokens=False)["input_ids"]) <= max_tokens // 2
            cut += 1
    if max_tokens >= 256:
        assert cut == 0  # no SciFact title in the sample is longer than 128 tokens


def test_bodies_cover_the_text_and_overlap(chunked, scifact_sample: pd.DataFrame, tokenizer) -> None:
    max_tokens, overlap, chunks = chunked
    texts = dict(zip(scifact_sample["doc_id"], scifact_sample["text"], strict=True))
    assert list(dict.fromkeys(chunks["doc_id"])) == scifact_sample["doc_id"].tolist()
    multi = 0
    for doc_id, spans in _locate(chunks, scifact_sample).items():
        text = texts[doc_id]
        t_len = len(tokenizer(spans[0][0], add_special_tokens=False)["input_ids"])
        want = min(overlap, (max_tokens - SPECIAL_TOKENS - t_len) // 2)
        # Covered from the first to the last non-space character, without gaps.
        assert spans[0][1] == len(text) - len(text.lstrip())
        assert spans[-1][2] == len(text.rstrip())
        covered = set()
        for _, a, b in spans:
            covered.update(WORD.findall(text[a:b]))
        assert covered == set(WORD.findall(text))
        for (_, a0, b0), (_, a1, b1) in zip(spans, spans[1:], strict=False):
            multi += 1
            assert a0 < a1 and b0 < b1, (doc_id, a0, b0, a1, b1)  # progress
            assert not text[b0:a1].strip(), (doc_id, text[b0:a1])  # no gap
            if max_tokens < 64:
                continue  # tiny windows: less (or no) overlap where the next word would not fit after one
            shared = text[a1:b0]
            # The last words of chunk i are the first words of chunk i+1's body ...
            assert WORD.search(shared), (doc_id, shared)
            assert text[a0:b0].endswith(shared) and text[a1:b1].startswith(shared)
            # ... and they are at least `overlap` model tokens (fewer only when the title leaves
            # less than 2 * overlap tokens for the body, or, in tiny windows, when the next word
            # would not fit after a full overlap).
            if max_tokens >= 64:
                assert len(tokenizer(shared, add_special_tokens=False)["input_ids"]) >= want, (doc_id, shared)
    assert multi > 0  # the sample really exercises cuts


def test_cuts_fall_between_words(chunked, scifact_sample: pd.DataFrame) -> None:
    texts = dict(zip(scifact_sample["doc_id"], scifact_sample["text"], strict=True))
    for doc_id, spans in _locate(chunked[2], scifact_sample).items():
        text = texts[doc_id]
        for _, a, b in spans:
            assert not (a > 0 and text[a - 1].isalnum() and text[a].isalnum()), (doc_id, text[a - 20 : a + 20])
            assert not (b < len(text) and text[b - 1].isalnum() and text[b].isalnum()), (doc_id, text[b - 20 : b + 20])


def test_chunk_ids_and_determinism(chunked, scifact_sample: pd.DataFrame, tokenizer) -> None:
    max_tokens, overlap, chunks = chunked
    assert list(chunks.columns) == ["chunk_id", "doc_id", "chunk_index", "text", "n_tokens"]
    assert chunks["chunk_id"].is_unique
    for doc_id, group in chunks.groupby("doc_id", sort=False):
        assert group["chunk_index"].tolist() == list(range(len(group)))
        assert group["chunk_id"].tolist() == [f"{doc_id}#{i}" for i in range(len(group))]
    df = scifact_sample
    again = chunk_documents(list(df["doc_id"]), list(df["title"]), list(df["text"]), tokenizer, max_tokens, overlap)
    pd.testing.assert_frame_equal(chunks, again)


def test_more_tokens_fewer_chunks(scifact_sample: pd.DataFrame, tokenizer) -> None:
    df = scifact_sample.head(50)
    counts = [len(chunk_documents(df["doc_id"], df["title"], df["text"], tokenizer, m, 8)) for m in (32, 64, 256)]
    assert counts[0] > counts[1] > counts[2] >= len(df)


def test_empty_text_gives_the_title_alone(tokenizer) -> None:
    chunks = chunk_documents(
        ["a", "b", "c"], ["A title", "Another title", ""], ["", "   ", "Body only."], tokenizer, 64, 8
    )
    assert chunks["chunk_id"].tolist() == ["a#0", "b#0", "c#0"]
    assert chunks["text"].tolist() == ["A title", "Another title", "Body only."]
    assert chunks["n_tokens"].tolist() == [2 + 2, 2 + 2, 2 + 3]  # [CLS] a title [SEP]; body only . -> 3


def test_empty_documents_get_no_chunk_and_are_reported(tokenizer) -> None:
    report: dict[str, list[str]] = {}
    chunks = chunk_documents(["a", "blank", "ws", "b"], ["A title", "", " \t", ""], ["text", "", "\n \u3000", "Body."],
                             tokenizer, 64, 8, report=report)
    assert chunks["doc_id"].tolist() == ["a", "b"] and (chunks["text"].str.strip() != "").all()
    assert report == {"empty": ["blank", "ws"], "capped": []}


def test_one_huge_document_is_capped_and_reported(tokenizer) -> None:
    huge = " ".join(f"word{i}" for i in range(3000))
    report: dict[str, list[str]] = {}
    chunks = chunk_documents(["big", "small"], ["Huge", "Small"], [huge, "short text"], tokenizer, 64, 8,
                             max_chunks=5, report=report)
    assert chunks.groupby("doc_id").size().to_dict() == {"big": 5, "small": 1}
    assert chunks[chunks["doc_id"] == "big"]["chunk_index"].tolist() == [0, 1, 2, 3, 4]  # the first five
    assert report == {"empty": [], "capped": ["big"]}
    uncapped = chunk_documents(["big"], ["Huge"], [huge], tokenizer, 64, 8)
    assert len(uncapped) > 5
    pd.testing.assert_frame_equal(uncapped.head(5), chunks.head(5))
    with pytest.raises(ConfigError, match="max_chunks_per_doc"):
        chunk_documents(["a"], ["t"], ["x"], tokenizer, 64, 8, max_chunks=-1)


@pytest.mark.parametrize(("max_tokens", "overlap"), [(15, 0), (8, 2), (64, -1), (64, 32), (64, 40)])
def test_bad_settings_raise(max_tokens: int, overlap: int, tokenizer) -> None:
    with pytest.raises(ConfigError, match="max_tokens|overlap"):
        chunk_documents(["a"], ["t"], ["some text"], tokenizer, max_tokens, overlap)


def test_smallest_valid_settings(tokenizer) -> None:
    chunks = chunk_documents(["a"], ["t"], ["one two three " * 20], tokenizer, 16, 7)
    assert len(chunks) > 1 and chunks["n_tokens"].max() <= 16


# ---------------------------------------------------------------- the stage's tokenizer


ODD = ["Ünïcödé accents and ligatures ﬁ", "emoji 🧬🦠 only", "中文 混合 English 日本語", "tab\tand\nnewlines\r\n",
       "x" * 2000, "IL-6 (interleukin-6) and TNF-α/β at 10⁻⁶ M", ""]


def test_the_stage_tokenizer_chunks_exactly_as_transformers_does(scifact_sample: pd.DataFrame, tokenizer) -> None:
    """The chunk stage measures chunks with tokenizer.json run by `tokenizers` alone (no transformers import):
    on 300 SciFact documents and odd texts, every setting, the same chunks, byte for byte, as transformers'
    fast tokenizer. The file's own truncation (128) and padding must be off, or long documents would be cut."""
    from ragops.data.chunking import load_chunk_tokenizer

    rust = load_chunk_tokenizer("all-MiniLM-L6-v2")
    assert not hasattr(rust, "save_pretrained")  # really the tokenizers library, not transformers
    df = scifact_sample
    ids = [*df["doc_id"], *(f"odd{i}" for i in range(len(ODD)))]
    titles, texts = [*df["title"], *ODD], [*df["text"], *ODD[::-1]]
    for max_tokens, overlap in SETTINGS:
        ours = chunk_documents(ids, titles, texts, rust, max_tokens, overlap)
        theirs = chunk_documents(ids, titles, texts, tokenizer, max_tokens, overlap)
        pd.testing.assert_frame_equal(ours, theirs)
    assert ours["n_tokens"].max() == 32 and len(ours) > 3 * len(ids)


def test_a_model_without_tokenizer_json_falls_back_to_transformers(tmp_path) -> None:
    import shutil

    from ragops.data.chunking import load_chunk_tokenizer
    from ragops.encode.models import resolve_model

    folder = tmp_path / "model"
    shutil.copytree(resolve_model("all-MiniLM-L6-v2"), folder, ignore=shutil.ignore_patterns("tokenizer.json"))
    slow_only = load_chunk_tokenizer(str(folder))
    assert hasattr(slow_only, "save_pretrained")
    chunks = chunk_documents(["a"], ["A title"], ["one two three " * 40], slow_only, 32, 8)
    ours = chunk_documents(["a"], ["A title"], ["one two three " * 40], load_chunk_tokenizer("all-MiniLM-L6-v2"), 32, 8)
    pd.testing.assert_frame_equal(chunks, ours)
