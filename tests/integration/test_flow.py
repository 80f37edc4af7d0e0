"""The pipeline as a Prefect flow, against a real `prefect server` on 127.0.0.1 (free port, temporary
PREFECT_HOME), in a temporary copy of the project on the tiny profile.

`ragops schedule` serves the deployment; runs are triggered through the API (Prefect's client). The flow
builds everything and pushes to the DVC remote; a second run does no work; after a raw-data change
only what depends on it is rebuilt (and only the changed chunks re-embedded); a fresh clone pulls
identical outputs; stopping the serving process leaves the schedule active unless asked. A broken
data line fails the flow with the stage's own `path:line: message`. Every process started here is
stopped, with its children, before the module ends (the serving process before the server).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

from ragops.harness import Service, free_port, wait_for

from .conftest import REPO, clone_build, run
from .test_pipeline_dvc import _out_hashes, quality

pytestmark = pytest.mark.integration
FLOW, DEPLOYMENT = "ragops-pipeline", "nightly"
CRON = "0 0 29 2 *"  # never fires while the tests run (Feb 29, midnight): every run here is triggered
RETRAIN_CRON = "0 1 29 2 *"  # the deployment's second schedule (retrain: true), just as unlikely
# Every stage of dvc.yaml but the registry step (asserted separately): the flow must follow the DAG as it grows.
STAGES = [s for s in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"] if s != "register"]
# Orders the DAG imposes (the flow may interleave independent stages differently from dvc.yaml).
CHAINS = [("ingest", "prepare", "chunk", "embed", "index_dense", "evaluate"), ("index_bm25", "evaluate"),
          ("train_embedder", "embed_ft", "index_dense_ft", "evaluate"),
          ("grounding_pretrain", "grounding", "rag", "evaluate"), ("prepare", "sentences", "rag")]


class Prefect:
    """The test server: its API URL, the environment for processes that use it, and Prefect's own
    Python client (which retries what the server marks as retryable, e.g. a busy SQLite database)."""

    def __init__(self, api: str, env: dict[str, str]) -> None:
        from prefect.client.orchestration import SyncPrefectClient

        self.api, self.env = api, env
        self.client = SyncPrefectClient(api)

    def healthy(self) -> bool:
        return httpx.get(f"{self.api}/health", timeout=5).json() is True

    def deployment(self):
        from prefect.exceptions import ObjectNotFound

        try:
            return self.client.read_deployment_by_name(f"{FLOW}/{DEPLOYMENT}")
        except ObjectNotFound:
            return None

    def trigger(self, serving: Service, timeout: float = 600):
        """Create a run of the served deployment and wait for a final state."""
        flow_run = self.client.create_flow_run_from_deployment(self.deployment().id)
        return self.wait(flow_run.id, timeout, serving)

    def wait(self, run_id, timeout: float, serving: Service | None = None):
        def final():
            flow_run = self.client.read_flow_run(run_id)
            return flow_run if flow_run.state.is_final() else None

        return wait_for(final, timeout, f"flow run {run_id}", serving)

    def records(self, run_id) -> dict[str, dict]:
        """The flow's table of what each stage did, read back from the API."""
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

        only = ArtifactFilter(key=ArtifactFilterKey(any_=["ragops-stages"]),
                              flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        (artifact,) = self.client.read_artifacts(artifact_filter=only)
        return {row["stage"]: {**row, "metrics": json.loads(row["metrics"])} for row in json.loads(artifact.data)}

    def latest_records_run(self):
        """The flow run that published the newest table of stages."""
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
        from prefect.client.schemas.sorting import ArtifactSort

        only = ArtifactFilter(key=ArtifactFilterKey(any_=["ragops-stages"]))
        (artifact,) = self.client.read_artifacts(artifact_filter=only, sort=ArtifactSort.CREATED_DESC, limit=1)
        return artifact.flow_run_id


@pytest.fixture(scope="module")
def prefect(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prefect]:
    home = tmp_path_factory.mktemp("prefect-home")
    api = f"http://127.0.0.1:{free_port()}/api"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PREFECT_HOME": str(home), "PREFECT_API_URL": api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_RUNNER_POLL_FREQUENCY": "2", "DVC_NO_ANALYTICS": "1", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    port = api.split(":")[2].split("/")[0]
    server = Service(["prefect", "server", "start", "--host", "127.0.0.1", "--port", port, "--no-ui"],
                     home, env, home / "server.log")
    try:
        wait_for(lambda: httpx.get(f"{api}/health", timeout=5).json() is True, 300, "prefect server health", server)
        client = Prefect(api, env)
        with client.client:
            yield client
    finally:
        server.stop()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, built_project: Path) -> Path:
    """A copy of the tiny build that DVC sees as never run: no dvc.lock, no run cache, a new registry store,
    so the deployment runs every stage. The outputs stay where they are (every output is `persist: true`), so
    the training stages find their models under an unchanged training key and keep them, and the embedding
    cache is the session's: the flow runs each stage for real without paying for the training again (the
    shared build trained them from scratch)."""
    root = clone_build(built_project, tmp_path_factory.mktemp("flowproject") / "project", fresh_store=True)
    (root / "dvc.lock").unlink()
    shutil.rmtree(root / ".dvc/cache/runs", ignore_errors=True)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["orchestration"] = {**params.get("orchestration", {}), "cron": CRON, "retrain_cron": RETRAIN_CRON}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert set(json.loads(run(["dvc", "status", "--json"], root).stdout)) >= set(STAGES)
    return root


@pytest.fixture(scope="module")
def serving(prefect: Prefect, project: Path) -> Iterator[Service]:
    """`ragops schedule` in the project; stopped (if a test has not) before the server."""
    service = Service(["ragops", "schedule"], project, prefect.env, project.parent / "serve.log")
    try:
        wait_for(prefect.deployment, 300, "the served deployment", service)
        yield service
    finally:
        service.stop()


def test_served_deployment_builds_everything_and_pushes(prefect: Prefect, serving: Service, project: Path,
                                                        built_project: Path) -> None:
    flow_run = prefect.trigger(serving)
    assert flow_run.state.is_completed(), serving.tail()
    records = prefect.records(flow_run.id)
    order = list(records)
    assert set(STAGES) <= set(order), order
    for chain in CHAINS:  # each stage after what it reads
        assert [order.index(s) for s in chain] == sorted(order.index(s) for s in chain), (chain, order)
    assert all(records[s]["outcome"] == "ran" and records[s]["seconds"] > 0 for s in STAGES), records
    assert records["evaluate"]["metrics"]["test.hybrid.ndcg@10"] > 0.5
    if "register" in records:  # the registry stage: register -> gate -> promote, summed up in its record
        assert "registered as challenger; gate: promoted to champion" in records["register"]["message"]
    assert records["dvc push"]["outcome"] == "ran" and "pushed to remote 'local'" in records["dvc push"]["message"]
    assert (project / "reports/metrics.json").is_file() and (project / "models/index/faiss").is_dir()
    assert (project / ".dvc-remote" / "files" / "md5").is_dir()
    assert run(["dvc", "status", "--json"], project).stdout.strip() == "{}"
    # Every stage ran again on what the shared build ran on (no lock, no run cache: `dvc repro --force` in
    # effect): the same figures to the last digit, the indexes byte for byte (the BM25 vocabulary's order once
    # followed the process's hash seed), and nothing re-embedded (the embedding cache holds every chunk).
    assert quality(json.loads((project / "reports/metrics.json").read_text())) == quality(
        json.loads((built_project / "reports/metrics.json").read_text()))
    built, rebuilt = _out_hashes(built_project), _out_hashes(project)
    for out in ("data/processed/chunks.parquet", "models/index/bm25", "models/index/embeddings.npy"):
        assert rebuilt[out] == built[out], out
    stats = json.loads((project / "models/index/embed_stats.json").read_text())
    assert stats["encoded"] == 0 and stats["cached"] == stats["total"]


def test_unchanged_data_does_no_work(prefect: Prefect, serving: Service, project: Path) -> None:
    stats = (project / "models/index/embed_stats.json").read_text()
    flow_run = prefect.trigger(serving)
    assert flow_run.state.is_completed(), serving.tail()
    records = prefect.records(flow_run.id)
    for stage in STAGES:
        assert records[stage]["outcome"] == "skipped" and records[stage]["seconds"] == 0, records[stage]
    assert records["dvc push"]["message"].startswith("0 files pushed")
    assert (project / "models/index/embed_stats.json").read_text() == stats


def test_raw_data_change_rebuilds_only_what_depends_on_it(prefect: Prefect, serving: Service, project: Path) -> None:
    docs = pd.read_parquet(project / "data/processed/docs.parquet")
    doc_id = str(docs["doc_id"].iloc[0])
    before = set(pd.read_parquet(project / "data/processed/chunks.parquet")["text"])
    trained = {m: (project / f"models/{m}/training.json").read_text() for m in ("embedder", "reranker")}
    corpus = project / "data/raw/scifact/corpus.jsonl.gz"
    lines = gzip.open(corpus, "rt", encoding="utf-8").read().splitlines()
    for i, line in enumerate(lines):
        record = json.loads(line)
        if record["_id"] == doc_id:
            record["text"] += " Edited to test the scheduled rebuild."
            lines[i] = json.dumps(record)
    with gzip.open(corpus, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    run(["dvc", "add", "data/raw/scifact"], project)  # version the new raw data, as a user would

    flow_run = prefect.trigger(serving)
    assert flow_run.state.is_completed(), serving.tail()
    records = prefect.records(flow_run.id)
    # every stage reads the documents; the fine-tuned index may find its input vectors unchanged (on the tiny
    # profile the dev-chosen epoch can be 0, the base weights) and then DVC rightly skips it
    ran = {s for s in STAGES if records[s]["outcome"] == "ran"}
    assert set(STAGES) - ran <= {"index_dense_ft", "grounding", "grounding_pretrain"}, records
    # grounding reads prepare's copy of the labelled claims, which a document edit leaves byte-identical, and
    # the pretraining reads only the nli/ pairs
    assert "grounding" not in ran and "grounding_pretrain" not in ran, records
    if "index_dense_ft" not in ran:
        assert records["index_dense_ft"]["message"] in ("inputs unchanged", "restored from the DVC run cache"), records
    stats = json.loads((project / "models/index/embed_stats.json").read_text())
    chunks = pd.read_parquet(project / "data/processed/chunks.parquet")
    changed = set(chunks["text"]) - before
    assert changed and set(chunks.loc[chunks["text"].isin(changed), "doc_id"]) == {doc_id}
    assert stats["encoded"] == len(changed)  # only the edited document's new chunks were embedded
    assert stats["cached"] == stats["total"] - stats["encoded"] > 0
    # train.retrain: on_train_change: the training stages ran (their inputs changed) and kept the models
    for m, record in trained.items():
        assert (project / f"models/{m}/training.json").read_text() == record, m


def _digests(root: Path) -> dict[str, str]:
    """sha256 of every file DVC tracks as a cached output of the pipeline."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    out: dict[str, str] = {}
    for stage in lock["stages"].values():
        for entry in stage.get("outs", []):
            path = root / entry["path"]
            files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
            out.update({str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files})
    return out


def test_pushed_outputs_pull_into_a_fresh_clone(project: Path, tmp_path: Path) -> None:
    run(["git", "add", "-A"], project)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "scheduled build"], project)
    clone = tmp_path / "teammate"
    run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    assert not (clone / "models/index/embeddings.npy").exists()
    # A teammate's remote is the same storage: here, the folder the flow pushed to.
    run(["dvc", "remote", "modify", "--local", "local", "url", str(project / ".dvc-remote")], clone)
    run(["dvc", "pull"], clone)
    built, pulled = _digests(project), _digests(clone)
    assert built and pulled == built
    assert run(["dvc", "status", "--json"], clone).stdout.strip() == "{}"


def test_stopping_the_server_process_leaves_the_schedule_active(prefect: Prefect, serving: Service,
                                                                project: Path) -> None:
    assert serving.stop(signal.SIGTERM) == 0, serving.tail()
    deployment = prefect.deployment()
    assert deployment.paused is False
    schedules = {s.schedule.cron: s for s in deployment.schedules}
    assert set(schedules) == {CRON, RETRAIN_CRON} and all(s.active for s in schedules.values())
    assert not schedules[CRON].parameters  # the refresh keeps the trained models ...
    assert schedules[RETRAIN_CRON].parameters == {"retrain": True}  # ... this one retrains them
    assert deployment.parameters == {"project": str(project.resolve())}

    # ... unless asked: `--pause-on-shutdown` pauses it on the way out.
    again = Service(["ragops", "schedule", "--pause-on-shutdown"], project, prefect.env, project.parent / "serve2.log")
    try:
        assert prefect.deployment().paused is False  # serving (re)activates the schedule
        assert prefect.trigger(again).state.is_completed(), again.tail()  # it is polling, not starting
    finally:
        code = again.stop(signal.SIGTERM)
    assert code == 0, again.tail()
    assert prefect.deployment().paused is True


def test_a_failing_stage_fails_the_flow_with_its_message(prefect: Prefect, project: Path, tmp_path: Path) -> None:
    root = tmp_path / "broken"
    clone_build(project, root, skip=(".dvc-remote",))
    corpus = root / "data/raw/scifact/corpus.jsonl.gz"
    lines = gzip.open(corpus, "rt", encoding="utf-8").read().splitlines()
    lines[2] = '{"_id": "broken", "text": '  # line 3: cut short
    with gzip.open(corpus, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    proc = subprocess.run(["ragops", "run"], cwd=root, env=prefect.env, capture_output=True, text=True, timeout=600)
    where = "data/raw/scifact/corpus.jsonl.gz:3: malformed JSON"
    assert proc.returncode == 2 and where in proc.stderr, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_id = prefect.latest_records_run()
    state = prefect.wait(run_id, 60).state
    # the first stage reads the raw files: ingest checks a BEIR folder line by line before anything is copied
    assert STAGES[0] == "ingest" and state.is_failed() and f"stage 'ingest' failed: {where}" in state.message
    records = prefect.records(run_id)
    assert records["ingest"]["outcome"] == "failed" and records["ingest"]["message"].startswith(where)
    assert all(records[s]["outcome"] == "not_run" for s in STAGES[1:])
    assert "dvc push" not in records  # nothing is published from a failed run

