"""The `pgask` command line. Each command is a thin layer over KnowledgeBase.

Human output goes to the terminal through Rich; with --json, stdout carries one JSON document
and nothing else (progress and notes go to stderr).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Callable, List, Literal, Optional

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from .config import MAX_K
from .errors import PgaskError
from .wording import plural

class _HelpArgument(TyperArgument):
    """An argument in --help: its name in capitals (QUERY, PATHS...), no Python type beside it."""

    @property
    def display_name_raw(self) -> str:
        return self.metavar or (self.name or "").upper()

    def display_type_rich(self, ctx) -> str | None:
        return None


VALUE_NAMES = {"int": "N", "float": "NUMBER", "str": "TEXT", "Path": "PATH", "datetime": "DATE"}


class _HelpOption(TyperOption):
    """An option in --help: a flag stands alone, a value is named by its metavar, its choices
    ([vector|keyword|hybrid]) or a plain word (TEXT, N, PATH), never a Python type (<list[str]>)."""

    def display_type_rich(self, ctx) -> str | None:
        if self.is_flag:
            return None
        if self.metavar is not None:
            return self.metavar
        label = self.display_type(ctx).strip("<>")  # "int range", "list[str]", "vector|keyword|hybrid"
        if "|" in label:
            return f"[{label.removeprefix('list[').removesuffix(']')}]"
        many = label.startswith("list[")
        label = label.removeprefix("list[").removesuffix("]").removesuffix(" range")
        return VALUE_NAMES.get(label, label.upper()) + ("..." if many or self.nargs != 1 else "")


def _plain_help(params) -> None:
    for param in params:
        if type(param) is TyperOption:
            param.__class__ = _HelpOption
        elif type(param) is TyperArgument:
            param.__class__ = _HelpArgument


class _PlainHelp:
    """For a command or group: its parameters, and its help option, print without type names."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _plain_help(self.params)

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        _plain_help([option] if option is not None else [])
        return option


class _Command(_PlainHelp, TyperCommand):
    pass


class _Group(_PlainHelp, TyperGroup):
    pass


class _Typer(typer.Typer):
    """Typer whose commands show flags as flags and values by name in --help (see _HelpOption)."""

    def command(self, *args, cls=None, **kwargs):
        return super().command(*args, cls=cls or _Command, **kwargs)


app = _Typer(
    cls=_Group,
    name="pgask",
    help="Cited answers from your documents, stored and searched in PostgreSQL + pgvector.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"pgask {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print pgask's version and exit."),
) -> None:
    """Cited answers from your documents, stored and searched in PostgreSQL + pgvector."""

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
        except KeyboardInterrupt as exc:
            err.print(interrupted_message(exc))
            raise typer.Exit(130)
        except (typer.Exit, typer.Abort, SystemExit, typer.BadParameter):  # usage errors: exit 2 via Typer
            raise
        except Exception as exc:  # noqa: BLE001 - a bug or an unforeseen fault: still one line
            if os.environ.get("PGASK_DEBUG"):
                raise
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            err.print(f"[red]Error:[/red] {type(exc).__name__}: {escape(first)} (set PGASK_DEBUG=1 for details)")
            raise typer.Exit(1)

    return wrapper


def interrupted_message(exc: KeyboardInterrupt) -> str:
    """What a Ctrl-C kept: an ingest stops after storing what it had finished, each document whole."""
    stored = getattr(exc, "stored", None)
    if stored is None:
        return "interrupted"
    kept = f"{plural(stored, 'document')} stored" if stored else "nothing stored yet"
    return f"interrupted: {kept}; run the same command again to finish (stored documents are skipped)"


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


def cited(hit) -> str:
    """How a passage's document is named: "support.tickets #4211" for a table row, else its source."""
    return hit.table_row or shown_source(hit.source)


class IngestProgress:
    """Ingest progress on stderr: documents done, chunks, chunks per second and time left.

    On a terminal, a Rich bar; elsewhere (a log, CI, a pipe) a plain line every `every` seconds
    and at the end (none for a run that fails before its first document, whose error stays the
    one line). Before the bar, `prepare` (when given) is told that
    documents are to be embedded, so that loading the model, or choosing the backend the first
    time, is said and done before the bar starts instead of holding it at 0.
    """

    def __init__(self, prepare: Callable[[], None] | None = None, *, every: float = 10.0) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.chunks = 0
        self.done = 0
        self.total: int | None = None
        self.prepare = prepare
        self.every = every
        self.plain = not err.is_terminal
        self.bar = Progress(
            TextColumn("[bold]{task.description}[/bold]"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=err, transient=True, disable=self.plain,
        )
        self.task = None
        self.started = 0.0
        self.last_line = 0.0

    def start(self, total_files: int | None) -> None:
        if self.task is None:  # a sync runs several batches; they count on as one
            if self.prepare is not None and total_files != 0:
                self.prepare()
                self.prepare = None
            self.started = self.last_line = time.monotonic()
            self.total = total_files
            self.bar.start()
            self.task = self.bar.add_task("ingest", total=total_files, info="")
        elif total_files:
            self.total = (self.total or 0) + total_files
            self.bar.update(self.task, total=self.total)

    def advance(self, files: int, chunks: int) -> None:
        self.chunks += chunks
        self.done += files
        elapsed = time.monotonic() - self.started
        rate = f" · {self.chunks / elapsed:.0f} chunks/s" if elapsed > 1 else ""
        last = self.total is not None and self.done >= self.total
        self.bar.update(self.task, advance=files, info=f"{plural(self.chunks, 'chunk')}{rate}",
                        description="all stored, finishing" if last else "ingest")
        if self.plain and (last or time.monotonic() - self.last_line >= self.every):
            self.line()

    def line(self) -> None:
        """One plain progress line: '120/644 documents · 1,830 chunks · 95 chunks/s · about 1m20s left'."""
        self.last_line = time.monotonic()
        elapsed = self.last_line - self.started
        parts = [f"{self.done}/{self.total} documents" if self.total is not None else plural(self.done, "document"),
                 plural(self.chunks, "chunk")]
        if elapsed > 1 and self.chunks:
            parts.append(f"{self.chunks / elapsed:.0f} chunks/s")
        if self.total and 0 < self.done < self.total and elapsed > 1:
            left = elapsed / self.done * (self.total - self.done)
            parts.append(f"about {_duration(left)} left")
        err.print("ingest: " + " · ".join(parts), highlight=False)

    def stop(self) -> None:
        if self.task is not None:
            self.bar.stop()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def model_loader(kb) -> Callable[[], None]:
    """What IngestProgress runs before its bar: say what the model is doing, then load it."""

    def prepare() -> None:
        emb = kb.embedder
        if not hasattr(emb, "backend_info"):  # an embeddings API: nothing to load
            return
        backend = emb.backend_info()
        if backend["backend"] is None:
            err.print("[dim]choosing the embedding backend: timing each one on this machine "
                      "(once; later runs reuse the choice)…[/dim]")
        else:
            err.print(f"[dim]loading the embedding model {escape(emb.name)} ({backend['backend']})…[/dim]")
        emb.prepare()

    return prepare


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


def check_filters(pairs: List[str]) -> List[str]:
    """Bad --filter values are usage errors (exit 2), found while the command line is parsed."""
    metadata_filter(pairs)
    return pairs


def within(low: float, high: float):
    """A callback that refuses a number outside low..high as a usage error (exit 2) naming both ends."""

    def check(value):
        if value is not None and not low <= value <= high:
            raise typer.BadParameter(f"{value} is out of range: give a number from {low:g} to {high:g}")
        return value

    return check


# `--k N`, the spelling before -k/--top-k: still accepted, no longer shown
OldKOption = typer.Option(None, "--k", callback=within(1, MAX_K), hidden=True)

# Allowed values as types: --help lists them, and any other value is a usage error (exit 2) naming them.
Mode = Literal["vector", "keyword", "hybrid"]
Metric = Literal["cosine", "l2", "ip"]
IndexType = Literal["hnsw", "ivfflat"]
ModeOption = typer.Option(None, "--mode", show_default=False,
                          help="How passages are found: vector (embeddings), keyword (BM25) or hybrid (both, fused); "
                               "default hybrid, or PGASK_SEARCH_MODE.")
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


def notifier(message: str) -> None:
    err.print(f"[dim]{escape(message)}[/dim]")


def report_line(report) -> str:
    spend = f" · {plural(report.tokens, 'token')}, ${report.cost_usd:.6f}" if report.tokens else ""
    return (f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
            f"{report.deleted} deleted, {len(report.failed)} failed · {plural(report.chunks, 'chunk')} "
            f"in {report.seconds:.1f}s{spend}")


def failure_reason(source: str, error: str) -> str:
    """A loader's message without the file name it starts with: the line names the file already."""
    name = source.rstrip("/").rsplit("/", 1)[-1]
    return error.removeprefix(f"{name}: ") if name else error


def print_failures(report) -> bool:
    """Failed documents and a spent budget on stderr; True when the run is incomplete (exit 1)."""
    for failure in report.failed:
        reason = failure_reason(failure["source"], failure["error"])
        err.print(f"[red]failed:[/red] {escape(shown_source(failure['source']))}: {escape(reason)}")
    if report.budget and report.budget["exhausted"]:
        err.print(
            f"[yellow]budget reached:[/yellow] ${report.budget['spent_usd']:.6f} of ${report.budget['max_cost_usd']:.6f} "
            f"spent, the next batch would exceed it; {plural(len(report.remaining), 'document')} not ingested "
            "(run again with a higher --max-cost to continue; finished documents are kept)"
        )
    return bool(report.failed or report.remaining)


TABLES = "Rows of a table as documents"


@app.command()
@handle_errors
def ingest(
    paths: List[Path] = typer.Argument(None, help="Files or folders (searched recursively)."),
    include: List[str] = typer.Option([], "--include", metavar="GLOB", help="Only files matching this glob (repeatable)."),
    exclude: List[str] = typer.Option([], "--exclude", metavar="GLOB", help="Skip files matching this glob (repeatable)."),
    prune: bool = typer.Option(False, "--prune", help="Delete stored documents whose files (or table rows) are gone."),
    max_cost: Optional[float] = typer.Option(
        None, "--max-cost", min=0, metavar="USD", help="Stop before embedding costs more than this many US dollars (PGASK_MAX_COST_USD)."),
    table: Optional[str] = typer.Option(None, "--table", metavar="SCHEMA.TABLE", help="Index the rows of this table (SCHEMA.TABLE) instead of files.", rich_help_panel=TABLES),
    id_column: Optional[str] = typer.Option(None, "--id", metavar="COLUMN", help="Column that identifies a row.", rich_help_panel=TABLES),
    text_columns: List[str] = typer.Option([], "--text", metavar="COLUMN", help="Column with the row's text (repeatable: several become sections headed by their names).", rich_help_panel=TABLES),
    title_column: Optional[str] = typer.Option(None, "--title", metavar="COLUMN", help="Column with the row's title.", rich_help_panel=TABLES),
    metadata: Optional[str] = typer.Option(None, "--metadata", metavar="COLUMN,...", help="Columns kept as metadata, comma-separated.", rich_help_panel=TABLES),
    where: Optional[str] = typer.Option(None, "--where", metavar="CONDITION", help="Only rows matching this SQL condition (run read-only).", rich_help_panel=TABLES),
    source_url: Optional[str] = typer.Option(None, "--source-url", metavar="URL", help="Database that holds the table (default PGASK_SOURCE_URL, else the knowledge base's); its password is never stored.", rich_help_panel=TABLES),
    watch: bool = typer.Option(False, "--watch", help="Add a trigger that queues changed rows for `pgask sync`.", rich_help_panel=TABLES),
    unwatch: bool = typer.Option(False, "--unwatch", help="Drop the table's trigger and change queue (its documents stay).", rich_help_panel=TABLES),
    as_json: bool = JsonOption,
):
    """Load, chunk, embed and store documents (files, or the rows of a table); unchanged ones are skipped."""
    if table is None:
        given = [name for name, value in (("--id", id_column), ("--text", text_columns), ("--title", title_column),
                                          ("--metadata", metadata), ("--where", where), ("--source-url", source_url),
                                          ("--watch", watch), ("--unwatch", unwatch)) if value]
        if given:
            raise typer.BadParameter(f"{given[0]} goes with --table SCHEMA.TABLE")
        if not paths:
            raise typer.BadParameter("give files or folders to ingest, or --table SCHEMA.TABLE")
        return ingest_files(paths, include, exclude, prune, max_cost, as_json)
    if paths or include or exclude:
        raise typer.BadParameter("give either files and folders or --table, not both")
    if unwatch:
        if watch or id_column or text_columns or title_column or metadata or where or max_cost is not None:
            raise typer.BadParameter("--unwatch takes only --table (and --source-url)")
        with knowledge_base() as kb:
            name = kb.unwatch_table(table, source_url=source_url)
        if as_json:
            emit_json({"table": name, "watching": False})
        else:
            out.print(f"stopped watching {escape(name)}: its trigger and change queue are dropped; its documents "
                      "stay, and `pgask sync` now re-reads the whole table")
        return
    with knowledge_base() as kb:
        progress = IngestProgress(model_loader(kb))
        try:
            result = kb.ingest_table(
                table, id_column=id_column, text_columns=text_columns, title_column=title_column,
                metadata_columns=[c.strip() for c in (metadata or "").split(",") if c.strip()], where=where,
                source_url=source_url, prune=prune, watch=watch, max_cost_usd=max_cost, progress=progress,
                notify=notifier,
            )
        finally:
            progress.stop()
    if as_json:
        emit_json(result.as_dict())
    else:
        out.print(f"{escape(result.table)}: {report_line(result.report)}")
        if result.watching:
            out.print(f"[dim]watching {escape(result.table)}: changed rows are queued for `pgask sync`[/dim]")
    if print_failures(result.report):
        raise typer.Exit(1)


def ingest_files(paths: List[Path], include: List[str], exclude: List[str], prune: bool, max_cost: Optional[float],
                 as_json: bool) -> None:
    with knowledge_base() as kb:
        progress = IngestProgress(model_loader(kb))
        try:
            report = kb.ingest(paths, include=include, exclude=exclude, prune=prune, max_cost_usd=max_cost,
                               progress=progress, notify=notifier)
        finally:
            progress.stop()
    if as_json:
        emit_json(report.as_dict())
    else:
        out.print(report_line(report))
        if report.skipped:
            out.print(f"[dim]skipped {plural(len(report.skipped), 'file')} of unsupported types[/dim]")
    if print_failures(report):
        raise typer.Exit(1)


def interval(text: Optional[str]) -> Optional[float]:
    """--every: 90, 90s, 5m, 1h -> seconds."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise typer.BadParameter(f"{text!r} is not a duration: use for example 30s, 5m or 1h")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


@app.command()
@handle_errors
def sync(
    tables: List[str] = typer.Argument(None, help="Table sources to sync (default: all of them)."),
    every: Optional[str] = typer.Option(None, "--every", callback=interval, metavar="DURATION",
                                          help="Sync again at this interval (30s, 5m, 1h) until Ctrl-C."),
    full: bool = typer.Option(False, "--full", help="Read whole tables, watched ones too."),
    source_url: Optional[str] = typer.Option(None, "--source-url", metavar="URL", help="Full URL of a source database whose password is not stored (default PGASK_SOURCE_URL)."),
    as_json: bool = JsonOption,
):
    """Bring table sources up to date: queued rows of watched tables, whole tables otherwise.

    Only new and changed rows are embedded; documents of deleted rows are deleted. With --every, one round per interval (with --json, one JSON document per line) until Ctrl-C.
    """
    with knowledge_base() as kb:
        while True:
            try:
                sync_round(kb, tables, full, source_url, as_json, periodic=every is not None)
                if every is None:
                    return
                time.sleep(every)
            except KeyboardInterrupt:
                if every is None:
                    raise
                # a round cut short is safe: queued changes are deleted only once applied
                err.print("stopped")
                return


def sync_round(kb, tables: List[str], full: bool, source_url: Optional[str], as_json: bool, *, periodic: bool) -> None:
    progress = IngestProgress(model_loader(kb))
    try:
        results = kb.sync(tables or (), full=full, source_url=source_url, progress=progress, notify=notifier)
    except PgaskError as exc:
        if not periodic:
            raise
        err.print(f"[red]Error:[/red] {escape(str(exc))}")  # a periodic sync outlives a bad round
        results = []
    finally:
        progress.stop()
    if as_json:
        emit_json({"tables": [r.as_dict() for r in results]})
    incomplete = False
    for result in results:
        if not as_json:
            how = (f"{result.changes} queued changes" if result.mode == "changes"
                   else "whole table read" + (f", {result.changes} queued changes cleared" if result.changes else ""))
            out.print(f"{escape(result.table)}: {report_line(result.report)} [dim]({how})[/dim]")
        incomplete = print_failures(result.report) or incomplete
    if incomplete and not periodic:
        raise typer.Exit(1)


def _selection_named(filters: List[str], source: Optional[str]) -> str:
    """' in documents with format=md and source starting with docs/': what a search was limited to."""
    parts = ([f"with {' and '.join(filters)}"] if filters else []) + (
        [f"whose source starts with {source}"] if source else [])
    return (" in documents " + " and ".join(parts)) if parts else ""


def ranking_score(hit, mode: str) -> str:
    """The number a passage was ranked by, so that the numbers shown fall with the rank: cosine
    similarity (vector), BM25 (keyword), reciprocal-rank fusion (hybrid: small numbers, 4 places)."""
    score = hit.similarity if hit.score is None else hit.score
    return f"{score:.4f}" if mode == "hybrid" else f"{score:.3f}"


def _print_hits(hits, query: str, limited_to: str = "", mode: str = "hybrid") -> None:
    if not hits:
        out.print(f"no matching passages{escape(limited_to)}")
        return
    for rank, hit in enumerate(hits, 1):
        snippet = " ".join(hit.content.split())
        snippet = snippet[:240] + ("…" if len(snippet) > 240 else "")
        out.print(f"[bold]{rank}.[/bold] [green]{ranking_score(hit, mode)}[/green]  [cyan]{escape(cited(hit))}[/cyan]")
        if hit.heading:
            out.print(f"   [dim]{escape(hit.heading)}[/dim]")
        out.print(f"   {escape(snippet)}")


@app.command()
@handle_errors
def search(
    query: str = typer.Argument(..., help="What to look for, in plain words."),
    k: int = typer.Option(5, "-k", "--top-k", callback=within(1, MAX_K), metavar="N",
                          help=f"How many passages (1 to {MAX_K})."),
    old_k: Optional[int] = OldKOption,
    threshold: Optional[float] = typer.Option(None, "--threshold", callback=within(-1, 1), metavar="T",
                                              help="Minimum cosine similarity, -1 to 1 (default: none)."),
    metric: Metric = typer.Option("cosine", "--metric",
                                  help="Vector distance: cosine (<=>), l2 (<->) or ip (<#>)."),
    mode: Optional[Mode] = ModeOption,
    filters: List[str] = FilterOption,
    source: Optional[str] = SourceOption,
    rerank: bool = typer.Option(False, "--rerank",
                                help="Re-order the best passages with the cross-encoder, as ask does."),
    as_json: bool = JsonOption,
):
    """The passages that best match QUERY, best first.

    Each passage is shown with its rank and the score it was ranked by: cosine similarity (vector),
    BM25 (keyword) or the reciprocal-rank fusion of both (hybrid), or with --rerank the
    cross-encoder's probability that it answers; --json gives both similarity and score.
    """
    k = old_k or k
    with knowledge_base() as kb:
        mode = mode or kb.settings.search_mode
        hits = kb.search(query, k=k, threshold=threshold, metric=metric, mode=mode,
                         filter=metadata_filter(filters), source=source, rerank=rerank)
    if as_json:
        emit_json({"query": query, "results": [h.as_dict() for h in hits]})
    else:
        _print_hits(hits, query, _selection_named(filters, source), mode)


def _print_sources(result, mode: str) -> None:
    if result.sources:
        out.print("\n[bold]Sources[/bold]")
        for n, hit in enumerate(result.sources, 1):
            where = hit.cited_as(shown_source(hit.source))
            out.print(f"  [{n}] {escape(where)} [dim]({ranking_score(hit, mode)})[/dim]")


EXTRACTIVE_NOTE = ("[dim]extractive answer: no language model configured "
                   "(set OPENAI_API_KEY or PGASK_LLM_BASE_URL for written answers)[/dim]")


def _print_answer(result, streamed: bool, mode: str, *, note_extractive: bool = True) -> None:
    """The rest of an answer once its tokens (if streamed) are out: the text if not streamed, then the sources."""
    if streamed:
        out.print()
    else:
        if result.mode == "extractive" and note_extractive:
            out.print(EXTRACTIVE_NOTE)
        out.print(escape(result.answer))
    _print_sources(result, mode)


KOption = typer.Option(None, "-k", "--top-k", callback=within(1, MAX_K), metavar="N", show_default=False,
                       help=f"How many passages to answer from (1 to {MAX_K}; default 5, PGASK_TOP_K).")
ThresholdOption = typer.Option(None, "--threshold", callback=within(-1, 1), metavar="T",
                               help="Minimum cosine similarity of a passage, -1 to 1 (default 0.3, PGASK_THRESHOLD).")


@app.command()
@handle_errors
def ask(
    question: str = typer.Argument(..., help="A question about your documents."),
    k: Optional[int] = KOption,
    old_k: Optional[int] = OldKOption,
    threshold: Optional[float] = ThresholdOption,
    mode: Optional[Mode] = ModeOption,
    filters: List[str] = FilterOption,
    source: Optional[str] = SourceOption,
    as_json: bool = JsonOption,
):
    r"""Answer QUESTION from the documents, citing them as \[n].

    The sources are listed in rank order, each with the score it was ranked by: cosine similarity
    (vector), BM25 (keyword) or the reciprocal-rank fusion of both (hybrid).
    """
    k = old_k or k
    with knowledge_base() as kb:
        mode = mode or kb.settings.search_mode
        streamed = not as_json and kb.settings.llm_configured
        on_token = (lambda t: out.print(escape(t), end="")) if streamed else None
        result = kb.ask(question, k=k, threshold=threshold, on_token=on_token, mode=mode,
                        filter=metadata_filter(filters), source=source)
    if as_json:
        emit_json(result.as_dict())
    else:
        _print_answer(result, streamed, mode)


@app.command()
@handle_errors
def chat(
    k: Optional[int] = KOption,
    old_k: Optional[int] = OldKOption,
    threshold: Optional[float] = ThresholdOption,
    as_json: bool = JsonOption,
):
    """Ask questions one after another; follow-ups ("and for Hadoop?") are understood from the conversation.

    Reads one question per line until end of input. /new starts a new conversation, /quit leaves.
    With --json, prints {"turns": [...]} at the end.
    """
    k = old_k or k
    prompt = err if as_json or not sys.stdin.isatty() else out
    turns: list[dict] = []
    history: list[dict] = []
    with knowledge_base() as kb:
        streamed = not as_json and kb.settings.llm_configured
        if not as_json:
            err.print("[dim]Ask about your documents. /new starts a new conversation; /quit or Ctrl-D leaves.[/dim]")
            if not kb.settings.llm_configured:
                err.print(EXTRACTIVE_NOTE.replace("extractive answer", "extractive answers"))
        while True:
            try:
                question = prompt.input("[bold cyan]you›[/bold cyan] ").strip()
            except EOFError:
                break
            if question in ("/quit", "/exit"):
                break
            if question == "/new":
                history.clear()
                err.print("[dim]new conversation[/dim]")
                continue
            if not question:
                continue

            def show_question(standalone: str, asked: str = question) -> None:
                if standalone != asked and not as_json:
                    out.print(f"[dim]↪ searching for: {escape(standalone)}[/dim]")

            on_token = (lambda t: out.print(escape(t), end="")) if streamed else None
            try:
                result = kb.ask(question, history=history, k=k, threshold=threshold, on_token=on_token,
                                on_question=show_question)
            except PgaskError as exc:  # one bad turn does not end the conversation
                err.print(f"[red]Error:[/red] {escape(str(exc))}")
                turns.append({"question": question, "error": str(exc)})
                continue
            turns.append(result.as_dict())
            history += [{"role": "user", "content": question}, {"role": "assistant", "content": result.answer}]
            if not as_json:
                _print_answer(result, streamed, kb.settings.search_mode, note_extractive=False)
                out.print()
    if as_json:
        emit_json({"turns": turns})


@app.command()
@handle_errors
def index(
    type_: IndexType = typer.Option("hnsw", "--type",
                              help="The ANN index: hnsw (graph) or ivfflat (lists)."),
    metric: Metric = typer.Option("cosine", "--metric",
                                  help="The operator the index serves: cosine (<=>), l2 (<->) or ip (<#>)."),
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
    if backend["requested"] == "packaged":
        return f"{backend['backend']} (the export its package ships)"
    if backend["requested"] != "auto":
        return f"{backend['backend']} (set by PGASK_EMBED_BACKEND)"
    if backend["backend"] is None:
        return f"auto: measured on first use (CPU: {backend['isa']})"
    return f"{backend['backend']} (auto, fastest within cosine 0.99 of fp32 on this CPU: {backend['isa']})"


@app.command(name="eval")
@handle_errors
def evaluate(
    path: Path = typer.Argument(..., help="A BEIR dataset folder (corpus.jsonl, queries.jsonl, qrels/), or a "
                                          "JSON-lines file of your own questions and their relevant documents."),
    corpus: Path = typer.Option(None, "--corpus", help="Questions file: the folder its relevant paths are "
                                                       "relative to, ingested into a knowledge base of its own "
                                                       "(default: ask the current knowledge base)."),
    mode: str = typer.Option("all", "--mode", help="vector, keyword, hybrid or all."),
    split: str = typer.Option(None, "--split", help="BEIR: which qrels/<split>.tsv (default test); questions "
                                                    "file: only the questions of this split (default all)."),
    rerank: bool = typer.Option(False, "--rerank", help="Rank as ask does: the cross-encoder re-orders the best "
                                                        "passages (PGASK_RERANK_DEPTH)."),
    as_json: bool = JsonOption,
):
    """Measure retrieval (nDCG@10, Recall@100, MRR@10, hit@1, hit@5 per search mode and kind of
    question) and how often `pgask ask` would refuse to answer."""
    from . import eval as evaluation
    from .config import load_settings

    modes = evaluation.modes_for(mode)
    progress = QueryProgress()
    notify = lambda message: err.print(f"[dim]{escape(message)}[/dim]")  # noqa: E731
    if path.is_dir() or (path.is_file() and corpus is not None):
        ingest_progress = IngestProgress()
        try:
            if path.is_dir():
                rows = evaluation.evaluate_beir(
                    load_settings(), path, split=split or "test", modes=modes, ingest_progress=ingest_progress,
                    query_progress=progress, notify=notify, rerank=rerank)
            else:
                rows = evaluation.evaluate_corpus(
                    load_settings(), path, corpus, split=split, modes=modes, ingest_progress=ingest_progress,
                    query_progress=progress, notify=notify, rerank=rerank)
        finally:
            ingest_progress.stop()
            progress.stop()
    elif path.is_file():
        with knowledge_base() as kb:
            try:
                rows = evaluation.evaluate_questions(kb, path, split=split, modes=modes, progress=progress,
                                                     rerank=rerank)
            finally:
                progress.stop()
    else:
        raise PgaskError(f"no such file or directory: {path}")
    if as_json:
        emit_json(rows)
        return
    from rich.table import Table

    from rich import box

    for dataset in dict.fromkeys(row["dataset"] for row in rows):
        # collapsed padding: nine columns fit an 80-column terminal uncut
        table = Table("mode", "kind", "nDCG@10", "R@100", "MRR@10", "hit@1", "hit@5", "n", "refused",
                      title=dataset, box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True)
        for row in (r for r in rows if r["dataset"] == dataset):
            measures = [f"{row[m]:.4f}" if m in row else "-"
                        for m in ("ndcg@10", "recall@100", "mrr@10", "hit@1", "hit@5")]
            table.add_row(row["mode"], row["kind"], *measures, str(row["queries"]), str(row["refused"]))
        out.print(table)
    seconds = sum(r["seconds"] for r in rows)
    out.print(f"searched in {seconds:.1f}s. refused: the questions `pgask ask` answers \"not in the documents\" "
              "from the same passages (right for unanswerable ones, wrong for the rest)")


def _distribution_rows(info: dict) -> list[tuple[str, str]]:
    """Status lines for a distributed engine: its nodes, then how each table is spread."""
    if "workers" in info:
        nodes = ("workers", str(info["workers"]))
    elif "segments" in info:
        nodes = ("segments", str(info["segments"]))
    else:
        return []
    spread = []
    for table, how in info["distribution"].items():
        if isinstance(how, dict):  # Citus
            how = (f"{how['type']} by {how['column']}, colocation {how['colocation_id']}, {how['shards']} shards"
                   if how["column"] else f"{how['type']}")
        spread.append(f"{table}: {how}")
    return [nodes, ("tables", "; ".join(spread) or "not distributed")]


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
        *_distribution_rows(info),
        ("model", f"{info['model']} ({info['dim']} dimensions)"),
        ("backend", _backend_line(info.get("embed_backend"))),
        ("documents", str(info["documents"])),
        ("chunks", str(info["chunks"])),
        ("indexes", ", ".join(f"{i['type']} ({i['metric']})" for i in info["indexes"]) or "none (exact search)"),
        ("embedding", _embedding_line(info["embedding"])),
        ("answers", f"{info['llm']['model']} via {info['llm']['base_url'] or 'OpenAI'}" if info["llm"]["configured"]
         else "extractive (no language model configured)"),
    ]
    for source in info["table_sources"]:
        watch = "not watched"
        if source["watching"]:
            watch = "watched, " + ("pending changes unknown" if source["pending"] is None else f"{source['pending']} pending changes")
        where = f" from {source['source_url']}" if source["source_url"] else ""
        last = f"{source['last_sync']:%Y-%m-%d %H:%M:%S}" if source["last_sync"] else "never"
        rows.append(("table", f"{source['table']}{where}: {source['documents']} rows, {watch}, last sync {last}"))
    for name, value in rows:
        out.print(f"[bold]{name:>10}[/bold]  {escape(value)}")


@app.command()
@handle_errors
def stop(as_json: bool = JsonOption):
    """Stop the embedded Postgres server.

    The embedded server keeps running after each command, so that the next command, `pgask serve`
    and `pgask ui` share it and start at once; the next command that needs it starts it again.
    """
    from .config import load_settings
    from .db.embedded import embedded_running, stop_embedded

    settings = load_settings()
    pgdata = settings.home / "pgdata"
    if settings.database_url:
        from .db.connect import mask_url

        info = {"stopped": False, "running": None, "database_url": mask_url(settings.database_url)}
        message = (f"nothing to stop: pgask uses the server at {info['database_url']} (PGASK_DATABASE_URL), "
                   "not an embedded one")
    elif not embedded_running(settings.home):
        info = {"stopped": False, "running": False, "pgdata": str(pgdata)}
        message = f"the embedded Postgres in {pgdata} is not running"
    else:
        stop_embedded(settings.home)
        info = {"stopped": True, "running": False, "pgdata": str(pgdata)}
        message = f"stopped the embedded Postgres in {pgdata}; the next pgask command starts it again"
    if as_json:
        emit_json(info)
    else:
        out.print(escape(message))


def _embedding_line(embedding: dict) -> str:
    if embedding["provider"] == "local":
        return "local model"
    key = (f"key {embedding['key_variable']} {embedding['api_key']}" if embedding["api_key"]
           else f"no key ({embedding['key_variable']} unset)")
    return f"{embedding['provider']} {embedding['model']} via {embedding['base_url']}, {key}"


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
def usage(
    since: Optional[datetime] = typer.Option(None, "--since", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD",
                                             help="Only calls from this day on (YYYY-MM-DD, UTC)."),
    as_json: bool = JsonOption,
):
    """Model calls, tokens and estimated cost by day, kind and model, from the usage ledger."""
    with knowledge_base() as kb:
        summary = kb.usage(since.date() if since else None)
    if as_json:
        emit_json(summary)
        return
    if not summary["groups"]:
        out.print("no model calls recorded" + (f" since {summary['since']}" if summary["since"] else ""))
        return
    width = max(len(g["model"]) for g in summary["groups"])

    def line(label: str, row: dict) -> str:
        cached = f"({row['cached']} cached)" if row["cached"] else ""
        return (f"{label}  {row['calls']:>6} calls {cached:<12} {row['tokens_in']:>10,} in  {row['tokens_out']:>8,} out"
                f"  ${row['cost_usd']:.6f}")

    for row in summary["groups"]:
        out.print(line(f"{row['day']}  {row['kind']:<15}  {escape(row['model']):<{width}}", row))
    out.print(line(f"[bold]{'total':<{10 + 2 + 15 + 2 + width}}[/bold]", summary["total"]))


@app.command("sql")
@handle_errors
def sql_api(
    install: bool = typer.Option(False, "--install", help="Install (or refresh) the tables and SQL functions in the database."),
    print_: bool = typer.Option(False, "--print", help="Print the whole install as one SQL script, for `psql -v ON_ERROR_STOP=1`."),
    engine: Optional[str] = typer.Option(None, "--engine", help="With --print: postgres, citus, greenplum or cloudberry (default: the configured database's)."),
    as_json: bool = JsonOption,
):
    """The SQL API in the database: match_documents (and _l2, _ip), and where the server has
    plpython3u, get_embeddings, get_embeddings_array and ask."""
    if install == print_:
        raise typer.BadParameter("give exactly one of --install or --print")
    if engine is not None and not print_:
        raise typer.BadParameter("--engine goes with --print (--install uses the database's own engine)")
    with knowledge_base() as kb:
        if print_:
            script = kb.sql_script(engine)
            if as_json:
                emit_json({"schema": kb.schema, "script": script})
            else:
                sys.stdout.write(script)
            return
        info = kb.install_sql()
    if as_json:
        emit_json(info)
        return
    out.print(f"installed in schema [bold]{info['schema']}[/bold] ({info['engine']}): "
              + ", ".join(f"{info['schema']}.{name}" for name in info["functions"]))
    for note in info["notes"]:
        err.print(f"[yellow]note:[/yellow] {escape(note)}")


@app.command()
@handle_errors
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; other than loopback needs PGASK_API_TOKEN."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    as_json: bool = JsonOption,
):
    """Serve the HTTP API (search, ask, documents, OpenAI-compatible chat) until interrupted; OpenAPI at /docs."""
    import uvicorn

    from .api import check_bind, create_app

    with knowledge_base() as kb:
        check_bind(host, kb.settings.api_token)
        kb.health()  # a bad database URL or model fails here, in one line, not on the first request
        url = f"http://{host}:{port}"
        if as_json:
            emit_json({"url": url, "docs": f"{url}/docs", "auth": kb.settings.api_token is not None})
        else:
            err.print(f"pgask API on {url} (OpenAPI at {url}/docs)"
                      + ("; bearer token required" if kb.settings.api_token else ""))
        logging = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
        logging["handlers"]["access"]["stream"] = "ext://sys.stderr"  # stdout is for --json
        uvicorn.run(create_app(kb), host=host, port=port, log_config=logging)


@app.command()
@handle_errors
def ui(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8501, "--port", min=1, max=65535, help="Port to listen on."),
    as_json: bool = JsonOption,
):
    """Serve the chat UI (Streamlit): streamed answers, their sources, follow-up questions."""
    from .api import is_loopback

    script = Path(__file__).with_name("ui") / "app.py"
    url = f"http://{host}:{port}"
    if as_json:
        emit_json({"url": url})
    else:
        err.print(f"pgask chat UI on {url}")
    if not is_loopback(host):
        err.print(f"[yellow]warning:[/yellow] the chat UI has no login: anyone who can reach {host} can ask questions")
    command = [sys.executable, "-m", "streamlit", "run", str(script), "--server.address", host,
               "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
               "--client.toolbarMode", "viewer"]
    sys.stdout.flush()
    if as_json:  # Streamlit talks on stdout, which belongs to the one JSON document
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    # Streamlit takes this process over, so that signals (Ctrl-C, a service manager's stop) reach it
    os.execv(sys.executable, command)


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
        ("database", result["engine"] + (f", {result['workers']} workers" if result.get("workers") else "")),
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
                   f"over {result['queries']} queries (vector: embedding + SQL, HNSW)"),
        ("hybrid", f"p50 {result['hybrid_p50_ms']:.1f} ms, p95 {result['hybrid_p95_ms']:.1f} ms "
                   f"(embedding + HNSW and BM25, fused)"),
        ("keyword", f"p50 {result['keyword_p50_ms']:.1f} ms, p95 {result['keyword_p95_ms']:.1f} ms (BM25)"),
        ("recall@10", f"{result['recall_at_10']} (HNSW m={result['m']}, ef_construction={result['ef_construction']}, "
                      f"ef_search={result['ef_search']}; vs exact search)"),
        ("hnsw build", f"{result['hnsw_build_s']:.2f} s for {result['chunks']} chunks"),
    ]
    if "cold_search_s" in result:
        rows.append(("cold start", f"status {result['cold_status_s']:.2f} s, search {result['cold_search_s']:.2f} s "
                                   f"(a fresh process each, start to exit, median of {result['cold_runs']})"))
    if result.get("copy_rows_per_s"):
        rows += [("COPY", f"{result['copy_rows_per_s']:,} rows/s ({result['synthetic_rows']:,} synthetic {result['dim']}-d vectors)"),
                 ("hnsw build", f"{result['synthetic_hnsw_build_s']:.1f} s for {result['synthetic_rows']:,} synthetic rows "
                                f"({result['index_memory_mb']} MB maintenance_work_mem, {result['index_workers']} parallel workers)"),
                 ("search", f"p50 {result['synthetic_search_p50_ms']:.1f} ms, p95 {result['synthetic_search_p95_ms']:.1f} ms, "
                            f"recall@10 {result['synthetic_recall_at_10']} over {result['synthetic_queries']} synthetic "
                            f"queries (exact: p50 {result['synthetic_exact_p50_ms']:.1f} ms)")]
    rows.append(("peak RSS", f"{result['peak_rss_mb']:.0f} MB (ingest phase: {result['ingest_peak_rss_mb']:.0f} MB)"))
    for name, value in rows:
        out.print(f"[bold]{name:>10}[/bold]  {escape(value)}")


def main() -> None:  # pragma: no cover - console entry point alternative
    app()
