"""Rows of an existing table as documents: names checked against the catalog, a predicate that
can only filter, and a streamed read through a server-side cursor in a read-only transaction.

A row becomes a Document whose source is `table:SCHEMA.TABLE/<id>`; its metadata carries the
table and the id (so an answer can cite "support.tickets #4211") and any --metadata columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import psycopg
from psycopg import sql

from ..errors import PgaskError
from .loaders import Document

# metadata keys pgask sets on every row's document; a --metadata column may not take them
RESERVED_METADATA = ("table", "row_id")
READABLE_KINDS = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view", "f": "foreign table"}
SOURCE_PREFIX = "table:"


@dataclass(frozen=True)
class TableSpec:
    """What to read from a table, as given to `pgask ingest --table` and remembered for sync."""

    table: str
    id_column: str | None  # None (with no text columns): the remembered definition
    text_columns: tuple[str, ...]
    title_column: str | None = None
    metadata_columns: tuple[str, ...] = ()
    where: str | None = None


def check_predicate(where: str) -> str:
    """`where` if it is one SQL condition and nothing else, as Postgres's own parser reads it.

    It is parsed inside `SELECT 1 WHERE ...`: anything that reaches past the condition (a second
    statement, UNION, ORDER BY, LIMIT, FOR UPDATE ...) changes the statement's shape and is
    refused. Comments are refused too, so that nothing can hide the rest of the query.
    """
    from pglast import parse_sql
    from pglast.parser import ParseError, scan

    refused = "--where must be a single SQL condition on the table's columns, such as \"status = 'open'\""
    if not where.strip():
        raise PgaskError(f"{refused}; it is empty")
    try:
        tokens = scan(where)
    except ParseError as exc:
        raise PgaskError(f"{refused}; it does not parse: {exc.args[0]}") from None
    if any(t.name in ("SQL_COMMENT", "C_COMMENT") for t in tokens):
        raise PgaskError(f"{refused}; comments are not allowed")
    if any(t.name == "ASCII_59" for t in tokens):
        raise PgaskError(f"{refused}; semicolons are not allowed")
    try:
        statements = parse_sql(f"SELECT 1 WHERE {where}")
    except ParseError as exc:
        raise PgaskError(f"{refused}; it does not parse: {exc.args[0]}") from None
    shape = _without_where(parse_sql("SELECT 1 WHERE true")[0].stmt)
    if len(statements) != 1 or _without_where(statements[0].stmt) != shape:
        raise PgaskError(f"{refused}; it reaches beyond the condition")
    return where


def _without_where(statement) -> dict:
    statement.whereClause = None
    return statement(skip_none=True)


@dataclass(frozen=True)
class Table:
    """A table (or view) found in the catalog, with its columns and their types."""

    oid: int
    schema: str
    name: str
    kind: str  # pg_class.relkind
    columns: dict[str, str]  # name -> type as format_type() writes it

    @property
    def qualified(self) -> str:
        """SCHEMA.TABLE as people write it; also the documents' source prefix after "table:"."""
        return f"{self.schema}.{self.name}"

    @property
    def ident(self) -> sql.Identifier:
        return sql.Identifier(self.schema, self.name)

    @property
    def prefix(self) -> str:
        return f"{SOURCE_PREFIX}{self.qualified}"

    def column(self, name: str, option: str) -> str:
        if name not in self.columns:
            known = ", ".join(self.columns)
            raise PgaskError(f"{self.qualified} has no column {name!r} (given to {option}); its columns are: {known}")
        return name


def find_table(conn: psycopg.Connection, name: str) -> Table:
    """The table (or view) called `name` (SCHEMA.TABLE, or TABLE in public), from the catalog."""
    try:
        parts = conn.execute("SELECT parse_ident(%s)", (name,)).fetchone()[0]
    except psycopg.Error as exc:
        conn.rollback()
        raise PgaskError(f"{name!r} is not a table name: write SCHEMA.TABLE, quoting names as in SQL") from exc
    if len(parts) == 1:
        parts = ["public", *parts]
    if len(parts) != 2:
        raise PgaskError(f"{name!r} is not a table name: write SCHEMA.TABLE")
    row = conn.execute(
        """SELECT c.oid, c.relkind, has_table_privilege(c.oid, 'SELECT')
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = %s AND c.relname = %s""",
        parts,
    ).fetchone()
    conn.rollback()
    qualified = ".".join(parts)
    if row is None or row[1] not in READABLE_KINDS:
        raise PgaskError(f"no table {qualified} in this database (names are case-sensitive; quote them as in SQL)")
    oid, kind, may_read = row
    if not may_read:
        raise PgaskError(f"this database user may not read {qualified}: GRANT SELECT ON {qualified} to it")
    columns = dict(conn.execute(
        """SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
           WHERE attrelid = %s AND attnum > 0 AND NOT attisdropped ORDER BY attnum""",
        (oid,),
    ).fetchall())
    conn.rollback()
    return Table(oid, parts[0], parts[1], kind, columns)


@dataclass(frozen=True)
class RowReader:
    """A TableSpec checked against its table: builds the query and turns rows into documents."""

    table: Table
    spec: TableSpec

    @property
    def _selected(self) -> list[sql.Composable]:
        s = self.spec
        columns = [sql.SQL("to_jsonb(src.{}) #>> '{{}}'").format(sql.Identifier(s.id_column)),
                   sql.SQL("src.{}::text").format(sql.Identifier(s.title_column)) if s.title_column else sql.NULL]
        columns += [sql.SQL("src.{}::text").format(sql.Identifier(c)) for c in s.text_columns]
        columns += [sql.SQL("to_jsonb(src.{})").format(sql.Identifier(c)) for c in s.metadata_columns]
        return columns

    def query(self, *, by_id: bool = False) -> sql.Composed:
        """SELECT of the rows as documents; the predicate runs in a subquery of its own.

        The id is read as jsonb text, the same form the watch trigger records it in. With
        `by_id`, only the rows whose ids are in the parameter %(ids)s (text[]) are read.
        """
        s = self.spec
        if s.where:
            # executed with parameters, so a literal % in the predicate must be doubled
            rows = sql.SQL("(SELECT * FROM {} WHERE ({})) AS src").format(self.table.ident, sql.SQL(s.where.replace("%", "%%")))
        else:
            rows = sql.SQL("{} AS src").format(self.table.ident)
        condition = sql.SQL("src.{} IS NOT NULL").format(sql.Identifier(s.id_column))
        if by_id:
            id_type = self.table.columns[s.id_column]  # written by format_type(), so valid SQL
            condition = sql.SQL("src.{} = ANY(CAST(%(ids)s AS text[])::{}[])").format(
                sql.Identifier(s.id_column), sql.SQL(id_type))
        return sql.SQL("SELECT {} FROM {} WHERE {}").format(sql.SQL(", ").join(self._selected), rows, condition)

    def source(self, row_id: str) -> str:
        return f"{self.table.prefix}/{row_id}"

    def document(self, row: Sequence) -> Document:
        """One row as a document: several text columns become sections headed by their names."""
        s = self.spec
        row_id, title = row[0], row[1] or ""
        texts = row[2: 2 + len(s.text_columns)]
        values = row[2 + len(s.text_columns):]
        if len(s.text_columns) == 1:
            text, form = texts[0] or "", "text"
        else:
            text = "\n\n".join(f"# {name}\n\n{value}" for name, value in zip(s.text_columns, texts) if value)
            form = "markdown"
        metadata = dict(zip(s.metadata_columns, values))
        metadata.update(table=self.table.qualified, row_id=row_id)
        return Document(self.source(row_id), title, text, form, metadata)


def row_reader(conn: psycopg.Connection, spec: TableSpec) -> RowReader:
    """Check every name of `spec` against the catalog and the predicate against the parser, then
    run the query once (read-only, one row) so that a bad predicate fails before anything is stored."""
    table = find_table(conn, spec.table)
    table.column(spec.id_column, "--id")
    if not spec.text_columns:
        raise PgaskError("give at least one --text column: the text that is embedded and searched")
    for name in spec.text_columns:
        table.column(name, "--text")
    if spec.title_column:
        table.column(spec.title_column, "--title")
    for name in spec.metadata_columns:
        if name in RESERVED_METADATA:
            raise PgaskError(f"--metadata column {name!r}: the keys {' and '.join(RESERVED_METADATA)} are "
                             "reserved for the row's table and id")
        table.column(name, "--metadata")
    if spec.where is not None:
        check_predicate(spec.where)
    reader = RowReader(table, spec)
    try:
        for _ in read_documents(conn, reader, limit=1):
            pass
    except psycopg.Error as exc:
        message = exc.diag.message_primary or str(exc).strip().splitlines()[0]
        raise PgaskError(f"reading {table.qualified} failed (is --where a valid condition?): {message}") from exc
    return reader


def read_documents(
    conn: psycopg.Connection,
    reader: RowReader,
    *,
    ids: Sequence[str] | None = None,
    snapshot: str | None = None,
    batch_rows: int = 1000,
    limit: int | None = None,
) -> Iterator[Document]:
    """The rows as documents, `batch_rows` at a time from a server-side cursor, in one read-only
    transaction (so the predicate cannot write). With `ids`, only those rows; with `snapshot`
    (from pg_export_snapshot()), as that snapshot saw them."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()
    conn.read_only = True
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ if snapshot else None
    query = reader.query(by_id=ids is not None)
    if limit is not None:
        query = sql.SQL("{} LIMIT {}").format(query, sql.Literal(limit))
    try:
        if snapshot:
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        # the predicate was parsed with standard strings; the server must read it the same way
        conn.execute("SET LOCAL standard_conforming_strings = on")
        with conn.cursor(name="pgask_table_rows") as cursor:
            cursor.itersize = batch_rows
            cursor.execute(query, {"ids": list(ids) if ids is not None else None})
            for row in cursor:
                yield reader.document(row)
    finally:
        conn.rollback()
        conn.read_only = False
        conn.isolation_level = None
