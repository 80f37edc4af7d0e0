"""DVC stage ``ingest``: ``data.source`` (a BEIR folder or a folder of documents) -> ``paths.corpus``, a BEIR
folder with ``manifest.jsonl`` (one row per source file: what happened to it) and ``summary.json``.

A folder of documents is converted by ``ragops.ingest`` (re-using every unchanged file's conversion from the
previous output, which DVC keeps: the output is ``persist: true``); ``ingest.strict`` fails the stage on the
first file that cannot be converted, otherwise such files are listed and the rest goes on.
"""

from __future__ import annotations

import logging
from typing import Any

from ragops.ingest.corpus import IngestConfig, ingest
from ragops.timing import run_stage

log = logging.getLogger("ragops.ingest")


def main(params: dict[str, Any]) -> None:
    summary = ingest(params["data"]["source"], params["paths"]["corpus"], IngestConfig.from_params(params["ingest"]))
    for row in summary.get("failed", [])[:20]:
        log.warning("ingest: not ingested: %s (%s: %s)", row["path"], row["status"], row["reason"])


if __name__ == "__main__":
    run_stage("ingest", main)
