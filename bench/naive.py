"""The baselines of ../shared/BASELINES.md, written as a user would in an afternoon (not the product).

1. naive vector retriever: whole documents embedded with all-MiniLM-L6-v2, numpy cosine
   (``dot / (norm * norm)``) against every document, ``argsort`` for the top-k;
2. naive BM25: ``rank_bm25.BM25Okapi`` over ``doc.split()``, the query split the same way;
3. naive hybrid: the vector top-2k only, ``alpha * cos + (1 - alpha) * bm25 / max(bm25)``, alpha 0.5;
4. naive FAISS: ``IndexFlatL2`` over the same embeddings, score ``1 / (1 + distance)``.
Each search returns ``{doc_id: score}`` for the top-k.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


class NaiveBM25:
    def __init__(self, ids: list[str], texts: list[str]) -> None:
        from rank_bm25 import BM25Okapi

        self.ids = ids
        self.bm25 = BM25Okapi([t.split() for t in texts])

    def scores(self, query: str) -> np.ndarray:
        return self.bm25.get_scores(query.split())

    def search(self, query: str, k: int) -> dict[str, float]:
        s = self.scores(query)
        top = np.argsort(-s)[:k]
        return {self.ids[i]: float(s[i]) for i in top}


class NaiveDense:
    def __init__(self, ids: list[str], emb: np.ndarray, model) -> None:
        import faiss

        self.ids, self.emb, self.model = ids, emb, model
        self.flat = faiss.IndexFlatL2(emb.shape[1])
        self.flat.add(np.ascontiguousarray(emb, dtype=np.float32))

    def encode(self, query: str) -> np.ndarray:
        return self.model.encode([query])[0]

    def cosine(self, q: np.ndarray) -> np.ndarray:
        return self.emb @ q / (np.linalg.norm(self.emb, axis=1) * np.linalg.norm(q))

    def search_numpy(self, query: str, k: int) -> dict[str, float]:
        s = self.cosine(self.encode(query))
        top = np.argsort(-s)[:k]
        return {self.ids[i]: float(s[i]) for i in top}

    def search_faiss(self, query: str, k: int) -> dict[str, float]:
        d, rows = self.flat.search(self.encode(query)[None, :].astype(np.float32), k)
        return {self.ids[r]: float(1.0 / (1.0 + x)) for x, r in zip(d[0], rows[0], strict=True) if r >= 0}


def naive_hybrid(dense: NaiveDense, bm25: NaiveBM25, query: str, k: int, alpha: float = 0.5) -> dict[str, float]:
    cos = dense.cosine(dense.encode(query))
    cand = np.argsort(-cos)[: 2 * k]
    b = bm25.scores(query)
    top = b.max() or 1.0
    fused = {dense.ids[i]: alpha * float(cos[i]) + (1 - alpha) * float(b[i]) / top for i in cand}
    return dict(sorted(fused.items(), key=lambda kv: -kv[1])[:k])


def naive_doc_embeddings(model, texts: list[str], cache_dir: Path, model_id: str) -> tuple[np.ndarray, str]:
    """Whole-document embeddings (the model truncates at its limit), cached by content: encoding the
    corpus again on every run would cost minutes and measure nothing new."""
    key = hashlib.sha256((model_id + "\0" + "\0".join(texts)).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"naive-docs-{key}.npy"
    if path.exists():
        return np.load(path), f"read from {path} (computed by an earlier run)"
    import time

    t0 = time.perf_counter()
    emb = model.encode(texts, batch_size=64, convert_to_numpy=True)  # not normalized: cosine does that
    seconds = time.perf_counter() - t0
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, emb.astype(np.float32), allow_pickle=False)
    return emb.astype(np.float32), f"encoded in {seconds:.0f} s with PyTorch and cached in {path}"
