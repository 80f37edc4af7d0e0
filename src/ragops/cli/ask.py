"""`ragops ask`: answers with citations and a support check of each claim, one question or a batch.

Registered in ragops.cli.main (which turns RagopsError into one line). Retrieval comes from the built index
(default) or a packaged retriever (``--model models:/ragops-retriever@champion``). The grounding scorer comes
with the retrieval: the build's ``paths.grounding_model``, or the package's own (a package without one checks
claims with the embedding scorer and says so, rather than borrow the build's).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ragops.errors import RagopsError

console = Console()


def _answerer(params_file: Path, model: str | None, generator: str | None, scorer: str | None, mode: str | None):
    """The answerer over a packaged model (its modes, its registered mode, its grounding scorer) or the build."""
    from ragops.answer.answerer import build_answerer
    from ragops.config import load_params

    params = load_params(params_file)
    if model:
        from mlflow.exceptions import MlflowException

        from ragops.cli.registry import project_registry
        from ragops.pyfunc import load_model

        project_registry(params_file, need_params=False)  # a models:/ URI is resolved in the project's store
        try:
            python_model = load_model(model).unwrap_python_model()
        except (MlflowException, OSError) as exc:
            raise RagopsError(f"cannot load {model}: {str(exc).splitlines()[0]}") from None
        return build_answerer(python_model.pipeline, python_model.docs.reset_index(), params, generator, scorer, mode,
                              grounding_dir=python_model.grounding_dir, sentences_dir=python_model.sentences_dir,
                              packaged=True)
    from ragops.retrieval.load import load_pipeline

    pipeline, docs = load_pipeline(params)
    return build_answerer(pipeline, docs, params, generator, scorer, mode)


def print_answer(answer) -> None:
    console.print(f"[bold]Q:[/] {answer.question}", highlight=False)
    console.print(answer.text or "(no answer: nothing retrieved)", highlight=False)
    if not getattr(answer, "found", True):
        console.print(f"relevance {answer.relevance:.3f} is below answer.min_relevance; closest documents: "
                      + ", ".join(f"{h['doc_id']} ({h['title'][:60]})" for h in answer.hits[:3]), highlight=False)
        return
    table = Table(title=f"claims ({answer.scorer} scorer, support rate {answer.support_rate:.2f})")
    for col in ("claim", "score", "supported", "cites"):
        table.add_column(col, overflow="fold")
    for c in answer.claims:
        cites = ", ".join(f"{d} ({c.where[d]})" if c.where.get(d) else d for d in c.citations)
        table.add_row(c.text, f"{c.score:.3f}", "yes" if c.supported else "[red]NO[/]", cites)
    console.print(table)
    if answer.dropped_citations:
        console.print(
            f"[yellow]dropped citations of documents not in the context:[/] {', '.join(answer.dropped_citations)}"
        )
    titles = {h["doc_id"]: h["title"] for h in answer.hits}
    places: dict[str, list[str]] = {}
    for c in answer.claims:
        for d, w in c.where.items():
            if w not in places.setdefault(d, []):
                places[d].append(w)
    for d in answer.citations:
        at = f" ({'; '.join(places[d])})" if places.get(d) else ""
        console.print(f"  [{d}] {titles.get(d, '')}{at}", highlight=False)


def ask_command(
    question: Annotated[str | None, typer.Argument(help="the question (omit with --batch)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the answer as JSON")] = False,
    model: Annotated[
        str | None,
        typer.Option(
            help="retrieve with a packaged model, e.g. models:/ragops-retriever@champion (default: the local index)"
        ),
    ] = None,
    generator: Annotated[
        str | None, typer.Option(help="auto | extractive | anthropic (default: answer.generator)")
    ] = None,
    scorer: Annotated[str | None, typer.Option(help="lexical | embedding | trained (default: answer.scorer)")] = None,
    mode: Annotated[str | None, typer.Option(
        help="a retrieval mode the index or model carries "
        "(default: answer.mode; `default`: the model's registered mode)")] = None,
    k: Annotated[int | None, typer.Option("-k", "--top-k", min=1, max=100, help="documents retrieved")] = None,
    batch: Annotated[Path | None, typer.Option(help='questions.jsonl: one {"id", "question"} per line')] = None,
    out: Annotated[
        Path | None, typer.Option(help="answers.jsonl for --batch (appended; a rerun skips done ids)")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="questions in flight in --batch")] = 4,
    params_file: Annotated[Path, typer.Option("--params", help="params file to read.")] = Path("params.yaml"),
) -> None:
    """Answer a question from the retrieved documents, with inline citations and each claim's support score."""
    from ragops.answer.batch import answer_batch, read_questions

    if batch is None and (question is None or not question.strip()):
        raise typer.BadParameter(
            "give a question, or --batch questions.jsonl --out answers.jsonl", param_hint="QUESTION"
        )
    if batch is not None and (out is None or question is not None):
        raise typer.BadParameter("--batch needs --out and no QUESTION", param_hint="--batch")
    questions = read_questions(batch) if batch is not None else None  # bad input fails before models load
    answerer = _answerer(params_file, model, generator, scorer, mode)
    if questions is not None:
        res = asyncio.run(answer_batch(answerer, questions, out, concurrency, k, progress=True))
        console.print(
            f"{out}: {res.answered} answered, {res.skipped} already there, {len(res.failed)} failed (of {res.total})",
            soft_wrap=True,
            highlight=False,
        )
        if res.failed:
            for qid, msg in list(res.failed.items())[:5]:
                console.print(f"  {qid}: {msg}", highlight=False, soft_wrap=True)
            raise typer.Exit(1)
        return
    answer = answerer.ask(question, k)
    if as_json:
        sys.stdout.write(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False) + "\n")
        return
    print_answer(answer)
