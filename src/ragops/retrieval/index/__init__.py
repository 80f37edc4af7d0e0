"""Indexes: FAISS for dense vectors (dense.py), bm25s for lexical search (sparse.py)."""
