"""`ragops generate-questions`: silver judgments (generated questions) for the prepared documents.

Registered in ragops.cli (which turns RagopsError into one line). Reads ``paths.docs`` of the params file,
writes JSONL judgment rows (``source: "silver"``) atomically, by default to data/judgments/silver.jsonl.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ragops.errors import unknown_name

console = Console()
ParamsOpt = Annotated[Path, typer.Option("--params", help="params file to read.")]


def pick_generator(name: str | None) -> str:
    """``None`` / ``auto``: anthropic when ANTHROPIC_API_KEY is set, else offline."""
    from ragops.answer.generators import KEY_ENV
    from ragops.silver import GENERATORS

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
    from ragops.logs import setup
    from ragops.silver import generate_offline, idf_table, read_docs, sample_docs, write_rows

    setup()
    params = load_params(params_file)
    name = pick_generator(generator)
    seed = int(params.get("seed", 42) if seed is None else seed)
    docs = read_docs(params["paths"]["docs"])
    idf = idf_table(docs["title"] + " " + docs["text"])  # over the whole corpus, also when sampling
    chosen = sample_docs(docs, max_docs, seed)
    if name == "anthropic":
        from ragops.silver_anthropic import anthropic_config, generate_anthropic

        rows = generate_anthropic(chosen, per_doc, seed, anthropic_config(params), idf)
    else:
        rows = generate_offline(chosen, per_doc, seed, idf)
    write_rows(out, rows)
    by = Counter(r["by"] for r in rows)
    covered = len({r["doc_id"] for r in rows})
    console.print(f"{out}: {len(rows)} silver questions for {covered} of {len(chosen)} documents "
                  f"({', '.join(f'{k}: {v}' for k, v in sorted(by.items())) or 'none'})", highlight=False)
