"""The edges of ``ragops data fetch --archive``: downloading to a private file with a size cap and a time
limit, and listing a zip's or a tar's regular files after refusing unsafe member names. Every failure is
a :class:`DataError` naming the URL, so the user sees which download or archive went wrong."""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.client
import re
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO
from urllib.parse import urlsplit

from ragops.errors import DataError

MAX_MEMBER_BYTES = 4 << 30  # one unpacked file; stops a zip bomb (SciFact's largest is 8 MB)
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class Member:
    """A regular file inside an archive: its name as stored, and how to open its bytes."""

    name: str
    open: Callable[[], IO[bytes]]


def unsafe_name(name: str) -> bool:
    """True for an absolute name or one with a ``..`` part: extracted by name it would land outside the
    target folder ("zip slip"). Nothing here extracts by name, but such an archive is not to be trusted."""
    posix = name.replace("\\", "/")
    return posix.startswith("/") or bool(_DRIVE.match(posix)) or ".." in PurePosixPath(posix).parts


def _stream(source: str, out: Path, max_bytes: int, timeout: float) -> None:
    """Copy the URL's body to ``out``: refused above ``max_bytes``, or when it takes more than ``timeout``
    seconds in all (also each connect and read's limit), or ends before its Content-Length."""
    deadline, total = time.monotonic() + timeout, 0
    request = urllib.request.Request(source, headers={"User-Agent": "ragops-data-fetch"})
    with urllib.request.urlopen(request, timeout=timeout) as resp, open(out, "wb") as fout:  # noqa: S310
        length = resp.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise DataError(source, f"download is {int(length)} bytes, more than the limit of {max_bytes}")
        while block := resp.read(1 << 20):
            total += len(block)
            if total > max_bytes:
                raise DataError(source, f"download exceeds the limit of {max_bytes} bytes")
            if time.monotonic() > deadline:
                raise DataError(source, f"download took longer than {timeout:g} s (read {total} bytes)")
            fout.write(block)
        if length and length.isdigit() and total != int(length):
            raise DataError(source, f"download incomplete: {total} of {length} bytes")


def download(source: str, out: Path, max_bytes: int, timeout: float) -> Path:
    """The archive as a local file: an http/https/file URL is streamed to ``out`` (in a private folder the
    caller owns); a local path is used where it is."""
    scheme = urlsplit(source).scheme.lower()
    if scheme in ("", "file") or len(scheme) == 1:  # a path (C:\... has a one-letter "scheme")
        if scheme != "file":
            path = Path(source)
            if not path.is_file():
                raise DataError(source, "archive not found")
            if path.stat().st_size > max_bytes:
                raise DataError(source, f"archive is larger than the limit of {max_bytes} bytes")
            return path
    elif scheme not in ("http", "https"):
        raise DataError(source, f"unsupported URL scheme {scheme!r}: use http, https, file or a local path")
    try:
        _stream(source, out, max_bytes, timeout)
    except urllib.error.HTTPError as exc:
        raise DataError(source, f"download failed: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DataError(source, f"download failed: {exc.reason}") from None
    except TimeoutError:
        raise DataError(source, f"download timed out ({timeout:g} s without data)") from None
    except (http.client.HTTPException, OSError) as exc:
        raise DataError(source, f"download failed: {type(exc).__name__}: {exc}") from None
    return out


def _refuse_unsafe(names: list[str], source: str) -> None:
    for name in names:
        if unsafe_name(name):
            raise DataError(source, f"archive member {name!r} has an absolute path or '..': archive refused")


@contextlib.contextmanager
def members(path: Path, source: str) -> Iterator[list[Member]]:
    """The regular files of a zip or a tar (any compression tarfile reads), open while the context lasts.
    A damaged archive (a truncated download, a bad CRC) raises DataError, also while a member is read."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                infos = zf.infolist()
                _refuse_unsafe([i.filename for i in infos], source)
                yield [Member(i.filename, functools.partial(zf.open, i)) for i in infos if not i.is_dir()]
        elif tarfile.is_tarfile(path):
            with tarfile.open(path, "r:*") as tf:
                infos = tf.getmembers()
                _refuse_unsafe([n for m in infos for n in (m.name, m.linkname) if n], source)
                yield [Member(m.name, functools.partial(_extract, tf, m)) for m in infos if m.isfile()]
        else:
            raise DataError(source, "not a zip or tar archive (an error page, or a truncated download?)")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, tarfile.TarError, EOFError, zlib.error,
            gzip.BadGzipFile) as exc:
        raise DataError(source, f"damaged archive ({type(exc).__name__}: {exc}): a truncated download?") from None


def _extract(tf: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    fobj = tf.extractfile(member)
    if fobj is None:  # only for non-regular members, which are never listed
        raise tarfile.ExtractError(f"{member.name} is not a regular file")
    return fobj
