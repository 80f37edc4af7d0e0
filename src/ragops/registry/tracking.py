"""MLflow tracking: where the store is, and what an evaluation run logs.

Store resolution: ``MLFLOW_TRACKING_URI`` wins; otherwise ``registry.tracking_uri`` from params
(default ``sqlite:///mlflow.db``, a relative path meaning the project root). For a SQLite store new
experiments keep their artifacts in ``registry.artifact_root`` beside the database (default
``mlartifacts/``); a tracking server decides that itself.

A run logs every param (flattened, secrets dropped), every metric per split and mode under
``<split>/<mode>/<metric>`` (MLflow keys cannot hold ``@``: ``ndcg@10`` -> ``ndcg_at_10``), the
per-query table, metrics.json and plots as artifacts, lineage tags (git commit, dvc.lock and data
hashes) and stage timings. Only this module, the registry module, stages and the CLI touch MLflow.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from ragops.config import flatten
from ragops.errors import ConfigError, unknown_name
from ragops.eval.metrics import PAIRED_TESTS, parse_metric
from ragops.retrieval.pipeline import MODES

# Param names that may hold a credential: never logged, whatever their value.
_SECRET_NAME = re.compile(r"(api[_-]?key|secret|token|passw(or)?d|credential|auth)", re.IGNORECASE)
# Values that look like a provider key (Anthropic/OpenAI "sk-...", or a long opaque string).
_SECRET_VALUE = re.compile(r"^(sk-[\w-]{16,}|[A-Za-z0-9_\-]{40,})$")


EXPERIMENT_POLICIES = ("skip", "register")


PACKAGES = ("serving", "full")  # registry.package: what a version carries (ragops.registry.package)


def check_package(package: str) -> str:
    if package not in PACKAGES:
        raise unknown_name("registry.package", package, PACKAGES)
    return package


@dataclass(frozen=True)
class RegistryConfig:
    """The ``registry:`` section of params.yaml."""

    model_name: str = "ragops-retriever"
    experiment: str = "ragops"
    tracking_uri: str = "sqlite:///mlflow.db"
    artifact_root: str = "mlartifacts"
    # the served mode: a mode name, or auto (the best dev metric within max_p95_ms: ragops.registry.served_mode);
    # the packaged default, and what the gate compares (each version's own served mode)
    mode: str = "auto"
    select_split: str = "dev"  # where auto chooses (never test)
    max_p95_ms: float = 50.0  # auto: the latency budget, one query end to end (the evaluate stage's p95)
    experiments: str = "skip"  # dvc exp run: skip (log the run, register nothing) | register
    split: str = "test"
    metric: str = "ndcg@10"
    tolerance: float = 0.01
    alpha: float = 0.05
    test: str = "randomization"
    n_resamples: int = 10000
    k: int = 10  # results per query when a caller does not say
    package: str = "serving"  # serving: no PyTorch weights where an ONNX export serves | full (ragops.registry.package)

    def __post_init__(self) -> None:
        if self.mode not in ("auto", *MODES):
            raise unknown_name("registry mode", self.mode, ("auto", *MODES))
        if self.experiments not in EXPERIMENT_POLICIES:
            raise unknown_name("registry.experiments", self.experiments, EXPERIMENT_POLICIES)
        if self.select_split == "test":
            raise ConfigError("registry.select_split: choosing the served mode on test would fit it to test; use dev")
        if not self.max_p95_ms > 0:
            raise ConfigError(f"registry.max_p95_ms must be > 0, got {self.max_p95_ms}")
        check_package(self.package)
        if self.test not in PAIRED_TESTS:
            raise unknown_name("registry test", self.test, PAIRED_TESTS)
        parse_metric(self.metric)
        if not self.model_name.strip():
            raise ConfigError("registry.model_name is empty")

    @staticmethod
    def from_params(p: Mapping[str, Any] | None) -> RegistryConfig:
        p = dict(p or {})
        known = {f.name: f.type for f in fields(RegistryConfig)}
        extra = set(p) - set(known)
        if extra:
            raise ConfigError(f"registry: unknown keys {sorted(extra)}; valid: {sorted(known)}")
        casts = {"tolerance": float, "alpha": float, "n_resamples": int, "k": int, "max_p95_ms": float}
        return RegistryConfig(**{k: casts.get(k, str)(v) for k, v in p.items()})

    def gate_key(self, mode: str) -> str:
        """The metric the gate reads for a version serving ``mode``, as an MLflow key: ``test/hybrid/ndcg_at_10``."""
        return metric_key(self.split, mode, self.metric)


@dataclass(frozen=True)
class Store:
    tracking_uri: str
    artifact_location: str | None  # for a new experiment; None: the server decides

    @property
    def display_uri(self) -> str:
        return redact_uri(self.tracking_uri)


def metric_key(split: str, mode: str, metric: str) -> str:
    """``("test", "hybrid", "ndcg@10")`` -> ``"test/hybrid/ndcg_at_10"`` (a valid MLflow key)."""
    return f"{split}/{mode}/{metric.replace('@', '_at_')}"


def redact_uri(uri: str) -> str:
    """Drop ``user:password@`` from a URI before it is printed or written."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc))
    return uri


def resolve_store(cfg: RegistryConfig, root: Path, env: Mapping[str, str] | None = None) -> Store:
    """The tracking store: ``MLFLOW_TRACKING_URI`` if set, else params (relative to ``root``)."""
    env = os.environ if env is None else env
    from_env = env.get("MLFLOW_TRACKING_URI", "").strip()
    uri, base = (from_env, Path.cwd()) if from_env else (cfg.tracking_uri, Path(root))
    if not uri.startswith("sqlite:///"):
        return Store(uri, None)  # a server (http[s]://, databricks) or another scheme: it picks artifacts
    db = Path(uri[len("sqlite:///"):])
    db = (db if db.is_absolute() else base / db).resolve()
    artifacts = Path(cfg.artifact_root)
    artifacts = artifacts if artifacts.is_absolute() else db.parent / artifacts
    return Store(f"sqlite:///{db}", artifacts.resolve().as_uri())


def connect(store: Store):
    """Point MLflow (fluent API and model registry: the same store) at ``store``; return a client.

    MLflow also exports the URIs as ``MLFLOW_TRACKING_URI``/``MLFLOW_REGISTRY_URI``, so
    subprocesses (e.g. `mlflow` commands) use the same store.
    """
    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # bars would flood stage logs
    mlflow.set_tracking_uri(store.tracking_uri)
    mlflow.set_registry_uri(store.tracking_uri)
    return mlflow.MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)


def experiment_id(client, name: str, artifact_location: str | None) -> str:
    """The id of experiment ``name``, created (with ``artifact_location``) when missing, restored when deleted."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":  # deleted in the UI: runs cannot be logged into it until restored
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location)


def loggable_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Flattened params as strings, without anything that could be a credential."""
    out: dict[str, str] = {}
    for key, value in flatten(dict(params)).items():
        text = json.dumps(value) if isinstance(value, list | dict) else str(value)
        if _SECRET_NAME.search(key) or _SECRET_VALUE.match(text):
            continue
        out[key] = text[:6000]
    return out


def flat_metrics(metrics: Mapping[str, Mapping[str, Mapping[str, float]]]) -> dict[str, float]:
    """``metrics.json`` (split -> mode -> metric -> value) as MLflow metric keys; the entries that are not
    numbers (``judgments``: where each split's judgments come from, ``status``) are tags, not metrics."""
    return {metric_key(split, mode, name): float(value)
            for split, modes in metrics.items() if isinstance(modes, Mapping)
            for mode, values in modes.items() if isinstance(values, Mapping)
            for name, value in values.items() if isinstance(value, int | float)}


def _safe_key(text: str) -> str:
    """A path turned into a valid MLflow tag key fragment (no leading '/', no '..')."""
    text = re.sub(r"[^\w.\- /]", "_", text)
    return posixpath.normpath(text).lstrip("/").replace("..", "__")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def lineage_tags(root: Path, data_files: Mapping[str, str | Path]) -> dict[str, str]:
    """Git commit, dvc.lock hash and the hash DVC recorded for every data dep and out, and sha256
    of ``data_files`` (those the run read itself, so lineage holds outside `dvc repro` too)."""
    tags = git_tags(root)
    lock = root / "dvc.lock"
    if lock.exists():
        tags["dvc.lock.sha256"] = file_sha256(lock)
        # libyaml's loader where PyYAML has it: dvc.lock is thousands of lines (7x faster, the same values)
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        stages = (yaml.load(lock.read_text(encoding="utf-8"), Loader=loader) or {}).get("stages", {})
        for stage in stages.values():
            for entry in stage.get("deps", []) + stage.get("outs", []):
                path, md5 = str(entry.get("path", "")), entry.get("md5")
                if md5 and path and not path.startswith("src/"):
                    tags[f"dvc.md5.{_safe_key(path)}"[:250]] = str(md5)
    for name, path in data_files.items():
        if Path(path).is_file():
            tags[f"data.sha256.{_safe_key(name)}"] = file_sha256(path)
    return tags


def precision_tags(paths: Mapping[str, str]) -> dict[str, str]:
    """``training.precision.<model>``: the arithmetic each trained model was trained in. The params logged hold the
    setting (``auto``); what it resolved to on the machine that trained is in the models' records."""
    from ragops.io import read_json
    from ragops.training.artifacts import MARKER

    def read(path: str | Path) -> dict:
        return read_json(path) if Path(path).is_file() else {}

    found = {name: read(Path(paths[name]) / MARKER).get("precision")
             for name in ("embedder", "reranker") if name in paths}
    report = read(paths["grounding_report"]) if "grounding_report" in paths else {}
    found["grounding"] = report.get("train", {}).get("trained", {}).get("cross_encoder", {}).get("precision")
    return {f"training.precision.{name}": str(value) for name, value in found.items() if value}


def git_tags(root: Path) -> dict[str, str]:
    """``mlflow.source.git.commit`` (shown by the UI) and whether tracked files had changes."""
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    if not commit:
        return {"git.commit": "unknown"}
    return {"mlflow.source.git.commit": commit, "git.commit": commit, "git.dirty": str(bool(dirty)).lower()}


def log_evaluation(
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    files: Sequence[tuple[str, str | Path]],
    tags: Mapping[str, str],
    timings: Mapping[str, float],
) -> None:
    """Log one evaluation into the active MLflow run.

    ``files`` holds (artifact folder, "" for the root; a local file or folder to copy there) pairs;
    missing ones are skipped.
    """
    import mlflow

    mlflow.log_params(loggable_params(params))
    mlflow.log_metrics(flat_metrics(metrics))
    mlflow.log_metrics({f"timing/{stage}_s": round(float(s), 3) for stage, s in timings.items()})
    mlflow.set_tags(dict(tags))
    for folder, path in files:
        path = Path(path)
        if path.is_dir():
            mlflow.log_artifacts(str(path), artifact_path=folder or None)
        elif path.is_file():
            mlflow.log_artifact(str(path), artifact_path=folder or None)
