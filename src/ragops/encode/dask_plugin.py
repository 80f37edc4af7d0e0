"""The Dask worker plugin that holds each worker's encoder (ragops.encode.dask), in a module of its own so
that ``distributed`` is imported only where a cluster is used."""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from ragops.encode.models import DEFAULT_ONNX_DIR


class EncoderPlugin(WorkerPlugin):
    """Loads the model once per worker (``setup``); tasks find it under the plugin's name."""

    def __init__(self, model: str, device: str, batch_size: int, backend: str = "torch",
                 onnx_dir: str = DEFAULT_ONNX_DIR) -> None:
        self.model, self.device, self.batch_size = model, device, batch_size
        self.backend, self.onnx_dir = backend, onnx_dir
        self.encoder: Any = None

    def setup(self, worker: Any) -> None:
        from ragops.encode.encoder import Encoder

        self.encoder = Encoder(self.model, device=self.device, batch_size=self.batch_size, backend=self.backend,
                               onnx_dir=self.onnx_dir)

    def teardown(self, worker: Any) -> None:
        self.encoder = None
