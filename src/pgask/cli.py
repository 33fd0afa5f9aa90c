"""The `pgask` command line. Each command is a thin layer over KnowledgeBase.

Human output goes to the terminal through Rich; with --json, stdout carries one JSON document
and nothing else (progress and notes go to stderr).
"""

from __future__ import annotations

import functools
import json
import os
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
        out.print("no passages above the similarity threshold")
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
    as_json: bool = JsonOption,
):
    """The passages closest to QUERY, best first."""
    with knowledge_base() as kb:
        hits = kb.search(query, k=k, threshold=threshold, metric=metric)
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
    as_json: bool = JsonOption,
):
    """Answer QUESTION from the documents, citing them as [n]."""
    with knowledge_base() as kb:
        streamed = not as_json and kb.settings.llm_configured
        on_token = (lambda t: out.print(escape(t), end="")) if streamed else None
        result = kb.ask(question, k=k, threshold=threshold, on_token=on_token)
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
    ef_search: Optional[int] = typer.Option(None, "--ef-search", min=1, max=1000,
                                            help="hnsw: search-time candidate list, recorded for every search (default max(40, 2k))."),
    probes: Optional[int] = typer.Option(None, "--probes", min=1, help="ivfflat: lists probed per search, recorded (default 10)."),
    as_json: bool = JsonOption,
):
    """Build an approximate-nearest-neighbour index on the chunk vectors, then ANALYZE."""
    with knowledge_base() as kb:
        info = kb.create_index(kind=type_, metric=metric, lists=lists, m=m, ef_construction=ef_construction,
                               ef_search=ef_search, probes=probes)
    if as_json:
        emit_json(info)
    else:
        if info["type"] == "ivfflat":
            extra = f"lists={info['lists']}, probes={info['probes'] or 'default'}"
        else:
            extra = f"m={info['m']}, ef_construction={info['ef_construction']}, ef_search={info['ef_search'] or 'default'}"
        out.print(f"built {info['type']} index {info['name']} on {info['rows']} chunks ({extra}) "
                  f"in {info['build_seconds']:.1f}s; analyzed")


def _backend_line(backend: dict | None) -> str:
    if backend is None:
        return "remote"
    if backend["requested"] != "auto":
        return f"{backend['backend']} (set by PGASK_EMBED_BACKEND)"
    if backend["backend"] is None:
        return f"auto: measured on first use (CPU: {backend['isa']})"
    return f"{backend['backend']} (auto, fastest within cosine 0.99 of fp32 on this CPU: {backend['isa']})"


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
        ("backend", _backend_line(info.get("embed_backend"))),
        ("documents", str(info["documents"])),
        ("chunks", str(info["chunks"])),
        ("indexes", ", ".join(f"{i['type']} ({i['metric']})" for i in info["indexes"]) or "none (exact search)"),
        ("answers", f"{info['llm']['model']} via {info['llm']['base_url'] or 'OpenAI'}" if info["llm"]["configured"]
         else "extractive (no language model configured)"),
    ]
    for name, value in rows:
        out.print(f"[bold]{name:>10}[/bold]  {escape(value)}")


class PhaseProgress:
    """Rich progress on stderr with one bar per phase of a long job."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=err, transient=True)

    def __call__(self, name: str, total: int | None) -> Callable[[int], None]:
        self.bar.start()
        task = self.bar.add_task(name, total=total)
        return lambda n: self.bar.update(task, advance=n)

    def stop(self) -> None:
        self.bar.stop()


@app.command()
@handle_errors
def bench(
    corpus: Path = typer.Option(Path("docs"), "--corpus", help="Folder of documents to embed, ingest and search."),
    queries: Optional[Path] = typer.Option(None, "--queries", help="File with one query per line (default: sampled from the corpus)."),
    query_count: int = typer.Option(100, "--query-count", min=1, help="Queries sampled from the corpus without --queries."),
    synthetic_rows: int = typer.Option(100_000, "--synthetic-rows", min=0,
                                       help="Synthetic 384-d vectors to COPY and index (0: skip; the acceptance run uses 1000000)."),
    m: int = typer.Option(16, "--m", min=2, max=100, help="hnsw: links per node."),
    ef_construction: int = typer.Option(64, "--ef-construction", min=4, max=1000, help="hnsw: build-time candidate list."),
    ef_search: Optional[int] = typer.Option(None, "--ef-search", min=1, max=1000, help="hnsw: search-time candidate list."),
    as_json: bool = JsonOption,
):
    """Measure encode and ingest chunks/s, search latency and recall, COPY rows/s and peak memory."""
    from .bench import BenchOptions, run
    from .config import load_settings

    lines: list[str] = []
    if queries is not None:
        try:
            lines = [line.strip() for line in queries.read_text(encoding="utf-8").splitlines() if line.strip()]
        except OSError as exc:
            raise PgaskError(f"cannot read the queries file {queries}: {exc.strerror}") from exc
        if not lines:
            raise PgaskError(f"the queries file {queries} has no queries (one per line)")
    options = BenchOptions(corpus=corpus, queries=lines, query_count=query_count, synthetic_rows=synthetic_rows,
                           m=m, ef_construction=ef_construction, ef_search=ef_search)
    progress = PhaseProgress()
    try:
        result = run(load_settings(), options, progress,
                     notify=lambda message: progress.bar.console.print(f"[dim]{escape(message)}[/dim]"))
    finally:
        progress.stop()
    if as_json:
        emit_json(result)
        return
    rows = [
        ("machine", f"{result['cpu']}, {result['cores']} cores"),
        ("backend", f"{result['backend']} ({result['model']})"),
        ("corpus", f"{result['documents']} documents, {result['chunks']} chunks"),
        ("encode", f"{result['encode_chunks_per_s']:.1f} chunks/s (model only)"),
        ("ingest", f"{result['ingest_chunks_per_s']:.1f} chunks/s end to end "
                   f"({result['ingest_to_encode_ratio']:.2f} × encode)"),
    ]
    if "speedup_vs_torch" in result:
        rows.append(("vs torch", f"{result['speedup_vs_torch']:.2f} × PyTorch fp32 "
                                 f"({result['torch_encode_chunks_per_s']:.1f} chunks/s)"))
    rows += [
        ("search", f"p50 {result['search_p50_ms']:.1f} ms, p95 {result['search_p95_ms']:.1f} ms "
                   f"over {result['queries']} queries (embedding + SQL, HNSW)"),
        ("recall@10", f"{result['recall_at_10']} (HNSW m={result['m']}, ef_construction={result['ef_construction']}, "
                      f"ef_search={result['ef_search']}; vs exact search)"),
        ("hnsw build", f"{result['hnsw_build_s']:.2f} s for {result['chunks']} chunks"),
    ]
    if result.get("copy_rows_per_s"):
        rows += [("COPY", f"{result['copy_rows_per_s']:,} rows/s ({result['synthetic_rows']:,} synthetic {result['dim']}-d vectors)"),
                 ("hnsw build", f"{result['synthetic_hnsw_build_s']:.1f} s for {result['synthetic_rows']:,} synthetic rows "
                                f"({result['index_memory_mb']} MB maintenance_work_mem, {result['index_workers']} parallel workers)")]
    rows.append(("peak RSS", f"{result['peak_rss_mb']:.0f} MB (ingest phase: {result['ingest_peak_rss_mb']:.0f} MB)"))
    for name, value in rows:
        out.print(f"[bold]{name:>10}[/bold]  {escape(value)}")


def main() -> None:  # pragma: no cover - console entry point alternative
    app()
