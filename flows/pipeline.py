"""The ragops pipeline as a Prefect flow: one task per DVC stage, in dvc.yaml's order, then a DVC push.

Composition only (style rule 3). DVC decides what is stale and versions every output; the helpers
in ``ragops.orchestration`` run it. This file adds what Prefect is for: a task run per stage with its
logs, retries for what can fail transiently (DVC's lock held by another process, a remote transfer),
a table of what each stage did, and the schedule (``flows/deploy.py``, ``ragops schedule``).

    ragops run                    # once, now
    python flows/pipeline.py      # the same
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from ragops import orchestration as orch
from ragops.config import load_params

STAGES_ARTIFACT = "ragops-stages"


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry condition: only failures that a second attempt can fix."""
    try:
        state.result()
    except Exception as exc:  # the state's own exception, classified below
        return orch.is_transient(exc)
    return False


# DVC is the cache: Prefect must never skip a stage from its own cache, nor store results.
_TASK = {"cache_policy": NO_CACHE, "persist_result": False, "retry_condition_fn": _transient}


@task(name="dvc-status", **_TASK)
def plan(project: str) -> set[str]:
    """The stages DVC reports as stale before anything runs."""
    return orch.stale_stages(Path(project), get_run_logger().info)


@task(name="dvc-stage", task_run_name="{stage.name}", **_TASK)
def stage_task(project: str, stage: orch.Stage, check: bool, force: bool = False) -> orch.StageRecord:
    """One DVC stage through ``dvc repro --single-item`` (or nothing, when DVC says it is up to date)."""
    record = orch.reproduce(Path(project), stage, check, get_run_logger().info, force)
    get_run_logger().info("%s: %s in %.1fs %s", stage.name, record.outcome, record.seconds, record.message)
    return record


@task(name="dvc-push", **_TASK)
def push_task(project: str) -> orch.StageRecord:
    """Push every DVC-tracked output to the default remote."""
    return orch.push(Path(project), get_run_logger().info)


def _record(state: Any, stage: str) -> orch.StageRecord:
    result = state.result(raise_on_failure=False)
    if isinstance(result, orch.StageRecord):
        return result
    if isinstance(result, orch.StageError | orch.TransientDvcError):
        return result.record
    return orch.StageRecord(stage, "failed", 0.0, f"{type(result).__name__}: {result}")


@flow(name="ragops-pipeline")
def pipeline(project: str = ".", push: bool | None = None, retrain: bool = False) -> list[dict[str, Any]]:
    """Bring every DVC stage of ``project`` up to date, record what each did, push the outputs.

    ``push``: None follows ``orchestration.push`` in params.yaml. ``retrain``: run the training stages
    even when DVC finds them up to date, and retrain under ``train.retrain: on_train_change`` too.
    Fails with the first failing stage's own message; the stages after it are recorded as not run.
    """
    root = Path(project).resolve()
    cfg = orch.OrchestrationConfig.from_params(load_params(root / "params.yaml"))
    retry = {"retries": cfg.retries, "retry_delay_seconds": cfg.retry_delay_s}
    stale = plan.with_options(**retry)(str(root))  # first: a broken dvc.yaml fails here with DVC's message
    stages = orch.list_stages(root)
    records: list[orch.StageRecord] = []
    ran: set[str] = set()
    failure: orch.StageRecord | None = None
    for stage in stages:
        if failure is not None:
            records.append(orch.not_run(stage, failure.stage))
            continue
        check = orch.must_check(stage, stale, ran)
        force = retrain and stage.name in orch.TRAIN_STAGES
        state = stage_task.with_options(**retry)(str(root), stage, check, force, return_state=True)
        records.append(_record(state, stage.name))
        if records[-1].outcome == "ran":
            ran.add(stage.name)
        elif records[-1].outcome == "failed":
            failure = records[-1]
    if failure is None and (cfg.push if push is None else push):
        records.append(_record(push_task.with_options(**retry)(str(root), return_state=True), "dvc push"))
        failure = records[-1] if records[-1].outcome == "failed" else None
    _publish(records)
    if failure is not None:
        raise orch.StageError(failure)
    return [r.as_dict() for r in records]


def _publish(records: list[orch.StageRecord]) -> None:
    """The table of what each stage did, on the flow run's page in the UI (and in the API)."""
    rows = [{**r.as_dict(), "metrics": json.dumps(r.metrics, sort_keys=True)} for r in records]
    create_table_artifact(rows, key=STAGES_ARTIFACT, description="What each DVC stage did in this run.")
    log = get_run_logger()
    for r in records:
        log.info("%-12s %-8s %7.1fs  %s", r.stage, r.outcome, r.seconds, r.message)


if __name__ == "__main__":
    pipeline()
