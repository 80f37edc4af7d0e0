"""ragops.registry.blobstore: a second version with unchanged files costs (almost) no disk."""

from __future__ import annotations

import os
from pathlib import Path

from ragops.registry.blobstore import MIN_BYTES, dedup_tree, local_path


def write(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def test_unchanged_files_become_links_to_one_blob(tmp_path: Path) -> None:
    big, other = os.urandom(3 * MIN_BYTES), os.urandom(2 * MIN_BYTES)
    v1, v2, blobs = tmp_path / "v1", tmp_path / "v2", tmp_path / "blobs"
    write(v1, {"embedder/model.safetensors": big, "config.json": b"{}", "faiss/index": other})
    write(v2, {"embedder/model.safetensors": big, "config.json": b"{}", "faiss/index": os.urandom(MIN_BYTES)})
    first = dedup_tree(v1, blobs)
    assert (first.files, first.linked) == (3, 0) and first.bytes_new == first.bytes_total
    second = dedup_tree(v2, blobs)
    assert second.linked == 1 and second.bytes_new == 2 + MIN_BYTES  # config.json (small) + the new index
    a, b = v1 / "embedder/model.safetensors", v2 / "embedder/model.safetensors"
    assert os.path.samefile(a, b) and a.read_bytes() == big and b.stat().st_nlink == 3  # v1, v2, the blob
    assert (v2 / "config.json").read_bytes() == b"{}"
    assert not os.path.samefile(v1 / "faiss/index", v2 / "faiss/index")
    again = dedup_tree(v2, blobs)  # again: every large file is now a blob already, nothing new
    assert again.linked == 2 and again.bytes_new == 2 and os.path.samefile(a, b)
    assert not list(v2.rglob(".*ragops-link*")) and not list(blobs.rglob(".*"))  # no temporary left


def test_local_path() -> None:
    assert local_path("file:///tmp/ml%20artifacts") == Path("/tmp/ml artifacts")
    assert local_path("/srv/mlartifacts") == Path("/srv/mlartifacts")
    assert local_path("s3://bucket/x") is None and local_path(None) is None
