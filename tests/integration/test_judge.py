"""`ragops judge "QUERY"` over the tiny build, answered on stdin as a person would: the same ranking as
`ragops search`, one prompt per result, each answer appended at once (quitting keeps what was answered)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ragops.eval.judgments import query_id, read

from .conftest import run

pytestmark = pytest.mark.integration
QUERY = "vitamin D deficiency and bone fractures"


def test_cli_judge_asks_for_each_result_and_appends_the_answers(built_project: Path, tmp_path: Path) -> None:
    out = tmp_path / "judgments.jsonl"  # not the build's data/judgments: other tests share that build
    expected = json.loads(run(["ragops", "search", QUERY, "-k", "4", "--mode", "bm25", "--json"],
                              built_project).stdout)["results"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(["ragops", "judge", QUERY, "-k", "4", "--mode", "bm25", "--file", str(out)],
                          cwd=built_project, env=env, input="y\nperhaps\nn\ns\nq\n", capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("relevant? [y]es / [n]o / [s]kip / [q]uit") == 5  # one re-asked after "perhaps"
    assert "answer y, n, s or q" in proc.stdout
    for hit in expected:  # every result was shown with its id and title, in the search's order
        assert f"[{hit['doc_id']}]" in proc.stdout
    positions = [proc.stdout.index(f"[{hit['doc_id']}]") for hit in expected]
    assert positions == sorted(positions)
    assert "1 relevant, 1 not relevant recorded" in proc.stdout
    judged = read(out)
    assert judged[["query_id", "doc_id", "score", "by", "mode"]].values.tolist() == [
        [query_id(QUERY), expected[0]["doc_id"], 1, "cli", "bm25"],
        [query_id(QUERY), expected[1]["doc_id"], 0, "cli", "bm25"],
    ]
