"""Stage `index_dense_ft`: FAISS over the fine-tuned embeddings (the `index_dense` stage, other paths)."""

from __future__ import annotations

from typing import Any

from ragops.stages import index_dense
from ragops.timing import run_stage
from ragops.training.artifacts import ft_params


def main(params: dict[str, Any]) -> None:
    index_dense.main(ft_params(params))


if __name__ == "__main__":
    run_stage("index_dense_ft", main)
