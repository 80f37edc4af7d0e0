"""`ragops gate` on real pipeline outputs: a params change that hurts retrieval fails the gate, the
reverse change passes, and bad baselines give clear errors (tiny profile, real `dvc repro`). Each side is
judged in the mode it would serve (`registry.mode: auto`, chosen on its own dev metrics), named in the report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from .conftest import clone_build, run

pytestmark = pytest.mark.integration


def set_alpha(root: Path, alpha: float) -> None:
    """Both hybrids (base and fine-tuned), whichever the build serves."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["fusion"]["alpha"] = alpha
    params["fusion_ft"]["alpha"] = alpha
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_gate_fails_a_regression_and_passes_an_improvement(built_project: Path, tmp_path: Path) -> None:
    root = clone_build(built_project, tmp_path / "project")  # its own params and registry: the shared build stays
    original = (root / "params.yaml").read_text()
    assert "Running stage" not in run(["dvc", "repro"], root).stdout  # the copy is up to date
    served = json.loads((root / "reports/registry.json").read_text())["served_mode"]
    if not served.startswith("hybrid"):
        # the fusion weight cannot hurt a mode without fusion (on the tiny sample dev can prefer dense):
        # judge the base hybrid, named in params, so the regression below reaches what is served
        params = yaml.safe_load(original)
        params["registry"]["mode"] = "hybrid"
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run(["dvc", "repro"], root)
        served = json.loads((root / "reports/registry.json").read_text())["served_mode"]
        assert served == "hybrid"
    baseline_params = (root / "params.yaml").read_text()
    shutil.copy(root / "reports/per_query.csv", tmp_path / "hybrid.csv")
    shutil.copy(root / "reports/metrics.json", tmp_path / "hybrid.json")
    set_alpha(root, 0.0)  # fusion weight 0 on dense: BM25 alone, clearly worse than hybrid
    run(["dvc", "repro"], root)
    worse = run(["ragops", "gate", "--baseline", str(tmp_path / "hybrid.csv"), "--baseline-metrics",
                 str(tmp_path / "hybrid.json"), "--report", str(tmp_path / "report.md")], root, check=False)
    assert worse.returncode == 1, worse.stdout + worse.stderr
    assert "gate: FAIL" in worse.stdout
    report = (tmp_path / "report.md").read_text()
    assert "❌ fails" in report and "Queries whose ndcg@10 dropped most" in report
    assert "| test | hybrid | ndcg@10 |" in report
    assert f"Served mode — base: `{served}` (" in report
    # The other way round: the hybrid outputs (kept above: a rebuild would only reproduce them) against the
    # BM25-only baseline pass.
    shutil.copy(root / "reports/per_query.csv", tmp_path / "bm25only.csv")
    (root / "params.yaml").write_text(baseline_params)
    better = run(["ragops", "gate", "--baseline", str(tmp_path / "bm25only.csv"), "--candidate",
                  str(tmp_path / "hybrid.csv"), "--candidate-metrics", str(tmp_path / "hybrid.json")],
                 root, check=False)
    assert better.returncode == 0, better.stdout + better.stderr
    assert "gate: PASS" in better.stdout


def test_gate_explains_bad_baselines(built_project: Path, tmp_path: Path) -> None:
    missing = run(["ragops", "gate", "--baseline", str(tmp_path / "none.csv")], built_project, check=False)
    assert missing.returncode == 2 and "baseline file not found" in missing.stderr
    assert "Traceback" not in missing.stderr
    (tmp_path / "bad.csv").write_text("query,score\nq1,0.5\n")
    bad = run(["ragops", "gate", "--baseline", str(tmp_path / "bad.csv")], built_project, check=False)
    assert bad.returncode == 2 and "missing column(s) split, mode, query_id" in bad.stderr
