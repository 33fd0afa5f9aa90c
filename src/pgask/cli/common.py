"""What every command shares: the app, the consoles, error handling, --json output, options."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Callable, List, Literal

import typer
from rich.console import Console
from rich.markup import escape

from ..config import MAX_K
from ..errors import PgaskError
from ..wording import plural
from .help import _Group, _Typer


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
        from .. import __version__

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
    from ..kb import KnowledgeBase

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


def check_filters(pairs: List[str]) -> List[str]:
    """Bad --filter values are usage errors (exit 2), found while the command line is parsed; the
    pairs themselves go to KnowledgeBase.search and ask, which read them (search.metadata_filter)."""
    if not pairs:
        return pairs
    from ..search import metadata_filter

    try:
        metadata_filter(pairs)
    except PgaskError as exc:
        raise typer.BadParameter(str(exc), param_hint="--filter") from exc
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
