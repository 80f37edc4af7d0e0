"""`ragops ingest SRC_DIR --name NAME`: a folder of documents -> a BEIR folder (``data/ingested/NAME``).

The same conversion as the DAG's ``ingest`` stage (``ragops.ingest``); use it to look at what a folder
gives before pointing ``data.source`` at it, or to make a BEIR folder to share. Registered in
ragops.cli.main (which turns RagopsError into one line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ragops.errors import DataError

console = Console()


def ingest_command(
    src_dir: Annotated[Path, typer.Argument(help="folder of PDF, DOCX, HTML, Markdown, text and JSONL files")],
    name: Annotated[str, typer.Option(help="name of the corpus: written to <out>/<name>")],
    out: Annotated[Path, typer.Option(help="parent folder of the corpus")] = Path("data/ingested"),
    workers: Annotated[int, typer.Option(help="converter processes")] = 2,
    timeout: Annotated[float, typer.Option(help="seconds per file before its converter is killed")] = 60.0,
    max_mb: Annotated[float, typer.Option(help="larger files are listed as too_large, not read")] = 50.0,
    strict: Annotated[bool, typer.Option(help="fail on the first file that cannot be converted")] = False,
) -> None:
    """Convert SRC_DIR into a BEIR folder; unchanged files re-use the last run's conversion."""
    from ragops.ingest.corpus import IngestConfig, describe, ingest

    if not name or "/" in name or name.startswith("."):
        raise DataError(Path(name or "''"), "--name must be a plain folder name")
    dest = out / name
    summary = ingest(src_dir, dest, IngestConfig(workers, timeout, max_mb, strict))
    console.print(f"{dest}: {describe(summary)}", highlight=False)
    for row in summary.get("duplicates", []):
        console.print(f"  duplicate: {row['path']} (same content as {row['same_as']})", highlight=False)
    for row in summary.get("failed", []):
        console.print(f"  not ingested: {row['path']}: {row['status']}: {row['reason']}", highlight=False,
                      style="yellow")
    console.print(f"manifest: {dest / 'manifest.jsonl'}. To build on it: set data.source: {src_dir} in "
                  "params.yaml and `dvc repro` (the ingest stage converts it the same way)", highlight=False)
