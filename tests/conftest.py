"""Shared fixtures: the SciFact mirror (real data, offline) and the real all-MiniLM-L6-v2, loaded once."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def thread_share() -> int:
    """The cores a test process may use for its math: all of them alone, an equal share under pytest-xdist
    (`make test` runs two workers on two cores)."""
    return max(1, len(os.sched_getaffinity(0)) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


# Set before numpy or torch loads, and inherited by every process a test starts (dvc, its stages, servers): two
# workers each running torch on both cores of a 2-core machine spend the time in each other's OpenMP spin-waits
# (bench/worker_threads.py). ONNX Runtime sessions do not read these; theirs do not spin.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, str(thread_share()))

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODEL = "all-MiniLM-L6-v2"

# The order files are handed out in. `make test` runs two pytest-xdist workers with --dist loadfile (a file
# runs whole on one worker, so a module fixture is set up once): first the file whose fixture builds the shared
# tiny project and the one that builds its own project beside it, then the unit tests (they keep the other
# worker busy while the build runs), then the other integration files, longest first (the last to start
# should be short). Within a file the order is the file's own; a run without workers keeps this order too.
FIRST = ("integration/test_ask.py", "integration/test_own_documents.py")
# A unit file that reads what an earlier one computed goes last among the unit files, so that the earlier one has
# finished, and written the run's MiniLM cache (minilm_cached below), before it starts on the other worker: the
# claims test_grounding_ce.py encodes are a seeded prefix of test_grounding.py's sample.
LAST_UNITS = ("test_grounding_ce.py",)
LONGEST_FIRST = ("test_flow.py", "test_registry.py", "test_pipeline_dvc.py", "test_faults.py", "test_serve.py",
                 "test_served_package.py", "test_page.py", "test_judge.py", "test_training.py", "test_ci_gate.py")


def _file_rank(item: pytest.Item) -> tuple[int, int]:
    rel = Path(str(item.path)).resolve().relative_to(REPO / "tests").as_posix()
    if rel in FIRST:
        return 0, FIRST.index(rel)
    if not rel.startswith("integration/"):
        return 1, int(rel in LAST_UNITS)
    name = rel.rsplit("/", 1)[-1]
    return 2, LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_file_rank)  # stable: the order within each rank is kept


def _mirror_root() -> Path:
    return Path(os.environ.get("RAGOPS_MIRROR", REPO.parent / "shared" / "datasets"))


def beir_file(folder: Path, stem: str) -> Path:
    """``<stem>.jsonl`` if present, else ``<stem>.jsonl.gz`` (the two names a BEIR folder may use)."""
    plain = folder / f"{stem}.jsonl"
    return plain if plain.is_file() else folder / f"{stem}.jsonl.gz"


def claims_sample(mirror: Path, n_train: int, n_test: int) -> tuple[dict[str, list[str]], list, list]:
    """(sentences, train pairs, evaluation pairs): seeded samples of whole claims, as the stage samples."""
    from ragops.answer.grounding_data import read_pairs, read_sentences
    from ragops.stages.grounding import sample

    sentences = read_sentences(mirror / "corpus_sentences.jsonl.gz")
    train = sample(read_pairs(mirror / "claims_train.csv", sentences), n_train, 42)
    return sentences, train, sample(read_pairs(mirror / "claims_dev.csv", sentences), n_test, 42)


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The SciFact folder of the dataset mirror (BEIR layout); the suite fails without it."""
    folder = _mirror_root() / "scifact"
    if not beir_file(folder, "corpus").is_file() or not beir_file(folder, "queries").is_file():
        pytest.fail(
            f"SciFact mirror not found at {folder}: run `make test MIRROR=<datasets folder>` or set RAGOPS_MIRROR",
            pytrace=False,
        )
    return folder


@pytest.fixture(scope="session")
def scifact_corpus(mirror: Path) -> pd.DataFrame:
    """Every SciFact document: doc_id, title, text (5,183 rows, read in well under a second)."""
    from ragops.data.beir import read_corpus

    return read_corpus(beir_file(mirror, "corpus"))


@pytest.fixture(scope="session")
def scifact_sample(scifact_corpus: pd.DataFrame) -> pd.DataFrame:
    """The first 300 SciFact documents, in file order."""
    return scifact_corpus.head(300).reset_index(drop=True)


@pytest.fixture(scope="session")
def scifact_queries(mirror: Path) -> pd.DataFrame:
    from ragops.data.beir import read_queries

    return read_queries(beir_file(mirror, "queries"))


@pytest.fixture(scope="session")
def tokenizer():
    """The embedding model's own tokenizer (real, offline)."""
    from ragops.encode.models import load_tokenizer

    return load_tokenizer(MODEL)


@pytest.fixture(scope="session")
def encoder():
    """The real all-MiniLM-L6-v2 behind ragops.encode.encoder.Encoder, on CPU, loaded once per session."""
    from ragops.encode.encoder import Encoder

    return Encoder(MODEL, device="cpu", batch_size=32)


def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder every test process of this run shares: the session's base temporary folder, or under
    pytest-xdist (`make test` runs two workers) its parent, of which each worker's own is a child."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session", autouse=True)
def child_tmpdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The temporary directory (TMPDIR) of every process a test starts: dvc, mlflow, the servers. It lies in this
    run's folder, so what a tool leaves there goes when the run's folder does (pyproject's retention policy):
    MLflow's own ``load_model("models:/...")`` and ``mlflow models serve`` copy the ~0.5 GB version into a
    temporary folder they never remove, which in /tmp outlived every run."""
    folder = shared_root(tmp_path_factory) / "tmp"
    folder.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMPDIR", str(folder))
        yield folder


def onnx_exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ONNX export folder (``embed.onnx_dir``) of every test process of this run: the tests never export into
    the user's shared ``~/.cache/ragops/onnx`` (a run made ~250 MB of exports there, the tiny builds' trained
    models among them). Each model is exported once per run."""
    folder = shared_root(tmp_path_factory) / "onnx"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.fixture(scope="session", autouse=True)
def child_onnx_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``RAGOPS_ONNX_DIR`` (the export cache a served package reads a missing export from) of this process and
    of every process a test starts: the run's own folder (:func:`onnx_exports`)."""
    folder = onnx_exports(tmp_path_factory)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAGOPS_ONNX_DIR", str(folder))
        yield folder


@pytest.fixture(scope="session")
def minilm_cached(tmp_path_factory: pytest.TempPathFactory):
    """The MiniLM's vectors through ragops' embedding cache (``CachedEncoder``, segments written atomically) in
    one folder for every test process of the run: the grounding tests' claim samples are seeded prefixes of one
    shuffle (``claims_sample``), so each of their sentences is encoded once per run, not once per module. For
    tests of what is built on the vectors, never of the encoder itself: a cached vector is the one its first
    batch gave (batchmates change the last bits).

    The encoder is the MiniLM's fp32 ONNX export (``embed.backend: onnx``: the same graph, within 3e-7 of
    PyTorch's vectors), exported once into the run's export folder (:func:`onnx_exports`) as the tiny builds'
    query encoder is, one text per run on this process's share of the cores, with no PyTorch model to load
    (test_grounding.py's fixture: 23.9 s in `make test` against 36.1 s through sentence-transformers;
    `python bench/suite_cpu.py`)."""
    from ragops.encode.encoder import CachedEncoder, Encoder

    onnx = Encoder(MODEL, backend="onnx", onnx_dir=onnx_exports(tmp_path_factory))
    onnx.model.configure(threads=1, workers=thread_share(), spinning=False)
    cached = CachedEncoder(onnx, shared_root(tmp_path_factory) / "minilm-cache")

    def encode(texts: list[str]):
        vectors = cached(texts)
        cached.flush()
        return vectors

    return encode


@contextlib.contextmanager
def sqlite_store(folder: Path, experiment: str = "toy") -> Iterator[tuple]:
    """A real MLflow SQLite store in ``folder``: (client, experiment id, folder). MLflow exports the URIs to
    os.environ and its module state: both are undone afterwards."""
    import mlflow

    from ragops.registry.tracking import RegistryConfig, connect, experiment_id, resolve_store

    s = resolve_store(RegistryConfig(), folder, env={})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", s.tracking_uri)
        mp.setenv("MLFLOW_REGISTRY_URI", s.tracking_uri)
        client = connect(s)
        try:
            yield client, experiment_id(client, experiment, s.artifact_location), folder
        finally:
            mlflow.set_tracking_uri(None)
            mlflow.set_registry_uri(None)
