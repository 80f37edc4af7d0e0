"""A 3-label (NEI / SUPPORT / CONTRADICT) cross-encoder for grounding, fine-tuned from the packaged MiniLM.

It reads the claim and its evidence sentences together, so it can see a flipped word that the
bi-encoder's cosine and the word overlap ignore. Training pairs come from claims_train's rationales:
(claim, rationale sentences) with the pair's label, the claim's negation (ragops.answer.negate) with the
opposite label, and NEI from the cited-but-irrelevant abstracts and from a claim's least similar
non-rationale sentence. At answer time the claim meets the ``top_k`` sentences of its documents most
similar to it (MiniLM cosine), concatenated in document order.

Saved as the encoder's Hugging Face folder plus ``head.safetensors`` (no pickle).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ragops.answer.grounding_data import LABELS, Pair
from ragops.answer.negate import add_negation, negate, swap_aligned
from ragops.training.batching import epoch_batches

CE_DIR = "cross_encoder"
HEAD_FILE = "head.safetensors"
# A training label beyond LABELS: "not SUPPORT" (NEI or CONTRADICT, which one unknown: RTE's not_entailment);
# its loss is -log(P(NEI) + P(CONTRADICT)), so it teaches only that the evidence does not support the claim.
NOT_SUPPORT = len(LABELS)


@dataclass(frozen=True)
class CrossEncoderConfig:
    epochs: int = 3
    lr: float = 5e-5  # encoder
    head_lr: float = 1e-3  # the new head learns from scratch: a larger step (as for the reranker)
    batch_size: int = 16
    max_length: int = 128
    top_k: int = 2  # evidence sentences shown to the model at answer time
    threads: int = 2
    seed: int = 42
    device: str = "cpu"  # torch device of training (the saved model is loaded on the CPU)
    precision: str = "fp32"  # fp32 | bf16 (the forward under autocast); grounding.cross_encoder.precision resolved
    # Pseudo-claims from the corpus (corpus_claims / pseudo_examples) added to the training examples:
    corpus_claims: int = 0  # how many (0 = none)
    corpus_source: str = "both"  # titles | clauses | both
    corpus_nei: bool = False  # also an NEI example per pseudo-claim
    negate_evidence: bool = False  # training_examples: also flip the rationale's word that meets the claim
    group_by_length: bool = False  # batches of similar length (training.batching): less padding
    attention_dropout: float | None = None  # the encoder's dropouts in training (None: the model's own, 0.1)
    hidden_dropout: float | None = None


def cross_encoder_config(ce: dict[str, Any] | None, seed: int) -> CrossEncoderConfig | None:
    """``grounding.cross_encoder`` as a config; None when absent or ``enabled: false``. Its precision is resolved
    for its device (``auto``: ragops.encode.models.training_precision), so a training key holds the arithmetic."""
    if not ce or not ce.get("enabled", True):
        return None
    from ragops.encode.models import training_precision

    device = str(ce.get("device", "cpu"))
    return CrossEncoderConfig(
        epochs=int(ce["epochs"]),
        lr=float(ce["lr"]),
        head_lr=float(ce["head_lr"]),
        batch_size=int(ce["batch_size"]),
        max_length=int(ce["max_length"]),
        top_k=int(ce["top_k"]),
        threads=int(ce["threads"]),
        seed=seed,
        device=device,
        precision=training_precision(str(ce.get("precision", "fp32")), device),
        corpus_claims=int(ce.get("corpus_claims", 0)),
        corpus_source=str(ce.get("corpus_source", "both")),
        corpus_nei=bool(ce.get("corpus_nei", False)),
        negate_evidence=bool(ce.get("negate_evidence", False)),
        group_by_length=bool(ce.get("group_by_length", False)),  # absent (an older params file): random batches
        attention_dropout=_dropout(ce.get("attention_dropout")),  # absent: the model's own
        hidden_dropout=_dropout(ce.get("hidden_dropout")),
    )


def _dropout(p: Any) -> float | None:
    return None if p is None else float(p)


def evidence(sentences: Sequence[str], idx: Sequence[int]) -> str:
    return " ".join(sentences[i] for i in sorted(idx) if 0 <= i < len(sentences))


def training_examples(
    pairs: Sequence[Pair],
    sentences: dict[str, list[str]],
    order: dict[tuple[str, str], list[int]],
    seed: int,
    negate_evidence: bool = False,
) -> list[tuple[str, str, int]]:
    """(claim, evidence text, label index into LABELS). ``order[(claim_id, doc_id)]``: the document's
    sentence indices, most similar to the claim first (the inference-time choice, for NEI examples).

    With ``negate_evidence``, a rationale holding a direction word the claim shares (ragops.answer.negate
    ``swap_aligned``: "lower" where the claim says "lower" or "higher") also gives the claim against the
    rationale with that word flipped (opposite label) and the negated claim against it (label kept): all
    four of claim/negation x evidence/flipped, so a claim's wording is as often supported as contradicted
    and only its agreement with the evidence tells them apart."""
    nei, sup, con = (LABELS.index(x) for x in ("NEI", "SUPPORT", "CONTRADICT"))
    out: list[tuple[str, str, int]] = []
    for p in pairs:
        sents, ranked = sentences.get(p.doc_id, []), order.get((p.claim_id, p.doc_id), [])
        if not sents or not ranked:
            continue
        if p.label == "NEI":
            out += [(p.claim, evidence(sents, ranked[:1]), nei), (p.claim, evidence(sents, ranked[:2]), nei)]
            continue
        label, flipped = (sup, con) if p.label == "SUPPORT" else (con, sup)
        for rationale in p.rationales:
            text = evidence(sents, rationale[:3])
            neg = negate(p.claim)
            out += [(p.claim, text, label), (neg, text, flipped)]
            flipped_text = swap_aligned(text, p.claim) if negate_evidence else None
            if flipped_text:
                out += [(p.claim, flipped_text, flipped), (neg, flipped_text, label)]
            if label == sup and add_negation(p.claim) != neg:  # a second contradiction of the same evidence
                out.append((add_negation(p.claim), text, con))
        used = {i for r in p.rationales for i in r}
        rest = [i for i in ranked if i not in used]
        if rest:
            out.append((p.claim, sents[rest[-1]], nei))
    random.Random(seed).shuffle(out)
    return out


class GroundingCrossEncoder:
    """MiniLM over "[CLS] claim [SEP] evidence [SEP]", mean-pooled, then a linear 3-label head."""

    def __init__(self, encoder: Any, tokenizer: Any, head: Any, max_length: int, top_k: int) -> None:
        self.encoder, self.tokenizer, self.head = encoder, tokenizer, head
        self.max_length, self.top_k = max_length, top_k
        # A fast tokenizer is not safe to call from several threads at once ("Already borrowed"), and
        # Answerer.ask must be: one claim batch at a time through the model.
        self._lock = threading.Lock()

    def logits(self, claims: Sequence[str], texts: Sequence[str]) -> Any:
        # longest_first, not only_second: an answer's claim can itself exceed max_length (the evidence
        # is the longer side in training, so both truncate the same way there)
        feats = self.tokenizer(
            list(claims), list(texts), truncation="longest_first", max_length=self.max_length,
            padding=True, return_tensors="pt",
        ).to(self.head.weight.device)  # fmt: skip
        hidden = self.encoder(**feats).last_hidden_state
        mask = feats["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return self.head((hidden * mask).sum(1) / mask.sum(1))

    def probs(self, claims: Sequence[str], texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """[n, 3] probabilities in LABELS order."""
        import torch

        if not claims:
            return np.zeros((0, len(LABELS)))
        self.encoder.eval()
        out = []
        with self._lock, torch.no_grad():
            for b in range(0, len(claims), batch_size):
                out.append(torch.softmax(self.logits(claims[b : b + batch_size], texts[b : b + batch_size]), -1))
        return torch.cat(out).float().cpu().numpy().astype(np.float64)

    def save(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        self.encoder.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, folder / HEAD_FILE)

    @staticmethod
    def load(folder: str | Path, max_length: int, top_k: int) -> GroundingCrossEncoder:
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        from ragops.encode.models import offline_env

        offline_env()
        folder = Path(folder)
        encoder = AutoModel.from_pretrained(str(folder), local_files_only=True)
        head = torch.nn.Linear(encoder.config.hidden_size, len(LABELS))
        head.load_state_dict(load_file(folder / HEAD_FILE))
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        return GroundingCrossEncoder(encoder.eval(), tok, head.eval(), max_length, top_k)


def train_cross_encoder(
    base_path: str | Path,
    examples: Sequence[tuple[str, str, int]],
    cfg: CrossEncoderConfig,
    on_epoch: Callable[[int, GroundingCrossEncoder], None] | None = None,
) -> tuple[GroundingCrossEncoder, dict[str, Any]]:
    """Fine-tune the encoder at ``base_path``: AdamW, linear warmup (10%) and decay. The head is new unless
    ``base_path`` holds one (a saved GroundingCrossEncoder: ragops.answer.nli_pretrain's output). A label
    :data:`NOT_SUPPORT` is trained by :func:`loss`. ``on_epoch(epoch, model)`` after each epoch
    (bench/grounding_ce_holdout.py evaluates there)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from ragops.encode.models import adamw, autocast, checked_device, offline_env, set_dropout

    offline_env()
    checked_device(cfg.device, "grounding.cross_encoder.device")
    torch.set_num_threads(max(1, cfg.threads))
    torch.manual_seed(cfg.seed)
    encoder = AutoModel.from_pretrained(str(base_path), local_files_only=True)
    set_dropout(encoder, cfg.attention_dropout, cfg.hidden_dropout, "grounding.cross_encoder")
    tok = AutoTokenizer.from_pretrained(str(base_path), local_files_only=True)
    head = torch.nn.Linear(encoder.config.hidden_size, len(LABELS))
    if (Path(base_path) / HEAD_FILE).is_file():
        from safetensors.torch import load_file

        head.load_state_dict(load_file(Path(base_path) / HEAD_FILE))
    encoder, head = encoder.to(cfg.device), head.to(cfg.device)
    model = GroundingCrossEncoder(encoder, tok, head, cfg.max_length, cfg.top_k)
    opt = adamw([{"params": encoder.parameters(), "lr": cfg.lr}, {"params": head.parameters(), "lr": cfg.head_lr}],
                cfg.lr)
    steps = cfg.epochs * -(-len(examples) // cfg.batch_size)
    warm = max(1, int(0.1 * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, s / warm) * max(0.0, (steps - s) / steps))
    params = list(encoder.parameters()) + list(head.parameters())
    order, rng, losses, t0 = list(range(len(examples))), random.Random(cfg.seed), [], time.perf_counter()
    # each pair's token count as the model reads it (claim + evidence, truncated at max_length)
    lengths = [len(ids) for ids in tok([x[0] for x in examples], [x[1] for x in examples],
                                       truncation="longest_first", max_length=cfg.max_length)["input_ids"]
               ] if examples else []  # fmt: skip
    from ragops.logs import Progress

    progress, done = Progress(logging.getLogger("ragops.grounding"), "grounding cross-encoder", steps), 0
    padded = 0
    encoder.train()
    for _ in range(cfg.epochs):
        total = 0.0
        for idx in epoch_batches(order, lengths, cfg.batch_size, rng, cfg.group_by_length):
            batch = [examples[i] for i in idx]
            padded += max(lengths[i] for i in idx) * len(idx)
            with autocast(cfg.precision, cfg.device):  # bf16: the forward only; the loss in fp32
                logits = model.logits([x[0] for x in batch], [x[1] for x in batch]).float()
            loss = batch_loss(logits, [x[2] for x in batch])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            total += float(loss.detach()) * len(batch)
            done += 1
            progress.step(done, float(loss.detach()))
        losses.append(round(total / max(1, len(examples)), 4))
        if on_epoch is not None:
            on_epoch(len(losses) - 1, model)
            encoder.train()
    encoder.eval()
    model.encoder, model.head = encoder.cpu(), head.cpu()
    # padding: the tokens the batches held (padded to their longest) over the examples' own tokens
    return model, {"examples": len(examples), "epoch_loss": losses, "seconds": round(time.perf_counter() - t0, 1),
                   "precision": cfg.precision,
                   "padding": round(padded / max(1, cfg.epochs * sum(lengths)), 3)}  # fmt: skip


def batch_loss(logits: Any, labels: Sequence[int]) -> Any:
    """Mean negative log-likelihood: of the label for one in LABELS, of NEI or CONTRADICT for NOT_SUPPORT."""
    import torch

    logp = torch.log_softmax(logits, -1)
    nei, con = LABELS.index("NEI"), LABELS.index("CONTRADICT")
    target = torch.tensor([min(y, nei) if y == NOT_SUPPORT else y for y in labels], device=logits.device)
    picked = logp.gather(1, target[:, None])[:, 0]
    either = torch.logsumexp(logp[:, [nei, con]], -1)
    partial = torch.tensor([y == NOT_SUPPORT for y in labels], device=logits.device)
    return -torch.where(partial, either, picked).mean()


CE_FEATURES = ("ce_top1_support", "ce_top1_contradict", "ce_topk_support", "ce_topk_contradict")


def ce_features(model: GroundingCrossEncoder, claims: Sequence[str], ranked: Sequence[Sequence[str]]) -> np.ndarray:
    """[n, 4]: P(SUPPORT), P(CONTRADICT) of each claim against its most similar sentence and against
    its ``top_k`` most similar ones joined. ``ranked[i]``: claim i's sentences, most similar first."""
    sup, con = LABELS.index("SUPPORT"), LABELS.index("CONTRADICT")
    rows = [i for i, r in enumerate(ranked) if r]
    out = np.zeros((len(claims), len(CE_FEATURES)))
    if rows:
        cs = [claims[i] for i in rows]
        p1 = model.probs(cs, [ranked[i][0] for i in rows])
        pk = model.probs(cs, [" ".join(ranked[i][: model.top_k]) for i in rows])
        out[rows] = np.stack([p1[:, sup], p1[:, con], pk[:, sup], pk[:, con]], axis=1)
    return out
