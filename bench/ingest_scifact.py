"""What conversion costs, on SciFact with gold judgments: its corpus rendered into files, ingested, evaluated.

    python bench/ingest_scifact.py [--docs N] [--keep] [--mirror ../shared/datasets]

1. Each abstract becomes one file `<doc id>.<ext>` written by a real writer, the format chosen by a hash of the
   id (a quarter each): PDF (fpdf2, DejaVu Sans for the Greek and math; split over 2 pages from 600
   characters, at the sentence nearest the middle; title in the PDF metadata), DOCX (python-docx, core title),
   HTML (<title>, with the header/nav/script/footer chrome a converter must drop), Markdown (`# title` heading:
   plain Markdown has no other place for it). Timed, not part of any figure.
2. `ragops.ingest.ingest` (workers=2) converts the folder, timed; statuses and word-for-word fidelity counted.
3. A BEIR folder from the ingested corpus (ids mapped back: `4983.pdf` -> `4983`) with SciFact's queries and
   qrels is `data.source` of a temporary project copy (training stages off, the embedding cache a copy of
   the project's): `dvc repro`, then test nDCG@10 of bm25, dense and hybrid against reports/metrics.json.
4. The embed stage again with an empty cache (`dvc repro -f -s embed`): ingest seconds / embed seconds.
5. 1% of the files re-written with a sentence appended (same format), re-ingested, `dvc repro`: refresh time
   against the full build. Writes reports/bench/ingest_scifact.json and the `ingest_scifact` section.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _common import REPO, machine, machine_line, write_result, write_section  # noqa: E402
from stage_times import sh  # noqa: E402

FILES = ["dvc.yaml", "params.yaml", "src", ".dvc/config", ".dvc/.gitignore", ".dvcignore", "data/judgments"]
KINDS = ("pdf", "docx", "html", "md")
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
EDIT = " This abstract was edited for the ingest benchmark."
MODES = ("bm25", "dense", "hybrid")


def kind(doc_id: str) -> str:
    return KINDS[int(hashlib.sha256(doc_id.encode()).hexdigest(), 16) % 4]


def pages(text: str, min_chars: int = 600) -> list[str]:
    """Two pages split at the sentence boundary nearest the middle, for a long enough abstract."""
    cuts = [m.end() for m in re.finditer(r"[.!?]\s+(?=[A-Z0-9(])", text)]
    if len(text) < min_chars or not cuts:
        return [text]
    cut = min(cuts, key=lambda c: abs(c - len(text) / 2))
    return [text[:cut].strip(), text[cut:].strip()]


def render(folder: Path, row: dict, extra: str = "") -> Path:
    from ingest_fixtures import write_docx, write_html, write_markdown, write_pdf

    ext, title, text = kind(row["_id"]), row["title"], row["text"] + extra
    path = folder / f"{row['_id']}.{ext}"
    if ext == "pdf" and FONT.exists():  # the fixture's Helvetica is latin-1 only; 20% of SciFact is not
        from fpdf import FPDF

        pdf = FPDF()
        pdf.add_font("DejaVu", fname=str(FONT))
        pdf.set_font("DejaVu", size=11)
        pdf.set_title(title)
        for page in pages(text):
            pdf.add_page()
            pdf.multi_cell(0, 6, page)
        path.write_bytes(bytes(pdf.output()))
    elif ext == "pdf":
        latin = [p.encode("latin-1", "replace").decode("latin-1") for p in pages(text)]
        write_pdf(path, latin, title=title.encode("latin-1", "replace").decode("latin-1"))
    elif ext == "docx":  # Word's core title holds at most 255 characters: a longer one is a Title paragraph
        long = len(title) > 255
        write_docx(path, [("title", title)] * long + [("p", text)], title=None if long else title)
    elif ext == "html":
        write_html(path, [("p", text)], title=title)
    else:  # the fixture ends every file with a demo code block: not part of an abstract
        md = write_markdown(path, [("title", title), ("p", text)]).read_text(encoding="utf-8")
        path.write_text(md[: md.index("```bash")].rstrip() + "\n", encoding="utf-8")
    return path


def timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, round(time.perf_counter() - t0, 2)


def to_beir(ingested: Path, dest: Path, mirror: Path, ids: set[str]) -> None:
    """The ingested corpus with SciFact's ids, plus its queries and qrels (only judgments of present docs)."""
    dest.mkdir(parents=True, exist_ok=True)
    with open(ingested / "corpus.jsonl", encoding="utf-8") as src, open(dest / "corpus.jsonl", "w") as out:
        for line in src:
            row = json.loads(line)
            out.write(json.dumps({**row, "_id": row["_id"].rsplit(".", 1)[0]}, ensure_ascii=False) + "\n")
    shutil.copy2(mirror / "queries.jsonl", dest / "queries.jsonl")
    (dest / "qrels").mkdir(exist_ok=True)
    for tsv in (mirror / "qrels").glob("*.tsv"):
        lines = tsv.read_text().splitlines()
        keep = [ln for ln in lines[1:] if ln.split("\t")[1] in ids]
        (dest / "qrels" / tsv.name).write_text("\n".join([lines[0], *keep]) + "\n")


def others(root: Path) -> int:
    """Pipeline processes running outside the temporary project (another build sharing the cores)."""
    n = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        n += ("ragops.stages." in cmd or "dvc repro" in cmd) and not cwd.startswith(str(root))
    return n


def load(root: Path, label: str, log: list) -> None:
    log.append({"phase": label, "loadavg_1m": round(os.getloadavg()[0], 2), "other_pipeline_procs": others(root)})


def set_params(root: Path, **changes) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    for dotted, value in changes.items():
        *head, last = dotted.split("__")
        node = params
        for key in head:
            node = node[key]
        node[last] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def setup_project(root: Path, source: Path) -> None:
    for name in FILES:
        src, dst = REPO / name, root / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    shutil.copytree(REPO / ".cache/embeddings", root / "embcache", ignore=shutil.ignore_patterns("*.tmp*"))
    set_params(root, data__source=str(source), embed__cache_dir=str(root / "embcache"),
               train__embedder__enabled=False, train__reranker__enabled=False)
    sh(["git", "init", "-q"], root)


def repro(root: Path, *extra: str) -> dict:
    from ragops.timing import read_stage_times

    seconds, out = sh(["dvc", "repro", *extra], root)
    ran = [ln.split("'")[1] for ln in out.splitlines() if "Running stage" in ln]
    times = read_stage_times(root / ".cache/stage_times")
    return {"seconds": round(seconds, 2), "ran": ran,
            "stage_s": {s: round(times[s]["seconds"], 2) for s in ran if s in times},
            "embed_stats": json.loads((root / "models/index/embed_stats.json").read_text())}


def manifest_counts(ingested: Path) -> dict:
    rows = [json.loads(ln) for ln in open(ingested / "manifest.jsonl", encoding="utf-8")]
    out: dict = {}
    for r in rows:
        out[r["status"]] = out.get(r["status"], 0) + 1
    return out


def fidelity(ingested: Path, rows: dict[str, dict]) -> dict:
    """Per format: documents whose converted text holds the abstract word for word (whitespace aside), and
    whose title is SciFact's."""
    out = {k: {"docs": 0, "text_exact": 0, "title_exact": 0} for k in KINDS}
    for line in open(ingested / "corpus.jsonl", encoding="utf-8"):
        d = json.loads(line)
        doc_id, ext = d["_id"].rsplit(".", 1)
        orig, f = rows[doc_id], out[ext]
        f["docs"] += 1
        f["text_exact"] += " ".join(orig["text"].split()) in " ".join(d["text"].split())
        f["title_exact"] += " ".join(orig["title"].split()) == d["title"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", type=Path, default=REPO.parent / "shared" / "datasets")
    ap.add_argument("--docs", type=int, default=0, help="a seeded subset of this many documents (default: all)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary project (its path is printed)")
    args = ap.parse_args()
    from ragops.ingest.corpus import IngestConfig, ingest

    mirror = (args.mirror / "scifact").resolve()
    rows = [json.loads(ln) for ln in gzip.open(mirror / "corpus.jsonl.gz", "rt", encoding="utf-8")]
    if args.docs:
        rows = random.Random(42).sample(rows, min(args.docs, len(rows)))
    by_id = {r["_id"]: r for r in rows}
    root = Path(tempfile.mkdtemp(prefix="ragops-ingest-scifact-"))
    files, ingested, beir, loadlog = root / "files", root / "ingested", root / "beir", []
    print(f"project copy: {root}", flush=True)
    cfg = IngestConfig(workers=2, timeout_s=60, max_mb=50, strict=False)
    try:
        files.mkdir()
        load(root, "render", loadlog)
        _, render_s = timed(lambda: [render(files, r) for r in rows])
        load(root, "ingest", loadlog)
        summary, ingest_s = timed(ingest, files, ingested, cfg)
        fid = fidelity(ingested, by_id)
        _, beir_s = timed(to_beir, ingested, beir, mirror, set(by_id))
        setup_project(root, beir)
        load(root, "build", loadlog)
        build = repro(root)
        ours = json.loads((root / "reports/metrics.json").read_text())
        base_path = REPO / "reports/metrics.json"
        base = json.loads(base_path.read_text())
        ndcg = {m: {"ingested": ours["test"][m]["ndcg@10"], "beir": base["test"][m]["ndcg@10"],
                    "delta": round(ours["test"][m]["ndcg@10"] - base["test"][m]["ndcg@10"], 4)} for m in MODES}
        # 4. the embed stage with an empty cache on the same corpus
        set_params(root, embed__cache_dir=str(root / "embcache_empty"))
        load(root, "embed_empty_cache", loadlog)
        embed = repro(root, "-f", "-s", "embed")
        set_params(root, embed__cache_dir=str(root / "embcache"))
        embed_s = embed["stage_s"]["embed"]
        # 5. 1% of the files edited (same format, a sentence appended), re-ingested and rebuilt
        edited = random.Random(7).sample(sorted(by_id), max(1, len(by_id) // 100))
        for doc_id in edited:
            render(files, by_id[doc_id], EDIT)
        load(root, "refresh", loadlog)
        re_summary, reingest_s = timed(ingest, files, ingested, cfg)
        re_counts = manifest_counts(ingested)
        _, rebeir_s = timed(to_beir, ingested, beir, mirror, set(by_id))
        refresh = repro(root)
        full_s = ingest_s + beir_s + build["seconds"]
        scratch_s = full_s - build["stage_s"].get("embed", 0.0) + embed_s
        refresh_s = reingest_s + rebeir_s + refresh["seconds"]
        result = {
            "machine": machine(), "command": " ".join(["python bench/ingest_scifact.py", *sys.argv[1:]]),
            "subset": bool(args.docs), "docs": len(rows),
            "formats": {k: sum(kind(i) == k for i in by_id) for k in KINDS},
            "load": loadlog, "render_s": render_s,
            "ingest": {"seconds": ingest_s, "files_per_s": round(len(rows) / ingest_s, 1), "status": summary["status"],
                       "failed": summary["failed"], "documents": summary["documents"], "fidelity": fid},
            "beir_folder_s": beir_s, "build": build,
            "ndcg_test": ndcg, "baseline": {"path": str(base_path), "mtime": time.ctime(base_path.stat().st_mtime)},
            "cache_shared": {k: build["embed_stats"][k] for k in ("total", "cached", "encoded")},
            "embed_empty_cache": {"seconds": embed_s, "dvc_wall_s": embed["seconds"],
                                  **{k: embed["embed_stats"][k] for k in ("total", "cached", "encoded")}},
            "ingest_over_embed": round(ingest_s / embed_s, 4),
            "full_build_s": round(full_s, 2), "full_build_scratch_s": round(scratch_s, 2),
            "refresh": {"files_edited": len(edited), "reingest_s": reingest_s, "manifest": re_counts,
                        "changed": len(re_summary["changed"]), "beir_folder_s": rebeir_s, "repro": refresh,
                        "seconds": round(refresh_s, 2), "fraction_of_full": round(refresh_s / full_s, 4),
                        "fraction_of_scratch": round(refresh_s / scratch_s, 4)},
        }
        write_result("ingest_scifact", result)
        write_section("ingest_scifact", markdown(result))
        print(table(result))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def verdict(passed: bool, floor: str) -> str:
    return ("ok" if passed else "MISSED") + f" ({floor})"


def figures(r: dict) -> list[tuple[str, str, str]]:
    ing, rf, cs, em = r["ingest"], r["refresh"], r["cache_shared"], r["embed_empty_cache"]
    status = ", ".join(f"{n} {s}" for s, n in ing["status"].items())
    fid = ", ".join(f"{k} {f['text_exact']}/{f['docs']}, {f['title_exact']}" for k, f in ing["fidelity"].items())
    rows = [("documents (pdf/docx/html/md)", f"{r['docs']:,} ({'/'.join(map(str, r['formats'].values()))})", ""),
            ("render (not in any figure)", f"{r['render_s']:.1f} s", ""),
            ("ingest, workers=2", f"{ing['seconds']:.1f} s = {ing['files_per_s']} files/s ({status})", "all ok"),
            ("abstract word for word, title exact", fid, "")]
    for m, v in r["ndcg_test"].items():
        floor = "n/a (subset)" if r["subset"] else verdict(abs(v["delta"]) <= 0.01, "|d| <= 0.01")
        rows.append((f"test nDCG@10 {m}: ingested vs BEIR build",
                     f"{v['ingested']:.4f} vs {v['beir']:.4f} ({v['delta']:+.4f})", floor))
    rows += [("chunks shared with the BEIR build (cache)",
              f"{cs['cached']:,} of {cs['total']:,} cached, {cs['encoded']:,} encoded", ""),
             ("embed stage, empty cache", f"{em['seconds']:.1f} s ({em['encoded']:,} chunks)", ""),
             ("ingest / embed", f"{r['ingest_over_embed']:.1%}", verdict(r["ingest_over_embed"] <= 0.2, "<= 20%")),
             ("full build: ingest + BEIR folder + dvc repro",
              f"{r['full_build_s']:.1f} s as run; {r['full_build_scratch_s']:.1f} s from scratch", ""),
             (f"refresh: {rf['files_edited']} files edited",
              f"{rf['seconds']:.1f} s (re-ingest {rf['reingest_s']:.1f} s, manifest {rf['manifest']}, "
              f"{rf['repro']['embed_stats']['encoded']} chunks encoded)", ""),
             ("refresh / full build",
              f"{rf['fraction_of_scratch']:.1%} of from scratch, {rf['fraction_of_full']:.1%} of as run",
              verdict(rf["fraction_of_scratch"] <= 0.1, "<= 10%"))]
    return rows


def table(r: dict) -> str:
    return "\n".join(f"{a:<46} {b}  {c}" for a, b, c in figures(r))


def markdown(r: dict) -> str:
    rows = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in figures(r))
    load = "; ".join(f"{x['phase']} {x['loadavg_1m']} ({x['other_pipeline_procs']} other pipeline processes)"
                     for x in r["load"])
    return f"""## Ingesting your own documents (SciFact rendered to files) (`{r['command']}`)

{machine_line(r['machine'])}
Load (1-min load average at the start of each phase; processes of another build outside the bench): {load}.
{'A seeded subset of ' + str(r['docs']) + ' documents: nDCG is not comparable with the full build.' if r['subset']
 else 'The full corpus, every step on the same files.'}

Each abstract is one file written by a real writer (fpdf2 with DejaVu Sans, 2 pages from 600 characters;
python-docx; HTML with page chrome; Markdown with a `# title`), converted by `ragops.ingest` (2 workers), mapped
back to SciFact's ids and built by `dvc repro` in a project copy (training stages off) against SciFact's qrels;
the baseline is the BEIR-folder build's reports/metrics.json ({r['baseline']['mtime']}). The embed time is the
stage's own, re-run with an empty cache on the ingested corpus. "From scratch" = the build as run with its
embed stage (which re-used the project's cache for the shared chunks) replaced by the empty-cache one.

| figure | value | floor |
|---|---|---|
{rows}

Refresh stages re-run (seconds): {', '.join(f"{s} {t:.1f}" for s, t in r['refresh']['repro']['stage_s'].items())}."""


if __name__ == "__main__":
    main()
