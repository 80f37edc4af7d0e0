"""Encoding text with models: weights by name (``models``), the query/document encoder and its content-hash
cache (``encoder``), the ONNX encoder and reranker exports, and encoding on a Dask cluster (``dask``)."""
