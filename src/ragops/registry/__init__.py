"""Tracking and the model registry: MLflow runs (``tracking``), registered versions and aliases (``versions``),
the promotion gate (pure) and its pull-request report, the served mode, shared blobs of the artifact store."""
