"""Stage `register`: the evaluation as an MLflow run, the retriever as a registered pyfunc model,
and the gate that decides whether the new version (alias ``challenger``) becomes ``champion``.

Reads metrics.json, per_query.csv, plots/, the indexes, chunks, docs and embed_stats.json; writes
``paths.registry`` (version, aliases, decision). A blocked challenger is a normal outcome, not a failure.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from ragops import registry
from ragops.artifacts import fusion_config
from ragops.errors import ConfigError
from ragops.io import read_json, write_json
from ragops.models import resolve_model
from ragops.plots import render_plots
from ragops.pyfunc import ModelFiles, log_retriever_model, packaged_config
from ragops.timing import DEFAULT_DIR, read_stage_times, run_stage
from ragops.tracking import RegistryConfig, connect, experiment_id, lineage_tags, log_evaluation, resolve_store

log = logging.getLogger("ragops.register")


def main(params: dict[str, Any]) -> None:
    paths, cfg, root = params["paths"], RegistryConfig.from_params(params.get("registry")), Path.cwd()
    scores = registry.read_per_query(paths["per_query"], cfg.split, cfg.mode, cfg.metric)
    if not scores:
        raise ConfigError(f"{paths['per_query']}: no {cfg.metric} for split {cfg.split!r} and mode {cfg.mode!r}; "
                          "evaluate them (evaluate.splits, evaluate.modes) or change registry.split/mode")
    store = resolve_store(cfg, root)
    client = connect(store)
    exp = experiment_id(client, cfg.experiment, store.artifact_location)
    stats = read_json(paths["embed_stats"]) if Path(paths["embed_stats"]).exists() else {}
    t0 = time.perf_counter()
    with mlflow.start_run(experiment_id=exp) as run:
        log_run(params, root, stats)
        t1 = time.perf_counter()
        files = ModelFiles(resolve_model(params["embed"]["model"]), Path(paths["faiss"]), Path(paths["bm25"]),
                           Path(paths["chunks"]), Path(paths["docs"]))
        config = packaged_config(params["embed"], params.get("retrieve", {}), fusion_config(params), cfg.mode,
                                 cfg.k, stats.get("model_id"))
        version = str(log_retriever_model(files, config, cfg.model_name).registered_model_version)
        t2 = time.perf_counter()
        summary = gate_version(client, cfg, version, scores)
        timings = {"register_log": t1 - t0, "register_model": t2 - t1, "register_gate": time.perf_counter() - t2}
        mlflow.log_metrics({f"timing/{k}_s": round(v, 3) for k, v in timings.items()})
        mlflow.set_tags({f"gate.{k}": str(v) for k, v in summary["decision"].items()})
    summary.update(run_id=run.info.run_id, experiment=cfg.experiment, tracking_uri=store.display_uri,
                   timings={k: round(v, 3) for k, v in timings.items()})
    write_json(paths["registry"], summary)
    log.info("run %s in experiment %r; %s", run.info.run_id, cfg.experiment, summary["timings"])
    print_summary(summary)


def log_run(params: dict[str, Any], root: Path, embed_stats: dict[str, Any]) -> None:
    """Params, metrics, per-query table, plots (DVC's data and rendered images), lineage, stage times."""
    paths = params["paths"]
    # Register's own record is of its previous run: this run's parts are logged by main().
    stage_times = {k: v for k, v in read_stage_times(paths.get("stage_times", DEFAULT_DIR)).items() if k != "register"}
    timings = {stage: rec["seconds"] for stage, rec in stage_times.items()}
    if "seconds" in embed_stats:  # the embed stage's own measure of encoding (cache look-ups included)
        timings["embed_encode"] = float(embed_stats["seconds"])
    data = {k: paths[k] for k in ("docs", "queries", "qrels", "chunks") if k in paths}
    tags = {**lineage_tags(root, data), "ragops.stage": "register", "embed.model_id": str(embed_stats.get("model_id"))}
    with tempfile.TemporaryDirectory(prefix="ragops-plots-") as images:
        render_plots(pd.read_csv(paths["per_query"], dtype={"query_id": str}), Path(images))
        files = [("", paths["per_query"]), ("", paths["metrics"]), ("plots", paths["plots"]), ("plots", images),
                 ("lineage", root / "dvc.lock"), ("lineage", paths["embed_stats"])]
        log_evaluation(params, read_json(paths["metrics"]), files, tags, timings)
    mlflow.log_dict(stage_times, "lineage/stage_times.json")


def gate_version(client, cfg: RegistryConfig, version: str, scores: dict[str, float]) -> dict[str, Any]:
    """Alias ``challenger`` on the new version, the gate against the champion, tags, maybe ``champion``."""
    name = cfg.model_name
    registry.set_alias(client, name, registry.CHALLENGER, version)
    client.set_model_version_tag(name, version, "score", f"{sum(scores.values()) / len(scores):.6f}")
    client.set_model_version_tag(name, version, "score.metric", f"{cfg.split}/{cfg.mode}/{cfg.metric}")
    champion = registry.champion_version(client, name)
    decision = registry.decide(client, cfg, scores, champion)
    previous = str(champion.version) if champion is not None else None
    registry.record_decision(client, name, version, cfg, decision, previous)
    if decision.promote:
        registry.set_alias(client, name, registry.CHAMPION, version)
    return {"model_name": name, "version": int(version), "model_uri": f"models:/{name}/{version}",
            "promoted": decision.promote, "previous_champion": int(previous) if previous else None,
            "aliases": registry.aliases(client, name), "decision": decision.as_dict()}


def print_summary(s: dict[str, Any]) -> None:
    d = s["decision"]
    verdict = "PROMOTED to champion" if s["promoted"] else f"NOT promoted (champion stays v{s['previous_champion']})"
    champ = "none" if d["champion"] is None else f"{d['champion']:.4f} (v{s['previous_champion']})"
    p_value = "n/a" if d["p_value"] is None else f"{d['p_value']:.4g}"
    print(f"{s['model_name']} v{s['version']}: {verdict}\n"
          f"  challenger {d['challenger']:.4f}  champion {champ}  p={p_value} ({d['method']}, "
          f"n={d['n_queries']}, tolerance {d['tolerance']:g}, alpha {d['alpha']:g})\n"
          f"  reason: {d['reason']}\n  aliases: {s['aliases']}  store: {s['tracking_uri']}", flush=True)


if __name__ == "__main__":
    run_stage("register", main)
