"""1M synthetic 384-d vectors and a 1M-document synthetic BM25 corpus: build time, peak RSS, size on
disk, query p95 (one query at a time) and recall@10 against exact search, per index kind.

    python bench/scale.py [--n 1000000] [--queries 500] [--hnsw-n 100000] [--work /tmp/ragops-scale]

Vectors (seeded): a Gaussian mixture on a low-rank subspace, like sentence embeddings: 2,000 cluster
centres in a 128-dimensional subspace of R^384 (random orthonormal basis, spectrum k^-0.25), each
vector = its centre + within-cluster noise in the subspace + a little isotropic noise in all 384
dimensions, normalised, plus a shared mean direction, normalised again; the constants are calibrated
on SciFact's real MiniLM vectors (see SPECTRUM_EXP). Queries come from the same distribution (fresh
draws, not in the index). Ground truth: exact inner-product top-10 (FAISS IndexFlatIP).

Each configuration is built in its own subprocess (peak RSS = ru_maxrss of that process, the
1.5 GB of input vectors included, memory-mapped) and saved; then a second subprocess loads it from
disk and answers the queries one at a time (its peak RSS is what serving holds). Search knobs
(nprobe, efSearch) are swept on the loaded index, cheaply, after one build. HNSW is built on
``--hnsw-n`` vectors (its build dominates on 2 cores) and its 1M build time is extrapolated
(n log n) unless ``--hnsw-n`` equals ``--n``.

BM25: a Zipfian corpus (vocabulary 200k, exponent 1.1, document lengths log-normal around 150
tokens, like abstracts), indexed with bm25s; queries of 3-8 terms drawn from the same law.
Writes reports/bench/scale.json and the `scale` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

DIM, RANK, CENTRES = 384, 128, 2000
# Calibrated on SciFact's MiniLM chunk vectors (real -> synthetic, 3,000-vector samples): mean pairwise
# cosine 0.121 -> 0.110, its std 0.124 -> 0.099, nearest-neighbour cosine 0.695 -> 0.736, energy in the
# top 10 / 64 directions 0.37 / 0.70 -> 0.31 / 0.74.
SPECTRUM_EXP, WITHIN, ISO, MEAN = 0.25, 0.5, 0.03, 0.35


def vectors(n: int, seed: int) -> np.ndarray:
    """n unit vectors from the seeded mixture (the same centres for every seed)."""
    base = np.random.default_rng(0)
    basis, _ = np.linalg.qr(base.standard_normal((DIM, RANK)))  # 384 x 128 orthonormal
    basis = basis.T.astype(np.float32)
    spectrum = (1.0 / np.arange(1, RANK + 1) ** SPECTRUM_EXP).astype(np.float32)
    centres = base.standard_normal((CENTRES, RANK)).astype(np.float32) * spectrum
    mean = base.standard_normal(DIM).astype(np.float32)
    mean /= np.linalg.norm(mean)  # a direction every sentence embedding shares a little of
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        c = rng.integers(0, CENTRES, m)
        low = centres[c] + WITHIN * rng.standard_normal((m, RANK)).astype(np.float32) * spectrum
        x = low @ basis + ISO * rng.standard_normal((m, DIM)).astype(np.float32)
        x = x / np.linalg.norm(x, axis=1, keepdims=True) + MEAN * mean
        out[s : s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def peak_rss_mb() -> float:
    """This process's resident high-water mark. VmHWM, not ru_maxrss: Linux carries ru_maxrss over
    exec from the parent, so a child would report the (bigger) parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build_index(kind: str, xb: np.ndarray, params: dict):
    import faiss

    d = xb.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind in ("ivf_flat", "ivf_pq"):
        quant = faiss.IndexFlatIP(d)
        if kind == "ivf_flat":
            index = faiss.IndexIVFFlat(quant, d, params["nlist"], faiss.METRIC_INNER_PRODUCT)
        else:
            index = faiss.IndexIVFPQ(quant, d, params["nlist"], params["m"], 8, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = 42
        rng = np.random.default_rng(1)
        train = xb[np.sort(rng.choice(len(xb), size=min(len(xb), params["train"]), replace=False))]
        index.train(np.ascontiguousarray(train))
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, params["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params["efC"]
    else:
        raise SystemExit(f"unknown kind {kind}")
    for s in range(0, len(xb), 100_000):
        index.add(np.ascontiguousarray(xb[s : s + 100_000]))
    return index


def child_build(work: Path, kind: str, n: int, params: dict) -> dict:
    import faiss

    xb = np.load(work / "xb.npy", mmap_mode="r")[:n]
    t0 = time.perf_counter()
    index = build_index(kind, xb, params)
    build_s = time.perf_counter() - t0
    path = work / f"{kind}-{n}.faiss"
    faiss.write_index(index, str(path))
    return {
        "build_s": round(build_s, 1),
        "build_peak_rss_mb": round(peak_rss_mb()),
        "size_mb": round(path.stat().st_size / 2**20, 1),
    }


def child_search(work: Path, kind: str, n: int, sweep: list[int]) -> dict:
    import faiss

    faiss.omp_set_num_threads(1)  # one query at a time: the serving case, no thread wake-ups
    base = peak_rss_mb()
    index = faiss.read_index(str(work / f"{kind}-{n}.faiss"))
    xq = np.load(work / "xq.npy")
    gt = np.load(work / f"gt-{n}.npy")
    out = {}
    for knob in sweep or [0]:
        if kind.startswith("ivf"):
            index.nprobe = knob
        elif kind == "hnsw":
            index.hnsw.efSearch = knob
        for q in xq[:20]:
            index.search(q[None, :], 10)
        ms, found = [], []
        for q in xq:
            t0 = time.perf_counter()
            _, ids = index.search(q[None, :], 10)
            ms.append((time.perf_counter() - t0) * 1000)
            found.append(ids[0])
        found = np.asarray(found)
        recall = float(np.mean([len(set(f) & set(g)) / 10 for f, g in zip(found, gt, strict=True)]))
        out[str(knob)] = {
            "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "recall@10": round(recall, 4),
        }
    return {"search": out, "serve_peak_rss_mb": round(peak_rss_mb()), "python_rss_mb": round(base)}


class LazyDocs:
    """Token-id lists made on demand from one flat int32 array: bm25s walks the corpus several
    times, and 1M documents as Python lists of ints would take ~5 GB before bm25s starts."""

    def __init__(self, flat: np.ndarray, offsets: np.ndarray) -> None:
        self.flat, self.offsets = flat, offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> list[int]:
        return self.flat[self.offsets[i] : self.offsets[i + 1]].tolist()

    def __iter__(self):
        return (self[i] for i in range(len(self)))


def zipf_corpus(n: int, vocab: int, seed: int) -> tuple[LazyDocs, list[list[int]]]:
    """Zipf(1.1) term draws over ``vocab`` terms; log-normal lengths (median 150, 20..600 tokens)."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, vocab + 1) ** 1.1
    p /= p.sum()
    lengths = np.clip(rng.lognormal(math.log(150), 0.4, n).astype(np.int64), 20, 600)
    flat = rng.choice(vocab, size=int(lengths.sum()), p=p).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    qs = [rng.choice(vocab, size=int(rng.integers(3, 9)), p=p).tolist() for _ in range(500)]
    return LazyDocs(flat, offsets), qs


def child_bm25(work: Path, n: int) -> dict:
    import bm25s

    vocab_n = 200_000
    t0 = time.perf_counter()
    docs, queries = zipf_corpus(n, vocab_n, 7)
    gen_s = time.perf_counter() - t0
    base = peak_rss_mb()
    vocab = {f"w{i}": i for i in range(vocab_n)} | {"": vocab_n}
    t0 = time.perf_counter()
    retriever = bm25s.BM25(method="lucene", k1=0.9, b=0.4)
    retriever.index(SimpleNamespace(ids=docs, vocab=vocab), show_progress=False)
    build_s = time.perf_counter() - t0
    tokens = int(len(docs.flat))
    del docs
    path = work / "bm25s"
    retriever.save(str(path))
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    for q in queries[:20]:
        retriever.retrieve([q], k=10, show_progress=False, n_threads=1)
    ms = []
    for q in queries:
        t0 = time.perf_counter()
        retriever.retrieve([q], k=10, show_progress=False, n_threads=1)
        ms.append((time.perf_counter() - t0) * 1000)
    return {
        "docs": n,
        "tokens": tokens,
        "generate_s": round(gen_s, 1),
        "build_s": round(build_s, 1),
        "size_mb": round(size / 2**20, 1),
        "peak_rss_mb": round(peak_rss_mb()),
        "rss_before_index_mb": round(base),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
    }


def run_child(*args: str) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"child {args} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    print(args, out, flush=True)
    return out


HEADER = (
    "| index | vectors | search setting | build s | build peak RSS MB | serve peak RSS MB | disk MB | p50 ms "
    "| p95 ms | recall@10 | fits |\n|---|---|---|---|---|---|---|---|---|---|---|"
)
CONFIGS = {  # kind -> (build params, search sweep)
    "flat": ({}, []),
    "ivf_flat": ({"nlist": 2048, "train": 100_000}, [8, 16, 32, 64, 128]),
    "ivf_pq": ({"nlist": 2048, "m": 48, "train": 100_000}, [16, 64]),
    "hnsw": ({"M": 32, "efC": 80}, [16, 32, 64, 128]),
}


def prepare(work: Path, n: int, hnsw_n: int, nq: int) -> dict:
    import faiss

    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    xb = vectors(n, seed=1)
    np.save(work / "xb.npy", xb)
    xq = vectors(nq, seed=2)
    np.save(work / "xq.npy", xq)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for size in sorted({n, hnsw_n}):
        flat = faiss.IndexFlatIP(DIM)
        flat.add(xb[:size])
        np.save(work / f"gt-{size}.npy", flat.search(xq, 10)[1])
    return {"generate_s": round(gen_s, 1), "ground_truth_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--hnsw-n", type=int, default=1_000_000, help="a 100k slice built in 11 s on 2 cores")
    ap.add_argument("--bm25-n", type=int, default=1_000_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/ragops-scale"))
    ap.add_argument("--only", default="", help="comma list of kinds (flat,ivf_flat,ivf_pq,hnsw,bm25)")
    ap.add_argument("--child", nargs="*")
    args = ap.parse_args()
    if args.child is not None:
        what, *rest = args.child
        work, kind, n = Path(rest[0]), rest[1], int(rest[2])
        if what == "build":
            out = child_build(work, kind, n, json.loads(rest[3]))
        elif what == "search":
            out = child_search(work, kind, n, json.loads(rest[3]))
        else:
            out = child_bm25(work, n)
        print(json.dumps(out))
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from _common import machine, write_result, write_section

    t_all = time.perf_counter()
    only = set(filter(None, args.only.split(",")))
    result_path = Path(__file__).resolve().parents[1] / "reports" / "bench" / "scale.json"
    result = json.loads(result_path.read_text()) if only and result_path.exists() else {"indexes": {}}
    result.update(machine=machine(), n=args.n, dim=DIM, queries=args.queries, hnsw_n=args.hnsw_n)
    if not only or only - {"bm25"}:
        result["data"] = prepare(args.work, args.n, args.hnsw_n, args.queries)
    for kind, (build, sweep) in CONFIGS.items():
        if only and kind not in only:
            continue
        n = args.hnsw_n if kind == "hnsw" else args.n
        entry = {"n": n, "params": build, **run_child("build", str(args.work), kind, str(n), json.dumps(build))}
        entry.update(run_child("search", str(args.work), kind, str(n), json.dumps(sweep)))
        if n != args.n:  # HNSW insertion costs ~log n per vector: extrapolate the build to the full n
            entry["build_s_extrapolated_to_n"] = round(entry["build_s"] * args.n / n * math.log(args.n) / math.log(n))
        (args.work / f"{kind}-{n}.faiss").unlink()
        result["indexes"][kind] = entry
    if not only or "bm25" in only:
        result["bm25"] = run_child("bm25", str(args.work), "bm25", str(args.bm25_n))
    result["bench_wall_s"] = round(time.perf_counter() - t_all, 1)
    write_result("scale", result)
    write_section("scale", render(result))
    print(json.dumps(result, indent=2))


def render(r: dict) -> str:
    from _common import machine_line

    rows = []
    for kind, e in r["indexes"].items():
        for knob, s in e["search"].items():
            knob_name = {"ivf_flat": "nprobe", "ivf_pq": "nprobe", "hnsw": "efSearch"}.get(kind)
            setting = f"{knob_name}={knob}" if knob_name else "exact"
            ok = s["recall@10"] >= 0.95 and s["p95_ms"] <= 20 and e["serve_peak_rss_mb"] <= 2048
            build = f"{e['build_s']:.0f}"
            if "build_s_extrapolated_to_n" in e:
                build += f" (1M: ~{e['build_s_extrapolated_to_n']:,} est.)"
            rows.append(
                f"| {kind} {e['params'] or ''} | {e['n']:,} | {setting} | {build} | "
                f"{e['build_peak_rss_mb']:,} | {e['serve_peak_rss_mb']:,} | {e['size_mb']:,.0f} | "
                f"{s['p50_ms']:.2f} | {s['p95_ms']:.2f} | "
                f"{s['recall@10']:.3f} | {'**yes**' if ok else ''} |"
            )
    b = r.get("bm25")
    bm = (
        (
            f"BM25 (bm25s, lucene k1 0.9 b 0.4) over {b['docs']:,} synthetic documents ({b['tokens']:,} tokens): "
            f"build {b['build_s']:.0f} s (+{b['generate_s']:.0f} s to generate), peak RSS {b['peak_rss_mb']:,} MB "
            f"({b['rss_before_index_mb']:,} MB of it the generated corpus and Python), {b['size_mb']:,.0f} MB on disk, "
            f"query p50 {b['p50_ms']:.2f} ms / p95 {b['p95_ms']:.2f} ms (one query at a time, one thread)."
        )
        if b
        else ""
    )
    d = r.get("data", {})
    return f"""## Scale: 1M vectors and 1M BM25 documents (`python bench/scale.py`)

{machine_line(r["machine"])}

{r["n"]:,} synthetic {r["dim"]}-d unit vectors (a seeded Gaussian mixture of 2,000 clusters on a
128-d subspace, calibrated on SciFact's MiniLM vectors, see bench/scale.py) and {r["queries"]} queries from the same
distribution, not in the index; recall@10 against exact inner-product search. Generating took
{d.get("generate_s", 0):.0f} s, the exact ground truth {d.get("ground_truth_s", 0):.0f} s. Each index is built in its
own process (build RSS includes the 1.5 GB of input vectors) and served from disk by another (serve RSS
= the loaded index + Python + FAISS); queries one at a time on one thread. "fits" = recall@10 >= 0.95,
p95 <= 20 ms and <= 2 GB resident.

{HEADER}
{chr(10).join(rows)}

{bm}

Whole benchmark: {r.get("bench_wall_s", 0):.0f} s."""


if __name__ == "__main__":
    main()
