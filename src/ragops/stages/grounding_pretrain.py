"""Stage `grounding_pretrain`: the grounding cross-encoder's intermediate training on the ``nli/`` pairs
(ragops.answer.nli_pretrain) -> models/grounding_pretrain/ and reports/grounding_pretrain.json.

Reads the copy ``ragops data fetch`` placed (``grounding.pretrain.data``, hash-checked then, DVC-tracked since).
The model is kept while its training key (settings, data files, code) is unchanged, like the retrieval
models. With ``grounding.pretrain.enabled: false``, or without the data folder, it writes only a marker and
the `grounding` stage starts from the plain MiniLM. Without labelled claims to fine-tune on (prepare's copy
lacks ``grounding.train_file``, ``eval_file`` or ``sentences_file``: a team's own documents, most BEIR folders)
the `grounding` stage trains no scorer, so nothing would read a new model: it trains none and writes only a
marker, unless a model trained under the same key is already there, which it keeps for when the claims return
(a switch of ``data.source`` and back costs no pretraining; DVC's run cache does not restore persisted outputs).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ragops.answer.cross_encoder import cross_encoder_config
from ragops.answer.nli_pretrain import PretrainConfig, pretrain
from ragops.dagdeps import training_code
from ragops.encode.models import resolve_model
from ragops.errors import ConfigError
from ragops.io import atomic_dir, write_json
from ragops.timing import run_stage
from ragops.training.artifacts import MARKER, content_key, reusable, write_skipped

log = logging.getLogger("ragops.grounding_pretrain")
CODE = training_code("grounding_pretrain")


def config(params: dict[str, Any]) -> PretrainConfig:
    """``grounding.pretrain`` as a config; its cross-encoder settings are ``grounding.cross_encoder``'s with
    the pretraining's own epochs, learning rates and batch size."""
    pre, seed = params["grounding"]["pretrain"], int(params["seed"])
    ce = {**params["grounding"]["cross_encoder"], "enabled": True,
          **{k: pre[k] for k in ("epochs", "lr", "head_lr", "batch_size")}}
    base = cross_encoder_config(ce, seed)
    assert base is not None
    return PretrainConfig(
        sources=tuple(pre["sources"]), max_pairs={k: int(v) for k, v in (pre.get("max_pairs") or {}).items()},
        holdout=float(pre["holdout"]), seed=seed, cross_encoder=base,
    )  # fmt: skip


def data_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def training_key(params: dict[str, Any]) -> str:
    """The model's training key: its settings (``grounding.pretrain`` but the folder, the cross-encoder's), the
    data files and the training code."""
    pre, cfg = params["grounding"]["pretrain"], config(params)
    settings = {"pretrain": {k: v for k, v in pre.items() if k != "data"}, "seed": cfg.seed,
                "cross_encoder": cfg.cross_encoder.__dict__, "embed_model": params["embed"]["model"]}
    return content_key(settings, data_files(Path(pre["data"])), CODE)


def unlabelled(params: dict[str, Any]) -> list[str]:
    """prepare's copies of the labelled claims that are missing: any, and the grounding stage fits no scorer."""
    g, folder = params["grounding"], Path(params["paths"]["claims"])
    return [str(folder / g[k]) for k in ("train_file", "eval_file", "sentences_file") if not (folder / g[k]).is_file()]


def skip(params: dict[str, Any], reason: str) -> None:
    paths = params["paths"]
    write_skipped(paths["grounding_pretrained"], reason)
    write_json(paths["grounding_pretrain_report"], {"trained": False, "reason": reason})


def main(params: dict[str, Any]) -> None:
    pre, paths = params["grounding"]["pretrain"], params["paths"]
    out, report = paths["grounding_pretrained"], paths["grounding_pretrain_report"]
    folder = Path(pre["data"])
    if not pre["enabled"] or not folder.is_dir() or not data_files(folder):
        reason = "grounding.pretrain.enabled is false" if not pre["enabled"] else f"no files in {folder}"
        log.info("grounding_pretrain: %s; the grounding stage starts from %s", reason, params["embed"]["model"])
        skip(params, reason)
        return
    key, policy = training_key(params), str(params["train"]["retrain"])
    missing = unlabelled(params)
    if missing:  # nothing would read a new model; one trained under this key stays for when the claims return
        if reusable(out, key, policy):
            log.info("grounding_pretrain: no labelled claims (%s not found): the model is kept, unused",
                     ", ".join(missing))
            return
        log.info("grounding_pretrain: no labelled claims (%s not found): nothing to pretrain for", ", ".join(missing))
        skip(params, f"no labelled claims to fine-tune on ({', '.join(missing)} not found)")
        return
    if reusable(out, key, policy):
        log.info("grounding_pretrain: model kept: its training key is unchanged (RAGOPS_RETRAIN=1 retrains)")
        return
    if folder.name != "nli":
        raise ConfigError(f"grounding.pretrain.data must name a folder called nli (as placed by `ragops data "
                          f"fetch --name nli`), got {folder}")
    # nli_data reads <mirror>/nli/<source files>: the placed folder's parent plays the mirror
    model, record = pretrain(folder.parent, resolve_model(params["embed"]["model"]), config(params))
    with atomic_dir(out) as tmp:
        model.save(tmp)
        write_json(tmp / MARKER, {"trained": True, "train_key": key, **record})
    write_json(report, {"trained": True, **record})
    log.info("grounding_pretrain: %d pairs, holdout %s", record["train_pairs"], record["holdout"])


if __name__ == "__main__":
    run_stage("grounding_pretrain", main)
