"""The `embed` stage (ragops.stages.embed) with the real all-MiniLM-L6-v2: a re-run whose every vector is in the
embedding cache loads no model (ragops.encode.identity) and writes the same bytes; anything the record cannot
vouch for (another library version, a missing text, a damaged record) loads the model as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ragops.encode.identity import Identity, from_cache, recall, remember
from ragops.encode.models import model_fingerprint, resolve_model

MODEL = "all-MiniLM-L6-v2"
TEXTS = ["Aspirin lowers the risk of a second heart attack.", "Vitamin D is made in the skin in sunlight.",
         "Short.", "Aspirin lowers the risk of a second heart attack."]  # a duplicate on purpose

# Runs the stage's main in a fresh process and says whether sentence-transformers was imported.
RUN = """
import json, sys
from ragops.stages import embed
embed.main(json.loads(sys.argv[1]))
print(json.dumps({"sentence_transformers": "sentence_transformers" in sys.modules}))
"""


def params(tmp: Path) -> dict:
    return {"paths": {"chunks": str(tmp / "chunks.parquet"), "embeddings": str(tmp / "emb.npy"),
                      "embed_stats": str(tmp / "stats.json")},
            "embed": {"model": MODEL, "device": "cpu", "batch_size": 8, "block_size": 2, "dask": "none",
                      "backend": "torch", "cache_dir": str(tmp / "cache")}}


def run_stage(p: dict) -> tuple[np.ndarray, dict, bool]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", RUN, json.dumps(p)], capture_output=True, text=True, env=env,
                          check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])["sentence_transformers"]
    stats = json.loads(Path(p["paths"]["embed_stats"]).read_text())
    return np.load(p["paths"]["embeddings"]), stats, loaded


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, np.ndarray, dict, bool]:
    tmp = tmp_path_factory.mktemp("embed_stage")
    pd.DataFrame({"text": TEXTS, "n_tokens": [len(t.split()) for t in TEXTS]}).to_parquet(tmp / "chunks.parquet")
    p = params(tmp)
    return (p, *run_stage(p))


def test_a_first_run_loads_the_model_and_records_its_identity(built, encoder) -> None:
    p, emb, stats, loaded = built
    assert loaded and stats["encoded"] == 3 and stats["cached"] == 0
    np.testing.assert_allclose(emb, encoder.encode(TEXTS), atol=1e-5)
    # the record is what the loaded model said: the same id and dimension as ragops.encode.encoder.Encoder's
    assert recall(p["embed"]["cache_dir"], MODEL, "torch") == Identity(encoder.model_id, encoder.dim)
    assert stats["model_id"] == encoder.model_id and stats["dim"] == 384


def test_a_rerun_from_the_cache_loads_no_model_and_writes_the_same_bytes(built, tmp_path: Path) -> None:
    p, emb, stats, _ = built
    again = {**p, "paths": {**p["paths"], "embeddings": str(tmp_path / "emb.npy"),
                            "embed_stats": str(tmp_path / "stats.json")}}
    emb2, stats2, loaded = run_stage(again)
    assert not loaded
    assert emb2.tobytes() == emb.tobytes()
    assert stats2["cached"] == len(TEXTS) and stats2["encoded"] == 0
    assert {k: v for k, v in stats2.items() if k != "seconds"} == {
        **{k: v for k, v in stats.items() if k != "seconds"}, "cached": 4, "encoded": 0, "tokens_encoded": 0,
        "tokens_per_second": 0.0}


def test_a_new_text_or_an_unknown_record_means_loading(built) -> None:
    p, emb, _, _ = built
    cache = p["embed"]["cache_dir"]
    hit = from_cache(TEXTS, cache, MODEL, "torch")
    assert hit is not None and hit[0].tobytes() == emb.tobytes() and hit[1].encoded == 0
    assert from_cache([*TEXTS, "a text never encoded"], cache, MODEL, "torch") is None
    assert from_cache(TEXTS, cache, MODEL, "onnx") is None  # only the torch backend is recorded
    record = Path(cache) / "identities" / f"{model_fingerprint(resolve_model(MODEL))}.torch.json"
    saved = record.read_text()
    try:
        data = json.loads(saved)
        data["versions"]["sentence-transformers"] = "0.0.1"  # recorded under another library version
        record.write_text(json.dumps(data))
        assert recall(cache, MODEL, "torch") is None
        record.write_text("{not json")
        assert recall(cache, MODEL, "torch") is None
    finally:
        record.write_text(saved)
    assert recall(cache, MODEL, "torch") is not None


def test_another_model_folder_has_no_record(built, tmp_path: Path) -> None:
    p, _, _, _ = built
    cache = p["embed"]["cache_dir"]
    copy = tmp_path / "model"
    src = resolve_model(MODEL)
    for f in src.rglob("*"):
        if f.is_file():
            (copy / f.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            (copy / f.relative_to(src)).write_bytes(f.read_bytes())
    assert recall(cache, str(copy), "torch") is not None  # the same files: the same fingerprint
    (copy / "config.json").write_text((copy / "config.json").read_text() + "\n")
    assert recall(cache, str(copy), "torch") is None
    remember(cache, str(copy), "onnx", Identity("x", 3))  # an ONNX encoder is never recorded
    assert not list((Path(cache) / "identities").glob("*.onnx.json"))


def test_an_unwritable_record_costs_a_warning_not_the_stage(built, tmp_path: Path, caplog) -> None:
    p, _, _, _ = built
    blocked = tmp_path / "cache"
    blocked.mkdir()
    (blocked / "identities").write_text("a file where the records' folder would go")  # mkdir fails: not a folder
    with caplog.at_level("WARNING", logger="ragops.embedding"):
        remember(blocked, MODEL, "torch", Identity("id", 384))
    assert "could not record the model's identity" in caplog.text
    assert recall(blocked, MODEL, "torch") is None
