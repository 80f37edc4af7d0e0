"""DVC stage ``prepare``: the ingested BEIR folder + the judgments made here -> validated
docs/queries/qrels parquet + stats.json.

Reads ``paths.corpus`` (the ingest stage's BEIR folder), the ``*.jsonl`` files of ``data.judgments``
(``ragops.eval.judgments``), ``prepare.dev_fraction``, ``prepare.max_docs``, ``seed``; writes
``paths.docs``, ``paths.queries``, ``paths.qrels`` and ``paths.prepare_stats``. All validation
happens before the first write, and every write is atomic.

It also copies the labelled claims of the grounding benchmark (``grounding.train_file``, ``eval_file``,
``sentences_file``, when the data set has them) into ``paths.claims``: the `grounding` stage depends on
that copy, not on the whole data set, so editing documents does not retrain the grounding scorers.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from ragops.data.judged import judgment_files
from ragops.data.prepare import prepare_dataset
from ragops.eval.judgments import read_many
from ragops.io import atomic_dir, write_json, write_parquet
from ragops.timing import run_stage

log = logging.getLogger(__name__)


def main(params: dict[str, Any]) -> None:
    """Run the stage with ``params`` (the parsed params.yaml)."""
    paths = params["paths"]
    prepared = prepare_dataset(
        paths["corpus"],
        dev_fraction=float(params["prepare"]["dev_fraction"]),
        seed=int(params["seed"]),
        max_docs=int(params["prepare"]["max_docs"]),
        judged=read_many(judgment_files(params["data"]["judgments"])),
    )
    write_parquet(paths["docs"], prepared.docs)
    write_parquet(paths["queries"], prepared.queries)
    write_parquet(paths["qrels"], prepared.qrels)
    write_json(paths["prepare_stats"], prepared.stats)
    if "claims" in paths:
        g = params.get("grounding", {})
        names = [g[k] for k in ("train_file", "eval_file", "sentences_file") if k in g]
        copy_claims(paths["corpus"], names, paths["claims"])
    stats = prepared.stats
    log.info("prepare: %d docs, %d queries, %d judgments (%s)", stats["docs"], stats["queries"],
             stats["judgments"], ", ".join(f"{k}: {v}" for k, v in stats["judgment_sources"].items()) or "none")
    if not stats["judgments"]:
        log.warning("prepare: no judgments: the pipeline builds and serves, evaluate records 'no judgments'; judge "
                    "results (the search page, `ragops judge`) or generate questions (`ragops generate-questions`)")
    for split, counts in stats["splits"].items():
        log.info("prepare: %s: %d queries, %d judgments", split, counts["queries"], counts["judgments"])


def copy_claims(dataset: str | Path, names: list[str], dest: str | Path) -> None:
    """``dest`` = the files of ``names`` found in ``dataset``, plus ``claims.json`` saying which were missing."""
    with atomic_dir(dest) as tmp:
        found = [n for n in names if (Path(dataset) / n).is_file()]
        for name in found:
            shutil.copyfile(Path(dataset) / name, tmp / name)
        write_json(tmp / "claims.json", {"files": found, "missing": sorted(set(names) - set(found))})


if __name__ == "__main__":
    run_stage("prepare", main)
