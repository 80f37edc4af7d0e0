"""Embedding on a ``dask.distributed`` cluster: the same vectors as one process, encoded by many.

``embed.dask`` in params.yaml names the cluster:

- ``none``: no Dask, the model runs in this process (the default);
- ``local``: an in-process cluster (one worker thread; for trying the code path);
- ``local:N``: a ``LocalCluster`` of N worker processes, one thread each, on this machine;
- ``tcp://host:8786`` (any ``scheme://`` address): the scheduler of an existing cluster, whose workers
  have ragops installed.

How the work is split: ``embed_with_cache`` hands over the texts the cache lacks, block by block;
:meth:`DaskEncoder.map_blocks` cuts each block into pieces of ``batch_size`` texts, keeps enough
pieces queued that no worker waits (blocks overlap: there is no barrier between them), and yields
each block's vectors in order. Each worker loads the model once (:class:`EncoderPlugin`) and checks
that it is the same model as everyone else's. Only this process writes the cache (one writer), so
the cache and its keys are exactly those of the single-process path.

``distributed`` is imported only when a cluster is used (~2 s of a process): ``embed.dask: none``, the default,
never pays it (tests/test_dask_embed.py).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ragops.encode.models import DEFAULT_ONNX_DIR
from ragops.errors import ConfigError

DASK_FORMS = ("none", "local", "local:N", "scheme://host:port")


@dataclass(frozen=True)
class DaskSpec:
    """A parsed ``embed.dask``: ``address`` of a running scheduler, or a local cluster of ``workers``."""

    address: str | None = None
    workers: int = 1
    processes: bool = False


def parse_dask(value: str | None) -> DaskSpec | None:
    """``embed.dask`` -> a spec, or None for no Dask. Unknown forms fail, naming the valid ones."""
    text = "none" if value is None else str(value).strip()
    if text.lower() in ("none", "", "false", "off"):
        return None
    if text == "local":
        return DaskSpec()
    if m := re.fullmatch(r"local:(\d+)", text):
        if int(m.group(1)) < 1:
            raise ConfigError(f"embed.dask {text!r}: need at least one worker")
        return DaskSpec(workers=int(m.group(1)), processes=True)
    if re.fullmatch(r"[a-z][a-z0-9+.-]*://\S+", text):
        return DaskSpec(address=text)
    raise ConfigError(f"unknown embed.dask {text!r}; valid: {', '.join(DASK_FORMS)}")


@contextlib.contextmanager
def connect(spec: DaskSpec, timeout: float = 120.0) -> Iterator[Any]:
    """A ``distributed.Client`` for ``spec`` with at least one worker; closes what it started."""
    from distributed import Client, LocalCluster

    if spec.address is not None:
        with Client(spec.address, timeout=timeout) as client:
            client.wait_for_workers(1, timeout=timeout)
            yield client
        return
    with (
        LocalCluster(n_workers=spec.workers, threads_per_worker=1, processes=spec.processes,
                     dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(spec.workers, timeout=timeout)
        yield client


def _encode_piece(name: str, texts: list[str]) -> np.ndarray:
    """Runs on a worker: the worker's model encodes ``texts``."""
    from distributed import get_worker

    return get_worker().plugins[name].encoder.encode(texts)


def _identity(name: str, dask_worker: Any = None) -> tuple[str, int]:
    """Runs on each worker (``client.run``): the model id and dimension it loaded."""
    encoder = dask_worker.plugins[name].encoder
    return encoder.model_id, encoder.dim


def overlapped(blocks: Iterable[list[str]], submit: Callable[[list[str], int], Any], piece_size: int,
               lookahead: int) -> Iterator[list[Any]]:
    """Cut each block into pieces, ``submit(piece, block_number)`` each, and hand back each block's
    futures in order -- but only once ``lookahead`` pieces of later blocks are queued behind it, so
    the workers keep encoding while the caller waits for that block and writes it to the cache."""
    queued: deque[list[Any]] = deque()
    in_flight = 0
    for number, block in enumerate(blocks):
        queued.append([submit(block[i : i + piece_size], number) for i in range(0, len(block), piece_size)])
        in_flight += len(queued[-1])
        while queued and in_flight - len(queued[0]) >= lookahead:
            in_flight -= len(queued[0])
            yield queued.popleft()
    while queued:
        yield queued.popleft()


class DaskEncoder:
    """``encode(texts)`` and ``map_blocks(blocks)`` on a cluster, with ``model_id`` and ``dim`` like
    :class:`ragops.encode.encoder.Encoder`. Register with a client; ``close()`` frees the workers' models."""

    def __init__(self, client: Any, model: str, device: str = "cpu", batch_size: int = 64, backend: str = "torch",
                 onnx_dir: str = DEFAULT_ONNX_DIR) -> None:
        self.client = client
        self.batch_size = batch_size
        self.name = f"ragops-encoder-{uuid.uuid4().hex[:12]}"  # one per client: clients may share a cluster
        from ragops.encode.dask_plugin import EncoderPlugin

        client.register_plugin(EncoderPlugin(model, device, batch_size, backend, onnx_dir), name=self.name)
        ids = client.run(_identity, self.name)
        if len(set(ids.values())) != 1:
            raise ConfigError(f"Dask workers loaded different models for {model!r}: {ids}")
        self.model_id, self.dim = next(iter(ids.values()))
        self.threads = sum(client.nthreads().values())

    def __call__(self, texts: list[str]) -> np.ndarray:
        return next(iter(self.map_blocks([texts])))

    def map_blocks(self, blocks: Iterable[list[str]]) -> Iterator[np.ndarray]:
        """Vectors for each block, in order; later blocks are already encoding meanwhile."""
        def submit(piece: list[str], number: int) -> Any:
            return self.client.submit(_encode_piece, self.name, piece, pure=False, priority=-number)

        for futures in overlapped(blocks, submit, self.batch_size, lookahead=4 * max(self.threads, 1)):
            yield self._collect(futures)

    def _collect(self, futures: list[Any]) -> np.ndarray:
        parts = self.client.gather(futures)
        if not parts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate([np.asarray(p, dtype=np.float32) for p in parts])

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a closing cluster may already be gone
            self.client.unregister_worker_plugin(self.name)


@contextlib.contextmanager
def open_encoder(model: str, device: str = "cpu", batch_size: int = 64, dask: str | None = "none",
                 backend: str = "torch", onnx_dir: str = DEFAULT_ONNX_DIR) -> Iterator[Any]:
    """The encoder ``embed.dask`` asks for: in this process (``Encoder``) or on a cluster (``DaskEncoder``)."""
    spec = parse_dask(dask)
    if spec is None:
        from ragops.encode.encoder import Encoder

        yield Encoder(model, device=device, batch_size=batch_size, backend=backend, onnx_dir=onnx_dir)
        return
    with connect(spec) as client:
        encoder = DaskEncoder(client, model, device, batch_size, backend, onnx_dir)
        try:
            yield encoder
        finally:
            encoder.close()
