"""The ``serve:`` section of params.yaml as a typed record (read by `ragops serve` only: no stage)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ragops.errors import ConfigError, unknown_name
from ragops.eval.judgments import DEFAULT_FILE, default_path
from ragops.retrieval.pipeline import MODES


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"  # loopback unless told otherwise
    port: int = 8000
    model: str = "auto"  # auto | local | models:/NAME@ALIAS | models:/NAME/VERSION | runs:/... | a model folder
    poll_s: float = 10.0  # how often the alias watcher asks the registry; 0 = never
    cache_size: int = 1024  # query embeddings kept (LRU); 0 = no cache
    max_query_chars: int = 1000
    top_k_default: int = 10
    top_k_max: int = 100
    mode: str = "default"  # default mode of /search: default (the model's registered mode) or a mode name
    workers: int = 2  # threads that run searches (CPU-bound: off the event loop)
    batch_max: int = 1  # >1: concurrent searches are batched (one encoder pass), up to this many; 1: thread pool
    encoder_threads: int = 1  # threads per query encode (torch or ONNX Runtime); 0 = the encoder's default
    snippet_chars: int = 300
    access_log: bool = False  # uvicorn's per-request log line (the Prometheus metrics count requests anyway)
    max_body_bytes: int = 65536  # larger request bodies get 413 before they are read
    max_inflight_search: int = 8  # /search requests in flight at once; more get 503 + Retry-After at once
    max_inflight_ask: int = 2  # the same for /ask (an answer costs ~10 searches of CPU)
    # where POST /judge appends (ragops.eval.judgments); `ragops serve` defaults it to <data.judgments>/judgments.jsonl,
    # as `ragops judge` does; null (or "") = judging disabled (503)
    judgments_path: str | None = DEFAULT_FILE

    def __post_init__(self) -> None:
        if self.mode not in ("default", *MODES):
            raise unknown_name("serve.mode", self.mode, ("default", *MODES))
        if not 1 <= self.top_k_default <= self.top_k_max:
            raise ConfigError(f"serve: need 1 <= top_k_default ({self.top_k_default}) <= top_k_max ({self.top_k_max})")
        if (
            min(self.max_query_chars, self.workers, self.batch_max, self.max_body_bytes, self.max_inflight_search,
                self.max_inflight_ask) < 1
            or min(self.cache_size, self.poll_s, self.encoder_threads) < 0
        ):
            raise ConfigError(
                "serve: max_query_chars, workers, batch_max, max_body_bytes and max_inflight_* must be >= 1; "
                "cache_size, poll_s and encoder_threads >= 0"
            )
        if not 0 < self.port < 65536:
            raise ConfigError(f"serve.port must be in 1..65535, got {self.port}")

    @staticmethod
    def of(params: Mapping[str, Any]) -> ServeConfig:
        """The ``serve:`` section of the whole params; ``judgments_path`` unset there = the file `ragops judge`
        writes (``<data.judgments>/judgments.jsonl``), so the page's judgments and the CLI's meet."""
        section = dict(params.get("serve") or {})
        section.setdefault("judgments_path", str(default_path(params)))
        return ServeConfig.from_params(section)

    @staticmethod
    def from_params(p: Mapping[str, Any] | None) -> ServeConfig:
        p = dict(p or {})
        known = {f.name: f.type for f in fields(ServeConfig)}
        unknown = sorted(set(p) - set(known))
        if unknown:
            raise ConfigError(f"serve: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        casts = {
            "host": str,
            "port": int,
            "model": str,
            "poll_s": float,
            "cache_size": int,
            "max_query_chars": int,
            "top_k_default": int,
            "top_k_max": int,
            "mode": str,
            "workers": int,
            "batch_max": int,
            "encoder_threads": int,
            "snippet_chars": int,
            "access_log": bool,
            "max_body_bytes": int,
            "max_inflight_search": int,
            "max_inflight_ask": int,
            "judgments_path": lambda v: str(v) if v not in (None, "") else None,
        }
        try:
            return ServeConfig(**{k: casts[k](v) for k, v in p.items()})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"serve: {exc}") from None
