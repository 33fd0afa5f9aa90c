"""`pgask index`, `status`, `stop`, `usage` and `sql`."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Optional

import typer
from rich.markup import escape

from ..db.cluster import Cluster
from .common import IndexType, JsonOption, Metric, emit_json, err, handle_errors, knowledge_base, out


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
        emit_json(info.as_dict())
    else:
        if info.type == "ivfflat":
            extra = f"lists={info.lists}, probes={info.probes or 'default'}"
        else:
            extra = f"m={info.m}, ef_construction={info.ef_construction}, ef_search={info.ef_search or 'default'}"
        out.print(f"built {info.type} index {info.name} on {info.rows} chunks ({extra}) "
                  f"in {info.build_seconds:.1f}s; analyzed")


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


def distribution_rows(cluster: Cluster | None) -> list[tuple[str, str]]:
    """Status lines for a distributed engine: its nodes, then how each table is spread."""
    if cluster is None:
        return []
    spread = []
    for table, how in cluster.distribution.items():
        if cluster.citus:  # a table's type, column, colocation and shards; else the policy as Greenplum words it
            how = (f"{how['type']} by {how['column']}, colocation {how['colocation_id']}, {how['shards']} shards"
                   if how["column"] else f"{how['type']}")
        spread.append(f"{table}: {how}")
    return [(cluster.nodes, str(cluster.count)), ("tables", "; ".join(spread) or "not distributed")]


@handle_errors
def status(as_json: bool = JsonOption):
    """Where the knowledge base lives and what is in it."""
    with knowledge_base() as kb:
        info = kb.status()
    if as_json:
        emit_json(info.as_dict())
        return
    rows = [
        ("database", info.database_url + (" (embedded)" if info.embedded else "")),
        ("engine", f"{info.engine} {info.server_version}, pgvector {info.pgvector_version}"),
        *distribution_rows(info.cluster),
        ("model", f"{info.model} ({info.dim} dimensions)"),
        ("backend", _backend_line(info.embed_backend)),
        ("documents", str(info.documents)),
        ("chunks", str(info.chunks)),
        ("indexes", ", ".join(f"{i['type']} ({i['metric']})" for i in info.indexes) or "none (exact search)"),
        ("embedding", _embedding_line(info.embedding)),
        ("answers", f"{info.llm['model']} via {info.llm['base_url'] or 'OpenAI'}" if info.llm["configured"]
         else "extractive (no language model configured)"),
    ]
    for source in info.table_sources:
        watch = "not watched"
        if source.watching:
            watch = "watched, " + ("pending changes unknown" if source.pending is None else f"{source.pending} pending changes")
        where = f" from {source.source_url}" if source.source_url else ""
        last = f"{source.last_sync:%Y-%m-%d %H:%M:%S}" if source.last_sync else "never"
        rows.append(("table", f"{source.table}{where}: {source.documents} rows, {watch}, last sync {last}"))
    for name, value in rows:
        out.print(f"[bold]{name:>10}[/bold]  {escape(value)}")


@handle_errors
def stop(as_json: bool = JsonOption):
    """Stop the embedded Postgres server.

    The embedded server keeps running after each command, so that the next command, `pgask serve`
    and `pgask ui` share it and start at once; the next command that needs it starts it again.
    """
    from ..config import load_settings
    from ..db.embedded import embedded_running, stop_embedded

    settings = load_settings()
    pgdata = settings.home / "pgdata"
    if settings.database_url:
        from ..db.connect import mask_url

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
        emit_json(info.as_dict())
        return
    out.print(f"installed in schema [bold]{info.schema}[/bold] ({info.engine}): "
              + ", ".join(f"{info.schema}.{name}" for name in info.functions))
    for note in info.notes:
        err.print(f"[yellow]note:[/yellow] {escape(note)}")
