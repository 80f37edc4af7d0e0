"""The HTTP API and search page (`ragops serve`): app factory, model holder with alias watcher and hot
swap, LRU query-embedding cache, Prometheus metrics. Nothing is imported or loaded at import time."""
