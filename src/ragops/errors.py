"""Errors a user can act on: they name the file and, where there is one, the line."""

from __future__ import annotations

import os
from pathlib import Path

DEBUG_ENV = "RAGOPS_DEBUG"


class RagopsError(Exception):
    """Base class: the CLI prints these as one readable line, without a traceback."""


class DataError(RagopsError):
    """Bad input data. ``str()`` reads ``path:line: message`` (or ``path: message``)."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class ConfigError(RagopsError):
    """A bad value in params.yaml or on the command line."""


def unknown_name(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> ConfigError:
    """Strategies are chosen by name and fail loudly, listing the valid names (style rule 8)."""
    return ConfigError(f"unknown {kind} {name!r}; valid: {', '.join(sorted(valid))}")


def checked_choice(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> str:
    """``name`` when it is one of ``valid``, else :func:`unknown_name`'s error."""
    if name not in valid:
        raise unknown_name(kind, name, valid)
    return name


def checked_keys(section: str, given, known) -> None:
    """A config section's keys against the fields it may have: unknown ones are an error that lists both."""
    extra = set(given) - set(known)
    if extra:
        raise ConfigError(f"{section}: unknown keys {sorted(extra)}; valid: {sorted(known)}")


def debug_enabled() -> bool:
    """``RAGOPS_DEBUG=1`` (or ``ragops --debug``): errors keep their traceback."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def one_line(exc: BaseException) -> str:
    """What a user reads: our errors as they are (they say what and where), others with their type; one
    line, however many the message had. Unexpected errors add how to see the traceback."""
    text = " ".join(str(exc).split())
    if isinstance(exc, RagopsError):
        return text
    hint = f" ({DEBUG_ENV}=1 shows the traceback)"
    return f"{type(exc).__name__}: {text}{hint}" if text else f"{type(exc).__name__}{hint}"
