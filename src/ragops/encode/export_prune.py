"""`ragops cache prune`'s second half: the ONNX exports in ``embed.onnx_dir`` that nothing will read again.

The export folder (``~/.cache/ragops/onnx`` by default) is shared by every project copy on the machine and grows
by one folder (~110 MB) for each model exported: every retrain of the embedder or the reranker (the weekly
scheduled retrain) adds one, and a change of export recipe leaves the old recipe's folders behind, which this
version reads only from inside a registered package, never from the cache (ragops.encode.onnx_encoder and
ragops.encode.onnx_reranker, ``ensure_export``). Two levels:

- always: the superseded recipes' exports (``<fingerprint[:16]>`` and ``<fingerprint[:16]>-ce`` while the
  current recipes are ``-r2`` and ``-ce2``);
- with ``unused=True``: also the current recipe's exports of models this project's build does not use (the
  base embedder, the fine-tuned one, the reranker). Another project copy sharing the folder that needs one
  exports it again on its next use (10-60 s); nothing is lost that cannot be rebuilt.

Folders whose names are not an export's (another tool's, a writer's temporary) are left alone.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragops.encode.models import DEFAULT_ONNX_DIR, model_fingerprint, resolve_model
from ragops.encode.onnx_encoder import RECIPE as ENCODER_RECIPE
from ragops.encode.onnx_encoder import export_dir as encoder_export_dir
from ragops.encode.onnx_reranker import RECIPE as RERANKER_RECIPE
from ragops.encode.onnx_reranker import export_dir as reranker_export_dir
from ragops.encode.prune import folder_size

# <16 hex>, then nothing / -r<N> (an encoder's export) or -ce / -ce<N> (a reranker's); no number = recipe 1. Also
# how a package's onnx folder is read (ragops.pyfunc.lacks_encoder_export).
EXPORT_NAME = re.compile(r"^(?P<fp>[0-9a-f]{16})(?:-(?P<kind>r|ce)(?P<recipe>\d*))?$")
CURRENT = {"r": ENCODER_RECIPE, "ce": RERANKER_RECIPE}


@dataclass
class ExportPruneReport:
    removed: dict[str, str] = field(default_factory=dict)  # folder name -> why
    kept: list[str] = field(default_factory=list)
    bytes_before: int = 0
    bytes_after: int = 0
    dry_run: bool = False


def live_exports(params: dict[str, Any]) -> set[str]:
    """The export folder names of the models this project's build serves (whichever exist or not)."""
    from ragops.retrieval.load import local_parts

    onnx_dir = Path(params["embed"].get("onnx_dir", DEFAULT_ONNX_DIR)).expanduser()
    parts = local_parts(params)
    names = set()
    for key in ("embedder", "embedder_ft"):
        if parts.get(key) is not None:
            names.add(encoder_export_dir(onnx_dir, model_fingerprint(resolve_model(str(parts[key])))).name)
    if parts.get("reranker") is not None:
        names.add(reranker_export_dir(onnx_dir, model_fingerprint(parts["reranker"])).name)
    return names


def why_stale(name: str, live: set[str] | None) -> str | None:
    """Why the export folder ``name`` can go (None: keep it). ``live``: the names kept among the current
    recipe's exports (None: keep them all)."""
    m = EXPORT_NAME.match(name)
    if m is None:
        return None  # not an export
    kind = m["kind"] or "r"  # a bare fingerprint is an encoder's recipe-1 export
    recipe = int(m["recipe"] or 1)
    if recipe < CURRENT[kind]:
        return f"recipe {recipe}, superseded by {CURRENT[kind]}"
    if recipe == CURRENT[kind] and live is not None and name not in live:
        return "a model this project does not use"
    return None


def prune_exports(onnx_dir: str | Path, live: set[str] | None = None, dry_run: bool = False) -> ExportPruneReport:
    """Remove the exports in ``onnx_dir`` that :func:`why_stale` names (``live`` None: superseded ones only)."""
    root = Path(onnx_dir).expanduser()
    report = ExportPruneReport(dry_run=dry_run)
    if not root.is_dir():
        return report
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        size = folder_size(folder)
        report.bytes_before += size
        why = why_stale(folder.name, live)
        if why is None:
            report.kept.append(folder.name)
            report.bytes_after += size
            continue
        report.removed[folder.name] = why
        if not dry_run:
            shutil.rmtree(folder)
    return report
