"""Intermediate training of the grounding cross-encoder on the ``nli/`` claim-verification pairs.

~900 SciFact training claims are too few for a small cross-encoder to learn what contradiction looks like;
HealthVer, COVID-Fact and FEVER (ragops.answer.nli_data) are ~21k labelled (evidence, claim) pairs. The model
first learns from a seeded sample of them here (the `grounding_pretrain` stage), then the `grounding` stage
fine-tunes it on claims_train exactly as it would the plain MiniLM.

Labels map onto the grounding labels: support -> SUPPORT, contradict -> CONTRADICT, neutral -> NEI, and RTE's
not_support (FEVER mixes refuted and not-enough-info there) -> :data:`~ragops.answer.cross_encoder.NOT_SUPPORT`,
trained as "NEI or CONTRADICT". A group holdout (``nli_data.cv_groups``: no claim or evidence text on both
sides) measures what was learnt, per source.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ragops.answer.cross_encoder import NOT_SUPPORT, CrossEncoderConfig, GroundingCrossEncoder, train_cross_encoder
from ragops.answer.grounding_data import LABELS
from ragops.answer.grounding_metrics import auroc
from ragops.answer.nli_data import Pair, cv_groups, load_all
from ragops.errors import ConfigError

LABEL_INDEX = {"support": LABELS.index("SUPPORT"), "contradict": LABELS.index("CONTRADICT"),
               "neutral": LABELS.index("NEI"), "not_support": NOT_SUPPORT}


@dataclass(frozen=True)
class PretrainConfig:
    sources: tuple[str, ...] = ("healthver", "covidfact", "fever")
    max_pairs: dict[str, int] = field(default_factory=dict)  # per source; 0 or absent = all
    holdout: float = 0.1  # share of the fold groups kept out of training, to measure the result
    seed: int = 42
    cross_encoder: CrossEncoderConfig = field(default_factory=CrossEncoderConfig)


def sample(pairs: Sequence[Pair], cfg: PretrainConfig) -> list[Pair]:
    """Each source's pairs, or a seeded sample of ``cfg.max_pairs[source]`` of them, in file order."""
    out: list[Pair] = []
    for source in cfg.sources:
        mine = [p for p in pairs if p.source == source]
        n = int(cfg.max_pairs.get(source, 0))
        if 0 < n < len(mine):
            keep = set(random.Random(f"{cfg.seed}:{source}").sample(range(len(mine)), n))
            mine = [p for i, p in enumerate(mine) if i in keep]
        out += mine
    return out


def split(pairs: Sequence[Pair], holdout: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(train, held out): whole fold groups (``cv_groups``) go to one side; ~``holdout`` of the groups held out."""
    groups = cv_groups(pairs)
    names = sorted(set(groups))
    random.Random(seed).shuffle(names)
    held = set(names[: int(round(holdout * len(names)))])
    return ([p for p, g in zip(pairs, groups, strict=True) if g not in held],
            [p for p, g in zip(pairs, groups, strict=True) if g in held])


def examples(pairs: Sequence[Pair], seed: int) -> list[tuple[str, str, int]]:
    """(claim, evidence, label index) in a seeded order, the claim first as at answer time."""
    out = [(p.claim, p.evidence, LABEL_INDEX[p.label]) for p in pairs]
    random.Random(seed).shuffle(out)
    return out


def evaluate(model: GroundingCrossEncoder, pairs: Sequence[Pair]) -> dict[str, dict[str, Any]]:
    """Per source: AUROC of P(SUPPORT) - P(CONTRADICT) with SUPPORT positive, over all pairs and (where the
    source labels contradiction) SUPPORT vs CONTRADICT, and the accuracy of the arg-max label where every
    gold label is one of LABELS."""
    sup, con = LABELS.index("SUPPORT"), LABELS.index("CONTRADICT")
    out: dict[str, dict[str, Any]] = {}
    for source in sorted({p.source for p in pairs}):
        mine = [p for p in pairs if p.source == source]
        probs = model.probs([p.claim for p in mine], [p.evidence for p in mine])
        score = probs[:, sup] - probs[:, con]
        label = np.asarray([p.label for p in mine])
        y = label == "support"
        row: dict[str, Any] = {"pairs": len(mine), "auroc": _rounded(auroc(score, y))}
        sc = np.isin(label, ["support", "contradict"])
        if (label == "contradict").any():
            row["auroc_support_vs_contradict"] = _rounded(auroc(score[sc], y[sc]))
        gold = np.asarray([LABEL_INDEX[x] for x in label])
        if (gold != NOT_SUPPORT).all():  # a source with RTE labels has no exact label for its negatives
            row["accuracy"] = round(float((probs.argmax(1) == gold).mean()), 4)
        out[source] = row
    return out


def _rounded(x: float) -> float | None:
    return None if np.isnan(x) else round(float(x), 4)


def pretrain(mirror: str | Path, base_model: str | Path, cfg: PretrainConfig
             ) -> tuple[GroundingCrossEncoder, dict[str, Any]]:
    """Train on ``cfg.sources`` read from ``mirror`` (the folder holding ``nli/``), measure on the held-out
    groups. Returns the model and a record: pair counts, the training record, the holdout figures."""
    if {"covidfact", "covidfact_rte"} <= set(cfg.sources):
        raise ConfigError("grounding.pretrain.sources: covidfact and covidfact_rte are the same claims in two "
                          "forms; list one of them")
    pairs = sample(load_all(mirror, list(cfg.sources), verify=False), cfg)
    train, held = split(pairs, cfg.holdout, cfg.seed)
    model, record = train_cross_encoder(base_model, examples(train, cfg.seed), cfg.cross_encoder)
    return model, {
        "sources": list(cfg.sources), "train_pairs": len(train), "holdout_pairs": len(held),
        "training": record, "holdout": evaluate(model, held) if held else {},
    }  # fmt: skip
