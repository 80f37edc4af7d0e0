"""What a restarted server leaves in the temporary directory: 10 SIGTERM restarts, then a SIGKILL and one more.

    python bench/restarts.py [--project .] [--restarts 10]

Registers the built pipeline of --project into a temporary MLflow store (like bench/serve.py; nothing in
--project is written), then starts `ragops serve --model models:/ragops-retriever@champion` with its own
TMPDIR --restarts times: each time one /search, then SIGTERM (what systemd, Docker and Kubernetes send), and
the bytes left in TMPDIR are counted. Then one server is killed with SIGKILL (no handler runs: its
downloaded version stays) and one more is started and stopped: it removes the dead one's folder at start.

Writes reports/bench/restarts.json and the `restarts` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import REPO, machine, machine_line, write_result, write_section
from serve import free_port, setup, start_server, stop


def left(tmp: Path, ours: bool = True) -> tuple[int, int]:
    """(entries: files and folders, bytes) under ``tmp``: ragops's own (``ragops-*``) or the libraries'
    (anything else: onnxruntime keeps one small session file there, torch an empty inductor folder)."""
    entries = [p for p in tmp.rglob("*") if p.relative_to(tmp).parts[0].startswith("ragops-") == ours]
    return len(entries), sum(p.stat().st_size for p in entries if p.is_file())


def one_server(root: Path, port: int, query: str) -> tuple[object, float]:
    t0 = time.perf_counter()
    proc = start_server(root, port)
    start_s = time.perf_counter() - t0
    r = httpx.post(f"http://127.0.0.1:{port}/search", json={"query": query, "top_k": 5}, timeout=60)
    if r.status_code != 200:
        raise SystemExit(f"/search answered {r.status_code}: {r.text[:300]}")
    return proc, start_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--project", type=Path, default=REPO)
    ap.add_argument("--restarts", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ragops-bench-restarts-") as work:
        root = Path(work)
        port = free_port()
        queries = setup(root, args.project.resolve(), port)
        tmp = root / "tmp"
        tmp.mkdir()
        os.environ["TMPDIR"] = str(tmp)  # the servers' (serve.env() copies this environment)
        rounds = []
        for i in range(args.restarts):
            proc, start_s = one_server(root, port, queries[i])
            stop(proc)  # SIGTERM
            files, size = left(tmp)
            lib_files, lib_size = left(tmp, ours=False)
            rounds.append({"start_s": round(start_s, 2), "exit": proc.returncode, "entries_left": files,
                           "bytes_left": size, "library_entries": lib_files, "library_bytes": lib_size})
            print(i + 1, rounds[-1], flush=True)
        proc, _ = one_server(root, port, queries[0])
        proc.stop(signal.SIGKILL)
        killed_files, killed_bytes = left(tmp)
        proc, _ = one_server(root, port, queries[1])
        during_files, during_bytes = left(tmp)  # only the running server's own version
        stop(proc)
        after_files, after_bytes = left(tmp)
    result = {
        "machine": machine(), "restarts": rounds,
        "sigterm_bytes_left_total": sum(r["bytes_left"] for r in rounds),
        "after_sigkill": {"entries": killed_files, "bytes": killed_bytes},
        "next_server_running": {"entries": during_files, "bytes": during_bytes},
        "after_next_sigterm": {"entries": after_files, "bytes": after_bytes},
    }
    write_result("restarts", result)
    starts = sorted(r["start_s"] for r in rounds)
    write_section("restarts", f"""## Restarts: what a stopped server leaves behind

`python bench/restarts.py`: {len(rounds)} starts of `ragops serve --model models:/ragops-retriever@champion`
(the registered package downloaded into the server's own TMPDIR), one /search each, then SIGTERM:
**{result["sigterm_bytes_left_total"]} bytes** of ragops's left in TMPDIR after all of them (the libraries':
{rounds[-1]["library_entries"]} entries, {rounds[-1]["library_bytes"]} bytes after the last, the same after the first:
onnxruntime's session file, reused by every start) (exit codes
{sorted({r["exit"] for r in rounds})}; start to ready {starts[0]:.1f}-{starts[-1]:.1f} s). Then SIGKILL, which runs no
handler: {killed_files} entries ({killed_bytes / 1e6:.1f} MB: with a local artifact store the package is read
in place, the folder holds what the server unpacked) stay; the next server removes them when it starts
(folders are named `ragops-serve-<pid>-…`, and the pid is gone), so while it runs TMPDIR holds only its own
{during_files} entries, and after its SIGTERM {after_files} entries, {after_bytes} bytes.

{machine_line(result["machine"])}""")
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    sys.exit(0 if result["sigterm_bytes_left_total"] == 0 and after_files == 0 else 1)


if __name__ == "__main__":
    main()
