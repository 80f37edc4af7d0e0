"""Logging for stages and the CLI: our INFO lines, other libraries' warnings only."""

from __future__ import annotations

import logging

QUIET = ("faiss", "faiss.loader", "sentence_transformers", "transformers", "httpx", "bm25s")


def setup(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
