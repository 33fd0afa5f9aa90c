"""The watch on a table source: statement triggers with transition tables that queue the ids of
changed rows in `table_changes`, next to the table (in the source database, in a schema named like
the knowledge base's), for `pgask sync` to re-read."""

from __future__ import annotations

import psycopg
from psycopg import sql

from ..db.connect import detect_engine
from ..db.schema import render
from ..errors import PgaskError
from .table_rows import RowReader, Table

TRIGGER_EVENTS = ("insert", "update", "delete", "truncate")


def _triggers(queue_schema: str) -> dict[str, sql.Identifier]:
    # named after the knowledge base's schema, so two knowledge bases can watch one table
    return {f"on_{event}": sql.Identifier(f"{queue_schema}_changes_{event}") for event in TRIGGER_EVENTS}


def queue_table(queue_schema: str) -> sql.Composed:
    return sql.SQL("{}.table_changes").format(sql.Identifier(queue_schema))


def is_watched(conn: psycopg.Connection, queue_schema: str, table: Table) -> bool:
    """True when all the table's triggers and the queue they write to are in place."""
    names = [name.as_string(conn).strip('"') for name in _triggers(queue_schema).values()]
    triggers = conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = %s AND tgname = ANY(%s)",
                            (table.oid, names)).fetchone()[0]
    queue = conn.execute("SELECT to_regclass(%s)", (queue_table(queue_schema).as_string(conn),)).fetchone()[0]
    conn.rollback()
    return triggers == len(TRIGGER_EVENTS) and queue is not None


def install_watch(conn: psycopg.Connection, queue_schema: str, reader: RowReader) -> None:
    table = reader.table
    engine = detect_engine(conn)
    if engine != "postgres":
        raise PgaskError(f"--watch needs statement triggers with transition tables, which {engine} does not offer: "
                         f"run `pgask sync` instead (it re-reads {table.qualified} and embeds only changed rows)")
    if table.kind not in ("r", "p"):
        raise PgaskError(f"--watch needs a table with triggers, and {table.qualified} is a view or foreign table: "
                         "run `pgask sync` instead (it re-reads it and embeds only changed rows)")
    try:
        conn.execute(render("table_watch.sql", queue_schema, table=table.ident,
                            id_column=reader.spec.id_column, **_triggers(queue_schema)))
        conn.commit()
    except psycopg.errors.InsufficientPrivilege as exc:
        conn.rollback()
        raise PgaskError(f"this database user may not add triggers to {table.qualified} "
                         f"(it needs to own it or hold the TRIGGER privilege): {exc}") from exc


def remove_watch(conn: psycopg.Connection, queue_schema: str, table: Table, *, own_schema: bool) -> None:
    """Drop the table's triggers and queued changes; the queue goes with the last watched table.

    `own_schema`: the queue schema is the knowledge base's own, never dropped.
    """
    conn.execute(render("table_unwatch.sql", queue_schema, table=table.ident, **_triggers(queue_schema)))
    function = f"{sql.Identifier(queue_schema).as_string(conn)}.record_table_change()"
    if conn.execute("SELECT to_regclass(%s)", (queue_table(queue_schema).as_string(conn),)).fetchone()[0] is not None:
        conn.execute(sql.SQL("DELETE FROM {} WHERE relid = %s").format(queue_table(queue_schema)), (table.oid,))
    still_used = conn.execute("SELECT count(*) FROM pg_trigger WHERE tgfoid = to_regprocedure(%s)",
                              (function,)).fetchone()[0]
    if not still_used:
        conn.execute(render("table_changes_drop.sql", queue_schema))
        if not own_schema:
            try:
                with conn.transaction():
                    conn.execute(render("table_changes_schema_drop.sql", queue_schema))
            except psycopg.errors.DependentObjectsStillExist:
                pass  # other things live in that schema: it stays
    conn.commit()


def pending_changes(conn: psycopg.Connection, queue_schema: str, table: Table) -> int:
    count = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE relid = %s").format(queue_table(queue_schema)),
                         (table.oid,)).fetchone()[0]
    conn.rollback()
    return count
