"""Retrieval: the indexes (``index/``), one embedder's retriever (bm25 / dense / hybrid), fusion, reranking,
the ``SearchPipeline`` (every mode by name), the ``Hits`` record, loading a pipeline from files (``load``) and
tuning fusion on dev. Nothing is imported here: a stage's dvc.yaml deps are its imports (``ragops.dagdeps``)."""
