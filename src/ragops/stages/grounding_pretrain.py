"""Stage `grounding_pretrain`: the grounding cross-encoder's intermediate training on the ``nli/`` pairs
(ragops.answer.nli_pretrain) -> models/grounding_pretrain/ and reports/grounding_pretrain.json.

Reads the copy ``ragops data fetch`` placed (``grounding.pretrain.data``, hash-checked then, DVC-tracked since).
The model is kept while its training key (settings, data files, code) is unchanged, like the retrieval
models. With ``grounding.pretrain.enabled: false``, or without the data folder, it writes only a marker and
the `grounding` stage starts from the plain MiniLM. Without labelled claims to fine-tune on (prepare's copy
lacks ``grounding.train_file``, ``eval_file`` or ``sentences_file``: a team's own documents, most BEIR folders)
the `grounding` stage trains no scorer, so nothing would read the model: it writes only a marker too.
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


def main(params: dict[str, Any]) -> None:
    pre, paths = params["grounding"]["pretrain"], params["paths"]
    out, report = paths["grounding_pretrained"], paths["grounding_pretrain_report"]
    folder = Path(pre["data"])
    claims = [Path(paths["claims"]) / params["grounding"][k] for k in ("train_file", "eval_file", "sentences_file")]
    unlabelled = [str(p) for p in claims if not p.is_file()]  # the grounding stage's own test: no claims, no scorer
    if not pre["enabled"] or not folder.is_dir() or not data_files(folder) or unlabelled:
        reason = ("grounding.pretrain.enabled is false" if not pre["enabled"]
                  else f"no files in {folder}" if not folder.is_dir() or not data_files(folder)
                  else f"no labelled claims to fine-tune on ({', '.join(unlabelled)} not found)")
        log.info("grounding_pretrain: %s; %s", reason, "no model trained" if unlabelled and pre["enabled"]
                 else f"the grounding stage starts from {params['embed']['model']}")
        write_skipped(out, reason)
        write_json(report, {"trained": False, "reason": reason})
        return
    cfg = config(params)
    settings = {"pretrain": {k: v for k, v in pre.items() if k != "data"}, "seed": cfg.seed,
                "cross_encoder": cfg.cross_encoder.__dict__, "embed_model": params["embed"]["model"]}
    key = content_key(settings, data_files(folder), CODE)
    if reusable(out, key, str(params["train"]["retrain"])):
        log.info("grounding_pretrain: model kept: its training key is unchanged (RAGOPS_RETRAIN=1 retrains)")
        return
    if folder.name != "nli":
        raise ConfigError(f"grounding.pretrain.data must name a folder called nli (as placed by `ragops data "
                          f"fetch --name nli`), got {folder}")
    # nli_data reads <mirror>/nli/<source files>: the placed folder's parent plays the mirror
    model, record = pretrain(folder.parent, resolve_model(params["embed"]["model"]), cfg)
    with atomic_dir(out) as tmp:
        model.save(tmp)
        write_json(tmp / MARKER, {"trained": True, "train_key": key, **record})
    write_json(report, {"trained": True, **record})
    log.info("grounding_pretrain: %d pairs, holdout %s", record["train_pairs"], record["holdout"])


if __name__ == "__main__":
    run_stage("grounding_pretrain", main)
