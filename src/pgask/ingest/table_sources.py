"""Table sources kept in sync: their remembered definitions, their watch (table_watch.py), and
`sync`, which re-reads only the queued rows of a watched table, or the whole table (embedding only
the rows whose content hash changed) of one that is not watched. Rows are read as documents by
table_rows.py and added through the open ingest session.

The source table may live in the knowledge base's database or in another one. Its definition
is stored in the knowledge base (table_sources.sql) with the source URL's password masked; the
change queue lives next to the table, in the schema named like the knowledge base's.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Iterator, Sequence

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ..db import store
from ..db.connect import connect, mask_url
from ..db.schema import render
from ..errors import PgaskError
from .loaders import Document
from .pipeline import IngestReport
from .session import IngestSession
from .table_rows import SOURCE_PREFIX, RowReader, Table, TableSpec, find_table, read_documents, row_reader
from .table_watch import install_watch, is_watched, pending_changes, queue_table, remove_watch

LOCK_CLASS = 0x70676173  # "pgas": advisory-lock namespace of sync, keyed by the table's oid
SOURCE_HINT = "check --source-url or PGASK_SOURCE_URL"


@dataclass
class TableSource:
    """A table source as the knowledge base remembers it."""

    name: str  # SCHEMA.TABLE
    spec: TableSpec  # spec.table is the quoted SQL name
    source_url: str | None  # password masked; None: the knowledge base's database
    watching: bool = False
    last_sync: datetime | None = None  # of the last ingest or sync
    last_report: dict | None = None


@dataclass
class TableSourceInfo:
    """A table source as `status` shows it."""

    table: str  # SCHEMA.TABLE
    source_url: str | None  # password masked; None: the knowledge base's database
    watching: bool
    documents: int  # stored from its rows
    pending: int | None  # queued changes of a watched table (None: not watched, or unknown)
    last_sync: datetime | None
    definition: dict  # id, text, title, metadata, where


@dataclass
class TableReport:
    """What one ingest or sync of a table did."""

    table: str
    mode: str  # "read": the whole table was read | "changes": only queued rows were re-read
    report: IngestReport
    changes: int = 0  # queued changes drained
    watching: bool = False

    def as_dict(self) -> dict:
        return {"table": self.table, "mode": self.mode, "changes": self.changes, "watching": self.watching,
                **self.report.as_dict()}


# --- the remembered definitions (in the knowledge base) -----------------------------------------


def ensure_registry(conn: psycopg.Connection, schema: str) -> None:
    conn.execute(render("table_sources.sql", schema))
    conn.commit()


def stored_sources(conn: psycopg.Connection, schema: str) -> list[TableSource]:
    if conn.execute("SELECT to_regclass(%s)", (f"{sql.Identifier(schema).as_string(conn)}.table_sources",)).fetchone()[0] is None:
        return []
    rows = conn.execute(sql.SQL(
        """SELECT name, relation, id_column, text_columns, title_column, metadata_columns, where_predicate,
                  source_url, watching, last_sync, last_report
           FROM {}.table_sources ORDER BY name""").format(sql.Identifier(schema))).fetchall()
    return [TableSource(r[0], TableSpec(r[1], r[2], tuple(r[3]), r[4], tuple(r[5]), r[6]), r[7], r[8], r[9], r[10])
            for r in rows]


def save_source(conn: psycopg.Connection, schema: str, source: TableSource) -> None:
    s = source.spec
    conn.execute(sql.SQL(
        """INSERT INTO {}.table_sources AS t (name, relation, id_column, text_columns, title_column,
               metadata_columns, where_predicate, source_url, watching, last_sync, last_report)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, now(), %s)
           ON CONFLICT (name) DO UPDATE SET relation = excluded.relation, id_column = excluded.id_column,
               text_columns = excluded.text_columns, title_column = excluded.title_column,
               metadata_columns = excluded.metadata_columns, where_predicate = excluded.where_predicate,
               source_url = excluded.source_url, watching = excluded.watching, last_sync = excluded.last_sync,
               last_report = excluded.last_report""").format(sql.Identifier(schema)),
        (source.name, s.table, s.id_column, list(s.text_columns), s.title_column, list(s.metadata_columns),
         s.where, source.source_url, source.watching, Jsonb(source.last_report)),
    )
    conn.commit()


# --- ingest and sync ---------------------------------------------------------------------------




@dataclass
class TableSync:
    """Table sources of one knowledge base: add them, watch them, sync them, describe them."""

    schema: str  # the knowledge base's schema; also the schema of the change queue
    url: str  # the knowledge base's database
    kb_connection: Callable  # () -> context manager yielding a connection to the knowledge base
    session: IngestSession | None = None  # the open ingest session rows are added through (ingest and sync)
    source_urls: Sequence[str] = ()  # full URLs offered for sources in other databases (--source-url, env)
    notify: Callable[[str], None] = lambda message: None
    batch_rows: int = 1000  # queued changes re-read at once
    _registry_ready: bool = field(default=False, repr=False)

    @contextmanager
    def _source(self, url: str | None) -> Iterator[psycopg.Connection]:
        conn = connect(url or self.url, vector=False, hint=SOURCE_HINT)
        try:
            yield conn
        finally:
            conn.close()

    def _sources(self) -> list[TableSource]:
        with self.kb_connection() as conn:
            return stored_sources(conn, self.schema)

    def _save(self, source: TableSource) -> None:
        with self.kb_connection() as conn:
            if not self._registry_ready:
                ensure_registry(conn, self.schema)
                self._registry_ready = True
            save_source(conn, self.schema, source)

    def _url_for(self, source: TableSource) -> str | None:
        """The full URL of a source's database; passwords are never stored, so they are offered again."""
        if source.source_url is None:
            return None
        for url in self.source_urls:
            if url and mask_url(url) == source.source_url:
                return url
        if "***" not in source.source_url:
            return source.source_url
        raise PgaskError(f"{source.name} is read from {source.source_url}, whose password pgask does not store: "
                         "give the full URL with --source-url or PGASK_SOURCE_URL")

    def named(self, names: Sequence[str]) -> list[TableSource]:
        """The stored table sources called `names` (all of them when empty)."""
        sources = self._sources()
        if not sources:
            raise PgaskError("no table sources yet: add one with `pgask ingest --table SCHEMA.TABLE --id COL --text COL`")
        if not names:
            return sources
        by_name = {s.name: s for s in sources}
        chosen = []
        for name in names:
            plain = name.replace('"', "")
            found = by_name.get(plain) or by_name.get(f"public.{plain}")
            if found is None:
                raise PgaskError(f"{name} is not a table source (known: {', '.join(by_name)})")
            chosen.append(found)
        return chosen

    # --- ingest ----------------------------------------------------------------------------------

    def _ingest(self, documents: Iterable[Document], prune_scope: Sequence[str] = ()) -> IngestReport:
        if self.session is None:
            raise RuntimeError("TableSync needs an open IngestSession to ingest rows")
        return self.session.add_documents(documents, prune_scope=prune_scope)

    def ingest_table(self, spec: TableSpec, *, source_url: str | None = None, prune: bool = False,
                     watch: bool = False) -> TableReport:
        """Read the whole table into documents (embedding new and changed rows only) and remember it.

        Without --id and --text, the remembered definition of the table is used. With `watch`,
        triggers are installed first, so no change made during the read is missed.
        """
        masked = mask_url(source_url) if source_url else None
        with self._source(source_url) as conn:
            table = find_table(conn, spec.table)
            known = {s.name: s for s in self._sources()}.get(table.qualified)
            spec = _complete(spec, known, table)
            reader = row_reader(conn, spec)
            was_watched = is_watched(conn, self.schema, table)
            if watch or was_watched:  # (re)installed: the id column may have changed
                install_watch(conn, self.schema, reader)
            try:
                report = self._ingest(read_documents(conn, reader), prune_scope=[table.prefix] if prune else ())
            except BaseException:
                if watch and not was_watched:  # leave the table as it was
                    with self._source(source_url) as cleanup:
                        remove_watch(cleanup, self.schema, table, own_schema=source_url is None)
                raise
        watching = watch or was_watched
        self._save(TableSource(table.qualified, spec, masked, watching, last_report=report.as_dict()))
        return TableReport(table.qualified, "read", report, watching=watching)

    def unwatch(self, name: str) -> str:
        """Drop the table's triggers and change queue; its documents stay, and later syncs re-read it."""
        source, = self.named([name])
        url = self._url_for(source)
        with self._source(url) as conn:
            table = find_table(conn, source.spec.table)
            remove_watch(conn, self.schema, table, own_schema=url is None)
        source.watching = False
        self._save(source)
        return source.name

    # --- sync --------------------------------------------------------------------------------------

    def sync(self, names: Sequence[str] = (), *, full: bool = False) -> list[TableReport]:
        """Bring table sources (all, or those `names`) up to date with their tables.

        A watched table has only its queued rows re-read (all of it with `full`); any other is read
        whole, embedding only changed rows and deleting the documents of rows that are gone.
        """
        return [self._sync(source, full=full) for source in self.named(names)]

    def _sync(self, source: TableSource, *, full: bool) -> TableReport:
        url = self._url_for(source)
        with self._source(url) as conn:
            reader = row_reader(conn, source.spec)
            watched = source.watching and is_watched(conn, self.schema, reader.table)
            if source.watching and not watched:
                self.notify(f"the watch on {source.name} is gone (its trigger or queue was dropped): reading the "
                            f"whole table; `pgask ingest --table {source.name} --watch` watches it again")
            if watched:
                result = self._drain(url, conn, reader, full=full)
            else:
                result = TableReport(source.name, "read",
                                     self._ingest(read_documents(conn, reader), prune_scope=[reader.table.prefix]))
        result.watching = watched
        source.watching, source.last_report = watched, result.as_dict()
        self._save(source)
        return result

    def _drain(self, url: str | None, conn: psycopg.Connection, reader: RowReader, *, full: bool) -> TableReport:
        """Re-read the rows whose ids are queued, a batch at a time, then delete those queue entries.

        Each batch runs in a repeatable-read transaction on the queue whose snapshot the row read
        shares: the rows are read as of the moment the batch was taken, and entries queued later
        stay for the next batch. A TRUNCATE in the queue (or `full`) re-reads the whole table
        with that snapshot and clears every entry it covered.
        """
        table = reader.table
        result = TableReport(table.qualified, "changes", IngestReport())
        queue = queue_table(self.schema)
        with self._source(url) as q:
            q.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            while True:
                with q.transaction():
                    if not q.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", (LOCK_CLASS, table.oid)).fetchone()[0]:
                        self.notify(f"another pgask sync is draining {table.qualified} now: skipped")
                        break
                    snapshot = q.execute("SELECT pg_export_snapshot()").fetchone()[0]
                    entries = q.execute(sql.SQL("SELECT seq, row_id FROM {} WHERE relid = %s ORDER BY seq LIMIT %s")
                                        .format(queue), (table.oid, self.batch_rows)).fetchall()
                    if not entries and not full:
                        break
                    if full or any(row_id is None for _, row_id in entries):
                        result.mode = "read"
                        read = self._ingest(read_documents(conn, reader, snapshot=snapshot), prune_scope=[table.prefix])
                        result.report.add(read)
                        if not read.remaining:  # a spent budget keeps the entries, so the next sync reads again
                            # repeatable read: deletes exactly the entries the snapshot saw, which the read covered
                            result.changes += q.execute(sql.SQL("DELETE FROM {} WHERE relid = %s").format(queue),
                                                        (table.oid,)).rowcount
                        break
                    ids = sorted({row_id for _, row_id in entries})
                    batch = self._apply(conn, reader, ids, snapshot)
                    result.report.add(batch)
                    left = set(batch.remaining)  # rows a spent budget left unstored stay queued
                    done = [seq for seq, row_id in entries if reader.source(row_id) not in left]
                    q.execute(sql.SQL("DELETE FROM {} WHERE seq = ANY(%s)").format(queue), (done,))
                    result.changes += len(done)
                    if left:
                        break
        return result

    def _apply(self, conn: psycopg.Connection, reader: RowReader, ids: list[str], snapshot: str) -> IngestReport:
        """Upsert the rows with these ids that still exist (and match the predicate); delete the rest."""
        found: set[str] = set()

        def seen(documents: Iterable[Document]) -> Iterator[Document]:
            for doc in documents:
                found.add(doc.source)
                yield doc

        report = self._ingest(seen(read_documents(conn, reader, ids=ids, snapshot=snapshot)))
        gone = [source for source in map(reader.source, ids) if source not in found]
        with self.kb_connection() as kb:
            report.deleted += store.delete_documents(kb, self.schema, gone)
        return report

    # --- status --------------------------------------------------------------------------------------

    def describe(self) -> list[TableSourceInfo]:
        """Each table source: where it is read from, documents stored, changes queued, last sync."""
        described = []
        with self.kb_connection() as conn:
            sources = stored_sources(conn, self.schema)
            for source in sources:
                documents = store.count_under(conn, self.schema, [f"{SOURCE_PREFIX}{source.name}"])
                described.append(TableSourceInfo(
                    table=source.name, source_url=source.source_url, watching=source.watching,
                    documents=documents, pending=None, last_sync=source.last_sync,
                    definition={"id": source.spec.id_column, "text": list(source.spec.text_columns),
                                "title": source.spec.title_column,
                                "metadata": list(source.spec.metadata_columns), "where": source.spec.where},
                ))
        for source, info in zip(sources, described):
            if source.watching:
                try:
                    with self._source(self._url_for(source)) as conn:
                        info.pending = pending_changes(conn, self.schema, find_table(conn, source.spec.table))
                except (PgaskError, psycopg.Error) as exc:
                    self.notify(f"pending changes of {source.name} unknown: {exc}")
        return described


def _complete(spec: TableSpec, known: TableSource | None, table: Table) -> TableSpec:
    """The spec to read with: as given, or the remembered one when neither --id nor --text is given."""
    if spec.id_column is None and not spec.text_columns:
        if known is None:
            raise PgaskError(f"give --id and --text for {table.qualified}: which column identifies a row, "
                             "and which hold its text")
        spec = known.spec
    elif spec.id_column is None or not spec.text_columns:
        raise PgaskError("give both --id (the column that identifies a row) and --text (the columns with its text)")
    return replace(spec, table=table.ident.as_string())
