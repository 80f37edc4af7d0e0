"""Stage `register`: the evaluation as an MLflow run, the trained pipeline as a registered pyfunc model,
and the gate that decides whether the new version (alias ``challenger``) becomes ``champion``.

The package carries every part of every mode the build has models for (``ragops.retrieval.load.PARTS``) and
serves the mode chosen by ``registry.mode`` (``auto``: the best dev nDCG@10 within ``max_p95_ms``;
``ragops.registry.served_mode``). The gate compares that mode's per-query scores with the champion's own served
mode's, on the same evaluation set only (``data.fingerprint``). Under ``dvc exp run`` the run is logged
but nothing is registered or promoted unless ``registry.experiments: register``: an experiment is a
question, not a release. Reads metrics.json, per_query.csv, plots/, the models, indexes, chunks and docs;
writes ``paths.registry`` (version, served mode and why, aliases, decision). A blocked challenger is a
normal outcome, not a failure.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from ragops.errors import ConfigError
from ragops.eval.plots import render_plots
from ragops.io import read_json, write_json
from ragops.pyfunc import log_pipeline_model
from ragops.recovery import clean_stale_temp, failpoint, lock_path, private_tempdir, reconcile, registry_lock, run_tags
from ragops.registry import versions as registry
from ragops.registry.blobstore import dedup_tree, linked_local_copies, local_path
from ragops.registry.gate import GateDecision, gate
from ragops.registry.package import package_parts
from ragops.registry.served_mode import choose_mode
from ragops.registry.tracking import (
    RegistryConfig,
    connect,
    experiment_id,
    lineage_tags,
    log_evaluation,
    precision_tags,
    resolve_store,
)
from ragops.retrieval.load import available_modes, local_parts, pipeline_config
from ragops.stages.evaluate import NO_JUDGMENTS
from ragops.timing import DEFAULT_DIR, read_stage_times, run_stage

log = logging.getLogger("ragops.register")
EXPERIMENT_ENV = "DVC_EXP_NAME"  # set by `dvc exp run` (also --temp and --queue) for every stage it runs


def main(params: dict[str, Any]) -> None:
    paths, cfg, root = params["paths"], RegistryConfig.from_params(params.get("registry")), Path.cwd()
    carried = available_modes(local_parts(params))
    choice = choose_mode(read_json(paths["metrics"]), cfg.mode, carried, cfg.metric, cfg.select_split, cfg.max_p95_ms)
    mode = choice.mode
    metrics = read_json(paths["metrics"])
    scores = registry.read_per_query(paths["per_query"], cfg.split, mode, cfg.metric)
    if not scores and metrics.get("status") != NO_JUDGMENTS:
        raise ConfigError(f"{paths['per_query']}: no {cfg.metric} for split {cfg.split!r} and mode {mode!r}; "
                          "evaluate them (evaluate.splits, evaluate.modes) or change registry.split/mode")
    fingerprint = registry.data_fingerprint(pd.read_parquet(paths["queries"]), pd.read_parquet(paths["qrels"]),
                                            cfg.split)
    experiment = os.environ.get(EXPERIMENT_ENV, "").strip()
    store = resolve_store(cfg, root)
    client = connect(store)
    clean_stale_temp()
    # one writer at a time (`ragops promote` takes the same lock); a killed register's leftovers are
    # finished first: its runs KILLED, the versions it made but never gated deleted (ragops.recovery)
    with registry_lock(lock_path(store.tracking_uri, root), "register"):
        exp = experiment_id(client, cfg.experiment, store.artifact_location)
        reconcile(client, exp, cfg.model_name)
        summary, run_id = register(params, cfg, client, store.artifact_location, exp, choice, carried, scores,
                                   fingerprint, experiment)
    summary.update(run_id=run_id, experiment=cfg.experiment, tracking_uri=store.display_uri,
                   served_mode=mode, served_mode_reason=choice.reason, mode_candidates=choice.candidates,
                   data_fingerprint=fingerprint, timings={k: round(v, 3) for k, v in summary["timings"].items()})
    write_json(paths["registry"], summary)
    log.info("run %s in experiment %r; %s", run_id, cfg.experiment, summary["timings"])
    print_summary(summary)


def register(params: dict[str, Any], cfg: RegistryConfig, client, artifact_location: str | None, exp: str, choice,
             carried, scores: dict[str, float], fingerprint: str, experiment: str) -> tuple[dict[str, Any], str]:
    """The MLflow run, the packaged version and its gate; returns the summary and the run id."""
    paths, root, mode = params["paths"], Path.cwd(), choice.mode
    stats = read_json(paths["embed_stats"]) if Path(paths["embed_stats"]).exists() else {}
    t0 = time.perf_counter()
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.set_tags(run_tags())
        log_run(params, root, stats)
        mlflow.set_tags({registry.MODE_TAG: mode, "served_mode.reason": choice.reason[:5000],
                         registry.DATA_TAG: fingerprint, "dvc.experiment": experiment or ""})
        mlflow.log_dict(choice.as_dict(), "served_mode.json")
        t1 = time.perf_counter()
        timings = {"register_log": t1 - t0}
        if experiment and cfg.experiments != "register":
            summary = {"registered": False, "model_name": cfg.model_name,
                       "reason": f"dvc exp run ({experiment}): logged, not registered (registry.experiments: "
                                 "register to release experiments)",
                       "aliases": registry.aliases(client, cfg.model_name)}
        else:
            # MLflow's copies of the package are hard links until share_files gives the store its own inodes
            with private_tempdir("package") as tmp, linked_local_copies():
                parts = package_parts(params, Path(tmp), cfg.package)
                config = pipeline_config(params, mode, cfg.k, stats.get("model_id")) | {"modes": list(carried),
                                                                                         "package": cfg.package}
                info = log_pipeline_model(parts, config, cfg.model_name)
                failpoint("register:versioned")  # fault injection (tests): a version exists, no gate yet
            version = str(info.registered_model_version)
            t2 = time.perf_counter()
            disk = share_files(client, info.model_id, artifact_location)
            summary = gate_version(client, cfg, version, scores, mode, fingerprint)
            summary.update(registered=True, package={"modes": list(carried), "weights": cfg.package, **disk})
            timings |= {"register_model": t2 - t1, "register_gate": time.perf_counter() - t2}
            mlflow.set_tags({f"gate.{k}": str(v) for k, v in summary["decision"].items()})
        mlflow.log_metrics({f"timing/{k}_s": round(v, 3) for k, v in timings.items()})
    summary["timings"] = timings
    return summary, run.info.run_id


def share_files(client, model_id: str | None, artifact_location: str | None) -> dict[str, Any]:
    """Hard-link the new version's files to the store's blobs (``ragops.registry.blobstore``): an unchanged model
    costs no disk again. Only on a local artifact store; a tracking server manages its own storage."""
    root = local_path(artifact_location)
    if root is None or not model_id:
        return {"dedup": "skipped (not a local artifact store)"}
    folder = local_path(client.get_logged_model(model_id).artifact_location)
    if folder is None or not folder.is_dir():
        return {"dedup": "skipped (model folder not found)"}
    stats = dedup_tree(folder, root / ".blobs")
    log.info("package: %d files, %.1f MB, %.1f MB new on disk (%d shared with earlier versions)",
             stats.files, stats.bytes_total / 1e6, stats.bytes_new / 1e6, stats.linked)
    return {"dedup": "hard links to .blobs", **stats.as_dict()}


def log_run(params: dict[str, Any], root: Path, embed_stats: dict[str, Any]) -> None:
    """Params, metrics, per-query table, plots (DVC's data and rendered images), lineage, stage times."""
    paths = params["paths"]
    # Register's own record is of its previous run: this run's parts are logged by main().
    stage_times = {k: v for k, v in read_stage_times(paths.get("stage_times", DEFAULT_DIR)).items() if k != "register"}
    timings = {stage: rec["seconds"] for stage, rec in stage_times.items()}
    if "seconds" in embed_stats:  # the embed stage's own measure of encoding (cache look-ups included)
        timings["embed_encode"] = float(embed_stats["seconds"])
    data = {k: paths[k] for k in ("docs", "queries", "qrels", "chunks") if k in paths}
    tags = {**lineage_tags(root, data), **precision_tags(paths), "ragops.stage": "register",
            "embed.model_id": str(embed_stats.get("model_id"))}
    with private_tempdir("plots") as images:
        render_plots(pd.read_csv(paths["per_query"], dtype={"query_id": str}), Path(images))
        files = [("", paths["per_query"]), ("", paths["metrics"]), ("plots", paths["plots"]), ("plots", images),
                 ("lineage", root / "dvc.lock"), ("lineage", paths["embed_stats"])]
        log_evaluation(params, read_json(paths["metrics"]), files, tags, timings)
    mlflow.log_dict(stage_times, "lineage/stage_times.json")


def gate_version(client, cfg: RegistryConfig, version: str, scores: dict[str, float], mode: str,
                 fingerprint: str) -> dict[str, Any]:
    """Alias ``challenger`` on the new version, the gate against the champion, tags, maybe ``champion``."""
    name = cfg.model_name
    registry.set_alias(client, name, registry.CHALLENGER, version)
    client.set_model_version_tag(name, version, registry.MODE_TAG, mode)
    client.set_model_version_tag(name, version, registry.DATA_TAG, fingerprint)
    if scores:
        client.set_model_version_tag(name, version, "score", f"{sum(scores.values()) / len(scores):.6f}")
    client.set_model_version_tag(name, version, "score.metric", f"{cfg.split}/{mode}/{cfg.metric}")
    champion = registry.champion_version(client, name)
    if not scores:
        decision = unjudged_decision(cfg, champion)
    elif champion is not None and dict(champion.tags or {}).get("gate.reason", "").startswith("no judgments"):
        first = gate(scores, None, tolerance=cfg.tolerance, alpha=cfg.alpha, method=cfg.test)
        decision = replace(first, reason=f"champion v{champion.version} was registered without judgments: the first "
                                         "judged version replaces it (the gate compares from now on)")
    else:
        decision = registry.decide(client, cfg, scores, champion, mode, fingerprint)
    previous = str(champion.version) if champion is not None else None
    champion_mode = registry.version_mode(champion) if champion is not None else None
    registry.record_decision(client, name, version, cfg, decision, previous, mode=mode, champion_mode=champion_mode)
    if decision.promote:
        registry.set_alias(client, name, registry.CHAMPION, version)
    return {"model_name": name, "version": int(version), "model_uri": f"models:/{name}/{version}",
            "promoted": decision.promote, "previous_champion": int(previous) if previous else None,
            "champion_mode": champion_mode, "aliases": registry.aliases(client, name),
            "decision": decision.as_dict()}


def unjudged_decision(cfg: RegistryConfig, champion) -> GateDecision:
    """No judgments, so no gate can compare: the first version becomes champion (something must serve);
    a later one stays challenger until there are judgments or someone promotes it (``ragops promote``)."""
    first = champion is None
    reason = (f"no judgments ({NO_JUDGMENTS}): " + (
        "first version, champion so that something serves; later versions need judgments (the search page, "
        "`ragops judge`, `ragops generate-questions`) or `ragops promote`" if first else
        f"nothing to compare with champion v{champion.version}; judge results (the search page, `ragops judge`), "
        "generate questions (`ragops generate-questions`) or promote by hand (`ragops promote`)"))
    return GateDecision(first, reason, None, None, None, None, 0,  # type: ignore[arg-type]  (no score)
                        float(cfg.tolerance), float(cfg.alpha), cfg.test)


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def print_summary(s: dict[str, Any]) -> None:
    if not s.get("registered", True):
        print(f"{s['model_name']}: {s['reason']}; served mode would be {s['served_mode']}", flush=True)
        return
    d = s["decision"]
    verdict = "PROMOTED to champion" if s["promoted"] else f"NOT promoted (champion stays v{s['previous_champion']})"
    champ = "none" if d["champion"] is None else f"{d['champion']:.4f} (v{s['previous_champion']})"
    p_value = "n/a" if d["p_value"] is None else f"{d['p_value']:.4g}"
    print(f"{s['model_name']} v{s['version']} serving {s['served_mode']} ({s['served_mode_reason']}): {verdict}\n"
          f"  challenger {_score(d['challenger'])}  champion {champ}  p={p_value} ({d['method']}, "
          f"n={d['n_queries']}, tolerance {d['tolerance']:g}, alpha {d['alpha']:g})\n"
          f"  reason: {d['reason']}\n  aliases: {s['aliases']}  store: {s['tracking_uri']}", flush=True)


if __name__ == "__main__":
    run_stage("register", main)
