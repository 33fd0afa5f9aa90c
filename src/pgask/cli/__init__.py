"""The `pgask` command line. Each command is a thin layer over KnowledgeBase.

Human output goes to the terminal through Rich; with --json, stdout carries one JSON document
and nothing else (progress and notes go to stderr).

common    the app, consoles, error handling, --json output, shared options
help      --help rendering (flags alone, values by name)
progress  progress bars and lines on stderr
ingest    init, ingest, sync
query     search, ask, chat
admin     index, status, stop, usage, sql
measure   eval, bench
serving   serve, ui
"""

from __future__ import annotations

from .admin import index, sql_api, status, stop, usage
from .common import app
from .ingest import ingest, init, sync
from .measure import bench, evaluate
from .query import ask, chat, search
from .serving import serve, ui

# registered here, in the order --help lists them
app.command()(init)
app.command()(ingest)
app.command()(sync)
app.command()(search)
app.command()(ask)
app.command()(chat)
app.command()(index)
app.command(name="eval")(evaluate)
app.command()(status)
app.command()(stop)
app.command()(usage)
app.command("sql")(sql_api)
app.command()(serve)
app.command()(ui)
app.command()(bench)


def main() -> None:  # pragma: no cover - console entry point alternative
    app()


__all__ = ["app", "main"]
