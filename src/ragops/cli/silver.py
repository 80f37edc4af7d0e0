"""`ragops generate-questions`: silver judgments (generated questions) for the prepared documents.

Registered in ragops.cli.main (which turns RagopsError into one line). Reads ``paths.docs`` of the params file,
writes JSONL judgment rows (``source: "silver"``) atomically, by default to data/judgments/silver.jsonl.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from ragops.errors import DataError, unknown_name

if TYPE_CHECKING:
    import pandas as pd

console = Console()
ParamsOpt = Annotated[Path, typer.Option("--params", help="params file to read.")]


def read_docs(path: str | Path) -> pd.DataFrame:
    """The prepared docs parquet (doc_id, title, text), checked: a clear error naming the file otherwise."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "docs file not found (build it with `dvc repro prepare`)")
    try:
        docs = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not parquet
        raise DataError(path, f"not a readable parquet file ({type(exc).__name__})") from None
    missing = [c for c in ("doc_id", "title", "text") if c not in docs.columns]
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(missing)}; expected doc_id, title, text")
    docs = docs[["doc_id", "title", "text"]].fillna("").astype(str)
    dup = docs["doc_id"].duplicated()
    if dup.any():
        raise DataError(path, f"doc_id {docs['doc_id'][dup].iloc[0]!r} appears more than once",
                        line=int(dup.to_numpy().nonzero()[0][0]) + 1)
    return docs.reset_index(drop=True)


def sample_docs(docs: pd.DataFrame, max_docs: int | None, seed: int) -> pd.DataFrame:
    """A seeded sample of ``max_docs`` documents in file order (all when None or >= len)."""
    if not max_docs or max_docs >= len(docs):
        return docs
    keep = sorted(random.Random(seed).sample(range(len(docs)), max_docs))
    return docs.iloc[keep].reset_index(drop=True)


def write_rows(path: str | Path, rows: Sequence[Mapping]) -> Path:
    """Write ``rows`` as JSONL, atomically (a crash leaves the previous file)."""
    from ragops.io import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def pick_generator(name: str | None) -> str:
    """``None`` / ``auto``: anthropic when ANTHROPIC_API_KEY is set, else offline."""
    from ragops.answer.generators import KEY_ENV
    from ragops.eval.silver import GENERATORS

    if name in (None, "auto"):
        return "anthropic" if os.environ.get(KEY_ENV, "").strip() else "offline"
    if name not in GENERATORS:
        raise unknown_name("generator", name, (*GENERATORS, "auto"))
    return name


def generate_questions_command(
    per_doc: Annotated[int, typer.Option("--per-doc", min=1, max=20, help="questions per document")] = 1,
    max_docs: Annotated[int | None, typer.Option("--max-docs", min=1,
                                                 help="a seeded sample of this many documents (default: all)")] = None,
    generator: Annotated[str | None, typer.Option(
        help="offline (from each document's own sentences, deterministic for a seed) | anthropic (Claude, "
        "params answer.anthropic; needs ANTHROPIC_API_KEY) | auto (default: anthropic when the key is set)")] = None,
    out: Annotated[Path, typer.Option("--out", help="the JSONL file to write")] = Path("data/judgments/silver.jsonl"),
    seed: Annotated[int | None, typer.Option(help="seed of the sample and the offline generator "
                                             "(default: params seed)")] = None,
    params_file: ParamsOpt = Path("params.yaml"),
) -> None:
    """Generate silver judgments: questions per document, each judged relevant to the document it came from.

    Silver is not gold: how far a ranking of systems on silver questions agrees with one on real judgments
    is measured on SciFact by bench/silver_tau.py (docs/benchmarks.md).
    """
    from ragops.config import load_params
    from ragops.eval.silver import generate_offline, idf_table
    from ragops.logs import setup

    setup()
    params = load_params(params_file)
    name = pick_generator(generator)
    seed = int(params.get("seed", 42) if seed is None else seed)
    docs = read_docs(params["paths"]["docs"])
    idf = idf_table(docs["title"] + " " + docs["text"])  # over the whole corpus, also when sampling
    chosen = sample_docs(docs, max_docs, seed)
    if name == "anthropic":
        from ragops.eval.silver_anthropic import anthropic_config, generate_anthropic

        rows = generate_anthropic(chosen, per_doc, seed, anthropic_config(params), idf)
    else:
        rows = generate_offline(chosen, per_doc, seed, idf)
    write_rows(out, rows)
    by = Counter(r["by"] for r in rows)
    covered = len({r["doc_id"] for r in rows})
    console.print(f"{out}: {len(rows)} silver questions for {covered} of {len(chosen)} documents "
                  f"({', '.join(f'{k}: {v}' for k, v in sorted(by.items())) or 'none'})", highlight=False)
