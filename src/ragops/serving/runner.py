"""Where searches run: never on the event loop (they are CPU-bound).

- :class:`PoolRunner`: each request is one ``Served.search`` on a bounded thread pool.
- :class:`BatchRunner`: requests queue up; worker threads take whatever is waiting (up to ``max_batch``)
  and run it as one ``search_batch`` per (model version, mode, k), so concurrent queries share one
  encoder forward pass (dynamic batching, as in model servers). Nothing waits for a batch to fill: a
  lone request is searched at once. Rankings equal single searches (``Retriever.search_batch``).

Each request names the :class:`Served` it read when it arrived, so a hot swap never mixes versions.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ragops.serving.model import Served


def _limit_encoder_threads(n: int) -> None:
    if n > 0:
        import torch

        torch.set_num_threads(n)  # per thread: each calling thread has its own OpenMP team


class PoolRunner:
    def __init__(self, workers: int, snippet_chars: int, encoder_threads: int = 0) -> None:
        self.snippet_chars = snippet_chars
        self.pool = ThreadPoolExecutor(
            workers, thread_name_prefix="ragops-search", initializer=_limit_encoder_threads, initargs=(encoder_threads,)
        )

    async def search(self, served: Served, query: str, mode: str, k: int) -> tuple[list[dict], float]:
        return await asyncio.get_running_loop().run_in_executor(
            self.pool, served.search, query, mode, k, self.snippet_chars
        )

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class BatchRunner:
    def __init__(self, workers: int, max_batch: int, snippet_chars: int, encoder_threads: int = 0) -> None:
        self.max_batch, self.snippet_chars, self.encoder_threads = max_batch, snippet_chars, encoder_threads
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.batches = 0
        self.threads = [
            threading.Thread(target=self._work, name=f"ragops-batch-{i}", daemon=True) for i in range(workers)
        ]
        for t in self.threads:
            t.start()

    async def search(self, served: Served, query: str, mode: str, k: int) -> tuple[list[dict], float]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.queue.put((served, query, mode, k, future, loop))
        return await future

    def _work(self) -> None:
        _limit_encoder_threads(self.encoder_threads)
        while True:
            item = self.queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self.max_batch:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.queue.put(None)  # let this batch finish, stop afterwards
                    break
                batch.append(nxt)
            groups: dict[tuple[int, str, int], list[tuple]] = {}
            for it in batch:
                groups.setdefault((id(it[0]), it[2], it[3]), []).append(it)
            for items in groups.values():
                self._run(items)

    def _run(self, items: list[tuple]) -> None:
        served, _, mode, k = items[0][:4]
        t0 = time.perf_counter()
        try:
            results = served.search_many([it[1] for it in items], mode, k, self.snippet_chars)
        except BaseException as exc:  # noqa: BLE001 - every waiting request gets the error (a 500), none hangs
            for it in items:
                it[5].call_soon_threadsafe(_set_exception, it[4], exc)
            return
        took = (time.perf_counter() - t0) * 1000.0
        self.batches += 1
        for it, res in zip(items, results, strict=True):
            it[5].call_soon_threadsafe(_set_result, it[4], (res, took))

    def close(self) -> None:
        for _ in self.threads:
            self.queue.put(None)


def _set_result(future: asyncio.Future, value) -> None:
    if not future.done():  # the client may have gone away (cancelled)
        future.set_result(value)


def _set_exception(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def make_runner(workers: int, max_batch: int, snippet_chars: int, encoder_threads: int = 0):
    """``max_batch`` > 1: a :class:`BatchRunner` with ``workers`` threads; else a :class:`PoolRunner`."""
    if max_batch > 1:
        return BatchRunner(workers, max_batch, snippet_chars, encoder_threads)
    return PoolRunner(workers, snippet_chars, encoder_threads)
