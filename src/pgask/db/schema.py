"""Create and check the knowledge-base schema from the .sql files beside this module."""

from __future__ import annotations

from importlib import resources

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ..errors import ModelMismatch, PgaskError

SCHEMA_VERSION = 2  # 2: keyword statistics for BM25, search functions

# Installed into every knowledge base in this order; each file is safe to run again.
SQL_FILES = ("schema.sql", "keyword_stats.sql", "functions.sql", "search.sql")


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


def create(conn: psycopg.Connection, schema: str, *, model: str, dim: int, ts_config: str) -> None:
    """Create the schema for this model (idempotent) and record what it was built with."""
    _install(conn, schema, dim=dim, ts_config=ts_config)
    upsert = sql.SQL(
        "INSERT INTO {}.settings (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING"
    ).format(sql.Identifier(schema))
    for key, value in {
        "embedding": {"model": model, "dim": dim},
        "schema_version": SCHEMA_VERSION,
        "text_search_config": ts_config,
    }.items():
        conn.execute(upsert, (key, Jsonb(value)))
    conn.commit()
    check_model(conn, schema, model=model, dim=dim)


def _install(conn: psycopg.Connection, schema: str, *, dim: int, ts_config: str) -> None:
    for name in SQL_FILES:
        conn.execute(render(name, schema, dim=dim, ts_config=ts_config, schema_name=schema))


def upgrade(conn: psycopg.Connection, schema: str) -> None:
    """Bring a knowledge base made by an earlier pgask up to SCHEMA_VERSION (one transaction)."""
    recorded = read_settings(conn, schema)
    if recorded.get("schema_version", 1) >= SCHEMA_VERSION:
        return
    _install(conn, schema, dim=recorded["embedding"]["dim"], ts_config=recorded["text_search_config"])
    write_setting(conn, schema, "schema_version", SCHEMA_VERSION)


def write_setting(conn: psycopg.Connection, schema: str, key: str, value: object) -> None:
    conn.execute(
        sql.SQL(
            "INSERT INTO {}.settings (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        ).format(sql.Identifier(schema)),
        (key, Jsonb(value)),
    )
    conn.commit()


def check_model(conn: psycopg.Connection, schema: str, *, model: str, dim: int) -> None:
    built = read_settings(conn, schema).get("embedding") or {}
    if built.get("model") != model or built.get("dim") != dim:
        raise ModelMismatch(
            f"this knowledge base (schema {schema}) was built with embedding model "
            f"{built.get('model')} ({built.get('dim')} dimensions), not {model} ({dim}): "
            f"set PGASK_EMBED_MODEL={built.get('model')} to use it, or re-embed with the new model "
            f"by `pgask init --reset` followed by `pgask ingest` of your documents"
        )


def drop(conn: psycopg.Connection, schema: str) -> None:
    if schema in ("public", "pg_catalog", "information_schema"):
        raise PgaskError(f"refusing to drop schema {schema}")
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    conn.commit()
