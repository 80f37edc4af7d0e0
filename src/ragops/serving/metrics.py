"""Prometheus metrics of the server, in a registry of its own (several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Seconds; a hybrid query takes ~10 ms on 2 cores, an answer up to seconds (a hosted LLM).
BUCKETS = (0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["endpoint", "mode", "status"]
        self.requests = Counter(
            "ragops_requests_total",
            "HTTP requests by endpoint, retrieval mode and status code",
            labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "ragops_request_duration_seconds",
            "Request latency (server side)",
            labels,
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.cache = Counter(
            "ragops_query_cache_total",
            "Query-embedding cache lookups by result (hit|miss)",
            ["result"],
            registry=self.registry,
        )
        self.model_version = Gauge(
            "ragops_model_version",
            "Version of the served model (0: the local build)",
            ["name", "alias"],
            registry=self.registry,
        )
        self.swaps = Counter(
            "ragops_model_swaps_total", "Model versions swapped in by the alias watcher", registry=self.registry
        )
        self.load_errors = Counter(
            "ragops_model_load_errors_total", "Failed registry polls or model loads", registry=self.registry
        )
        self._hit, self._miss = self.cache.labels("hit"), self.cache.labels("miss")

    def observe(self, endpoint: str, mode: str, status: int, seconds: float) -> None:
        key = (endpoint, mode or "none", str(status))
        self.requests.labels(*key).inc()
        self.latency.labels(*key).observe(seconds)

    def cache_lookup(self, hits: int, misses: int) -> None:
        if hits:
            self._hit.inc(hits)
        if misses:
            self._miss.inc(misses)

    def set_model(self, name: str, alias: str | None, version: str) -> None:
        self.model_version.clear()
        self.model_version.labels(name, alias or "").set(float(version) if version.isdigit() else 0.0)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
