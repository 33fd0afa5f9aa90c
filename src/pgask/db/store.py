"""Writes and reads of documents and chunks. A document is always stored whole or not at all."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

import psycopg
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.types.json import Jsonb

from .. import korean

if TYPE_CHECKING:  # numpy loads on first use: commands that embed nothing (`pgask status`) never import it
    import numpy as np


def stable_id(key: str) -> int:
    """A 63-bit id derived from a string, identical on every engine and every run."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big") >> 1


def document_id(source: str) -> int:
    return stable_id(source)


def chunk_id(source: str, ordinal: int) -> int:
    return stable_id(f"{source}\x00{ordinal}")


@dataclass
class StoredChunk:
    ordinal: int
    heading: str
    content: str
    token_count: int
    embedding: np.ndarray


@dataclass
class StoredDocument:
    source: str
    title: str
    content_hash: str
    metadata: dict
    chunks: Sequence[StoredChunk]


def existing_hashes(conn: psycopg.Connection, schema: str, sources: Sequence[str]) -> dict[str, str]:
    """content_hash of the given sources that are already stored."""
    if not sources:
        return {}
    query = sql.SQL("SELECT source, content_hash FROM {}.documents WHERE id = ANY(%s)").format(
        sql.Identifier(schema)
    )
    ids = [document_id(s) for s in sources]
    return {source: digest for source, digest in conn.execute(query, (ids,))}


def replace_documents(conn: psycopg.Connection, schema: str, documents: Sequence[StoredDocument],
                      vector_type: str = "vector") -> None:
    """Replace documents and all their chunks in one transaction: each is stored whole or not at all.

    Writing several documents per transaction saves a commit (a WAL flush) per document; the
    chunks of all of them go in one binary COPY. `vector_type` is the embedding column's type:
    vector, or halfvec for vectors above 2,000 dimensions.
    """
    s = sql.Identifier(schema)
    with conn.transaction():
        conn.execute(sql.SQL("DELETE FROM {}.chunks WHERE document_id = ANY(%s)").format(s),
                     ([document_id(d.source) for d in documents],))
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL(
                    """INSERT INTO {}.documents (id, source, title, content_hash, metadata, chunk_count, updated_at)
                       VALUES (%s, %s, %s, %s, %s, %s, now())
                       ON CONFLICT (id) DO UPDATE SET source = excluded.source, title = excluded.title,
                         content_hash = excluded.content_hash, metadata = excluded.metadata,
                         chunk_count = excluded.chunk_count, updated_at = excluded.updated_at"""
                ).format(s),
                [(document_id(d.source), d.source, d.title, d.content_hash, Jsonb(d.metadata), len(d.chunks))
                 for d in documents],
            )
        copy_chunks(conn, schema, (
            (document_id(d.source), chunk_id(d.source, ch.ordinal), ch.ordinal, ch.heading, ch.content,
             ch.token_count, ch.embedding)
            for d in documents for ch in d.chunks
        ), vector_type)


class _ArrayVectorDumper(Dumper):
    """pgvector's binary format (uint16 dim, uint16 unused, big-endian float32s) straight from a
    numpy array: a third less client time per row than going through pgvector.Vector."""

    format = Format.BINARY
    element = ">f4"

    def dump(self, obj: np.ndarray) -> bytes:
        return struct.pack(">HH", obj.shape[0], 0) + obj.astype(self.element, copy=False).tobytes()


class _ArrayHalfvecDumper(_ArrayVectorDumper):
    """halfvec's binary format: the same header, big-endian float16s."""

    element = ">f2"


def copy_chunks(conn: psycopg.Connection, schema: str, rows: Iterable[tuple], vector_type: str = "vector") -> int:
    """Binary COPY of chunk rows (document_id, id, ordinal, heading, content, token_count, embedding ndarray).

    Each row gets its Korean keywords on the way (korean.py; empty for text without Hangul): a
    generated column cannot call a Python analyzer, so they are computed here, where every
    writer of chunks passes."""
    copy_sql = sql.SQL(
        "COPY {}.chunks (document_id, id, ordinal, heading, content, token_count, embedding, keywords) "
        "FROM STDIN WITH (FORMAT BINARY)"
    ).format(sql.Identifier(schema))
    count = 0
    with conn.cursor() as cur:
        base = _ArrayHalfvecDumper if vector_type == "halfvec" else _ArrayVectorDumper
        oid = conn.adapters.types[vector_type].oid
        import numpy as np

        cur.adapters.register_dumper(np.ndarray, type("ArrayDumper", (base,), {"oid": oid}))
        with cur.copy(copy_sql) as copy:
            copy.set_types(["int8", "int8", "int4", "text", "text", "int4", vector_type, "text"])
            for row in rows:
                copy.write_row((*row, korean.keywords(f"{row[3]} {row[4]}")))
                count += 1
    return count


def delete_documents(conn: psycopg.Connection, schema: str, sources: Iterable[str]) -> int:
    return len(delete_by_id(conn, schema, [document_id(s) for s in sources]))


def delete_by_id(conn: psycopg.Connection, schema: str, ids: Sequence[int]) -> list[str]:
    """Delete documents and their chunks; the sources of those that existed."""
    if not ids:
        return []
    s = sql.Identifier(schema)
    with conn.transaction():
        conn.execute(sql.SQL("DELETE FROM {}.chunks WHERE document_id = ANY(%s)").format(s), (list(ids),))
        rows = conn.execute(sql.SQL("DELETE FROM {}.documents WHERE id = ANY(%s) RETURNING source").format(s),
                            (list(ids),)).fetchall()
    return [row[0] for row in rows]


DOCUMENT_COLUMNS = ("id", "source", "title", "chunks", "metadata", "updated_at")
SELECT_DOCUMENTS = "SELECT id, source, title, chunk_count, metadata, updated_at FROM {}.documents "


def list_documents(conn: psycopg.Connection, schema: str, *, limit: int, offset: int) -> tuple[int, list[dict]]:
    """(how many documents are stored, one page of them ordered by source)."""
    s = sql.Identifier(schema)
    total = conn.execute(sql.SQL("SELECT count(*) FROM {}.documents").format(s)).fetchone()[0]
    rows = conn.execute(
        sql.SQL(SELECT_DOCUMENTS + "ORDER BY source, id LIMIT %s OFFSET %s").format(s),
        (limit, offset),
    ).fetchall()
    return total, [dict(zip(DOCUMENT_COLUMNS, row)) for row in rows]


def get_document(conn: psycopg.Connection, schema: str, doc_id: int) -> dict | None:
    row = conn.execute(
        sql.SQL(SELECT_DOCUMENTS + "WHERE id = %s").format(sql.Identifier(schema)),
        (doc_id,),
    ).fetchone()
    return dict(zip(DOCUMENT_COLUMNS, row)) if row else None


def _under(prefixes: Sequence[str]) -> tuple[sql.SQL, tuple]:
    """WHERE condition (and its parameters) for sources equal to or below any of the prefixes."""
    escaped = [p.rstrip("/").replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "/%" for p in prefixes]
    return sql.SQL("source = ANY(%s) OR source LIKE ANY(%s)"), (list(prefixes), escaped)


def sources_under(conn: psycopg.Connection, schema: str, prefixes: Sequence[str]) -> list[str]:
    """Stored sources equal to or below any of the given path prefixes."""
    if not prefixes:
        return []
    condition, params = _under(prefixes)
    query = sql.SQL("SELECT source FROM {}.documents WHERE {}").format(sql.Identifier(schema), condition)
    return [row[0] for row in conn.execute(query, params)]


def count_under(conn: psycopg.Connection, schema: str, prefixes: Sequence[str]) -> int:
    """How many stored sources are equal to or below any of the given prefixes."""
    condition, params = _under(prefixes)
    query = sql.SQL("SELECT count(*) FROM {}.documents WHERE {}").format(sql.Identifier(schema), condition)
    return conn.execute(query, params).fetchone()[0]


def all_sources(conn: psycopg.Connection, schema: str) -> list[str]:
    query = sql.SQL("SELECT source FROM {}.documents ORDER BY source").format(sql.Identifier(schema))
    return [row[0] for row in conn.execute(query)]
