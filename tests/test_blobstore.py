"""ragops.registry.blobstore: a second version with unchanged files costs (almost) no disk, and logging a model
into a local store copies nothing, yet never leaves the store sharing an inode with the build."""

from __future__ import annotations

import os
from pathlib import Path

from ragops.registry.blobstore import MIN_BYTES, dedup_tree, linked_local_copies, local_path


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


def test_logging_links_then_the_store_owns_its_inodes(tmp_path: Path) -> None:
    """MLflow's real local artifact repository: inside linked_local_copies its staging download and its
    log_artifacts hard-link (the saving register counts on; this fails if MLflow stops copying through the
    names the block replaces), outside it copies; dedup_tree then unshares every stored file from the build."""
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    big, known = os.urandom(3 * MIN_BYTES), os.urandom(2 * MIN_BYTES)
    build, store, blobs, staged = tmp_path / "build", tmp_path / "store", tmp_path / "blobs", tmp_path / "staged"
    write(build, {"model/weights": big, "model/config.json": b"{}", "index": known})
    write(tmp_path / "old", {"index": known})
    dedup_tree(tmp_path / "old", blobs)  # an earlier version already holds `index`
    repo = LocalArtifactRepository(str(store))
    staged.mkdir()
    with linked_local_copies():
        LocalArtifactRepository(str(build)).download_artifacts("model", str(staged))
        repo.log_artifacts(str(build), "v1")
    assert os.path.samefile(staged / "model/weights", build / "model/weights")
    assert all(os.path.samefile(store / "v1" / n, build / n) for n in ("model/weights", "model/config.json", "index"))
    stats = dedup_tree(store / "v1", blobs)
    assert stats.linked == 1 and stats.bytes_new == len(big) + 2  # `index` was known; weights a new blob; config
    for name, data in (("model/weights", big), ("model/config.json", b"{}"), ("index", known)):
        stored = store / "v1" / name
        assert not os.path.samefile(stored, build / name), name  # a write into the build never reaches the store
        (build / name).write_bytes(b"overwritten in place")
        assert stored.read_bytes() == data, name
    assert os.path.samefile(store / "v1/index", tmp_path / "old/index")  # the known blob, shared
    assert not list(store.rglob(".*ragops-link*")) and not list(blobs.rglob(".*"))
    repo.log_artifacts(str(build), "v2")  # outside the block: MLflow's own copies again
    assert not os.path.samefile(store / "v2/index", build / "index")


def test_link_or_copy_copies_where_the_file_system_cannot_link(tmp_path: Path, monkeypatch) -> None:
    """Another device (a tmpfs TMPDIR beside the project's disk): a copy instead of a link."""
    import errno

    from ragops.registry import blobstore

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    write(tmp_path / "a", {"f": b"data"})
    monkeypatch.setattr(blobstore.os, "link", cross_device)
    blobstore.link_or_copy(tmp_path / "a/f", tmp_path / "b")
    assert (tmp_path / "b").read_bytes() == b"data" and not os.path.samefile(tmp_path / "a/f", tmp_path / "b")
