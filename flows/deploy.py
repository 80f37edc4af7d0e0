"""The pipeline's scheduled deployment, and a single run.

    ragops schedule               # serve `ragops-pipeline/<orchestration.deployment>` on orchestration.cron
    ragops run                    # run the flow once, now
    python flows/deploy.py        # the same as `ragops schedule`

The deployment is served by this process (``flow.serve``) against the Prefect server named by
``PREFECT_API_URL``; each run is a subprocess of it, started in the project folder. One run at a
time (``limit=1``): a run triggered while another is going waits instead of fighting over DVC's lock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import Flow
from prefect.flows import load_flow_from_entrypoint
from prefect.schedules import Cron

from ragops.config import load_params
from ragops.orchestration import OrchestrationConfig

FLOW_NAME = "ragops-pipeline"


def load_pipeline() -> Flow:
    """The flow in flows/pipeline.py, loaded by path (flows/ is not a package)."""
    return load_flow_from_entrypoint(f"{Path(__file__).resolve().with_name('pipeline.py')}:pipeline")


def run_once(project: Path, push: bool | None = None, retrain: bool = False) -> list[dict[str, Any]]:
    """One flow run now, in this process; raises the failing stage's error."""
    return load_pipeline()(project=str(project.resolve()), push=push, retrain=retrain)


def serve(project: Path, cfg: OrchestrationConfig) -> None:
    """Serve the flow as deployment ``ragops-pipeline/<cfg.deployment>`` until SIGTERM or Ctrl-C.

    The schedule is (re)activated on start (``paused=False``) and, unless ``cfg.pause_on_shutdown``,
    stays active after this process stops, so the next `ragops schedule` picks up its runs.
    """
    schedules = [Cron(cfg.cron, timezone=cfg.timezone)]
    if cfg.retrain_cron:  # the models' own cadence: these runs retrain (train.retrain keeps them otherwise)
        schedules.append(Cron(cfg.retrain_cron, timezone=cfg.timezone, parameters={"retrain": True}))
    load_pipeline().serve(
        name=cfg.deployment,
        schedules=schedules,
        paused=False,
        parameters={"project": str(project.resolve())},
        pause_on_shutdown=cfg.pause_on_shutdown,
        limit=1,
        tags=["ragops"],
        description=f"The ragops DVC pipeline, stage by stage, on cron '{cfg.cron}' ({cfg.timezone}).",
    )


if __name__ == "__main__":
    serve(Path.cwd(), OrchestrationConfig.from_params(load_params()))
