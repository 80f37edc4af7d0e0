"""`ragops cache prune`: keep only the embedding-cache vectors the built pipeline reads (ragops.encode.prune).
Registered in ragops.cli.main (which turns RagopsError into one line) as `cache prune`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()
cache_app = typer.Typer(help="Look after the embedding cache (embed.cache_dir).", no_args_is_help=True)


def prune_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would go; change nothing")] = False,
    params_file: Annotated[Path, typer.Option("--params", help="params file to read.")] = Path("params.yaml"),
) -> None:
    """Drop the vectors no built output reads: old embedders' folders, edited chunks' and sentences' old vectors,
    another backend's. The next `dvc repro` that changes nothing still encodes nothing. Run it between builds."""
    from ragops.config import load_params
    from ragops.encode.prune import live_texts, prune

    params = load_params(params_file)
    cache_dir = Path(params["embed"]["cache_dir"])
    r = prune(cache_dir, live_texts(params), dry_run=dry_run)
    verb = "would free" if dry_run else "freed"
    console.print(f"{cache_dir}: {r.vectors_kept:,} vectors kept, {r.vectors_dropped:,} dropped; {verb} "
                  f"{(r.bytes_before - r.bytes_after) / 1e6:.1f} MB ({r.bytes_before / 1e6:.1f} -> "
                  f"{r.bytes_after / 1e6:.1f} MB{', estimated' if dry_run else ''})", highlight=False)
    for name in r.removed_folders:
        console.print(f"  {'would remove' if dry_run else 'removed'} {name}/ (a model no output was built with)",
                      highlight=False)
    for name in r.compacted_folders:
        console.print(f"  {'would compact' if dry_run else 'compacted'} {name}/ into one segment", highlight=False)
