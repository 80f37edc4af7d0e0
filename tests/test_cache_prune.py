"""`ragops cache prune`: the embedding cache keeps exactly the vectors the built outputs read (the chunks under
the embed and embed_ft model ids, the answer sentences under the sentence store's), in one segment per folder;
a stale model's folder goes; a dry run changes nothing; nothing built is a one-line error; a running `dvc repro`
(DVC's lock of the project held) makes it refuse and change nothing. The ONNX export folder loses the superseded
recipes' exports, and with --unused-exports the current recipe's exports of models the build does not use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# dvc binds its log handler to the sys.stdout of its first import: imported here, not first inside a CliRunner
# call whose stdout is closed afterwards (later tests on the worker log through dvc)
import dvc.repo  # noqa: F401
import numpy as np
import pandas as pd
import yaml
from typer.testing import CliRunner

from ragops.answer.vectors import sentence_texts
from ragops.cli.main import app
from ragops.encode.encoder import EmbeddingCache, cache_keys
from ragops.encode.export_prune import live_exports, prune_exports
from ragops.encode.models import model_fingerprint, resolve_model
from ragops.encode.prune import live_texts, prune
from ragops.io import write_json
from ragops.training.artifacts import MARKER

BASE = "a" * 64 + ":256:onnx-int8.1"
BASE_TORCH = "a" * 64 + ":256"  # the same weights under the other backend: its folder, other keys
TUNED = "b" * 64 + ":256:onnx-int8.1"
OLD = "c" * 64 + ":256:onnx-int8.1"  # an earlier fine-tuned model
REPO = Path(__file__).resolve().parents[1]


def fill(root: Path, model_id: str, texts: list[str], blocks: int = 2) -> dict[bytes, np.ndarray]:
    cache = EmbeddingCache(root, model_id)
    texts = list(dict.fromkeys(texts))  # a chunk may also be a sentence: one vector per text, as a build has
    keys = cache_keys(model_id, texts)
    vecs = np.random.default_rng(len(texts)).standard_normal((len(texts), 4)).astype(np.float32)
    for part in np.array_split(np.arange(len(texts)), blocks):
        cache.add(keys[part], vecs[part])
    return dict(zip(keys.tolist(), vecs, strict=True))


def project(tmp_path: Path) -> dict:
    """A built project's files that prune reads, and a cache with live and stale vectors."""
    chunks = ["Aspirin lowers fever.", "Statins lower cholesterol."]
    docs = pd.DataFrame({"title": ["Fever", "Lipids"], "text": ["Aspirin lowers fever. It was a trial.",
                                                               "BACKGROUND: Statins lower cholesterol."]})
    paths = {"chunks": tmp_path / "chunks.parquet", "docs": tmp_path / "docs.parquet", "sentences": tmp_path / "sent",
             "embed_stats": tmp_path / "stats.json", "embed_stats_ft": tmp_path / "stats_ft.json"}
    pd.DataFrame({"text": chunks}).to_parquet(paths["chunks"])
    docs.to_parquet(paths["docs"])
    write_json(paths["embed_stats"], {"model_id": BASE})
    write_json(paths["embed_stats_ft"], {"model_id": TUNED})
    paths["sentences"].mkdir()
    write_json(paths["sentences"] / "meta.json", {"model_id": BASE, "count": 0})
    cache = tmp_path / "cache"
    sentences = sentence_texts(docs["title"], docs["text"])
    live = {**fill(cache, BASE, chunks + sentences + ["An edited chunk's old text."], blocks=3),
            **fill(cache, TUNED, chunks)}
    fill(cache, BASE_TORCH, chunks)
    fill(cache, OLD, chunks)
    (cache / "identities").mkdir()
    (cache / "identities" / "x.json").write_text("{}")
    stale = cache_keys(BASE, ["An edited chunk's old text."])[0]
    del live[stale]
    return {"paths": {k: str(v) for k, v in paths.items()}, "cache": cache, "live": live, "stale": stale,
            "chunks": chunks, "sentences": sentences}


def write_params(tmp_path: Path, p: dict) -> None:
    """The project's params.yaml with the built files and the cache of :func:`project`."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["paths"].update(p["paths"])
    params["embed"]["cache_dir"] = str(p["cache"])
    params["embed"]["onnx_dir"] = str(tmp_path / "onnx")  # never the user's shared ~/.cache/ragops/onnx
    # no trained models (not the checkout's models/, resolved from wherever pytest runs): the base is the one used
    params["paths"].update(embedder=str(tmp_path / "embedder"), reranker=str(tmp_path / "reranker"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))


def listing(folder: Path) -> dict[str, bytes]:
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def test_prune_keeps_what_the_outputs_read_and_drops_the_rest(tmp_path: Path) -> None:
    p = project(tmp_path)
    params = {"paths": p["paths"]}
    live = live_texts(params)
    assert set(live) == {BASE, TUNED} and live[TUNED] == p["chunks"]
    assert sorted(live[BASE]) == sorted(p["chunks"] + p["sentences"])
    before = listing(p["cache"])
    dry = prune(p["cache"], live, dry_run=True)
    assert listing(p["cache"]) == before  # a dry run writes nothing
    assert dry.removed_folders == [OLD[:16]] and dry.compacted_folders == [BASE[:16], TUNED[:16]]
    # dropped: the old model's 2, the torch backend's 2 and one edited chunk's old vector in the shared folder
    assert (dry.vectors_kept, dry.vectors_dropped) == (len(p["live"]), 5)

    done = prune(p["cache"], live)
    assert (done.removed_folders, done.compacted_folders) == (dry.removed_folders, dry.compacted_folders)
    assert (done.vectors_kept, done.vectors_dropped) == (dry.vectors_kept, dry.vectors_dropped)
    assert done.bytes_after < done.bytes_before
    assert not (p["cache"] / OLD[:16]).exists() and (p["cache"] / "identities" / "x.json").is_file()
    for model_id in (BASE, TUNED):
        folder = p["cache"] / model_id[:16]
        assert len(list(folder.glob("seg-*.keys.npy"))) == 1 and len(list(folder.iterdir())) == 2
        cache = EmbeddingCache(p["cache"], model_id)
        keys = cache_keys(model_id, live[model_id])
        assert all(k in cache for k in keys.tolist())  # the next build encodes nothing
        np.testing.assert_array_equal(cache.get(keys, 4), np.stack([p["live"][k] for k in keys.tolist()]))
    assert p["stale"] not in EmbeddingCache(p["cache"], BASE)
    assert not any(k in EmbeddingCache(p["cache"], BASE_TORCH) for k in cache_keys(BASE_TORCH, p["chunks"]).tolist())

    again = prune(p["cache"], live)  # nothing left to do
    assert (again.removed_folders, again.compacted_folders, again.vectors_dropped) == ([], [], 0)
    assert again.bytes_after == again.bytes_before == done.bytes_after


def test_a_damaged_segment_is_dropped_and_its_live_texts_encoded_again(tmp_path: Path) -> None:
    p = project(tmp_path)
    folder = p["cache"] / TUNED[:16]
    first = sorted(folder.glob("seg-*.vecs.npy"))[0]
    first.write_bytes(b"not an array")
    report = prune(p["cache"], live_texts({"paths": p["paths"]}))
    assert TUNED[:16] in report.compacted_folders
    assert not list(folder.glob("*.damaged")) and len(list(folder.iterdir())) == 2
    cache = EmbeddingCache(p["cache"], TUNED)
    assert 0 < len(cache) < len(p["chunks"])  # the damaged block's text is missing: the next embed encodes it


def test_cli_prunes_by_params_and_nothing_built_is_one_line(tmp_path: Path) -> None:
    p = project(tmp_path)
    write_params(tmp_path, p)
    runner = CliRunner()
    out = runner.invoke(app, ["cache", "prune", "--dry-run", "--params", str(tmp_path / "params.yaml")])
    assert out.exit_code == 0, out.output
    assert f"{len(p['live']):,} vectors kept, 5 dropped; would free" in " ".join(out.output.split())
    assert (p["cache"] / OLD[:16]).exists()
    out = runner.invoke(app, ["cache", "prune", "--params", str(tmp_path / "params.yaml")])
    assert out.exit_code == 0 and f"removed {OLD[:16]}/" in out.output and not (p["cache"] / OLD[:16]).exists()
    Path(p["paths"]["embed_stats"]).unlink()
    out = runner.invoke(app, ["cache", "prune", "--params", str(tmp_path / "params.yaml")])
    assert out.exit_code == 2 and "nothing is built" in out.output and "Traceback" not in out.output


def test_cli_refuses_while_a_dvc_command_holds_the_project(tmp_path: Path) -> None:
    p = project(tmp_path)
    write_params(tmp_path, p)
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    # another process holds DVC's repo lock, as `dvc repro` does for its whole run
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from dvc.repo import Repo; "
                               f"r = Repo({str(tmp_path)!r}); r.lock.lock(); print('held', flush=True); "
                               "sys.stdin.read()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = listing(p["cache"])
        runner = CliRunner()
        out = runner.invoke(app, ["cache", "prune", "--params", str(tmp_path / "params.yaml")])
        text = " ".join(out.output.split())
        assert out.exit_code == 2 and "a DVC command is running in this project" in text, out.output
        assert f"process {holder.pid}" in text and "Traceback" not in out.output
        assert listing(p["cache"]) == before  # nothing pruned
        dry = runner.invoke(app, ["cache", "prune", "--dry-run", "--params", str(tmp_path / "params.yaml")])
        assert dry.exit_code == 0 and "would free" in dry.output  # reading does not need the lock
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    out = runner.invoke(app, ["cache", "prune", "--params", str(tmp_path / "params.yaml")])
    assert out.exit_code == 0 and f"removed {OLD[:16]}/" in out.output and not (p["cache"] / OLD[:16]).exists()
    relock = subprocess.run([sys.executable, "-c", f"from dvc.repo import Repo; Repo({str(tmp_path)!r}).lock.lock()"])
    assert relock.returncode == 0  # prune released the lock it took


def onnx_cache(root: Path) -> dict[str, Path]:
    """An export folder as a machine accumulates it: each kind's recipe-1 and current exports, a retrained model's
    export, and folders that are not exports."""
    folders = {"enc_r1": "a" * 16, "enc": "a" * 16 + "-r2", "ce_r1": "b" * 16 + "-ce", "ce": "b" * 16 + "-ce2",
               "old_enc": "c" * 16 + "-r2", "old_ce": "d" * 16 + "-ce2", "other": "notes",
               "writing": ".eeeeeeeeeeeeeeee-r2.123.x.tmp"}
    out = {}
    for key, name in folders.items():
        (root / name).mkdir(parents=True)
        (root / name / "model.onnx").write_bytes(b"x" * 1000)
        out[key] = root / name
    return out


def test_exports_of_superseded_recipes_go_and_unused_ones_only_when_asked(tmp_path: Path) -> None:
    f = onnx_cache(tmp_path / "onnx")
    before = listing(tmp_path / "onnx")
    dry = prune_exports(tmp_path / "onnx", dry_run=True)
    assert sorted(dry.removed) == sorted([f["enc_r1"].name, f["ce_r1"].name]) and listing(tmp_path / "onnx") == before
    assert dry.bytes_before == 8000 and dry.bytes_after == 6000
    r = prune_exports(tmp_path / "onnx")
    assert r.removed == {f["enc_r1"].name: "recipe 1, superseded by 2", f["ce_r1"].name: "recipe 1, superseded by 2"}
    assert {p.name for p in (tmp_path / "onnx").iterdir()} == {f[k].name for k in
                                                               ("enc", "ce", "old_enc", "old_ce", "other", "writing")}
    r = prune_exports(tmp_path / "onnx", live={f["enc"].name, f["ce"].name})
    assert sorted(r.removed) == sorted([f["old_enc"].name, f["old_ce"].name])
    assert set(r.removed.values()) == {"a model this project does not use"}
    assert {p.name for p in (tmp_path / "onnx").iterdir()} == {f[k].name for k in ("enc", "ce", "other", "writing")}


def test_live_exports_are_the_builds_models(tmp_path: Path) -> None:
    base = resolve_model("all-MiniLM-L6-v2")
    reranker = tmp_path / "reranker"
    reranker.mkdir()
    (reranker / "config.json").write_text('{"layers": 4}')
    (reranker / MARKER).write_text('{"trained": true}')
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["paths"].update({"embedder": str(tmp_path / "untrained"), "reranker": str(reranker)})
    params["embed"]["onnx_dir"] = str(tmp_path / "onnx")
    assert live_exports(params) == {model_fingerprint(base)[:16] + "-r2", model_fingerprint(reranker)[:16] + "-ce2"}


def test_cli_prunes_the_export_folder_named_in_params(tmp_path: Path) -> None:
    p = project(tmp_path)
    write_params(tmp_path, p)
    f = onnx_cache(tmp_path / "onnx")
    runner = CliRunner()
    out = runner.invoke(app, ["cache", "prune", "--params", str(tmp_path / "params.yaml")])
    text = " ".join(out.output.split())
    assert out.exit_code == 0 and f"removed {f['enc_r1'].name}/ (recipe 1, superseded by 2)" in text, out.output
    assert not f["enc_r1"].exists() and f["old_enc"].exists()
    # the build (project()) trained no model: the base embedder is the only one it uses, not exported here
    out = runner.invoke(app, ["cache", "prune", "--unused-exports", "--params", str(tmp_path / "params.yaml")])
    assert out.exit_code == 0 and f"removed {f['old_enc'].name}/ (a model this project does not use)" in out.output
    assert {q.name for q in (tmp_path / "onnx").iterdir()} == {f["other"].name, f["writing"].name}
