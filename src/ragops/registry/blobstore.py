"""Registry hygiene: files of registered versions shared by content.

A version whose models did not change holds the same files as the one before it. MLflow copies every
artifact into each version's folder; on a local artifact store :func:`dedup_tree` then replaces each copy
by a hard link to one blob per content hash (``<blobs>/<sha[:2]>/<sha>``), so the disk holds each distinct
file once and every version folder still reads as a complete, self-contained model (``mlflow models
serve``, a download, a copy elsewhere all see ordinary files). Nothing is ever written into a blob after it
is created: artifacts are immutable, so sharing their inodes is safe.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

MIN_BYTES = 4096  # smaller files are not worth a link


@dataclass(frozen=True)
class DedupStats:
    files: int  # files looked at
    linked: int  # replaced by a link to an existing blob
    bytes_total: int
    bytes_new: int  # bytes this folder added to the store (new blobs and small files)

    def as_dict(self) -> dict[str, int]:
        return {"files": self.files, "linked": self.linked, "bytes_total": self.bytes_total,
                "bytes_new": self.bytes_new}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def dedup_tree(folder: str | Path, blobs: str | Path) -> DedupStats:
    """Hard-link every file of ``folder`` (>= MIN_BYTES) to its blob in ``blobs``, creating missing blobs.

    Each replacement is atomic (link to a temporary name, then rename over the file): a crash leaves
    either the copy or the link, both with the same content."""
    folder, blobs = Path(folder), Path(blobs)
    files = linked = total = new = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
        size = path.stat().st_size
        files += 1
        total += size
        if size < MIN_BYTES:
            new += size
            continue
        digest = sha256_file(path)
        blob = blobs / digest[:2] / digest
        if blob.is_file() and blob.stat().st_size == size:
            if not os.path.samefile(blob, path):
                tmp = path.with_name(f".{path.name}.ragops-link-{os.getpid()}")
                os.link(blob, tmp)
                os.replace(tmp, path)
            linked += 1
            continue
        blob.parent.mkdir(parents=True, exist_ok=True)
        tmp = blob.with_name(f".{digest}.{os.getpid()}")
        os.link(path, tmp)
        os.replace(tmp, blob)
        new += size
    return DedupStats(files, linked, total, new)


def local_path(uri: str | None) -> Path | None:
    """The folder of a ``file://`` URI or a plain path; None for a remote store."""
    if not uri:
        return None
    if uri.startswith("file://"):
        from urllib.parse import unquote, urlsplit

        return Path(unquote(urlsplit(uri).path))
    return Path(uri) if "://" not in uri else None
