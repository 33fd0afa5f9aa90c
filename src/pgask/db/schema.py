"""Create and check the knowledge-base schema from the .sql files beside this module."""

from __future__ import annotations

from importlib import resources

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ..errors import ModelMismatch, PgaskError

SCHEMA_VERSION = 1


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


ENGINES = ("postgres", "citus", "greenplum", "cloudberry")
# engine -> the file that spreads the tables over its nodes (plain Postgres needs none)
DISTRIBUTION = {"citus": "distribute_citus.sql", "greenplum": "distribute_greenplum.sql",
                "cloudberry": "distribute_greenplum.sql"}


def install_script(schema: str, *, engine: str, model: str, dim: int, ts_config: str) -> list[sql.Composed]:
    """The whole SQL install for one engine, one rendered file per step, in the order they run:
    pgvector and the tables, their distribution, the settings rows, the SQL functions, and the
    PL/Python functions (which install themselves only where plpython3u is available)."""
    if engine not in ENGINES:
        raise PgaskError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    steps = [render("schema.sql", schema, dim=dim, ts_config=ts_config)]
    if engine in DISTRIBUTION:
        steps.append(render(DISTRIBUTION[engine], schema, schema_name=schema))
    steps += [
        render("settings.sql", schema, embedding=Jsonb({"model": model, "dim": dim}),
               schema_version=Jsonb(SCHEMA_VERSION), text_search_config=Jsonb(ts_config)),
        render("functions.sql", schema),
        render("plpython.sql", schema, schema_name=schema),
    ]
    return steps


def create(conn: psycopg.Connection, schema: str, *, model: str, dim: int, ts_config: str,
           engine: str = "postgres") -> None:
    """Create or complete the schema for this model (idempotent) and record what it was built with."""
    for step in install_script(schema, engine=engine, model=model, dim=dim, ts_config=ts_config):
        conn.execute(step)
    conn.commit()
    check_model(conn, schema, model=model, dim=dim)


def functions(conn: psycopg.Connection, schema: str) -> list[str]:
    """Names of the functions installed in the schema."""
    rows = conn.execute(
        "SELECT DISTINCT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = %s ORDER BY 1", (schema,))
    return [name for name, in rows]


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
