"""Embedding throughput: one process against a dask.distributed LocalCluster, on the same chunks.

    python bench/dask_embed.py [--mirror ../shared/datasets] [--docs 1200]

The first `--docs` SciFact documents are chunked as the pipeline does (params.yaml's chunk knobs),
then embedded through `embed_with_cache` (no cache, so everything is encoded) three ways:
- one process, torch on every core (what `embed.dask: none` does);
- `LocalCluster` with 1 worker process, 1 thread (the unit a cluster is made of);
- `LocalCluster` with 2 worker processes, 1 thread each (`embed.dask: local:2`).
Throughput counts encoding only (model already loaded everywhere); cluster start-up and the
workers' model loading are reported beside it. Writes reports/bench/dask_embed.json and the
`dask_embed` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import yaml
from _common import REPO, machine, machine_line, write_result, write_section


def load_chunks(mirror: Path, n_docs: int) -> tuple[list[str], list[int]]:
    from ragops.data.beir import read_corpus
    from ragops.data.chunking import chunk_documents
    from ragops.encode.models import load_tokenizer

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    folder = mirror / "scifact"
    corpus = folder / "corpus.jsonl" if (folder / "corpus.jsonl").is_file() else folder / "corpus.jsonl.gz"
    docs = read_corpus(corpus).head(n_docs)
    chunks = chunk_documents(docs["doc_id"].tolist(), docs["title"].tolist(), docs["text"].tolist(),
                             load_tokenizer(params["embed"]["model"]), max_tokens=int(params["chunk"]["max_tokens"]),
                             overlap=int(params["chunk"]["overlap"]))
    return chunks["text"].tolist(), chunks["n_tokens"].tolist()


def timed_embed(texts: list[str], lengths: list[int], encoder, dim: int, block_size: int) -> tuple[np.ndarray, float]:
    from ragops.encode.encoder import embed_with_cache

    t0 = time.perf_counter()
    emb, _ = embed_with_cache(texts, encoder, None, dim, block_size=block_size, lengths=lengths,
                              map_blocks=getattr(encoder, "map_blocks", None))
    return emb, time.perf_counter() - t0


def _warm_up(name: str, texts: list[str], dask_worker=None) -> None:
    """On each worker: one small encode first, as the single process gets."""
    dask_worker.plugins[name].encoder.encode(texts)


def _zeros(texts: list[str]) -> np.ndarray:
    """A worker task that costs nothing but its transport: what Dask adds per piece."""
    return np.zeros((len(texts), 384), dtype=np.float32)


def on_cluster(workers: int, texts: list[str], lengths: list[int], model: str, batch_size: int,
               block_size: int) -> dict:
    from ragops.encode.dask import DaskEncoder, DaskSpec, connect

    t0 = time.perf_counter()
    with connect(DaskSpec(workers=workers, processes=True)) as client:
        started = time.perf_counter()
        encoder = DaskEncoder(client, model, "cpu", batch_size)
        client.run(_warm_up, encoder.name, texts[:8])
        loaded = time.perf_counter()
        emb, seconds = timed_embed(texts, lengths, encoder, encoder.dim, block_size)
        encoder.close()
        pieces = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
        t1 = time.perf_counter()
        client.gather(client.map(_zeros, pieces, pure=False))
        transport = time.perf_counter() - t1
    return {"emb": emb, "seconds": seconds, "cluster_start_s": started - t0, "model_load_s": loaded - started,
            "transport_s": transport}


def client_cost(texts: list[str], lengths: list[int], block_size: int) -> float:
    """What the client itself spends per run (keys, cache writes, assembly), with an instant encoder."""
    import tempfile

    from ragops.encode.encoder import EmbeddingCache, embed_with_cache

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        embed_with_cache(texts, _zeros, EmbeddingCache(tmp, "bench"), 384, block_size=block_size, lengths=lengths)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", type=Path, default=REPO.parent / "shared" / "datasets")
    ap.add_argument("--docs", type=int, default=1200)
    ap.add_argument("--smoke", action="store_true", help="check the script only: print, write nothing")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    params = yaml.safe_load((REPO / "params.yaml").read_text())["embed"]
    model, batch_size, block_size = params["model"], int(params["batch_size"]), int(params["block_size"])
    texts, lengths = load_chunks(args.mirror.resolve(), args.docs)
    tokens = int(sum(lengths))

    from ragops.encode.encoder import Encoder

    t0 = time.perf_counter()
    encoder = Encoder(model, device="cpu", batch_size=batch_size)
    encoder.encode(texts[:8])  # warm-up, as on the workers
    load_s = time.perf_counter() - t0
    single, single_s = timed_embed(texts, lengths, encoder, encoder.dim, block_size)
    one = on_cluster(1, texts, lengths, model, batch_size, block_size)
    two = on_cluster(2, texts, lengths, model, batch_size, block_size)
    client_s = client_cost(texts, lengths, block_size)

    def rate(seconds: float) -> dict:
        return {"seconds": round(seconds, 2), "chunks_per_s": round(len(texts) / seconds, 1),
                "tokens_per_s": round(tokens / seconds, 1)}

    import torch

    result = {
        "machine": machine(),
        "chunks": len(texts), "tokens": tokens, "docs": args.docs,
        "batch_size": batch_size, "block_size": block_size,
        "single_process": {**rate(single_s), "torch_threads": torch.get_num_threads(),
                           "model_load_s": round(load_s, 2)},
        "local_1": {**rate(one["seconds"]), "cluster_start_s": round(one["cluster_start_s"], 2),
                    "model_load_s": round(one["model_load_s"], 2)},
        "local_2": {**rate(two["seconds"]), "cluster_start_s": round(two["cluster_start_s"], 2),
                    "model_load_s": round(two["model_load_s"], 2)},
        "local_2_vs_single": round(single_s / two["seconds"], 3),
        "local_2_vs_local_1": round(one["seconds"] / two["seconds"], 3),
        "max_abs_diff": float(max(np.abs(two["emb"] - single).max(), np.abs(one["emb"] - single).max())),
        # The client's share per chunk (its own work with an instant encoder, plus Dask's transport of a
        # piece that costs nothing to compute) against one worker's encoding time per chunk.
        "client_ms_per_chunk": round(1000 * client_s / len(texts), 3),
        "transport_ms_per_chunk": round(1000 * two["transport_s"] / len(texts), 3),
        "worker_ms_per_chunk": round(1000 * one["seconds"] / len(texts), 2),
        "load_average_after": round(os.getloadavg()[0], 2),  # > 2 here: something else shared the cores
        # what crosses the network per chunk: its text out, its vector back
        "bytes_per_chunk": round(sum(len(t.encode()) for t in texts) / len(texts) + 4 * encoder.dim),
    }
    result["workers_one_client_can_feed"] = int(result["worker_ms_per_chunk"] / (
        result["client_ms_per_chunk"] + result["transport_ms_per_chunk"]))
    print(json.dumps(result, indent=2))
    if not args.smoke:
        write_result("dask_embed", result)
        write_section("dask_embed", render(result))


def render(r: dict) -> str:
    s, one, two = r["single_process"], r["local_1"], r["local_2"]
    n = 64  # an illustrative cluster: 16 machines x 4 cores
    rate = n * 1000 / r["worker_ms_per_chunk"]
    mb, tasks = rate * r["bytes_per_chunk"] / 1e6, rate / r["batch_size"]

    def row(label: str, x: dict, bold: str) -> str:
        start = f"cluster {x['cluster_start_s']:.1f} s + " if "cluster_start_s" in x else ""
        share = f"{bold}{x['chunks_per_s'] / s['chunks_per_s']:.0%}{bold}"
        return (f"| {label} | {x['seconds']:.1f} | {x['chunks_per_s']:.1f} | {x['tokens_per_s']:,.0f} | {share} "
                f"| {start}model {x['model_load_s']:.1f} s |")

    return f"""## Embedding on Dask (`python bench/dask_embed.py`)

{machine_line(r['machine'])}

{r['chunks']:,} chunks ({r['tokens']:,} tokens) of the first {r['docs']:,} SciFact documents, chunked as
the pipeline does, embedded with all-MiniLM-L6-v2 through `embed_with_cache` (batch {r['batch_size']},
blocks of {r['block_size']}). Encoding time only; start-up beside it.

| where the model runs | seconds | chunks/s | tokens/s | vs one process | start-up |
|---|---|---|---|---|---|
{row(f"one process, torch on {s['torch_threads']} threads (`embed.dask: none`)", s, "")}
{row("`LocalCluster`, 1 worker process x 1 thread", one, "")}
{row("**`LocalCluster`, 2 worker processes x 1 thread (`local:2`)**", two, "**")}

Largest difference from the single-process vectors: {r['max_abs_diff']:.1e} (same model, batches
cut differently). Two workers do {r['local_2_vs_local_1']:.2f}x the work of one on this 2-core machine.

**Scaling out.** Each worker holds its own copy of the model and encodes pieces of `batch_size`
texts; the client cuts blocks, ships text, gathers vectors and is the only writer of the cache, and
keeps 4 pieces per worker thread queued, so blocks overlap and no worker waits for a cache write.
One worker (1 core) encodes a chunk in {r['worker_ms_per_chunk']:.1f} ms; the client spends
{r['client_ms_per_chunk']:.3f} ms per chunk on its own work (keys, cache, assembly) and Dask
{r['transport_ms_per_chunk']:.3f} ms per chunk moving a piece there and back (a task that computes
nothing). Throughput therefore grows with worker cores until the cluster encodes as fast as one
client can feed it, about **{r['workers_one_client_can_feed']} single-core workers' worth** by this
measure, measured on one machine. Across machines the network and the scheduler are the next things
to watch: {n} one-core workers (say 16 machines x 4 cores) encode {rate:,.0f} chunks/s, which is
{mb:.1f} MB/s through the client ({r['bytes_per_chunk']:,} bytes a chunk, text out and vector back)
and {tasks:.0f} tasks/s for the scheduler, both far inside a 1 Gb/s link and the thousands of tasks per
second a Dask scheduler handles. Past the client's limit, shard the corpus over several clients. On this
2-core machine there is nothing to gain: torch already uses both cores in one process, so `local:2`
can at best match it; the bold row is the price of Dask here (serialisation, scheduling, a second model
copy, one thread per worker instead of two per process). The 1-worker row is the unit a cluster adds
per core."""


if __name__ == "__main__":
    main()
