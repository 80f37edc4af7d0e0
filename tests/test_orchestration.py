"""ragops.orchestration against real DVC on a tiny synthetic project (no models, a few seconds):
stage order from dvc.yaml, ran/skipped from DVC itself, the stage's own error, a held lock as a
transient failure, and the push to a local remote."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ragops import orchestration as orch
from ragops.errors import ConfigError

STEP = '''
import json, os, pathlib, sys
from ragops.errors import DataError
kind = sys.argv[1]
if kind == "upper":
    pathlib.Path("a.txt").write_text(pathlib.Path("in.txt").read_text().upper())
    pathlib.Path("retrain.log").open("a").write(os.environ.get("RAGOPS_RETRAIN", "-") + chr(10))  # not a DVC output
elif kind == "score":
    text = pathlib.Path("a.txt").read_text()
    pathlib.Path("b.json").write_text(json.dumps({"score": len(text) / 10, "nested": {"x": 1}, "name": "s"}))
elif kind == "report":
    pathlib.Path("report.txt").write_text(pathlib.Path("b.json").read_text())
elif kind == "bad":
    raise DataError("in.txt", "bad row", 3)
elif kind == "crash":
    raise KeyError("paths")
'''

# `report` is defined first but needs `score`, which needs `upper`: DVC's graph, not file order, decides.
DVC_YAML = """
stages:
  report:
    cmd: python step.py report
    deps: [b.json, step.py]
    outs: [report.txt]
  upper:
    cmd: python step.py upper
    deps: [in.txt, step.py]
    outs: [a.txt]
  score:
    cmd: python step.py score
    deps: [a.txt, step.py]
    metrics:
      - b.json:
          cache: false
"""


def sh(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=orch.dvc_env(), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "step.py").write_text(STEP)
    (root / "in.txt").write_text("hello dvc\n")
    (root / "dvc.yaml").write_text(textwrap.dedent(DVC_YAML))
    sh(["git", "init", "-q"], root)
    sh([sys.executable, "-m", "dvc", "init", "-q"], root)
    sh([sys.executable, "-m", "dvc", "config", "core.analytics", "false"], root)
    return root


def test_stages_come_from_dvc_in_dependency_order(project: Path) -> None:
    stages = orch.list_stages(project)
    assert [s.name for s in stages] == ["upper", "score", "report"]
    by_name = {s.name: s for s in stages}
    assert by_name["score"].upstream == ("upper",) and by_name["report"].upstream == ("score",)
    assert by_name["score"].metrics == ("b.json",) and by_name["upper"].metrics == ()


def test_ran_then_skipped_as_dvc_says(project: Path) -> None:
    stages = orch.list_stages(project)
    assert orch.stale_stages(project) == {"upper", "score", "report"}
    lines: list[str] = []
    first = [orch.reproduce(project, s, True, lines.append) for s in stages]
    assert [r.outcome for r in first] == ["ran", "ran", "ran"]
    assert any("Running stage 'upper'" in ln for ln in lines)
    assert first[1].metrics == {"score": 1.0, "nested.x": 1}  # numbers only, flattened
    assert (project / "report.txt").exists()

    assert orch.stale_stages(project) == set()
    again = orch.reproduce(project, stages[0], check=True)
    assert (again.outcome, again.message) == ("skipped", "inputs unchanged")
    up_to_date = orch.reproduce(project, stages[1], check=False)
    assert (up_to_date.outcome, up_to_date.seconds) == ("skipped", 0.0)
    assert up_to_date.metrics == {"score": 1.0, "nested.x": 1}

    # Same text in other case: `upper` re-runs, but its output is unchanged, so `score` is skipped.
    (project / "in.txt").write_text("HELLO DVC\n")
    assert orch.stale_stages(project) == {"upper"}
    assert orch.reproduce(project, stages[0]).outcome == "ran"
    assert orch.must_check(stages[1], set(), {"upper"})
    assert orch.reproduce(project, stages[1]).outcome == "skipped"
    assert not orch.must_check(stages[2], set(), set())


def test_force_runs_an_up_to_date_stage_with_the_retrain_override(project: Path) -> None:
    stages = orch.list_stages(project)
    for s in stages:
        orch.reproduce(project, s)
    assert orch.stale_stages(project) == set()
    assert orch.reproduce(project, stages[0], check=False).outcome == "skipped"  # up to date: DVC not asked
    forced = orch.reproduce(project, stages[0], check=False, force=True)  # `ragops run --retrain` on a train stage
    assert forced.outcome == "ran"
    # the stage saw RAGOPS_RETRAIN=1 (train.retrain: on_train_change then retrains); the plain run did not
    assert (project / "retrain.log").read_text().splitlines() == ["-", "1"]
    assert orch.TRAIN_STAGES == ("train_embedder", "train_reranker")


@pytest.mark.parametrize(("kind", "message"), [
    ("bad", "stage 'broken' failed: in.txt:3: bad row"),  # our errors: the message alone, it names file and line
    ("crash", "stage 'broken' failed: KeyError: 'paths'"),  # anything else keeps its type
])
def test_a_failing_stage_fails_with_its_own_message(project: Path, kind: str, message: str) -> None:
    (project / "dvc.yaml").write_text(f"stages:\n  broken:\n    cmd: python step.py {kind}\n    deps: [in.txt]\n")
    (stage,) = orch.list_stages(project)
    with pytest.raises(orch.StageError) as info:
        orch.reproduce(project, stage)
    assert str(info.value) == message
    assert info.value.record.outcome == "failed" and info.value.record.seconds > 0
    assert not orch.is_transient(info.value)


def test_a_held_dvc_lock_is_transient(project: Path) -> None:
    from dvc.lock import make_lock

    (stage, *_) = orch.list_stages(project)
    lock = make_lock(str(project / ".dvc" / "tmp" / "lock"), tmp_dir=str(project / ".dvc" / "tmp"))
    lock.lock()
    try:
        with pytest.raises(orch.TransientDvcError) as info:
            orch.reproduce(project, stage)
    finally:
        lock.unlock()
    assert orch.is_transient(info.value) and "Unable to acquire lock" in str(info.value)
    assert orch.reproduce(project, stage).outcome == "ran"  # once the lock is free, the retry succeeds


def test_push_to_the_default_remote_or_skip(project: Path, tmp_path: Path) -> None:
    for stage in orch.list_stages(project):
        orch.reproduce(project, stage)
    skipped = orch.push(project)
    assert skipped.outcome == "skipped" and "dvc remote add -d" in skipped.message
    sh([sys.executable, "-m", "dvc", "remote", "add", "-d", "store", str(tmp_path / "store")], project)
    assert orch.default_remote(project) == "store"
    pushed = orch.push(project)
    assert (pushed.stage, pushed.outcome) == ("dvc push", "ran")
    assert pushed.message == "2 files pushed to remote 'store'"  # a.txt and report.txt (b.json is not cached)
    assert orch.push(project).message == "0 files pushed to remote 'store'"


def test_stage_error_message() -> None:
    chained = textwrap.dedent("""\
        Running stage 'x':
        > python -m ragops.stages.x
        Traceback (most recent call last):
          File "a.py", line 1, in <module>
        ValueError: inner

        The above exception was the direct cause of the following exception:

        Traceback (most recent call last):
          File "b.py", line 2, in <module>
        ragops.errors.DataError: data/x.jsonl:7: 'text' is missing
        ERROR: failed to reproduce 'x': failed to run: python -m ragops.stages.x, exited with 1""")
    assert orch.stage_error_message(chained) == "data/x.jsonl:7: 'text' is missing"
    assert orch.stage_error_message("ERROR: 'dvc.yaml' validation failed\n") == "'dvc.yaml' validation failed"
    assert orch.stage_error_message("Traceback (most recent call last):\n  File x\nKeyboardInterrupt\n") == \
        "KeyboardInterrupt"
    assert orch.stage_error_message("") == "failed without output"


def test_repro_outcome() -> None:
    assert orch.repro_outcome("Running stage 'embed':\n> python -m x", "embed") == ("ran", "")
    assert orch.repro_outcome("Stage 'embed' didn't change, skipping", "embed")[0] == "skipped"
    assert orch.repro_outcome("Stage 'embed' is cached - skipping run, checking out outputs", "embed") == \
        ("skipped", "restored from the DVC run cache")


def test_orchestration_config() -> None:
    cfg = orch.OrchestrationConfig.from_params({})
    assert (cfg.cron, cfg.deployment, cfg.push, cfg.pause_on_shutdown) == ("0 2 * * *", "nightly", True, False)
    assert orch.OrchestrationConfig.from_params({"orchestration": {"cron": "*/5 * * * *"}}).cron == "*/5 * * * *"
    with pytest.raises(ConfigError, match="unknown keys \\['crom'\\]; valid: deployment, cron"):
        orch.OrchestrationConfig.from_params({"orchestration": {"crom": "x"}})


def test_registry_note(tmp_path: Path) -> None:
    """The `register` stage's record says what register -> gate -> promote did."""
    (tmp_path / "params.yaml").write_text("paths:\n  registry: reports/registry.json\n")
    assert orch.registry_note(tmp_path) == ""
    (tmp_path / "reports").mkdir()
    info = {"version": 3, "promoted": False, "previous_champion": 2,
            "decision": {"promote": False, "reason": "drop 0.0400 exceeds tolerance 0.01 (p=0.002)"}}
    (tmp_path / "reports/registry.json").write_text(json.dumps(info))
    assert orch.registry_note(tmp_path) == ("v3 registered as challenger; gate: champion stays v2 "
                                            "(drop 0.0400 exceeds tolerance 0.01 (p=0.002))")
    info.update(promoted=True, decision={"reason": "first version: no champion yet"})
    (tmp_path / "reports/registry.json").write_text(json.dumps(info))
    assert "gate: promoted to champion (first version" in orch.registry_note(tmp_path)
    info.update(served_mode="hybrid_ft")
    (tmp_path / "reports/registry.json").write_text(json.dumps(info))
    assert orch.registry_note(tmp_path).startswith("v3 serving hybrid_ft registered as challenger")
    exp = {"registered": False, "reason": "dvc exp run (exp-1): logged, not registered", "served_mode": "hybrid"}
    (tmp_path / "reports/registry.json").write_text(json.dumps(exp))
    assert orch.registry_note(tmp_path) == "dvc exp run (exp-1): logged, not registered"


def test_schedule_needs_a_prefect_server(tmp_path: Path) -> None:
    """`ragops schedule` without PREFECT_API_URL says what to do instead of serving against nothing."""
    env = {k: v for k, v in orch.dvc_env().items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path)
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([str(Path(sys.executable).parent / "ragops"), "schedule"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "PREFECT_API_URL is not set" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
