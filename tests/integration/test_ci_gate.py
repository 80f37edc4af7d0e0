"""`ragops gate` on real pipeline outputs: bad baselines give clear errors. A params change that hurts retrieval
failing the gate, and the reverse passing, is checked on the registry test's versions, which are exactly those
builds (tests/integration/test_registry.py::test_ci_gate_fails_the_regression_and_passes_the_reverse)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import run

pytestmark = pytest.mark.integration


def test_gate_explains_bad_baselines(built_project: Path, tmp_path: Path) -> None:
    missing = run(["ragops", "gate", "--baseline", str(tmp_path / "none.csv")], built_project, check=False)
    assert missing.returncode == 2 and "baseline file not found" in missing.stderr
    assert "Traceback" not in missing.stderr
    (tmp_path / "bad.csv").write_text("query,score\nq1,0.5\n")
    bad = run(["ragops", "gate", "--baseline", str(tmp_path / "bad.csv")], built_project, check=False)
    assert bad.returncode == 2 and "missing column(s) split, mode, query_id" in bad.stderr
