"""Which int8 recipe keeps an embedder's retrieval quality: every MatMul int8 (recipe 1, ``onnx-int8`` before
2026-12-05), or some of the encoder layers' products left in fp32 (recipe 2 keeps ``out:0-2``)?

    python bench/embedder_int8.py [--root .] [--models models/embedder OTHER ...] [--recipes int8 out:all ...]
                                  [--screen N] [--full RECIPE ...] [--note TEXT] [--render]

Each model folder (a sentence-transformers model: the build's fine-tuned embedder, another training of it, the
base MiniLM) is exported once to fused fp32 ONNX as ``ragops.encode.onnx_encoder.export_onnx`` does, then quantized
under each recipe (onnxruntime's dynamic quantization, int8 weights per output channel, the nodes a recipe names
left in fp32). A recipe is ``int8`` (nothing kept), ``fp32`` (the unquantized export: the reference) or
``KIND:LAYERS``, KIND one of ``attn`` (the fused QKV projection), ``attnout`` (the attention's output projection),
``inter`` (the feed-forward's first product, into 1,536 wide), ``out`` (its second, out of the GELU),
``ffn`` (inter + out), ``layer`` (all four), LAYERS ``all``, ``K`` or ``A-B``.

- screen (``--screen N``, default 1500): N chunks of the corpus (a seeded sample) and the dev queries encoded
  through fp32 and through each recipe, one text a session run as the stages encode: the mean and the 1st
  percentile of each vector's cosine to its fp32 vector, and int8 chunks/s on this machine; then each dev query
  encoded alone, timed (ms, p50 and p95), as a served query is;
- full (``--full RECIPE ...``): every chunk of the corpus and the dev and test queries through those recipes (and
  fp32), dense retrieval by exact inner product with a document's best chunk as its score (what the FAISS flat
  and IVF indexes approximate), nDCG@10 against the qrels. Dev decides; test is reported.

Writes reports/bench/embedder_int8.json (a rerun of a model replaces the recipes it measured) and the ``embedder_int8``
section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import BENCH_DIR, machine, machine_line, write_result, write_section

KINDS = {"attn": ("attn",), "attnout": ("attnout",), "inter": ("inter",), "out": ("out",),
         "ffn": ("inter", "out"), "layer": ("attn", "attnout", "inter", "out")}
MATMUL = re.compile(r"/encoder/layer\.(\d+)/(attention/output|intermediate|output)/dense/MatMul$")
ROLE = {"attention/output": "attnout", "intermediate": "inter", "output": "out"}
ATTENTION = re.compile(r"^Attention_(\d+)$")
RESULT = BENCH_DIR / "embedder_int8.json"


def node_roles(nodes) -> dict[str, tuple[str, int]]:
    """``{node name: (role, layer)}`` of the quantizable products of a fused BERT export."""
    out = {}
    for node in nodes:
        if node.op_type == "Attention" and (m := ATTENTION.match(node.name)):
            out[node.name] = ("attn", int(m.group(1)))
        elif node.op_type == "MatMul" and (m := MATMUL.search(node.name)):
            out[node.name] = (ROLE[m.group(2)], int(m.group(1)))
    return out


def kept_nodes(recipe: str, roles: dict[str, tuple[str, int]]) -> list[str]:
    """The nodes ``recipe`` leaves in fp32."""
    if recipe == "int8":
        return []
    kind, _, layers = recipe.partition(":")
    if kind not in KINDS or not layers:
        raise SystemExit(f"recipe {recipe!r}: expected int8, fp32 or KIND:LAYERS with KIND in {sorted(KINDS)}")
    n = 1 + max(layer for _, layer in roles.values())
    if layers == "all":
        wanted = set(range(n))
    elif "-" in layers:
        a, b = (int(x) for x in layers.split("-"))
        wanted = set(range(a, b + 1))
    else:
        wanted = {int(layers)}
    return sorted(name for name, (role, layer) in roles.items() if role in KINDS[kind] and layer in wanted)


def export(model: Path, work: Path, recipes: list[str]) -> dict[str, tuple[Path, str]]:
    """``{recipe: (folder, backend)}``: the model exported once, quantized under each recipe."""
    import onnx

    from ragops.encode.onnx_encoder import FILES, export_onnx
    from ragops.encode.onnx_export import quantize_int8

    base = export_onnx(model, work / "export")
    roles = node_roles(onnx.load(str(base / FILES["onnx"]), load_external_data=False).graph.node)
    out = {"fp32": (base, "onnx")}
    for recipe in recipes:
        if recipe == "fp32":
            continue
        folder = work / re.sub(r"[^\w-]", "_", recipe)
        folder.mkdir()
        for name in ("meta.json", "tokenizer"):
            (folder / name).symlink_to(base / name)
        quantize_int8(base / FILES["onnx"], folder / FILES["onnx-int8"], kept_nodes(recipe, roles))
        out[recipe] = (folder, "onnx-int8")
    return out


def encode(folder: Path, backend: str, texts: list[str]) -> tuple[np.ndarray, float]:
    from ragops.encode.onnx_encoder import OnnxModel

    model = OnnxModel(folder, backend)
    t = time.perf_counter()
    vecs = model.encode(texts)
    return vecs, time.perf_counter() - t


def query_ms(folder: Path, backend: str, queries: list[str], warmup: int = 5) -> dict[str, float]:
    """Milliseconds to encode one query, one at a time after ``warmup`` queries, as a served query is encoded
    (ragops.encode.encoder builds its OnnxModel with these defaults: one intra-op thread)."""
    from ragops.encode.onnx_encoder import OnnxModel

    model = OnnxModel(folder, backend)
    for q in queries[:warmup]:
        model.encode([q])
    ms = []
    for q in queries:
        t = time.perf_counter()
        model.encode([q])
        ms.append(1000 * (time.perf_counter() - t))
    return {"p50": round(float(np.percentile(ms, 50)), 3), "p95": round(float(np.percentile(ms, 95)), 3)}


def cosines(got: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    cos = np.sum(got * ref, axis=1)
    return {"mean": round(float(cos.mean()), 5), "p1": round(float(np.percentile(cos, 1)), 5)}


def dense_ndcg(q: np.ndarray, c: np.ndarray, chunk_doc: list[str], qids: list[str], qrels: dict) -> float:
    from ragops.eval.metrics import mean_metrics
    from ragops.retrieval.retriever import max_by_doc

    scores = q @ c.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :200]
    run = {qid: max_by_doc(scores[i, top[i]], top[i], chunk_doc, 100).as_dict() for i, qid in enumerate(qids)}
    return round(mean_metrics({k: qrels[k] for k in qids}, run, ["ndcg@10"])["ndcg@10"], 4)


def load_data(root: Path):
    import pandas as pd

    from ragops.config import load_params
    from ragops.eval.evaluation import qrels_for_split

    paths = load_params(str(root / "params.yaml"))["paths"]
    chunks = pd.read_parquet(root / paths["chunks"], columns=["doc_id", "text"])
    queries = pd.read_parquet(root / paths["queries"]).set_index("query_id")["text"]
    qrels = pd.read_parquet(root / paths["qrels"])
    splits = {}
    for split in ("dev", "test"):
        judged = qrels_for_split(qrels, split)
        ids = sorted(judged)
        splits[split] = (ids, queries.loc[ids].tolist(), judged)
    return chunks, splits


def measure(model: Path, recipes: list[str], full: list[str], screen: int, root: Path) -> dict:
    chunks, splits = load_data(root)
    rng = np.random.default_rng(0)
    sample = chunks["text"].iloc[np.sort(rng.choice(len(chunks), min(screen, len(chunks)), replace=False))].tolist()
    dev_q = splits["dev"][1]
    out: dict = {"model": str(model), "training": _training(model), "screen": {"chunks": len(sample),
                 "queries": len(dev_q)}, "recipes": {}}
    with tempfile.TemporaryDirectory(prefix="int8-") as tmp:
        folders = export(model, Path(tmp), sorted(set(recipes) | set(full) | {"fp32"}))
        ref_c, ref_s = encode(*folders["fp32"], sample)
        ref_q, _ = encode(*folders["fp32"], dev_q)
        out["recipes"]["fp32"] = {"chunks_per_s": round(len(sample) / ref_s, 1),
                                  "query_ms": query_ms(*folders["fp32"], dev_q)}
        for recipe in recipes:
            if recipe == "fp32":
                continue
            c, s = encode(*folders[recipe], sample)
            q, _ = encode(*folders[recipe], dev_q)
            out["recipes"][recipe] = {"chunk_cos": cosines(c, ref_c), "query_cos": cosines(q, ref_q),
                                      "chunks_per_s": round(len(sample) / s, 1),
                                      "query_ms": query_ms(*folders[recipe], dev_q)}
            print(f"  {recipe}: {out['recipes'][recipe]}", flush=True)
        texts, docs = chunks["text"].tolist(), chunks["doc_id"].astype(str).tolist()
        for recipe in ["fp32", *[r for r in full if r != "fp32"]] if full else []:
            c, s = encode(*folders[recipe], texts)
            row = out["recipes"].setdefault(recipe, {})
            row["corpus_s"] = round(s, 1)
            row["ndcg@10"] = {split: dense_ndcg(encode(*folders[recipe], qs)[0], c, docs, ids, judged)
                              for split, (ids, qs, judged) in splits.items()}
            print(f"  {recipe} full: {row['ndcg@10']} ({s:.0f} s)", flush=True)
    return out


def _training(model: Path) -> dict:
    from ragops.io import read_json
    from ragops.training.artifacts import MARKER

    path = model / MARKER
    if not path.is_file():
        return {"precision": "base", "seed": None}
    record = read_json(path)
    return {"precision": record.get("precision"), "seed": record.get("seed"), "best_epoch": record.get("best_epoch")}


def render(result: dict) -> None:
    lines = ["## The embedder's int8 recipe (`python bench/embedder_int8.py`)", "", machine_line(result["machine"]),
             "", "Each model exported to fused fp32 ONNX, quantized under each recipe (the nodes named stay fp32). "
             "`int8` is recipe 1 (every product int8: `onnx-int8` before 2026-12-05), `out:0-2` recipe 2 "
             "(`ragops.encode.onnx_encoder.RECIPE`). Screen: a seeded sample of corpus chunks and the dev queries, "
             "one text a run; cosine of each vector to its fp32 ONNX vector (mean, 1st percentile); chunks/s on "
             "both cores; ms to encode one dev query, one at a time on one thread as served (p50 / p95; rows "
             "without it were measured before the script timed queries). Full: the whole corpus and the dev and "
             "test queries, dense retrieval by exact inner product (a document scores its best chunk), nDCG@10.",
             ""]
    for arm in result["arms"]:
        t = arm["training"]
        note = f" {arm['note']}" if arm.get("note") else ""
        lines += [f"**{arm['model']}** (precision {t['precision']}, seed {t['seed']}; screen: "
                  f"{arm['screen']['chunks']} chunks, {arm['screen']['queries']} dev queries).{note}", "",
                  "| recipe | chunk cos mean | chunk cos p1 | query cos mean | chunks/s | query ms | dev nDCG@10 "
                  "| test nDCG@10 | corpus s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, r in arm["recipes"].items():
            cc, qc, nd = r.get("chunk_cos", {}), r.get("query_cos", {}), r.get("ndcg@10", {})
            qms = r.get("query_ms")
            cells = [cc.get("mean"), cc.get("p1"), qc.get("mean"), r.get("chunks_per_s"),
                     f"{qms['p50']:.2f} / {qms['p95']:.2f}" if qms else None, nd.get("dev"), nd.get("test"),
                     r.get("corpus_s")]
            lines.append(f"| {name} | " + " | ".join("" if v is None else f"{v}" for v in cells) + " |")
        lines.append("")
    write_section("embedder_int8", "\n".join(lines).rstrip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--models", type=Path, nargs="*", default=[Path("models/embedder")])
    ap.add_argument("--recipes", nargs="*", default=["int8", "attn:all", "attnout:all", "inter:all", "out:all",
                                                      "ffn:0-1", "layer:5"])
    ap.add_argument("--full", nargs="*", default=[])
    ap.add_argument("--screen", type=int, default=1500)
    ap.add_argument("--note", default="", help="a line shown under each model measured (how it was made, ...)")
    ap.add_argument("--render", action="store_true", help="only re-render docs from the saved result")
    args = ap.parse_args()
    result = json.loads(RESULT.read_text()) if RESULT.is_file() else {"arms": []}
    if not args.render:
        result["machine"] = machine()
        for model in args.models:
            print(f"{model}:", flush=True)
            arm = measure(model, args.recipes, args.full, args.screen, args.root)
            if args.note:
                arm["note"] = args.note
            before = [a for a in result["arms"] if a["model"] == arm["model"] and a["screen"] == arm["screen"]]
            if before and before[0]["training"] == arm["training"]:  # the same model: the recipes measured now
                for name, row in arm["recipes"].items():  # replace or join the earlier run's
                    before[0]["recipes"].setdefault(name, {}).update(row)
                arm = before[0]
            result["arms"] = [a for a in result["arms"] if a["model"] != arm["model"]] + [arm]
            write_result("embedder_int8", result)
    render(result)


if __name__ == "__main__":
    main()
