"""ragops.encode.dask: the embed core on a real dask.distributed LocalCluster (2 worker processes)
gives the single-process vectors and fills the same cache; `embed.dask` parsing fails loudly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ragops.data.chunking import chunk_documents
from ragops.encode.dask import DaskSpec, connect, open_encoder, overlapped, parse_dask
from ragops.encode.encoder import EmbeddingCache, embed_with_cache
from ragops.errors import ConfigError

MODEL = "all-MiniLM-L6-v2"


def test_parse_dask() -> None:
    assert parse_dask("none") is None and parse_dask(None) is None and parse_dask("") is None
    assert parse_dask("local") == DaskSpec(address=None, workers=1, processes=False)
    assert parse_dask("local:3") == DaskSpec(workers=3, processes=True)
    assert parse_dask("tcp://scheduler:8786") == DaskSpec(address="tcp://scheduler:8786")
    assert parse_dask("tls://10.0.0.5:8786").address == "tls://10.0.0.5:8786"
    for bad in ("local:0", "locale", "scheduler:8786", "local:two"):
        with pytest.raises(ConfigError, match="embed.dask"):
            parse_dask(bad)
    with pytest.raises(ConfigError, match="valid: none, local, local:N"):
        parse_dask("yes please")


def test_no_dask_imports_no_distributed() -> None:
    """`embed.dask: none` (the default) encodes in this process without importing distributed (~2 s a stage
    process): only a cluster pays for it."""
    import subprocess
    import sys

    code = ("import os, sys\nfrom ragops.encode.dask import open_encoder\n"
            "with open_encoder('all-MiniLM-L6-v2', dask='none', backend='onnx-int8',\n"
            "                  onnx_dir=os.environ['RAGOPS_ONNX_DIR']) as e:\n"
            "    assert e.encode(['a text']).shape == (1, e.dim)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('distributed', 'dask')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_overlapped_keeps_later_blocks_queued_while_a_block_is_collected() -> None:
    events: list[tuple] = []

    def submit(piece: list[str], number: int) -> tuple:
        events.append(("submit", number, tuple(piece)))
        return tuple(piece)

    blocks = [["a", "b", "c"], ["d", "e"], ["f"], []]
    out = []
    for futures in overlapped(iter(blocks), submit, piece_size=2, lookahead=2):
        events.append(("collect", futures))
        out.append(futures)
    assert out == [[("a", "b"), ("c",)], [("d", "e")], [("f",)], []]  # in order, pieces of piece_size
    # Block 0 is collected only once two pieces of later blocks are queued behind it.
    first = events.index(("collect", [("a", "b"), ("c",)]))
    assert [e[1] for e in events[:first] if e[0] == "submit"] == [0, 0, 1, 2]


@pytest.fixture(scope="module")
def chunk_texts(scifact_sample: pd.DataFrame, tokenizer) -> tuple[list[str], list[int]]:
    """128 real SciFact chunks (128-token windows), with their token counts: 8 cache blocks of 16, so each of
    two workers takes several."""
    docs = scifact_sample.head(60)
    chunks = chunk_documents(docs["doc_id"].tolist(), docs["title"].tolist(), docs["text"].tolist(),
                             tokenizer, max_tokens=128, overlap=16)
    chunks = chunks.head(128)
    assert len(chunks) == 128
    return chunks["text"].tolist(), chunks["n_tokens"].tolist()


def test_two_worker_processes_equal_one_process_and_fill_the_same_cache(
    chunk_texts: tuple[list[str], list[int]], tmp_path: Path, child_onnx_dir: Path
) -> None:
    # The document encoder `embed` runs by default (embed.backend: onnx-int8, one text per run, so a vector does
    # not depend on the block it was sent in); the workers load its export, not sentence-transformers.
    # test_in_process_cluster runs the PyTorch encoder through the same code.
    texts, lengths = chunk_texts
    with open_encoder(MODEL, "cpu", batch_size=16, backend="onnx-int8", onnx_dir=str(child_onnx_dir)) as encoder:
        single, _ = embed_with_cache(texts, encoder, None, encoder.dim, block_size=16, lengths=lengths)

    cache_dir = tmp_path / "cache"
    with open_encoder(MODEL, "cpu", batch_size=16, dask="local:2", backend="onnx-int8",
                      onnx_dir=str(child_onnx_dir)) as dask_encoder:
        assert dask_encoder.model_id == encoder.model_id and dask_encoder.dim == encoder.dim
        assert len(dask_encoder.client.scheduler_info()["workers"]) == 2
        cache = EmbeddingCache(cache_dir, dask_encoder.model_id)
        seen: list[int] = []
        distributed, stats = embed_with_cache(texts, dask_encoder, cache, dask_encoder.dim, block_size=16,
                                              lengths=lengths, progress=seen.append,
                                              map_blocks=dask_encoder.map_blocks)
        # both workers took part
        done = dask_encoder.client.run(lambda dask_worker: len(dask_worker.state.log))
        assert all(n > 0 for n in done.values())
    assert stats.encoded == len(set(texts)) and sum(seen) == stats.encoded
    assert distributed.dtype == np.float32 and distributed.shape == single.shape
    np.testing.assert_allclose(distributed, single, atol=1e-5, rtol=0)

    # The single-process path finds every vector in the cache the cluster filled, under the same keys.
    calls: list[list[str]] = []

    def must_not_encode(batch: list[str]) -> np.ndarray:
        calls.append(batch)
        raise AssertionError("everything should come from the cache")

    reopened = EmbeddingCache(cache_dir, encoder.model_id)
    again, stats2 = embed_with_cache(texts, must_not_encode, reopened, encoder.dim, lengths=lengths)
    assert calls == [] and stats2.cached == len(texts)
    np.testing.assert_array_equal(again, distributed)


def test_in_process_cluster(encoder) -> None:
    """`embed.dask: local` runs the same code path in this process (one worker thread)."""
    texts = ["vitamin D and bone fractures", "aspirin and heart attacks", "sleep and memory consolidation"]
    with open_encoder(MODEL, "cpu", batch_size=2, dask="local") as dask_encoder:
        got = dask_encoder(texts)
        blocks = list(dask_encoder.map_blocks([texts[:1], [], texts[1:]]))
    np.testing.assert_allclose(got, encoder.encode(texts), atol=1e-5, rtol=0)
    assert [b.shape for b in blocks] == [(1, 384), (0, 384), (2, 384)]


def test_unreachable_scheduler_fails_within_the_timeout() -> None:
    with pytest.raises(OSError), connect(DaskSpec(address="tcp://127.0.0.1:9"), timeout=2):
        pass
