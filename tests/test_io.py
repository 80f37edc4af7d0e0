"""ragops.io: atomic file and folder replacement (a failure keeps the last good version and leaves no
temporary files) and the write/read round trips, without pickle."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ragops.io import (
    atomic_dir,
    atomic_path,
    read_json,
    read_npy,
    read_parquet,
    write_csv,
    write_json,
    write_npy,
    write_parquet,
)


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# ---------------------------------------------------------------- atomic_path


def test_atomic_path_replaces_on_success(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_text("new")
        assert target.read_text() == "old"  # nothing visible until the block succeeds
    assert target.read_text() == "new"
    assert leftovers(tmp_path, {"out.txt"}) == []


def test_atomic_path_failure_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half-written")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert leftovers(tmp_path, {"out.txt"}) == []


def test_atomic_path_failure_without_old_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "new.txt"
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise KeyboardInterrupt  # Ctrl-C is cleaned up too
    assert not target.exists()
    assert leftovers(tmp_path / "sub", set()) == []


# ---------------------------------------------------------------- atomic_dir


def _fill(folder: Path, tag: str) -> None:
    (folder / "a.txt").write_text(tag)
    (folder / "nested").mkdir()
    (folder / "nested" / "b.txt").write_text(tag)


def test_atomic_dir_swaps_the_folder(tmp_path: Path) -> None:
    target = tmp_path / "index"
    target.mkdir()
    _fill(target, "old")
    (target / "stale.txt").write_text("from the old version")
    with atomic_dir(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target and not any(tmp.iterdir())
        _fill(tmp, "new")
        assert (target / "a.txt").read_text() == "old"
    assert (target / "a.txt").read_text() == "new" and (target / "nested" / "b.txt").read_text() == "new"
    assert not (target / "stale.txt").exists()  # replaced, not merged
    assert leftovers(tmp_path, {"index"}) == []  # neither the temporary nor the old folder is left


def test_atomic_dir_failure_keeps_the_old_folder(tmp_path: Path) -> None:
    target = tmp_path / "index"
    target.mkdir()
    _fill(target, "old")
    with pytest.raises(ValueError, match="bad"), atomic_dir(target) as tmp:
        _fill(tmp, "new")
        raise ValueError("bad")
    assert (target / "a.txt").read_text() == "old" and (target / "nested" / "b.txt").read_text() == "old"
    assert sorted(p.name for p in target.iterdir()) == ["a.txt", "nested"]
    assert leftovers(tmp_path, {"index"}) == []


def test_atomic_dir_creates_a_new_folder(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "index"
    with atomic_dir(target) as tmp:
        _fill(tmp, "first")
    assert (target / "a.txt").read_text() == "first"
    assert leftovers(tmp_path / "deep", {"index"}) == []


# ---------------------------------------------------------------- round trips


def test_json_round_trip(tmp_path: Path) -> None:
    obj = {"ndcg@10": 0.6931, "modes": ["bm25", "dense"], "nested": {"n": 3, "ok": True, "none": None}, "ü": "é"}
    path = tmp_path / "m" / "metrics.json"
    write_json(path, obj)
    assert read_json(path) == obj
    assert path.read_text(encoding="utf-8").endswith("\n")
    assert list(read_json(path)) == list(obj)  # key order kept (sort_keys=False)
    write_json(path, [1, 2])
    assert read_json(path) == [1, 2]
    assert leftovers(path.parent, {"metrics.json"}) == []


def test_parquet_round_trip(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {
            "chunk_id": ["d1#0", "d1#1", "d2#0"],
            "doc_id": ["d1", "d1", "d2"],
            "n_tokens": np.asarray([12, 7, 3], dtype=np.int64),
            "score": [0.5, np.nan, -1.25],
        },
        index=[5, 6, 7],  # the index is not written
    )
    path = tmp_path / "chunks.parquet"
    write_parquet(path, df)
    back = read_parquet(path)
    pd.testing.assert_frame_equal(back, df.reset_index(drop=True), check_dtype=False)
    assert back["n_tokens"].dtype == np.int64
    assert leftovers(tmp_path, {"chunks.parquet"}) == []


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
        np.asarray([b"\x00" * 31 + b"\x01", b"abc"], dtype="S32"),
        np.zeros((0, 384), dtype=np.float32),
    ],
    ids=["float32", "bytes", "empty"],
)
def test_npy_round_trip_without_pickle(arr: np.ndarray, tmp_path: Path) -> None:
    path = tmp_path / "emb.npy"
    write_npy(path, arr)
    for back in (np.load(path, allow_pickle=False), read_npy(path), read_npy(path, mmap=True)):
        assert back.dtype == arr.dtype and back.shape == arr.shape
        np.testing.assert_array_equal(back, arr)
    assert isinstance(read_npy(path, mmap=True), np.memmap) or arr.size == 0
    assert leftovers(tmp_path, {"emb.npy"}) == []


def test_npy_refuses_objects(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_npy(tmp_path / "obj.npy", np.asarray([{"a": 1}], dtype=object))
    assert not (tmp_path / "obj.npy").exists()
    assert leftovers(tmp_path, set()) == []


def test_csv_round_trip(tmp_path: Path) -> None:
    df = pd.DataFrame({"query_id": ["q1", "q2"], "ndcg@10": [0.5, 1.0]})
    write_csv(tmp_path / "per_query.csv", df)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "per_query.csv"), df)


@pytest.mark.parametrize("umask", [0o002, 0o022, 0o077])
def test_outputs_follow_the_umask(tmp_path: Path, umask: int) -> None:
    import os
    import stat

    from ragops.io import atomic_dir, current_umask, write_json

    old = os.umask(umask)
    try:
        assert current_umask() == umask
        write_json(tmp_path / "a.json", {"a": 1})
        with atomic_dir(tmp_path / "folder") as tmp:
            (tmp / "f.txt").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o777 & ~umask


def test_leftovers_of_a_killed_writer_are_cleared_or_restored(tmp_path) -> None:
    """kill -9 leaves temporaries beside an output; the next write removes those of dead processes, and a
    folder moved aside before the new one was renamed in is put back."""
    import subprocess
    import sys

    from ragops.io import atomic_dir, write_json

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = proc.pid
    target = tmp_path / "out.json"
    stale_file = tmp_path / f".out.json.{dead}.abc.tmp"
    stale_file.write_text("half")
    mine = tmp_path / f".out.json.{os.getpid()}.keep.tmp"  # a live process's temporary stays
    mine.write_text("in progress")
    other = tmp_path / ".outer.json.1.x.tmp"  # another output's: not ours to touch
    other.write_text("x")
    write_json(target, {"a": 1})
    assert not stale_file.exists() and mine.exists() and other.exists()
    folder = tmp_path / "index"
    aside = tmp_path / f".index.old-{dead}"  # killed between "old aside" and "new in"
    aside.mkdir()
    (aside / "data").write_text("last good")
    with atomic_dir(tmp_path / "index2") as tmp:
        (tmp / "x").write_text("y")
    assert aside.exists()  # only writes to `index` look at `index`'s leftovers
    with atomic_dir(folder) as tmp:
        assert (folder / "data").read_text() == "last good"  # restored before the new one is built
        (tmp / "data").write_text("new")
    assert (folder / "data").read_text() == "new" and not aside.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == sorted(
        [mine.name, other.name])
