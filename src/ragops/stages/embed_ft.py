"""Stage `embed_ft`: the corpus under the fine-tuned embedder (the `embed` stage with other paths).

With no trained embedder (marker only) it embeds with the base model, so the vectors come straight
from the embedding cache and every ``*_ft`` mode equals its base mode.
"""

from __future__ import annotations

from typing import Any

from ragops.stages import embed
from ragops.timing import run_stage
from ragops.training.artifacts import ft_params


def main(params: dict[str, Any]) -> None:
    embed.main(ft_params(params))


if __name__ == "__main__":
    run_stage("embed_ft", main)
