"""`ragops serve`: choose the model source, load it, and run uvicorn (one worker, loopback by default)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
from pathlib import Path
from typing import Any

from ragops.serving.config import ServeConfig
from ragops.serving.holder import ModelHolder, champion_uri, registry_holder
from ragops.serving.metrics import Metrics
from ragops.serving.model import ModelSource, load_local

log = logging.getLogger("ragops.serve")


def resolve_model(model: str, params: dict[str, Any], params_dir: Path) -> str:
    """``auto``: the registry's champion when there is one, else the local build."""
    if model != "auto":
        return model
    return champion_uri(params, params_dir) or "local"


def build_holder(
    source: ModelSource, params: dict[str, Any], params_dir: Path, cfg: ServeConfig, metrics: Metrics
) -> tuple[ModelHolder, Path | None]:
    """The holder for ``source`` (and the temporary download folder to delete at shutdown)."""

    def on_swap(served) -> None:
        metrics.set_model(served.name, served.alias, served.version)
        if holder.swaps:  # 0 while the first version loads
            metrics.swaps.inc()

    if source.local:
        holder = ModelHolder(
            lambda _version: load_local(params, cfg.cache_size, metrics.cache_lookup,
                                        None if cfg.mode == "default" else cfg.mode, cfg.encoder_threads),
            on_swap=on_swap,
        )
        return holder, None
    holder, root = registry_holder(
        source,
        params,
        params_dir,
        cfg.cache_size,
        cfg.poll_s,
        metrics.cache_lookup,
        on_swap,
        metrics.load_errors.inc,
        encoder_threads=cfg.encoder_threads,
    )
    return holder, root


def serve(
    params: dict[str, Any], params_dir: Path, model: str | None = None, host: str | None = None, port: int | None = None
) -> None:
    """Load the model, then serve until interrupted. ``RAGOPS_API_TOKEN`` set = bearer auth."""
    import uvicorn

    from ragops.serving.app import create_app

    cfg = ServeConfig.of(params)  # judgments_path defaults to `ragops judge`'s file
    source = ModelSource.parse(resolve_model(model or cfg.model, params, params_dir))
    metrics = Metrics()
    # SIGTERM (systemd, Docker, Kubernetes) stops the server like Ctrl-C: uvicorn shuts down gracefully and
    # then raises the signal again under the handler it found, which is this one, so the cleanup below runs
    # (by default SIGTERM would end the process there and leave the downloaded versions in the temp folder).
    previous = signal.signal(signal.SIGTERM, _stop)
    holder, root = build_holder(source, params, params_dir, cfg, metrics)
    token = os.environ.get("RAGOPS_API_TOKEN") or None
    try:
        served = holder.start()  # before the port opens: a probe that connects finds a ready server
        log.warning(
            "serving %s version %s (%s) on http://%s:%d%s",
            served.name,
            served.version,
            source.uri,
            host or cfg.host,
            port or cfg.port,
            " with bearer auth" if token else "",
        )
        app = create_app(holder, cfg, token, metrics)
        uvicorn.run(
            app,
            host=host or cfg.host,
            port=port or cfg.port,
            workers=1,
            access_log=cfg.access_log,
            log_level="info",
            timeout_graceful_shutdown=10,
        )
    except (KeyboardInterrupt, _Stopped):
        log.warning("stopped")
    finally:
        holder.stop()
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)


class _Stopped(Exception):
    """SIGTERM, raised in the main thread."""


def _stop(signum, frame) -> None:
    raise _Stopped
