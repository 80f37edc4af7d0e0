"""`ragops judge`: mark search results relevant / not relevant, building an evaluation set for your own documents.

Registered in ragops.cli.main (which turns RagopsError into one line). A team without a judged data set searches
its build the way `ragops search` does and answers y / n / s / q for each result; every answer is appended
at once (ragops.eval.judgments: whole lines, locked, synced), so quitting or Ctrl-C keeps what was answered.
``--yes DOC`` / ``--no DOC`` record judgments without a prompt, for scripts. The next `dvc repro` reads
the file in ``prepare`` and evaluates on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console

from ragops.errors import DataError
from ragops.eval import judgments

console = Console()
PROMPT = "relevant? [y]es / [n]o / [s]kip / [q]uit"
ANSWERS = {"y": 1, "yes": 1, "n": 0, "no": 0, "s": None, "skip": None, "": None}


def _params(params_file: Path) -> dict:
    from ragops.config import load_params

    return load_params(params_file)


def corpus_ids(params: dict) -> set[str]:
    """The doc ids of the prepared corpus (``paths.docs``): a judgment of anything else would be dropped."""
    import pandas as pd

    path = Path(params["paths"]["docs"])
    if not path.is_file():
        raise DataError(path, "docs file not found (build it with `dvc repro prepare`)")
    try:
        return set(pd.read_parquet(path, columns=["doc_id"])["doc_id"].astype(str))
    except Exception as exc:  # pyarrow raises several types for a file that is not parquet
        raise DataError(path, f"not a readable docs parquet ({type(exc).__name__}: {exc})") from None


def print_summary(paths: list[Path]) -> None:
    frame = judgments.read_many(paths)
    s = judgments.summary(frame)
    where = ", ".join(str(p) for p in paths) or "(no judgments file yet)"
    console.print(f"{where}: {s['judgments']} judgments of {s['queries']} questions, {s['relevant']} relevant",
                  markup=False, highlight=False, soft_wrap=True)
    for source, c in s["by_source"].items():
        console.print(f"  {source}: {c['judgments']} judgments of {c['queries']} questions, {c['relevant']} relevant",
                      markup=False, highlight=False)


def _record_given(query: str, yes: list[str], no: list[str], mode: str | None, file: Path, params_file: Path) -> None:
    both = sorted(set(yes) & set(no))
    if both:
        raise typer.BadParameter(f"{', '.join(both)} given to both --yes and --no", param_hint="--yes/--no")
    params = _params(params_file)
    known = corpus_ids(params)
    unknown = [d for d in [*yes, *no] if d not in known]
    if unknown:
        raise DataError(params["paths"]["docs"], f"no document with id {', '.join(map(repr, unknown))} in the corpus")
    rows = [judgments.make_row(query, d, 1, "cli", mode) for d in yes]
    rows += [judgments.make_row(query, d, 0, "cli", mode) for d in no]
    total = judgments.append(file, rows)
    console.print(f"{file}: {len(rows)} judgments recorded for {rows[0]['query_id']} ({total} lines)",
                  markup=False, highlight=False)


def _ask(hit_count: int) -> int | None | str:
    """1, 0, None (skip) or "quit"; end of input or Ctrl-D quits."""
    while True:
        try:
            answer = click.prompt(PROMPT, default="", show_default=False, prompt_suffix=" ").strip().lower()
        except click.exceptions.Abort:
            return "quit"
        if answer in ("q", "quit"):
            return "quit"
        if answer in ANSWERS:
            return ANSWERS[answer]
        console.print(f"answer y, n, s or q ({hit_count} results)", highlight=False)


def _interactive(query: str, k: int, mode: str | None, file: Path, params_file: Path) -> None:
    from ragops.cli.main import _local_hits  # the same search as `ragops search` (imported here: cli imports us)

    mode, hits = _local_hits(query, k, mode, params_file)
    if not hits:
        console.print("no document matched")
        return
    qid = judgments.query_id(query)
    console.print(f"{mode}: {query}  ({qid}, writing to {file})", markup=False, highlight=False)
    counts = {1: 0, 0: 0}
    for rank, (doc_id, score, title, text) in enumerate(hits, 1):
        snippet = " ".join(text.split())[:200]
        console.print(f"\n{rank}. [{doc_id}] {title}  (score {score:.4f})", markup=False, highlight=False)
        console.print(f"   {snippet}", markup=False, highlight=False, soft_wrap=True)
        answer = _ask(len(hits))
        if answer == "quit":
            break
        if answer is not None:
            judgments.append(file, [judgments.make_row(query, doc_id, answer, "cli", mode)])
            counts[answer] += 1
    console.print(f"{counts[1]} relevant, {counts[0]} not relevant recorded in {file}", markup=False, highlight=False)


def judge_command(
    query: Annotated[str | None, typer.Argument(help="the question to search and judge")] = None,
    mode: Annotated[str | None, typer.Option(help="retrieval mode (default: as `ragops search`)")] = None,
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, max=100, help="results to judge")] = 10,
    yes: Annotated[list[str] | None, typer.Option("--yes", help="record DOC_ID as relevant, no prompt "
                                                  "(repeatable)")] = None,
    no: Annotated[list[str] | None, typer.Option("--no", help="record DOC_ID as not relevant, no prompt "
                                                 "(repeatable)")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="judgments file to append to (default: "
                                              "<data.judgments>/judgments.jsonl)")] = None,
    summary: Annotated[bool, typer.Option("--summary", help="print how many questions and judgments there are "
                                          "(--file, else every *.jsonl of data.judgments)")] = False,
    params_file: Annotated[Path, typer.Option("--params", help="params file to read.")] = Path("params.yaml"),
) -> None:
    """Judge search results relevant or not: the evaluation set for your own documents (the next `dvc repro`
    evaluates on it). Without --yes/--no, asks for each result."""
    from ragops.retrieval.pipeline import MODES

    if summary:
        if query is not None or yes or no:
            raise typer.BadParameter("--summary takes no QUERY, --yes or --no", param_hint="--summary")
        if file is not None:
            print_summary([file])
        else:
            from ragops.data.judged import judgment_files

            folder = judgments.default_path(_params(params_file)).parent
            print_summary(judgment_files(folder))
        return
    if query is None or not query.strip():
        raise typer.BadParameter("give the question to judge (or --summary)", param_hint="QUERY")
    if mode is not None and mode not in MODES:
        raise typer.BadParameter(f"unknown mode {mode!r}; valid: {', '.join(MODES)}", param_hint="--mode")
    file = file or judgments.default_path(_params(params_file))
    if yes or no:
        _record_given(query, yes or [], no or [], mode, file, params_file)
    else:
        _interactive(query, k, mode, file, params_file)
