"""The model registry: versions of the packaged retriever, the aliases that serving follows, and
the gate's decisions written as version tags.

Every new version gets the alias ``challenger``; it gets ``champion`` only when the gate
(:func:`ragops.gate.gate`) lets it, or with ``force``. Per-query scores come from each version's own
run (its ``per_query.csv`` artifact), so the champion is judged on what it scored when it was logged.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ragops.errors import ConfigError
from ragops.gate import GateDecision, gate
from ragops.tracking import RegistryConfig

CHAMPION, CHALLENGER = "champion", "challenger"
PER_QUERY_ARTIFACT = "per_query.csv"


@dataclass(frozen=True)
class VersionInfo:
    """One row of `ragops models`."""

    version: int
    aliases: list[str]
    created: str
    run_id: str | None
    score: float | None  # the version's own mean of the gate metric (split/mode) when logged
    decision: str | None
    champion_score: float | None
    p_value: float | None
    reason: str | None


def read_per_query(path: str | Path, split: str, mode: str, metric: str) -> dict[str, float]:
    """``{query_id: value}`` of ``metric`` for ``split`` and ``mode`` from a per_query.csv."""
    table = pd.read_csv(path, dtype={"query_id": str, "split": str, "mode": str})
    if metric not in table.columns:
        return {}
    rows = table[(table["split"] == split) & (table["mode"] == mode)]
    return dict(zip(rows["query_id"], rows[metric].astype(float), strict=True))


def _missing(exc: Exception) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


def aliases(client, name: str) -> dict[str, str]:
    """``{alias: version}`` of registered model ``name`` (empty when it does not exist yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return {alias: str(v) for alias, v in (client.get_registered_model(name).aliases or {}).items()}
    except MlflowException as exc:
        if _missing(exc):
            return {}
        raise


def get_version(client, name: str, version: int | str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, str(version))
    except MlflowException as exc:
        if _missing(exc):
            raise ConfigError(f"model {name!r} has no version {version} (see `ragops models`)") from None
        raise


def champion_version(client, name: str):
    """The version holding the ``champion`` alias, or None."""
    version = aliases(client, name).get(CHAMPION)
    return get_version(client, name, version) if version is not None else None


def run_per_query(client, run_id: str | None, cfg: RegistryConfig) -> dict[str, float] | None:
    """The gate metric per query of a version's run (None when the run has no per-query table)."""
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    with tempfile.TemporaryDirectory(prefix="ragops-perquery-") as tmp:
        try:
            path = client.download_artifacts(run_id, PER_QUERY_ARTIFACT, tmp)
        except (MlflowException, OSError):
            return None
        return read_per_query(path, cfg.split, cfg.mode, cfg.metric) or None


def decide(client, cfg: RegistryConfig, challenger: dict[str, float], champion) -> GateDecision:
    """Run the gate of ``cfg`` for ``challenger`` scores against the ``champion`` version (or None)."""
    args = {"tolerance": cfg.tolerance, "alpha": cfg.alpha, "method": cfg.test, "n_resamples": cfg.n_resamples}
    if champion is None:
        return gate(challenger, None, **args)
    champ_scores = run_per_query(client, champion.run_id, cfg)
    if champ_scores is None:
        blocked = gate(challenger, {}, **args)
        reason = (f"champion v{champion.version} has no per-query {cfg.metric} for {cfg.split}/{cfg.mode}: "
                  "nothing to compare (use --force)")
        return replace(blocked, reason=reason)
    return gate(challenger, champ_scores, **args)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def record_decision(client, name: str, version: str, cfg: RegistryConfig, decision: GateDecision,
                    champion: str | None, forced: bool = False) -> dict[str, str]:
    """Write the decision as tags of ``version``; returns the tags."""
    tags = {
        "gate.decision": "forced" if forced else ("promote" if decision.promote else "block"),
        "gate.reason": decision.reason,
        "gate.metric": f"{cfg.split}/{cfg.mode}/{cfg.metric}",
        "gate.challenger_score": _fmt(decision.challenger),
        "gate.champion_score": _fmt(decision.champion),
        "gate.champion_version": champion or "",
        "gate.delta": _fmt(decision.delta),
        "gate.p_value": _fmt(decision.p_value),
        "gate.n_queries": str(decision.n_queries),
        "gate.test": decision.method,
        "gate.tolerance": f"{decision.tolerance:g}",
        "gate.alpha": f"{decision.alpha:g}",
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return tags


def set_alias(client, name: str, alias: str, version: str) -> None:
    client.set_registered_model_alias(name, alias, str(version))


def list_versions(client, name: str) -> list[VersionInfo]:
    """Every version of ``name``, newest first, with aliases and the scores its tags hold."""
    import time

    held = aliases(client, name)
    by_version: dict[str, list[str]] = {}
    for alias, version in held.items():
        by_version.setdefault(str(version), []).append(alias)
    rows = []
    for mv in client.search_model_versions(f"name = '{_quote(name)}'"):
        tags: dict[str, Any] = dict(mv.tags or {})
        rows.append(VersionInfo(
            version=int(mv.version),
            aliases=sorted(by_version.get(str(mv.version), [])),
            created=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(mv.creation_timestamp) / 1000)),
            run_id=mv.run_id,
            score=_float(tags.get("score")),
            decision=tags.get("gate.decision"),
            champion_score=_float(tags.get("gate.champion_score")),
            p_value=_float(tags.get("gate.p_value")),
            reason=tags.get("gate.reason"),
        ))
    return sorted(rows, key=lambda r: -r.version)


def _quote(name: str) -> str:
    return name.replace("'", "\\'")


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Promotion:
    version: str
    previous: str | None  # the champion before
    promoted: bool
    forced: bool
    decision: GateDecision | None  # None when it was champion already


def promote(client, cfg: RegistryConfig, version: int | str | None = None, force: bool = False) -> Promotion:
    """Make ``version`` (default: the ``challenger``, else the newest) champion if the gate allows it,
    or unconditionally with ``force``. The decision is written as tags of ``version``."""
    name = cfg.model_name
    held = aliases(client, name)
    if version is None:
        latest = list_versions(client, name)
        if not latest:
            raise ConfigError(f"model {name!r} has no version yet: run the pipeline (`dvc repro`) first")
        version = held.get(CHALLENGER, latest[0].version)
    mv = get_version(client, name, version)
    previous = held.get(CHAMPION)
    if previous == str(mv.version):
        return Promotion(str(mv.version), previous, True, force, None)
    scores = run_per_query(client, mv.run_id, cfg)
    if scores is None and not force:
        raise ConfigError(f"v{mv.version} has no per-query {cfg.metric} for {cfg.split}/{cfg.mode} "
                          "in its run: the gate cannot judge it (use --force)")
    champion = get_version(client, name, previous) if previous is not None else None
    decision = decide(client, cfg, scores or {}, champion)
    if force:  # the gate still runs, so the tags say what it would have decided
        over = f" over v{previous}" if previous else ""
        decision = replace(decision, reason=f"forced{over}; the gate said: {decision.reason}")
    record_decision(client, name, str(mv.version), cfg, decision, previous, forced=force)
    promoted = force or decision.promote
    if promoted:
        set_alias(client, name, CHAMPION, str(mv.version))
    return Promotion(str(mv.version), previous, promoted, force, decision)
