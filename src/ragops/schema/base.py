"""The building blocks of the params schema: the value types (a share, a positive count, a mode name) and
:class:`Section`, the strict base every section of params.yaml derives from."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Unit = Annotated[float, Field(ge=0, le=1)]
Pos = Annotated[int, Field(ge=1)]
NonNeg = Annotated[int, Field(ge=0)]
NonNegF = Annotated[float, Field(ge=0)]
# a torch device: cpu, cuda, cuda:<index>, mps (whether the machine has it is checked where a model loads)
Device = Annotated[str, Field(pattern=r"^(cpu|cuda(:[0-9]+)?|mps)$")]
# the arithmetic of a training: auto = bf16 where the device multiplies it natively, else fp32
Precision = Literal["auto", "fp32", "bf16"]
# a training's dropout probability; None: the model's own
Dropout = Annotated[float, Field(ge=0, lt=1)] | None
Mode = Literal["bm25", "dense", "hybrid", "dense_ft", "hybrid_ft", "hybrid_rerank", "hybrid_ft_rerank"]


class Section(BaseModel):
    # strict: YAML gives typed values, so "5" for an int or true for a number is a mistake, not a cast
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
