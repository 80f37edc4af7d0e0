"""The model registry: versions of the packaged retriever, the aliases that serving follows, and
the gate's decisions written as version tags.

Every new version gets the alias ``challenger``; it gets ``champion`` only when the gate
(:func:`ragops.registry.gate.gate`) lets it, or with ``force``. Per-query scores come from each version's own
run (its ``per_query.csv`` artifact) in the mode that version serves (its ``served_mode`` tag), so the
champion is judged on what it scored, serving what it serves, when it was logged. Each version also
carries the fingerprint of the evaluation set it was scored on (``data.fingerprint``): scores of two
different evaluation sets are never paired (a collection numbered 1, 2, 3, … shares query ids with
SciFact's test split), the gate refuses and says why.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ragops.errors import ConfigError
from ragops.registry.gate import GateDecision, gate
from ragops.registry.tracking import RegistryConfig

CHAMPION, CHALLENGER = "champion", "challenger"
PER_QUERY_ARTIFACT = "per_query.csv"
MODE_TAG, DATA_TAG = "served_mode", "data.fingerprint"


@dataclass(frozen=True)
class VersionInfo:
    """One row of `ragops models`."""

    version: int
    aliases: list[str]
    created: str
    run_id: str | None
    mode: str  # the mode it serves
    score: float | None  # the version's own mean of the gate metric (split/its mode) when logged
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


def data_fingerprint(queries: pd.DataFrame, qrels: pd.DataFrame, split: str) -> str:
    """sha256 of an evaluation set: the ``split``'s query ids and texts and their judgments. Two runs
    with the same fingerprint were scored on the same questions against the same answers."""
    sub = qrels[qrels["split"] == split].sort_values(["query_id", "doc_id"])
    text = dict(zip(queries["query_id"].astype(str), queries["text"].astype(str), strict=True))
    h = hashlib.sha256(split.encode())
    for q, d, score in zip(sub["query_id"].astype(str), sub["doc_id"].astype(str), sub["score"], strict=True):
        h.update(f"{q}\t{text.get(q, '')}\t{d}\t{int(score)}\n".encode())
    return h.hexdigest()


def version_mode(mv, default: str = "hybrid") -> str:
    """The mode a registered version serves: its ``served_mode`` tag; versions logged before the tag
    existed said it in ``score.metric`` (split/mode/metric), else they served ``default``."""
    tags = dict(mv.tags or {})
    if tags.get(MODE_TAG):
        return str(tags[MODE_TAG])
    parts = str(tags.get("score.metric", "")).split("/")
    return parts[1] if len(parts) == 3 and parts[1] else default


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


def run_per_query(client, run_id: str | None, cfg: RegistryConfig, mode: str) -> dict[str, float] | None:
    """The gate metric per query of a version's run in ``mode`` (None when the run has no such rows)."""
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    with tempfile.TemporaryDirectory(prefix="ragops-perquery-") as tmp:
        try:
            path = client.download_artifacts(run_id, PER_QUERY_ARTIFACT, tmp)
        except (MlflowException, OSError):
            return None
        return read_per_query(path, cfg.split, mode, cfg.metric) or None


def decide(client, cfg: RegistryConfig, challenger: dict[str, float], champion, mode: str,
           fingerprint: str | None = None) -> GateDecision:
    """Run the gate of ``cfg`` for ``challenger`` scores (serving ``mode``, evaluated on the set with
    ``fingerprint``) against the ``champion`` version (or None) in the mode it serves."""
    args = {"tolerance": cfg.tolerance, "alpha": cfg.alpha, "method": cfg.test, "n_resamples": cfg.n_resamples}
    if champion is None:
        return gate(challenger, None, **args)
    champ_mode = version_mode(champion)
    champ_fp = dict(champion.tags or {}).get(DATA_TAG)
    if fingerprint and champ_fp and fingerprint != champ_fp:
        blocked = gate(challenger, {}, **args)
        reason = (f"evaluated on another data set than champion v{champion.version} ({cfg.split} fingerprint "
                  f"{fingerprint[:12]} vs {champ_fp[:12]}): per-query scores of different question sets cannot "
                  "be paired; nothing compared (use --force to promote anyway)")
        return replace(blocked, reason=reason)
    champ_scores = run_per_query(client, champion.run_id, cfg, champ_mode)
    if champ_scores is None:
        blocked = gate(challenger, {}, **args)
        reason = (f"champion v{champion.version} has no per-query {cfg.metric} for {cfg.split}/{champ_mode}: "
                  "nothing to compare (use --force)")
        return replace(blocked, reason=reason)
    decision = gate(challenger, champ_scores, **args)
    if champ_mode == mode:
        return decision
    return replace(decision, reason=f"{mode} vs champion's {champ_mode}: {decision.reason}")


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def record_decision(client, name: str, version: str, cfg: RegistryConfig, decision: GateDecision,
                    champion: str | None, forced: bool = False, mode: str = "hybrid",
                    champion_mode: str | None = None) -> dict[str, str]:
    """Write the decision as tags of ``version``; returns the tags."""
    tags = {
        "gate.decision": "forced" if forced else ("promote" if decision.promote else "block"),
        "gate.reason": decision.reason,
        "gate.metric": f"{cfg.split}/{mode}/{cfg.metric}",
        "gate.champion_mode": champion_mode or "",
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
            mode=version_mode(mv),
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
    mode = version_mode(mv)
    scores = run_per_query(client, mv.run_id, cfg, mode)
    if scores is None and not force:
        raise ConfigError(f"v{mv.version} has no per-query {cfg.metric} for {cfg.split}/{mode} "
                          "in its run: the gate cannot judge it (use --force)")
    champion = get_version(client, name, previous) if previous is not None else None
    decision = decide(client, cfg, scores or {}, champion, mode, dict(mv.tags or {}).get(DATA_TAG))
    if force:  # the gate still runs, so the tags say what it would have decided
        over = f" over v{previous}" if previous else ""
        decision = replace(decision, reason=f"forced{over}; the gate said: {decision.reason}")
    record_decision(client, name, str(mv.version), cfg, decision, previous, forced=force, mode=mode,
                    champion_mode=version_mode(champion) if champion is not None else None)
    promoted = force or decision.promote
    if promoted:
        set_alias(client, name, CHAMPION, str(mv.version))
    return Promotion(str(mv.version), previous, promoted, force, decision)
