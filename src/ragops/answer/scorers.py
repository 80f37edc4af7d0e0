"""Grounding scorers, chosen by name: how well a claim is supported by a set of documents.

Every scorer maps (claim, documents) to a score in [0, 1]; a document is a list of sentences.
``supported = score >= threshold``, the threshold chosen on claims_train and saved with the scorer.

- ``lexical``: BASELINES.md #5, the fraction of the claim's lower-cased whitespace words that occur in
  the single best document (substring test, as the baseline does), supported at >= 0.7 by default.
- ``embedding``: the best cosine similarity of the claim to any document sentence (MiniLM), clipped to [0, 1].
- ``trained``: a logistic regression trained on claims_train over the claim's best-matching sentence:
  MiniLM pair features (u*v, |u-v|, u-v), the two scores above, and negation / direction cues; when the
  stage trained one, stacked with a 3-label cross-encoder that reads the claim and its most similar
  sentences together (ragops.answer.cross_encoder; training: ragops.answer.grounding_train).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ragops.answer.text import decrease_count, negation_count
from ragops.errors import ConfigError, unknown_name
from ragops.io import read_json

SCORERS = ("lexical", "embedding", "trained")
LEXICAL_BASELINE_THRESHOLD = 0.7
Docs = Sequence[Sequence[str]]  # documents, each a list of sentences
EncodeFn = Callable[[list[str]], np.ndarray]


def lexical_score(claim: str, docs: Docs) -> float:
    """max over documents of |{w in claim.lower().split() : w occurs in doc.lower()}| / |words|."""
    claim_words = claim.lower().split()
    if not claim_words or not docs:
        return 0.0
    best = 0.0
    for doc in docs:
        text = " ".join(doc).lower()
        best = max(best, sum(w in text for w in claim_words) / len(claim_words))
    return best


def embedding_scores(claims: Sequence[str], docs_per_claim: Sequence[Docs], encode: EncodeFn) -> np.ndarray:
    """Best cosine of each claim to any sentence of its documents (normalized vectors), clipped to [0, 1]."""
    sentences = sorted({s for docs in docs_per_claim for doc in docs for s in doc})
    if not claims:
        return np.zeros(0)
    row = {s: i for i, s in enumerate(sentences)}
    claim_vecs = encode(list(claims))
    sent_vecs = encode(sentences) if sentences else np.zeros((0, claim_vecs.shape[1]), dtype=np.float32)
    out = np.zeros(len(claims))
    for i, docs in enumerate(docs_per_claim):
        idx = [row[s] for doc in docs for s in doc]
        if idx:
            out[i] = float(np.max(sent_vecs[idx] @ claim_vecs[i]))
    return np.clip(out, 0.0, 1.0)


@dataclass
class Scorer:
    """A named scorer with its threshold. ``score`` takes claims and, per claim, its documents."""

    name: str
    threshold: float
    fn: Callable[[Sequence[str], Sequence[Docs]], np.ndarray]

    def score(self, claims: Sequence[str], docs_per_claim: Sequence[Docs]) -> np.ndarray:
        if len(claims) != len(docs_per_claim):
            raise ValueError(f"{len(claims)} claims but {len(docs_per_claim)} document lists")
        if not claims:
            return np.zeros(0)
        return np.asarray(self.fn(claims, docs_per_claim), dtype=np.float64)


# No claim-only cue: "the claim holds a negation" predicts CONTRADICT in SciFact without reading the
# evidence (annotators wrote the contradictions by negating), so the cues are the evidence's and the
# claim/evidence mismatches only (docs/grounding.md, "The claim alone gives part of the label away").
FEATURES = (
    "cos_max",
    "cos_second",
    "lexical",
    "evidence_negated",
    "negation_mismatch",
    "evidence_decrease",
    "direction_mismatch",
)
# ... followed by 4 x dim pair features of the claim vector u and the best sentence's v:
# u*v, |u-v|, u-v, and u * (mean of the two best sentences).


def trained_features(encode: EncodeFn, claims: Sequence[str], docs_per_claim: Sequence[Docs]) -> np.ndarray:
    """One row per claim: FEATURES (cues about the best-matching sentence) then MiniLM pair features.

    The evidence sentence is the one most similar to the claim (cosine): the same choice at training
    and at answer time. Negation and direction cues are compared between claim and that sentence.
    """
    sentences = sorted({s for docs in docs_per_claim for doc in docs for s in doc})
    vecs = encode(list(claims) + sentences)
    claim_vecs, sent_vecs = vecs[: len(claims)], vecs[len(claims) :]
    row = {s: i for i, s in enumerate(sentences)}
    dim = vecs.shape[1]
    out = np.zeros((len(claims), len(FEATURES) + 4 * dim))
    for i, (claim, docs) in enumerate(zip(claims, docs_per_claim, strict=True)):
        sents = [s for doc in docs for s in doc]
        u = claim_vecs[i]
        cn, cd = float(negation_count(claim) > 0), float(decrease_count(claim) > 0)
        if not sents:
            out[i, : len(FEATURES)] = [0, 0, 0, 0, cn, 0, cd]
            continue
        s_vecs = sent_vecs[[row[s] for s in sents]]
        cos = s_vecs @ u
        order = np.argsort(-cos, kind="stable")
        best, v = sents[order[0]], s_vecs[order[0]]
        en, ed = float(negation_count(best) > 0), float(decrease_count(best) > 0)
        second = float(cos[order[1]]) if len(order) > 1 else float(cos[order[0]])
        hand = [
            float(cos[order[0]]),
            second,
            lexical_score(claim, docs),
            en,
            float(cn != en),
            ed,
            float(cd != ed),
        ]
        v2 = s_vecs[order[:2]].mean(axis=0)
        out[i] = np.concatenate([hand, u * v, np.abs(u - v), u - v, u * v2])
    return out


def rank_sentences(encode: EncodeFn, claims: Sequence[str], docs_per_claim: Sequence[Docs]) -> list[list[int]]:
    """Per claim, the indices of its documents' sentences (flattened, in order) by cosine to it, best first."""
    sentences = sorted({s for docs in docs_per_claim for doc in docs for s in doc})
    if not claims:
        return []
    vecs = encode(list(claims) + sentences)
    claim_vecs, sent_vecs = vecs[: len(claims)], vecs[len(claims) :]
    row = {s: i for i, s in enumerate(sentences)}
    out = []
    for i, docs in enumerate(docs_per_claim):
        idx = [row[s] for doc in docs for s in doc]
        out.append([int(j) for j in np.argsort(-(sent_vecs[idx] @ claim_vecs[i]), kind="stable")] if idx else [])
    return out


def stack_inputs(logistic_scores: np.ndarray, ce: np.ndarray) -> np.ndarray:
    """The stacker's inputs: the logistic model's logit, then the cross-encoder features."""
    p = np.clip(np.asarray(logistic_scores, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.column_stack([np.log(p / (1 - p)), ce])


# How the trained scorer combines the logistic model with the cross-encoder (grounding.stacker):
# sum: the logit plus the top-k evidence's log odds log P(SUPPORT) - log P(CONTRADICT), each standardized on the
#      stacking pairs, the log odds weighted by a factor chosen by cross-validation (no other fitted weight);
# logistic: a logistic regression over the logit and the four cross-encoder probabilities.
STACK_FORMS = ("sum", "logistic")


def stack_features(x: np.ndarray, form: str) -> np.ndarray:
    """The columns the stacker of ``form`` reads, from :func:`stack_inputs`' ``x``."""
    from ragops.answer.cross_encoder import CE_FEATURES

    if form == "logistic":
        return x
    if form != "sum":
        raise unknown_name("grounding.stacker", form, STACK_FORMS)
    sup, con = 1 + CE_FEATURES.index("ce_topk_support"), 1 + CE_FEATURES.index("ce_topk_contradict")
    return np.column_stack([x[:, 0], np.log(x[:, sup] + 1e-6) - np.log(x[:, con] + 1e-6)])


@dataclass(frozen=True)
class LogisticModel:
    """Standardize, then logistic regression (saved as JSON: no pickle)."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": float(self.intercept),
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> LogisticModel:
        return LogisticModel(
            np.asarray(d["mean"]), np.asarray(d["scale"]), np.asarray(d["coef"]), float(d["intercept"])
        )


SCORERS_FILE = "scorers.json"


def load_scorer(
    name: str,
    model_dir: str | Path | None,
    encode: EncodeFn | None,
    default_thresholds: dict[str, float] | None = None,
    ce_backend: str = "onnx",
) -> Scorer:
    """A scorer by name. Thresholds come from ``model_dir/scorers.json`` (the grounding stage's output);
    without it ``lexical`` uses the baseline's 0.7, ``embedding`` ``default_thresholds``, and ``trained``
    cannot load. ``ce_backend``: how the trained scorer's cross-encoder runs (answer.grounding_backend:
    ragops.answer.cross_encoder_onnx.load_cross_encoder)."""
    if name not in SCORERS:
        raise unknown_name("scorer", name, SCORERS)
    saved: dict[str, Any] = {}
    if model_dir is not None and (Path(model_dir) / SCORERS_FILE).is_file():
        saved = read_json(Path(model_dir) / SCORERS_FILE)
    defaults = {"lexical": LEXICAL_BASELINE_THRESHOLD, **(default_thresholds or {})}
    threshold = float(saved.get(name, {}).get("threshold", defaults.get(name, 0.5)))
    if name == "lexical":
        return Scorer(name, threshold, lambda cs, ds: [lexical_score(c, d) for c, d in zip(cs, ds, strict=True)])
    if encode is None:
        raise ConfigError(f"the {name} scorer needs the sentence encoder")
    if name == "embedding":
        return Scorer(name, threshold, lambda cs, ds: embedding_scores(cs, ds, encode))
    if "trained" not in saved:
        raise ConfigError(
            f"the trained scorer is not built ({Path(str(model_dir)) / SCORERS_FILE} missing): "
            "run `dvc repro grounding`, or choose --scorer lexical|embedding"
        )
    t = saved["trained"]
    lr = LogisticModel.from_dict(t["logistic"])
    if "stacker" not in t:
        return Scorer(name, threshold, lambda cs, ds: lr.predict(trained_features(encode, cs, ds)))
    from ragops.answer.cross_encoder import ce_features
    from ragops.answer.cross_encoder_onnx import load_cross_encoder

    ce_cfg = t["cross_encoder"]
    ce = load_cross_encoder(Path(str(model_dir)) / ce_cfg["dir"], ce_cfg["max_length"], ce_cfg["top_k"], ce_backend)
    stacker = LogisticModel.from_dict(t["stacker"])
    form = str(t.get("stack_form", "logistic"))  # packages from before the sum form have none

    def score(cs: Sequence[str], ds: Sequence[Docs]) -> np.ndarray:
        order = rank_sentences(encode, cs, ds)
        flat = [[s for doc in d for s in doc] for d in ds]
        ranked = [[f[i] for i in o] for f, o in zip(flat, order, strict=True)]
        x = stack_inputs(lr.predict(trained_features(encode, cs, ds)), ce_features(ce, cs, ranked))
        return stacker.predict(stack_features(x, form))

    return Scorer(name, threshold, score)
