"""`ragops data fetch --archive`: archives built here from the mirror's real SciFact files (decompressed and
compressed differently from the mirror), served by a real http.server on 127.0.0.1, checked by content and
placed like the mirror path places them; bad downloads and bad archives leave the previous copy."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import shutil
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragops.data.archive import place_from_archive, read_content_sums
from ragops.data.fetch import verify_with_dvc
from ragops.errors import DataError

REPO = Path(__file__).resolve().parents[1]
SUMS = REPO / "data" / "scifact.content.sha256"
BEIR_FILES = ["corpus.jsonl.gz", "qrels/test.tsv", "qrels/train.tsv", "queries.jsonl"]
GNU_GZIP = shutil.which("gzip") is not None  # the mirror's corpus.jsonl.gz is `gzip -9 -n` output


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def contents(mirror: Path) -> dict[str, bytes]:
    """Every listed SciFact file's content (gunzipped for .gz), by its canonical name."""
    out = {}
    for rel in read_content_sums(SUMS, "scifact"):
        data = (mirror / rel).read_bytes()
        out[rel] = gzip.decompress(data) if rel.endswith(".gz") else data
    return out


def beir_zip(contents: dict[str, bytes], **change: bytes) -> bytes:
    """BEIR's scifact.zip layout: scifact/corpus.jsonl (uncompressed), queries.jsonl, qrels/{train,test}.tsv."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("scifact/", b"")
        for rel in BEIR_FILES:
            plain = rel.removesuffix(".gz")
            zf.writestr(f"scifact/{plain}", change.get(plain, contents[rel]))
    return buf.getvalue()


def full_tgz(contents: dict[str, bytes]) -> bytes:
    """All seven files below datasets/scifact/: corpus re-gzipped at level 1, corpus_sentences uncompressed."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tf:
        for rel, data in contents.items():
            name = rel.removesuffix(".gz") if rel == "corpus_sentences.jsonl.gz" else rel
            if name.endswith(".gz"):
                data = gzip.compress(data, compresslevel=1, mtime=12345)
            info = tarfile.TarInfo(f"datasets/scifact/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, contents: dict[str, bytes]) -> Iterator[tuple[str, Path]]:
    """(base URL, folder): a real HTTP server on 127.0.0.1 serving the folder, stopped after the module."""
    root = tmp_path_factory.mktemp("www")
    (root / "scifact.zip").write_bytes(beir_zip(contents))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Quiet(*a, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def previous(tmp_path: Path) -> Path:
    """A destination already holding a copy, which a failed fetch must leave as it was."""
    dest = tmp_path / "raw" / "scifact"
    dest.mkdir(parents=True)
    (dest / "old.txt").write_text("previous copy")
    return dest


def assert_untouched(dest: Path) -> None:
    assert [p.name for p in dest.iterdir()] == ["old.txt"]
    assert [p.name for p in dest.parent.iterdir()] == ["scifact"]  # no temporary folder left behind


def test_beir_zip_over_http_places_the_mirrors_files(
        served: tuple[str, Path], contents: dict[str, bytes], mirror: Path, previous: Path) -> None:
    result = place_from_archive(f"{served[0]}/scifact.zip", "scifact", previous, SUMS)
    assert result.placed == sorted(BEIR_FILES)
    assert sorted(result.missing) == ["claims_dev.csv", "claims_train.csv", "corpus_sentences.jsonl.gz"]
    assert "embedding scorer" in result.missing["claims_train.csv"] and not result.mirror_identical
    placed = sorted(p.relative_to(previous).as_posix() for p in previous.rglob("*") if p.is_file())
    assert placed == sorted(BEIR_FILES)  # the old copy is gone: the folder was swapped, not merged
    assert gzip.decompress((previous / "corpus.jsonl.gz").read_bytes()) == contents["corpus.jsonl.gz"]
    for rel in BEIR_FILES[1:]:
        assert (previous / rel).read_bytes() == (mirror / rel).read_bytes()
    assert ((previous / "corpus.jsonl.gz").read_bytes() == (mirror / "corpus.jsonl.gz").read_bytes()) == GNU_GZIP
    assert result.bytes_differ == ([] if GNU_GZIP else ["corpus.jsonl.gz"])


def test_full_tgz_reproduces_the_mirror_and_its_dvc_pointer(
        tmp_path: Path, contents: dict[str, bytes], mirror: Path) -> None:
    from dvc.repo import Repo

    archive = tmp_path / "scifact-full.tar.gz"
    archive.write_bytes(full_tgz(contents))
    repo = tmp_path / "repo"
    Repo.init(str(repo), no_scm=True).close()
    (repo / "data" / "raw").mkdir(parents=True)
    shutil.copyfile(REPO / "data" / "raw" / "scifact.dvc", repo / "data" / "raw" / "scifact.dvc")
    dest = repo / "data" / "raw" / "scifact"
    result = place_from_archive(archive.as_uri(), "scifact", dest, SUMS)
    assert result.placed == sorted(contents) and result.missing == {}
    for rel in contents:
        assert (gzip.decompress if rel.endswith(".gz") else bytes)((dest / rel).read_bytes()) == contents[rel]
    if not GNU_GZIP:  # corpus.jsonl.gz cannot be re-made byte for byte: its content (checked above) is what holds
        assert result.bytes_differ == ["corpus.jsonl.gz"] and not result.mirror_identical
        return
    assert result.mirror_identical
    assert all((dest / rel).read_bytes() == (mirror / rel).read_bytes() for rel in contents)
    verify_with_dvc(repo, "data/raw/scifact.dvc")  # the committed pointer's hash, from a re-compressed archive
    again = place_from_archive(str(archive), "scifact", dest, SUMS)  # a local path; nothing to do
    assert again.placed == [] and again.mirror_identical


def test_tampered_file_is_rejected_naming_it(
        served: tuple[str, Path], contents: dict[str, bytes], previous: Path) -> None:
    tampered = contents["queries.jsonl"].replace(b"lack inductive", b"have inductive", 1)
    (served[1] / "tampered.zip").write_bytes(beir_zip(contents, **{"queries.jsonl": tampered}))
    with pytest.raises(DataError) as info:
        place_from_archive(f"{served[0]}/tampered.zip", "scifact", previous, SUMS)
    message = str(info.value)
    assert "'scifact/queries.jsonl'" in message and sha(tampered) in message
    assert sha(contents["queries.jsonl"]) in message
    assert_untouched(previous)


@pytest.mark.parametrize("case", ["truncated zip", "truncated tgz", "error page", "404"])
def test_bad_download_names_the_url_and_leaves_the_previous_copy(
        served: tuple[str, Path], contents: dict[str, bytes], previous: Path, case: str) -> None:
    base, root = served
    name = f"{case.replace(' ', '-')}.bin"
    if case == "truncated zip":
        data = (root / "scifact.zip").read_bytes()
        (root / name).write_bytes(data[: len(data) // 2])
    elif case == "truncated tgz":
        data = full_tgz(contents)
        (root / name).write_bytes(data[: len(data) * 3 // 5])
    elif case == "error page":
        (root / name).write_bytes(b"<html><body>Service unavailable</body></html>\n")
    url = f"{base}/{name}"
    with pytest.raises(DataError) as info:
        place_from_archive(url, "scifact", previous, SUMS)
    assert info.value.path == url
    expected = {"404": "HTTP 404", "truncated tgz": "damaged archive"}.get(case, "not a zip or tar archive")
    assert expected in info.value.message
    assert_untouched(previous)


@pytest.mark.parametrize("evil", ["../evil.txt", "/tmp/evil.txt", "scifact/../../evil.txt", "C:\\evil.txt"])
def test_zip_slip_member_is_refused(tmp_path: Path, contents: dict[str, bytes], previous: Path, evil: str) -> None:
    archive = tmp_path / "slip.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("scifact/qrels/test.tsv", contents["qrels/test.tsv"])
        zf.writestr(zipfile.ZipInfo(evil), b"pwned\n")  # ZipInfo keeps the name as given
    with pytest.raises(DataError, match="absolute path or '..': archive refused") as info:
        place_from_archive(str(archive), "scifact", previous, SUMS)
    assert repr(evil) in info.value.message
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path.parent / "evil.txt").exists()
    assert_untouched(previous)


def test_size_cap_and_timeout(served: tuple[str, Path], previous: Path) -> None:
    with pytest.raises(DataError, match="more than the limit of 1000"):
        place_from_archive(f"{served[0]}/scifact.zip", "scifact", previous, SUMS, max_bytes=1000)
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/scifact.zip"
        with pytest.raises(DataError, match="timed out") as info:
            place_from_archive(url, "scifact", previous, SUMS, timeout=0.5)
    assert info.value.path == url
    assert_untouched(previous)


def test_cli_fetch_archive(served: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ragops.cli.main import app

    monkeypatch.chdir(REPO)  # the content list is data/<name>.content.sha256, as in the project
    dest = tmp_path / "scifact"
    ok = CliRunner().invoke(app, ["data", "fetch", "--archive", f"{served[0]}/scifact.zip", "--dest", str(dest)])
    assert ok.exit_code == 0, ok.output
    assert "4 files placed, content verified against data/scifact.content.sha256" in ok.output
    assert "claims_train.csv is not in the archive (optional)" in ok.output
    assert "DVC pointer is not checked" in ok.output  # scifact.dvc beside dest is absent anyway
    bad = CliRunner().invoke(app, ["data", "fetch", "--archive", f"{served[0]}/nothing.zip", "--dest", str(dest)])
    assert bad.exit_code == 2 and "HTTP 404" in bad.output
    assert sorted(p.name for p in dest.iterdir()) == ["corpus.jsonl.gz", "qrels", "queries.jsonl"]
