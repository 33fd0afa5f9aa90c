"""Create and check the knowledge-base schema from the .sql files beside this module."""

from __future__ import annotations

from importlib import resources

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ..errors import ModelMismatch, PgaskError

SCHEMA_VERSION = 1

# The most dimensions pgvector's HNSW and IVFFlat indexes take, by column type.
INDEX_MAX_DIMS = {"vector": 2000, "halfvec": 4000}


def sql_file(name: str) -> str:
    return resources.files("pgask.db").joinpath("sql", name).read_text(encoding="utf-8")


def render(name: str, schema: str, **params: object) -> sql.Composed:
    """A .sql file with {schema} as an identifier; other placeholders are literals unless already composed."""
    values = {k: v if isinstance(v, sql.Composable) else sql.Literal(v) for k, v in params.items()}
    return sql.SQL(sql_file(name)).format(schema=sql.Identifier(schema), **values)


def exists(conn: psycopg.Connection, schema: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.settings",)).fetchone()
    return bool(row[0])


def read_settings(conn: psycopg.Connection, schema: str) -> dict:
    rows = conn.execute(sql.SQL("SELECT key, value FROM {}.settings").format(sql.Identifier(schema)))
    return {key: value for key, value in rows}


def pgvector_version(conn: psycopg.Connection) -> tuple[int, ...]:
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    return tuple(int(part) for part in row[0].split(".")[:3] if part.isdigit()) if row else ()


def storage_type(conn: psycopg.Connection, dim: int) -> str:
    """The column type that keeps vectors of `dim` dimensions indexable where the server allows it.

    vector up to 2,000 dimensions; halfvec (16-bit floats, pgvector 0.7+) up to 4,000. Beyond
    that, or on an older pgvector, vector: stored and searched exactly, and `pgask index` says why
    it cannot build an index.
    """
    if dim <= INDEX_MAX_DIMS["vector"]:
        return "vector"
    if dim <= INDEX_MAX_DIMS["halfvec"] and pgvector_version(conn) >= (0, 7):
        return "halfvec"
    return "vector"


def create(conn: psycopg.Connection, schema: str, *, model: str, dim: int, ts_config: str) -> None:
    """Create the schema for this model (idempotent) and record what it was built with."""
    vector_type = storage_type(conn, dim)
    conn.execute(render("schema.sql", schema, dim=dim, ts_config=ts_config, vector_type=sql.SQL(vector_type)))
    conn.execute(render("query_cache.sql", schema))
    conn.execute(render("functions.sql", schema))
    upsert = sql.SQL(
        "INSERT INTO {}.settings (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING"
    ).format(sql.Identifier(schema))
    for key, value in {
        "embedding": {"model": model, "dim": dim, "type": vector_type},
        "schema_version": SCHEMA_VERSION,
        "text_search_config": ts_config,
    }.items():
        conn.execute(upsert, (key, Jsonb(value)))
    conn.commit()
    check_model(conn, schema, model=model, dim=dim)


def upgrade(conn: psycopg.Connection, schema: str) -> None:
    """Add what knowledge bases built by earlier versions lack (each .sql file is idempotent)."""
    if not conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.query_cache",)).fetchone()[0]:
        conn.execute(render("query_cache.sql", schema))
        conn.commit()


def write_setting(conn: psycopg.Connection, schema: str, key: str, value: object) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO {}.settings (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        ).format(sql.Identifier(schema)),
        (key, Jsonb(value)),
    )
    conn.commit()


def check_model(conn: psycopg.Connection, schema: str, *, model: str, dim: int | None) -> None:
    """Refuse a knowledge base built with another model or dimension (dim None: not yet known)."""
    built = read_settings(conn, schema).get("embedding") or {}
    if built.get("model") != model or (dim is not None and built.get("dim") != dim):
        wanted = f"{model} ({dim} dimensions)" if dim is not None else model
        use = (f"PGASK_EMBED_DIMENSIONS={built.get('dim')}" if built.get("model") == model
               else f"PGASK_EMBED_MODEL={built.get('model')}")
        raise ModelMismatch(
            f"this knowledge base (schema {schema}) was built with embedding model "
            f"{built.get('model')} ({built.get('dim')} dimensions), not {wanted}: "
            f"set {use} to use it, or re-embed with the new model "
            f"by `pgask init --reset` followed by `pgask ingest` of your documents"
        )


def drop(conn: psycopg.Connection, schema: str) -> None:
    if schema in ("public", "pg_catalog", "information_schema"):
        raise PgaskError(f"refusing to drop schema {schema}")
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    conn.commit()
