"""Shared helpers for the benchmarks: machine description, JSON + markdown output."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / "reports" / "bench"
DOC = REPO / "docs" / "benchmarks.md"
# The built pipeline's outputs a benchmark reads in place (paths keys of params.yaml).
BUILT_INPUTS = ("docs", "queries", "qrels", "prepare_stats", "chunks", "embeddings", "embed_stats", "faiss", "bm25",
                "metrics", "per_query", "plots", "embedder", "embeddings_ft", "embed_stats_ft", "faiss_ft", "reranker",
                "grounding_model", "grounding_report", "rag_report", "sentences")


def point_at_build(root: Path, project: Path, sections: dict | None = None) -> dict:
    """Make ``root`` a folder whose params.yaml reads the built pipeline of ``project`` in place and writes
    only under ``root`` (registry report, stage times, an MLflow store of its own); ``sections`` replace
    top-level params sections. Copies dvc.lock for lineage. Returns the params written."""
    import shutil

    import yaml

    params = yaml.safe_load((project / "params.yaml").read_text())
    for key in BUILT_INPUTS:
        params["paths"][key] = str((project / params["paths"][key]).resolve())
    params["paths"]["registry"] = str(root / "reports/registry.json")
    params["paths"]["stage_times"] = str(root / ".cache/stage_times")
    params.setdefault("registry", {})["tracking_uri"] = "sqlite:///mlflow.db"
    params.update(sections or {})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if (project / "dvc.lock").exists():
        shutil.copy2(project / "dvc.lock", root / "dvc.lock")
    return params


def machine() -> dict:
    cpu = "unknown"
    try:
        text = Path("/proc/cpuinfo").read_text()
        m = re.search(r"model name\s*:\s*(.+)", text)
        cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    import torch

    from ragops.encode.models import training_precision

    # the vector instructions torch's CPU kernels use (AVX2 or AVX512 round fp32 differently), and whether the
    # CPU multiplies bf16 natively (what precision: auto trains in)
    isa = torch.backends.cpu.get_cpu_capability()
    return {
        "cpu": cpu,
        "isa": isa + (", native bf16" if training_precision("auto", "cpu") == "bf16" else ""),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d"),
        "git": git_commit(),
    }


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except OSError:
        return "unknown"


def write_result(name: str, result: dict) -> Path:
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    path = BENCH_DIR / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def write_section(name: str, markdown: str) -> None:
    """Replace the section between `<!-- name:start -->` and `<!-- name:end -->` in docs/benchmarks.md."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)


SPEED_PROBE = """
import json, time
import numpy as np
t = time.perf_counter(); a = np.ones(1 << 27, dtype=np.float32); fill = time.perf_counter() - t  # 512 MB, new pages
t = time.perf_counter(); a[:] = 2.0; refill = time.perf_counter() - t                          # the same pages again
m = np.random.default_rng(0).random((2000, 2000), dtype=np.float32); m @ m
t = time.perf_counter(); [m @ m for _ in range(5)]; mm = time.perf_counter() - t
gb = a.nbytes / 1e9
print(json.dumps({"new_pages_gb_s": round(gb / fill, 2), "same_pages_gb_s": round(gb / refill, 2),
                  "matmul_gflops": round(5 * 2 * 2000 ** 3 / mm / 1e9, 1)}))
"""


def machine_speed() -> dict:
    """What sets a 2-core VM's speed for this project, measured in fresh processes: ``import torch`` (median of
    3; the suite starts ~400 Python processes, most of which import a heavy library), writing 512 MB of new pages
    against the same pages again (page faults, which differed widely between VMs of one type), and an fp32
    2000x2000 matmul (the training and encoding kernels). Machines labelled alike ran `make test` 1.8x apart; these
    show how the machines differed, beside the figures they ran."""
    def wall(code: str) -> float:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        return time.perf_counter() - t

    imports = sorted(wall("import torch") for _ in range(3))
    out = subprocess.run([sys.executable, "-c", SPEED_PROBE], check=True, capture_output=True, text=True).stdout
    return {"import_torch_s": round(imports[1], 2), **json.loads(out.strip().splitlines()[-1])}


def speed_line(s: dict) -> str:
    return (f"Machine speed (`bench/_common.py` machine_speed, just before the run): `import torch` "
            f"{s['import_torch_s']:.2f} s in a fresh process; new memory pages written at {s['new_pages_gb_s']} GB/s "
            f"(the same pages again {s['same_pages_gb_s']} GB/s); fp32 matmul {s['matmul_gflops']:.0f} GFLOPS.")


def machine_line(m: dict) -> str:
    isa = f" ({m['isa']})" if m.get("isa") else ""
    return (f"Machine: {m['cpu']}{isa}, {m['cores']} cores, Python {m['python']}, torch {m['torch']} "
            f"({m['torch_threads']} threads); commit {m['git']}; {m['date']}.")


def python_env() -> dict:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "DVC_NO_ANALYTICS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
