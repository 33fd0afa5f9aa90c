"""The `pgask` command line. Each command is a thin layer over KnowledgeBase.

Human output goes to the terminal through Rich; with --json, stdout carries one JSON document
and nothing else (progress and notes go to stderr).
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from pathlib import Path
from typing import Callable, List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from .errors import PgaskError

app = typer.Typer(
    name="pgask",
    help="Cited answers from your documents, stored and searched in PostgreSQL + pgvector.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOption = typer.Option(False, "--json", help="Print one JSON document on stdout, for scripts.")


def handle_errors(command: Callable) -> Callable:
    """A PgaskError (or any failure) becomes one line on stderr and exit code 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except PgaskError as exc:
            err.print(f"[red]Error:[/red] {escape(str(exc))}")
            raise typer.Exit(1)
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - a bug or an unforeseen fault: still one line
            if os.environ.get("PGASK_DEBUG"):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            err.print(f"[red]Error:[/red] {type(exc).__name__}: {escape(first)} (set PGASK_DEBUG=1 for details)")
            raise typer.Exit(1)

    return wrapper


def knowledge_base():
    from .kb import KnowledgeBase

    return KnowledgeBase()


def emit_json(data) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def shown_source(source: str) -> str:
    """A source as people read it: relative to the current folder when it lies below it."""
    try:
        return Path(source).relative_to(Path.cwd()).as_posix()
    except ValueError:
        return source


class IngestProgress:
    """A Rich progress bar on stderr: documents done, chunks and chunks per second."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.chunks = 0
        self.bar = Progress(
            TextColumn("[bold]ingest[/bold]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), console=err, transient=True,
        )
        self.task = None

    def start(self, total_files: int | None) -> None:
        self.bar.start()
        self.task = self.bar.add_task("ingest", total=total_files, info="")

    def advance(self, files: int, chunks: int) -> None:
        self.chunks += chunks
        elapsed = self.bar.tasks[0].elapsed or 0.0
        rate = f" · {self.chunks / elapsed:.0f} chunks/s" if elapsed > 1 else ""
        self.bar.update(self.task, advance=files, info=f"{self.chunks} chunks{rate}")

    def stop(self) -> None:
        self.bar.stop()


class QueryProgress:
    """A Rich progress bar on stderr per evaluated mode: questions answered."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("[bold]{task.description}[/bold]"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=err, transient=True)
        self.task = None

    def start(self, mode: str, total: int) -> None:
        self.bar.start()
        self.task = self.bar.add_task(f"eval {mode}", total=total)

    def advance(self) -> None:
        self.bar.update(self.task, advance=1)

    def stop(self) -> None:
        self.bar.stop()


def metadata_filter(pairs: List[str]) -> dict | None:
    """--filter key=value pairs -> the JSON object document metadata must contain."""
    wanted: dict = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--filter")
        if key in wanted:
            raise typer.BadParameter(f"{key!r} is given twice; for several values give a JSON array, "
                                     f"{key}='[\"a\", \"b\"]'", param_hint="--filter")
        try:
            wanted[key] = json.loads(text)
        except json.JSONDecodeError:
            wanted[key] = text
    return wanted or None


def source_prefix(prefix: Optional[str]) -> Optional[str]:
    """A relative path prefix as stored (absolute); prefixes of other sources (table:, beir:) as given."""
    if not prefix or re.match(r"^[A-Za-z][\w+.-]*:", prefix):
        return prefix or None
    resolved = os.path.abspath(os.path.expanduser(prefix))
    return resolved + "/" if prefix.endswith("/") and resolved != "/" else resolved


def check_filters(pairs: List[str]) -> List[str]:
    """Bad --filter values are usage errors (exit 2), found while the command line is parsed."""
    metadata_filter(pairs)
    return pairs


ModeOption = typer.Option(None, "--mode", help="vector, keyword or hybrid (default: hybrid, PGASK_SEARCH_MODE).")
FilterOption = typer.Option([], "--filter", metavar="KEY=VALUE", callback=check_filters,
                            help="Only documents whose metadata has KEY=VALUE; VALUE is JSON if it parses "
                                 "as JSON (42, true, [\"a\"]), else text (repeatable).")
SourceOption = typer.Option(None, "--source", metavar="PREFIX",
                            help="Only documents whose source starts with PREFIX (a relative path is taken "
                                 "from the current folder).")


@app.command()
@handle_errors
def init(
    reset: bool = typer.Option(False, "--reset", help="Drop the knowledge base first (all documents and vectors)."),
    as_json: bool = JsonOption,
):
    """Create the knowledge base (schema, tables, SQL functions) for the configured model."""
    with knowledge_base() as kb:
        info = kb.init(reset=reset)
    if as_json:
        emit_json(info)
    else:
        out.print(f"knowledge base ready in schema [bold]{info['schema']}[/bold] at {escape(info['database_url'])} "
                  f"({info['model']}, {info['dim']} dimensions)")


@app.command()
@handle_errors
def ingest(
    paths: List[Path] = typer.Argument(..., help="Files or folders (searched recursively)."),
    include: List[str] = typer.Option([], "--include", help="Only files matching this glob (repeatable)."),
    exclude: List[str] = typer.Option([], "--exclude", help="Skip files matching this glob (repeatable)."),
    prune: bool = typer.Option(False, "--prune", help="Delete stored documents whose files are gone."),
    as_json: bool = JsonOption,
):
    """Load, chunk, embed and store documents; unchanged ones are skipped."""
    progress = IngestProgress()
    with knowledge_base() as kb:
        try:
            report = kb.ingest(paths, include=include, exclude=exclude, prune=prune, progress=progress,
                               notify=lambda message: err.print(f"[dim]{escape(message)}[/dim]"))
        finally:
            progress.stop()
    if as_json:
        emit_json(report.as_dict())
    else:
        out.print(
            f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
            f"{report.deleted} deleted, {len(report.failed)} failed · {report.chunks} chunks in {report.seconds:.1f}s"
        )
        if report.skipped:
            out.print(f"[dim]skipped {len(report.skipped)} files of unsupported types[/dim]")
    for failure in report.failed:
        err.print(f"[red]failed:[/red] {escape(shown_source(failure['source']))}: {escape(failure['error'])}")
    if report.failed:
        raise typer.Exit(1)


def _print_hits(hits, query: str) -> None:
    if not hits:
        out.print("no matching passages")
        return
    for rank, hit in enumerate(hits, 1):
        snippet = " ".join(hit.content.split())
        snippet = snippet[:240] + ("…" if len(snippet) > 240 else "")
        out.print(f"[bold]{rank}.[/bold] [green]{hit.similarity:.3f}[/green]  [cyan]{escape(shown_source(hit.source))}[/cyan]")
        if hit.heading:
            out.print(f"   [dim]{escape(hit.heading)}[/dim]")
        out.print(f"   {escape(snippet)}")


@app.command()
@handle_errors
def search(
    query: str = typer.Argument(..., help="What to look for, in plain words."),
    k: int = typer.Option(5, "-k", "--k", min=1, max=1000, help="How many passages."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Minimum cosine similarity (default: none)."),
    metric: str = typer.Option("cosine", "--metric", help="cosine (<=>), l2 (<->) or ip (<#>)."),
    mode: Optional[str] = ModeOption,
    filters: List[str] = FilterOption,
    source: Optional[str] = SourceOption,
    as_json: bool = JsonOption,
):
    """The passages that best match QUERY, best first."""
    with knowledge_base() as kb:
        hits = kb.search(query, k=k, threshold=threshold, metric=metric, mode=mode,
                         filter=metadata_filter(filters), source=source_prefix(source))
    if as_json:
        emit_json({"query": query, "results": [h.as_dict() for h in hits]})
    else:
        _print_hits(hits, query)


def _print_sources(result) -> None:
    if result.sources:
        out.print("\n[bold]Sources[/bold]")
        for n, hit in enumerate(result.sources, 1):
            where = shown_source(hit.source) + (f" › {hit.heading}" if hit.heading else "")
            out.print(f"  [{n}] {escape(where)} [dim]({hit.similarity:.2f})[/dim]")


@app.command()
@handle_errors
def ask(
    question: str = typer.Argument(..., help="A question about your documents."),
    k: int = typer.Option(5, "-k", "--k", min=1, max=100, help="How many passages to answer from."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Minimum cosine similarity of a passage (default 0.3, PGASK_THRESHOLD)."),
    mode: Optional[str] = ModeOption,
    filters: List[str] = FilterOption,
    source: Optional[str] = SourceOption,
    as_json: bool = JsonOption,
):
    """Answer QUESTION from the documents, citing them as [n]."""
    with knowledge_base() as kb:
        streamed = not as_json and kb.settings.llm_configured
        on_token = (lambda t: out.print(escape(t), end="")) if streamed else None
        result = kb.ask(question, k=k, threshold=threshold, on_token=on_token, mode=mode,
                        filter=metadata_filter(filters), source=source_prefix(source))
    if as_json:
        emit_json(result.as_dict())
        return
    if streamed:
        out.print()
    elif result.mode == "extractive":
        out.print("[dim]extractive answer: no language model configured "
                  "(set OPENAI_API_KEY or PGASK_LLM_BASE_URL for written answers)[/dim]")
        out.print(escape(result.answer))
    else:
        out.print(escape(result.answer))
    _print_sources(result)


@app.command()
@handle_errors
def index(
    type_: str = typer.Option("hnsw", "--type", help="hnsw or ivfflat."),
    metric: str = typer.Option("cosine", "--metric", help="cosine, l2 or ip: the operator the index serves."),
    lists: Optional[int] = typer.Option(None, "--lists", min=1, help="ivfflat lists (default rows/1000, sqrt(rows) over 1M)."),
    m: int = typer.Option(16, "--m", min=2, max=100, help="hnsw: links per node."),
    ef_construction: int = typer.Option(64, "--ef-construction", min=4, max=1000, help="hnsw: build-time candidate list."),
    as_json: bool = JsonOption,
):
    """Build an approximate-nearest-neighbour index on the chunk vectors, then ANALYZE."""
    with knowledge_base() as kb:
        info = kb.create_index(kind=type_, metric=metric, lists=lists, m=m, ef_construction=ef_construction)
    if as_json:
        emit_json(info)
    else:
        extra = f"lists={info['lists']}" if info["type"] == "ivfflat" else f"m={info['m']}, ef_construction={info['ef_construction']}"
        out.print(f"built {info['type']} index {info['name']} on {info['rows']} chunks ({extra}); analyzed")


@app.command(name="eval")
@handle_errors
def evaluate(
    path: Path = typer.Argument(..., help="A BEIR dataset folder (corpus.jsonl, queries.jsonl, qrels/), or a "
                                          "JSON-lines file of your own questions and their expected sources."),
    mode: str = typer.Option("all", "--mode", help="vector, keyword, hybrid or all."),
    split: str = typer.Option("test", "--split", help="BEIR: which qrels/<split>.tsv to evaluate."),
    as_json: bool = JsonOption,
):
    """Measure retrieval: nDCG@10, Recall@100 and MRR@10 per search mode."""
    from . import eval as evaluation

    modes = evaluation.modes_for(mode)
    progress = QueryProgress()
    if path.is_dir():
        from .config import load_settings

        ingest_progress = IngestProgress()
        try:
            rows = evaluation.evaluate_beir(
                load_settings(), path, split=split, modes=modes, ingest_progress=ingest_progress,
                query_progress=progress, notify=lambda message: err.print(f"[dim]{escape(message)}[/dim]"))
        finally:
            ingest_progress.stop()
            progress.stop()
    elif path.is_file():
        with knowledge_base() as kb:
            try:
                rows = evaluation.evaluate_questions(kb, path, modes=modes, progress=progress)
            finally:
                progress.stop()
    else:
        raise PgaskError(f"no such file or directory: {path}")
    if as_json:
        emit_json(rows)
        return
    from rich.table import Table

    table = Table("dataset", "mode", "nDCG@10", "Recall@100", "MRR@10", "queries", "seconds")
    for row in rows:
        table.add_row(row["dataset"], row["mode"], f"{row['ndcg@10']:.4f}", f"{row['recall@100']:.4f}",
                      f"{row['mrr@10']:.4f}", str(row["queries"]), f"{row['seconds']:.1f}")
    out.print(table)


@app.command()
@handle_errors
def status(as_json: bool = JsonOption):
    """Where the knowledge base lives and what is in it."""
    with knowledge_base() as kb:
        info = kb.status()
    if as_json:
        emit_json(info)
        return
    rows = [
        ("database", info["database_url"] + (" (embedded)" if info["embedded"] else "")),
        ("engine", f"{info['engine']} {info['server_version']}, pgvector {info['pgvector_version']}"),
        ("model", f"{info['model']} ({info['dim']} dimensions)"),
        ("documents", str(info["documents"])),
        ("chunks", str(info["chunks"])),
        ("indexes", ", ".join(f"{i['type']} ({i['metric']})" for i in info["indexes"]) or "none (exact search)"),
        ("answers", f"{info['llm']['model']} via {info['llm']['base_url'] or 'OpenAI'}" if info["llm"]["configured"]
         else "extractive (no language model configured)"),
    ]
    for name, value in rows:
        out.print(f"[bold]{name:>10}[/bold]  {escape(value)}")


def main() -> None:  # pragma: no cover - console entry point alternative
    app()
