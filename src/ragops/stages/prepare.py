"""DVC stage ``prepare``: a BEIR folder -> validated docs/queries/qrels parquet + stats.json.

Reads ``data.dataset``, ``prepare.dev_fraction``, ``prepare.max_docs``, ``seed``; writes
``paths.docs``, ``paths.queries``, ``paths.qrels`` and ``paths.prepare_stats``. All validation
happens before the first write, and every write is atomic.
"""

from __future__ import annotations

import logging
from typing import Any

from ragops.data.prepare import prepare_dataset
from ragops.io import write_json, write_parquet
from ragops.timing import run_stage

log = logging.getLogger(__name__)


def main(params: dict[str, Any]) -> None:
    """Run the stage with ``params`` (the parsed params.yaml)."""
    prepared = prepare_dataset(
        params["data"]["dataset"],
        dev_fraction=float(params["prepare"]["dev_fraction"]),
        seed=int(params["seed"]),
        max_docs=int(params["prepare"]["max_docs"]),
    )
    paths = params["paths"]
    write_parquet(paths["docs"], prepared.docs)
    write_parquet(paths["queries"], prepared.queries)
    write_parquet(paths["qrels"], prepared.qrels)
    write_json(paths["prepare_stats"], prepared.stats)
    stats = prepared.stats
    log.info("prepare: %d docs, %d queries, %d judgments",
             stats["docs"], stats["queries"], stats["judgments"])
    for split, counts in stats["splits"].items():
        log.info("prepare: %s: %d queries, %d judgments", split, counts["queries"], counts["judgments"])


if __name__ == "__main__":
    run_stage("prepare", main)
