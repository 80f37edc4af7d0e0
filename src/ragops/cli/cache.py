"""`ragops cache prune`: keep only the embedding-cache vectors the built pipeline reads (ragops.encode.prune) and
drop the ONNX exports nothing reads again (ragops.encode.export_prune). Registered in ragops.cli.main (which turns
RagopsError into one line) as `cache prune`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ragops.encode.models import DEFAULT_ONNX_DIR

console = Console()
cache_app = typer.Typer(help="Look after the embedding cache (embed.cache_dir) and the ONNX exports (embed.onnx_dir).",
                        no_args_is_help=True)


@contextlib.contextmanager
def no_build_running(root: Path) -> Iterator[None]:
    """Hold DVC's lock of the project at ``root`` while the cache is pruned: every `dvc repro` holds it (the
    Prefect flow's too), so no stage reads a folder being compacted. Outside a DVC project there is none."""
    if not (root / ".dvc").is_dir():
        yield
        return
    from dvc.lock import LockError
    from dvc.repo import Repo

    from ragops.errors import RagopsError

    with contextlib.closing(Repo(str(root))) as repo:
        try:
            repo.lock.lock()  # a few retries over ~3 s, then LockError
        except LockError:
            lock_file = Path(repo.lock.files[0])
            holder = lock_file.read_text(errors="replace").strip() if lock_file.is_file() else ""
            raise RagopsError(f"{lock_file}: a DVC command is running in this project"
                              f"{f' (process {holder})' if holder else ''}; prune the cache when it has "
                              "finished (`--dry-run` reads only and does not wait)") from None
        try:
            yield
        finally:
            repo.lock.unlock()


def prune_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would go; change nothing")] = False,
    params_file: Annotated[Path, typer.Option("--params", help="params file to read.")] = Path("params.yaml"),
    unused_exports: Annotated[bool, typer.Option(
        "--unused-exports", help="also drop the ONNX exports of models this project's build does not use (the "
        "folder is shared: another project copy exports its model again on next use)")] = False,
) -> None:
    """Drop the vectors no built output reads: old embedders' folders, edited chunks' and sentences' old vectors,
    another backend's. The next `dvc repro` that changes nothing still encodes nothing. Then the ONNX exports of
    superseded export recipes (and with --unused-exports those of models the build does not use). It refuses to
    run while a `dvc repro` holds the project (DVC's own lock), and holds that lock itself while it prunes."""
    from ragops.config import load_params
    from ragops.encode.export_prune import live_exports, prune_exports
    from ragops.encode.prune import live_texts, prune

    params = load_params(params_file)
    cache_dir = Path(params["embed"]["cache_dir"])
    onnx_dir = Path(params["embed"].get("onnx_dir", DEFAULT_ONNX_DIR)).expanduser()
    with contextlib.nullcontext() if dry_run else no_build_running(params_file.resolve().parent):
        r = prune(cache_dir, live_texts(params), dry_run=dry_run)
        live = live_exports(params) if unused_exports else None
        e = prune_exports(onnx_dir, live, dry_run=dry_run)
    verb = "would free" if dry_run else "freed"
    console.print(f"{cache_dir}: {r.vectors_kept:,} vectors kept, {r.vectors_dropped:,} dropped; {verb} "
                  f"{(r.bytes_before - r.bytes_after) / 1e6:.1f} MB ({r.bytes_before / 1e6:.1f} -> "
                  f"{r.bytes_after / 1e6:.1f} MB{', estimated' if dry_run else ''})", highlight=False)
    for name in r.removed_folders:
        console.print(f"  {'would remove' if dry_run else 'removed'} {name}/ (a model no output was built with)",
                      highlight=False)
    for name in r.compacted_folders:
        console.print(f"  {'would compact' if dry_run else 'compacted'} {name}/ into one segment", highlight=False)
    freed = (e.bytes_before - e.bytes_after) / 1e6
    console.print(f"{onnx_dir}: {len(e.kept)} exports kept, {len(e.removed)} {'to remove' if dry_run else 'removed'}; "
                  f"{verb} {freed:.1f} MB", highlight=False)
    for name, why in e.removed.items():
        console.print(f"  {'would remove' if dry_run else 'removed'} {name}/ ({why})", highlight=False)
