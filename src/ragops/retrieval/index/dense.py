"""FAISS indexes over L2-normalized embeddings, scored by inner product (= cosine).

``flat`` is exact; ``ivf`` (inverted lists, Jégou et al.) and ``hnsw`` (Malkov & Yashunin 2016)
trade a little recall for speed at scale. Saved with faiss' own format (no pickle), atomically.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ragops.errors import ConfigError, checked_keys, unknown_name
from ragops.io import atomic_dir

DENSE_KINDS = ("flat", "ivf", "hnsw")


@dataclass(frozen=True)
class DenseConfig:
    kind: str = "flat"
    ivf_nlist: int = 256
    ivf_nprobe: int = 32
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 128

    def __post_init__(self) -> None:
        if self.kind not in DENSE_KINDS:
            raise unknown_name("dense index kind", self.kind, DENSE_KINDS)

    @staticmethod
    def from_params(p: dict) -> DenseConfig:
        checked_keys("index.dense", p, DenseConfig.__dataclass_fields__)
        return DenseConfig(**p)


def build_dense(emb: np.ndarray, cfg: DenseConfig, seed: int = 42):
    """Build the index named by ``cfg.kind`` over ``emb`` (float32, rows L2-normalized)."""
    import faiss

    emb = np.ascontiguousarray(emb, dtype=np.float32)
    n, dim = emb.shape
    if cfg.kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif cfg.kind == "ivf":
        # FAISS wants >= 39 training points per list; small corpora get fewer lists.
        nlist = max(1, min(cfg.ivf_nlist, n // 39))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(emb)
        index.nprobe = min(cfg.ivf_nprobe, nlist)
    else:
        index = faiss.IndexHNSWFlat(dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = cfg.hnsw_ef_construction
        index.hnsw.efSearch = cfg.hnsw_ef_search
    if n:
        index.add(emb)
    return index


def search_dense(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores [q, k], row ids [q, k]); rows past the index size are -1."""
    q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    k = max(1, min(k, index.ntotal))
    return index.search(q, k)


def save_dense(index, cfg: DenseConfig, path: str | Path) -> None:
    import faiss

    with atomic_dir(path) as tmp:
        faiss.write_index(index, str(tmp / "index.faiss"))
        (tmp / "config.json").write_text(json.dumps({**asdict(cfg), "ntotal": int(index.ntotal)}, indent=2))


def load_dense(path: str | Path):
    """Load an index saved by ``save_dense`` and re-apply its search-time knobs."""
    import faiss

    path = Path(path)
    if not (path / "index.faiss").exists():
        raise ConfigError(f"{path}: no FAISS index here (run `dvc repro index_dense`)")
    index = faiss.read_index(str(path / "index.faiss"))
    cfg = json.loads((path / "config.json").read_text())
    if cfg["kind"] == "ivf":
        index.nprobe = min(cfg["ivf_nprobe"], index.nlist)
        index.make_direct_map()  # rows readable by id: pseudo-relevance feedback reconstructs doc vectors
    elif cfg["kind"] == "hnsw":
        index.hnsw.efSearch = cfg["hnsw_ef_search"]
    return index
