"""MLflow "models from code" entry: MLflow runs this file when it logs or loads the packaged
retriever (ragops.pyfunc.log_retriever_model), so no Python object is pickled. Not meant for import."""

# Stays beside ragops/pyfunc.py (its CODE_FILE names this file; see the note there).
from mlflow.models import set_model

from ragops.pyfunc import RetrieverModel

set_model(RetrieverModel())
