"""Logging for stages and the CLI: our INFO lines, other libraries' warnings only."""

from __future__ import annotations

import logging

QUIET = ("faiss", "faiss.loader", "sentence_transformers", "transformers", "httpx", "bm25s")


def setup(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)


class Progress:
    """A line per ~``every_s`` seconds (and at the end) for a long loop: ``what step i/n (p%), loss, elapsed,
    ETA``. Training stages run for minutes with nothing else to show, so they say how far they are."""

    def __init__(self, log: logging.Logger, what: str, total: int, every_s: float = 30.0) -> None:
        import time

        self.log, self.what, self.total, self.every_s = log, what, max(1, total), every_s
        self._clock = time.perf_counter
        self.t0 = self.last = self._clock()

    def step(self, done: int, loss: float | None = None) -> None:
        now = self._clock()
        if now - self.last < self.every_s and done < self.total:
            return
        self.last = now
        elapsed = now - self.t0
        eta = elapsed / max(1, done) * (self.total - done)
        loss_s = "" if loss is None else f", loss {loss:.4f}"
        self.log.info("%s step %d/%d (%d%%)%s, %s elapsed, ETA %s", self.what, done, self.total,
                      100 * done // self.total, loss_s, _clock(elapsed), _clock(eta))


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"
