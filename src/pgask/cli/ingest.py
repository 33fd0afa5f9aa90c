"""`pgask init`, `ingest` (files or a table) and `sync`."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from ..errors import PgaskError
from ..wording import plural
from .common import JsonOption, emit_json, err, handle_errors, knowledge_base, out, shown_source
from .progress import IngestProgress, model_loader


@handle_errors
def init(
    reset: bool = typer.Option(False, "--reset", help="Drop the knowledge base first (all documents and vectors)."),
    as_json: bool = JsonOption,
):
    """Create the knowledge base (schema, tables, SQL functions) for the configured model."""
    with knowledge_base() as kb:
        info = kb.init(reset=reset)
    if as_json:
        emit_json(info.as_dict())
    else:
        out.print(f"knowledge base ready in schema [bold]{info.schema}[/bold] at {escape(info.database_url)} "
                  f"({info.model}, {info.dim} dimensions)")


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
