"""ragops.retrieval.index.dense: flat is exact (numpy reference), IVF/HNSW recall against flat, small-corpus
clamps, save/load round trips with the search-time knobs, and configuration errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ragops.errors import ConfigError
from ragops.retrieval.index.dense import DENSE_KINDS, DenseConfig, build_dense, load_dense, save_dense, search_dense


def unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def random_unit(n: int, dim: int, seed: int) -> np.ndarray:
    return unit_rows(np.random.default_rng(seed).standard_normal((n, dim)))


def clustered(n: int, seed: int, dim: int = 64, clusters: int = 50, spread: float = 0.3) -> np.ndarray:
    """Unit vectors around shared random centers (the centers are the same for every seed)."""
    centers = np.random.default_rng(1234).standard_normal((clusters, dim))
    rng = np.random.default_rng(seed)
    return unit_rows(centers[rng.integers(0, clusters, n)] + spread * rng.standard_normal((n, dim)))


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found.tolist(), truth.tolist(), strict=True)]))


@pytest.fixture(scope="module")
def corpus() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """5,000 clustered 64-d unit vectors, 200 queries from the same clusters, and the exact top-10."""
    x, q = clustered(5000, seed=0), clustered(200, seed=1)
    truth = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :10]
    return x, q, truth


def test_flat_is_exact_inner_product() -> None:
    x, q = random_unit(1000, 32, seed=0), random_unit(25, 32, seed=1)
    index = build_dense(x, DenseConfig(kind="flat"))
    assert index.ntotal == 1000
    scores, rows = search_dense(index, q, 10)
    sims = q.astype(np.float64) @ x.T.astype(np.float64)
    want = np.argsort(-sims, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(rows, want)
    np.testing.assert_allclose(scores, np.take_along_axis(sims, want, axis=1), atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()
    # one query as a 1-d vector; k larger than the index is clamped to its size
    s1, r1 = search_dense(index, q[0], 10)
    np.testing.assert_array_equal(r1[0], want[0])
    small = build_dense(x[:5], DenseConfig(kind="flat"))
    s5, r5 = search_dense(small, q[:2], 50)
    assert r5.shape == (2, 5) and sorted(r5[0].tolist()) == [0, 1, 2, 3, 4]


def test_empty_flat_index_returns_no_rows() -> None:
    index = build_dense(np.zeros((0, 16), np.float32), DenseConfig(kind="flat"))
    scores, rows = search_dense(index, random_unit(2, 16, seed=0), 10)
    assert rows.shape == (2, 1) and (rows == -1).all()


def test_flat_matches_truth_on_clusters(corpus) -> None:
    x, q, truth = corpus
    _, rows = search_dense(build_dense(x, DenseConfig(kind="flat")), q, 10)
    assert recall_at(rows, truth) == 1.0


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_indexes_reach_recall(corpus, kind: str) -> None:
    x, q, truth = corpus
    index = build_dense(x, DenseConfig(kind=kind))
    assert index.ntotal == len(x)
    _, rows = search_dense(index, q, 10)
    assert recall_at(rows, truth) >= 0.9


def test_recall_depends_on_the_knobs(corpus) -> None:
    # The recall test above could pass with an exact index: a starved IVF must lose recall.
    x, q, truth = corpus
    starved = build_dense(x, DenseConfig(kind="ivf", ivf_nprobe=1))
    assert starved.nlist == 5000 // 39 and starved.nprobe == 1
    _, rows = search_dense(starved, q, 10)
    assert recall_at(rows, truth) < 0.9


def test_ivf_on_a_small_corpus_clamps_nlist() -> None:
    x, q = random_unit(100, 16, seed=3), random_unit(10, 16, seed=4)
    index = build_dense(x, DenseConfig(kind="ivf", ivf_nlist=256, ivf_nprobe=32))
    # FAISS wants >= 39 training points per list: 100 // 39 = 2 lists, and nprobe <= nlist.
    assert index.nlist == 2 and index.nprobe == 2 and index.ntotal == 100
    _, rows = search_dense(index, q, 5)  # every list probed: exact
    _, exact = search_dense(build_dense(x, DenseConfig(kind="flat")), q, 5)
    np.testing.assert_array_equal(rows, exact)
    tiny = build_dense(random_unit(10, 16, seed=5), DenseConfig(kind="ivf"))
    assert tiny.nlist == 1 and tiny.ntotal == 10


@pytest.mark.parametrize(
    "cfg",
    [
        DenseConfig(kind="flat"),
        DenseConfig(kind="ivf", ivf_nlist=16, ivf_nprobe=3),
        DenseConfig(kind="hnsw", hnsw_m=8, hnsw_ef_construction=40, hnsw_ef_search=77),
    ],
    ids=lambda c: c.kind,
)
def test_save_load_round_trip(cfg: DenseConfig, tmp_path: Path) -> None:
    x, q = clustered(1000, seed=7), clustered(30, seed=8)
    index = build_dense(x, cfg)
    before = search_dense(index, q, 10)
    path = tmp_path / "faiss"
    save_dense(index, cfg, path)
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "index.faiss"]
    assert json.loads((path / "config.json").read_text())["ntotal"] == 1000
    loaded = load_dense(path)
    assert loaded.ntotal == 1000
    if cfg.kind == "ivf":
        assert loaded.nprobe == 3
    if cfg.kind == "hnsw":
        assert loaded.hnsw.efSearch == 77
    after = search_dense(loaded, q, 10)
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_array_equal(after[0], before[0])
    assert not [p for p in tmp_path.iterdir() if p.name != "faiss"]  # no temporary folders left


def test_load_re_applies_search_knobs(tmp_path: Path) -> None:
    # A FAISS file can carry other search settings than config.json; config.json wins on load.
    x = clustered(1000, seed=9)
    index = build_dense(x, DenseConfig(kind="ivf", ivf_nlist=16, ivf_nprobe=1))
    save_dense(index, DenseConfig(kind="ivf", ivf_nlist=16, ivf_nprobe=5), tmp_path / "ivf")
    assert load_dense(tmp_path / "ivf").nprobe == 5
    index = build_dense(x, DenseConfig(kind="hnsw", hnsw_m=8, hnsw_ef_construction=40, hnsw_ef_search=16))
    save_dense(index, DenseConfig(kind="hnsw", hnsw_ef_search=99), tmp_path / "hnsw")
    assert load_dense(tmp_path / "hnsw").hnsw.efSearch == 99


def test_unknown_kind_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        DenseConfig(kind="annoy")
    assert "'annoy'" in str(err.value) and "flat, hnsw, ivf" in str(err.value)
    assert set(DENSE_KINDS) == {"flat", "hnsw", "ivf"}
    with pytest.raises(ConfigError, match="nprobe"):
        DenseConfig.from_params({"kind": "ivf", "nprobe": 4})
    assert DenseConfig.from_params({"kind": "hnsw", "hnsw_m": 8}) == DenseConfig(kind="hnsw", hnsw_m=8)


def test_load_from_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no FAISS index"):
        load_dense(tmp_path)
