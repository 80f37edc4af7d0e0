"""ragops.retrieval.tuning.write_fusion_params: on a copy of the real params.yaml (never the file itself), only the
fusion values change, every comment and every other line stays byte-identical, and the choosing
command is recorded exactly once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from ragops.errors import ConfigError
from ragops.retrieval.tuning import fusion_grid, write_fusion_params

REPO = Path(__file__).resolve().parents[1]
MARK = "# chosen on dev by:"
KEYS = ("method", "alpha", "norm", "rrf_k", "prf_docs", "prf_beta")
BEST = {"method": "rrf", "alpha": 0.35, "norm": "zscore", "rrf_k": 20, "prf_docs": 0, "prf_beta": 0.0, "ndcg@10": 0.71}


@pytest.fixture
def params_copy(tmp_path: Path) -> Path:
    src = REPO / "params.yaml"
    dst = tmp_path / "params.yaml"
    shutil.copyfile(src, dst)  # the copy is written, never the real file
    return dst


def different(current: dict) -> dict:
    """Fusion values that differ from ``current`` in every key (so every key line must change)."""
    options = {"method": ("rrf", "convex"), "alpha": (0.35, 0.4), "norm": ("none", "minmax"), "rrf_k": (20, 40),
               "prf_docs": (2, 1), "prf_beta": (0.5, 0.7)}
    return {k: a if current.get(k) != a else b for k, (a, b) in options.items()} | {"ndcg@10": 0.71}


def fusion_span(lines: list[str]) -> tuple[int, int]:
    """[start, end) of the top-level fusion block's lines (header excluded)."""
    start = lines.index("fusion:\n") + 1
    end = start
    while end < len(lines) and (lines[end].startswith(" ") or not lines[end].strip()):
        end += 1
    return start, end


def without_fusion_mark(lines: list[str]) -> list[str]:
    start, end = fusion_span(lines)
    return lines[:start] + [line for line in lines[start:end] if MARK not in line] + lines[end:]


def comment(line: str) -> str:
    return line[line.index("#") :] if "#" in line else ""


def test_only_the_fusion_values_change(params_copy: Path) -> None:
    before = params_copy.read_text(encoding="utf-8")
    # The real file may already record an earlier choice: that line is replaced, not kept. Other blocks
    # (fusion_ft, rerank: `ragops tune-training`) keep their own records.
    old_lines = without_fusion_mark(before.splitlines(keepends=True))
    assert "fusion:\n" in old_lines
    best = different(yaml.safe_load(before)["fusion"])
    write_fusion_params(params_copy, best, "ragops tune --metric ndcg@10")
    new_lines = params_copy.read_text(encoding="utf-8").splitlines(keepends=True)

    start, end = fusion_span(new_lines)
    marks = [i for i in range(start, end) if MARK in new_lines[i]]
    assert len(marks) == 1
    assert sum(MARK in line for line in new_lines) == sum(MARK in line for line in old_lines) + 1
    assert new_lines[marks[0]] == f"  {MARK} ragops tune --metric ndcg@10\n"
    assert new_lines[marks[0] - 1] == "fusion:\n"  # recorded inside the block, right under its header
    del new_lines[marks[0]]

    assert len(new_lines) == len(old_lines)
    start, end = fusion_span(old_lines)
    changed = {i for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=True)) if a != b}
    assert changed and all(start <= i < end for i in changed)
    changed_keys = sorted(old_lines[i].split(":")[0].strip() for i in changed)
    assert changed_keys == sorted(KEYS)
    for i in changed:  # same indentation, same key, same comment; only the value differs
        key = old_lines[i].split(":")[0]
        assert new_lines[i].startswith(f"{key}: {best[key.strip()]}")
        assert comment(new_lines[i]) == comment(old_lines[i])
    assert [comment(x) for x in new_lines] == [comment(x) for x in old_lines]

    old_yaml, new_yaml = yaml.safe_load(before), yaml.safe_load("".join(new_lines))
    assert new_yaml["fusion"] == {k: best[k] for k in KEYS}
    assert {k: v for k, v in new_yaml.items() if k != "fusion"} == {k: v for k, v in old_yaml.items() if k != "fusion"}
    assert sorted(p.name for p in params_copy.parent.iterdir()) == ["params.yaml"]  # no temporary file left


def test_running_twice_keeps_one_record(params_copy: Path) -> None:
    write_fusion_params(params_copy, BEST, "first command")
    once = params_copy.read_text(encoding="utf-8")
    write_fusion_params(params_copy, BEST, "first command")
    assert params_copy.read_text(encoding="utf-8") == once  # idempotent

    second = {"method": "convex", "alpha": 0.6, "norm": "minmax", "rrf_k": 60, "prf_docs": 2, "prf_beta": 0.4}
    write_fusion_params(params_copy, second, "second command")
    text = params_copy.read_text(encoding="utf-8")
    start, end = fusion_span(text.splitlines(keepends=True))
    block = "".join(text.splitlines(keepends=True)[start:end])
    assert block.count(MARK) == 1 and text.count(MARK) == once.count(MARK)  # other blocks keep theirs
    assert f"{MARK} second command\n" in text and "first command" not in text
    assert yaml.safe_load(text)["fusion"] == second
    assert len(text.splitlines()) == len(once.splitlines())


def test_every_grid_setting_round_trips(params_copy: Path) -> None:
    for setting in fusion_grid()[::6]:
        write_fusion_params(params_copy, setting, "grid")
        assert yaml.safe_load(params_copy.read_text(encoding="utf-8"))["fusion"] == setting


def test_block_at_end_of_file_and_other_blocks_untouched(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "other:\n  method: keep   # not the fusion block\n  alpha: 0.9\n\n"
        "fusion:\n  # chosen on dev by: old\n  method: convex  # a | b\n\n  alpha: 0.5\n  norm: minmax\n  rrf_k: 60",
        encoding="utf-8",
    )
    write_fusion_params(path, BEST, "new")
    assert path.read_text(encoding="utf-8") == (
        "other:\n  method: keep   # not the fusion block\n  alpha: 0.9\n\n"
        "fusion:\n  # chosen on dev by: new\n  method: rrf  # a | b\n\n  alpha: 0.35\n  norm: zscore\n  rrf_k: 20\n"
        "  prf_docs: 0\n  prf_beta: 0.0\n"  # keys the block lacked (an older params.yaml) are added
    )


def test_no_fusion_block(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("seed: 42\nindex:\n  fusion:\n    method: convex\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="fusion"):
        write_fusion_params(path, BEST, "x")
    assert path.read_text(encoding="utf-8") == "seed: 42\nindex:\n  fusion:\n    method: convex\n"
