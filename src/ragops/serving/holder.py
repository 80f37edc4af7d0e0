"""The :class:`ModelHolder` whose watcher swaps in a newly promoted version, and the registry it watches.

Hot swap: the watcher thread polls the alias; on a new version it loads it completely (indexes,
encoder, answerer) on its own thread, then replaces ``holder.current`` in one assignment. A request
reads ``holder.current`` once and keeps that object to the end, so in-flight requests finish on the
old version and none fails; the old version is freed when its last request lets go of it.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ragops.errors import RagopsError
from ragops.serving.model import ModelSource, Served, load_packaged

log = logging.getLogger("ragops.serve")


class ModelHolder:
    """The served version, and the watcher thread that swaps in a new one.

    ``load(version)`` returns a fully loaded :class:`Served`; ``poll()`` returns the version the alias
    points at now (None: no watching). Errors while polling or loading keep the current version.
    """

    def __init__(
        self,
        load: Callable[[str | None], Served],
        poll: Callable[[], str | None] | None = None,
        poll_s: float = 10.0,
        on_swap: Callable[[Served], None] | None = None,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self._load, self._poll, self.poll_s = load, poll, poll_s
        self.on_swap, self.on_error = on_swap, on_error
        self.current: Served | None = None
        self.swaps = 0
        self.last_error: str | None = None
        self.last_poll: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Served:
        """Load the first version (here, before the server accepts requests) and start watching."""
        version = self._poll() if self._poll is not None else None
        self._swap(self._load(version))
        if self._poll is not None and self.poll_s > 0:
            self._thread = threading.Thread(target=self._watch, name="ragops-alias-watcher", daemon=True)
            self._thread.start()
        return self.current

    def _swap(self, served: Served) -> None:
        self.current = served  # one reference assignment: atomic; requests holding the old one keep it
        if self.on_swap is not None:
            self.on_swap(served)

    def check(self) -> bool:
        """Poll once; load and swap in a new version. True when it swapped."""
        version = self._poll()
        self.last_poll = time.time()
        if version is None or self.current is None or version == self.current.version:
            return False
        log.info("alias %s moved: loading version %s", self.current.alias, version)
        served = self._load(version)
        old = self.current.version
        self.swaps += 1
        self._swap(served)
        log.info("now serving version %s (was %s), loaded in %.1f s", served.version, old, served.load_s)
        return True

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.check()
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - a failed poll or load must not stop the watcher
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "alias watcher: %s (still serving version %s)",
                    self.last_error,
                    self.current.version if self.current else None,
                )
                if self.on_error is not None:
                    self.on_error()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)


def registry_holder(
    source: ModelSource,
    params: dict[str, Any],
    params_dir: Path,
    cache_size: int,
    poll_s: float,
    on_lookup=None,
    on_swap=None,
    on_error=None,
    encoder_threads: int = 0,
) -> tuple[ModelHolder, Path]:
    """A holder over a registry model (``models:/NAME@ALIAS`` watched, ``models:/NAME/V`` pinned) or another
    packaged URI. Versions download into a temporary folder (returned; delete it at shutdown); a version's
    folder is deleted two swaps later (Linux keeps open and mapped files of a deleted folder readable)."""
    from ragops.recovery import clean_stale_temp, private_mkdtemp
    from ragops.registry.versions import get_version

    client = None
    if source.name is not None:
        client = registry_client(params, params_dir)
    clean_stale_temp()  # folders of servers killed with SIGKILL (no handler runs then)
    root = private_mkdtemp("serve")
    kept: list[Path] = []

    def poll() -> str | None:
        if source.alias is None:
            return source.version
        try:
            return str(client.get_model_version_by_alias(source.name, source.alias).version)
        except Exception as exc:  # noqa: BLE001 - MLflow raises its own exception for a missing alias
            raise RagopsError(f"{source.uri}: {str(exc).splitlines()[0]}") from None

    def load(version: str | None) -> Served:
        if source.name is None:
            return load_packaged(
                source.uri, root / "model", params, cache_size, on_lookup, encoder_threads=encoder_threads
            )
        get_version(client, source.name, version)  # a readable error for a missing version
        dst = root / f"v{version}-{time.time_ns()}"
        served = load_packaged(
            f"models:/{source.name}/{version}",
            dst,
            params,
            cache_size,
            on_lookup,
            name=source.name,
            version=version,
            alias=source.alias,
            encoder_threads=encoder_threads,
        )
        kept.append(dst)
        while len(kept) > 2:
            shutil.rmtree(kept.pop(0), ignore_errors=True)
        return served

    holder = ModelHolder(
        load, poll if source.name is not None else None, poll_s if source.alias else 0.0, on_swap, on_error
    )
    return holder, root


def registry_client(params: dict[str, Any], params_dir: Path):
    from ragops.registry.tracking import RegistryConfig, connect, resolve_store

    return connect(resolve_store(RegistryConfig.from_params(params.get("registry")), params_dir))


def champion_uri(params: dict[str, Any], params_dir: Path) -> str | None:
    """``models:/NAME@champion`` when the project's registry has a champion, else None (without creating
    a store: an absent SQLite file means no registry)."""
    from ragops.registry.tracking import RegistryConfig, resolve_store
    from ragops.registry.versions import CHAMPION, aliases

    cfg = RegistryConfig.from_params(params.get("registry"))
    store = resolve_store(cfg, params_dir)
    if store.tracking_uri.startswith("sqlite:///") and not Path(store.tracking_uri[len("sqlite:///") :]).is_file():
        return None
    if CHAMPION not in aliases(registry_client(params, params_dir), cfg.model_name):
        return None
    return f"models:/{cfg.model_name}@{CHAMPION}"
