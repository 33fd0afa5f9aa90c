"""Create and check the knowledge-base schema from the .sql files beside this module."""

from __future__ import annotations

from importlib import resources

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ..errors import ModelMismatch, PgaskError

SCHEMA_VERSION = 6  # 2: keyword statistics for BM25, search functions; 3: search functions read one snapshot;
# 4: search functions Citus can plan (PL/pgSQL, not inlined SQL), set_search_settings;
# 5: chunks.keywords (Korean morphemes) in the chunks' tsvector; 6: unmentioned_terms

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


def pgvector_version(conn: psycopg.Connection) -> tuple[int, ...] | None:
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    return tuple(int(part) for part in row[0].split(".")[:3] if part.isdigit()) if row else None


def storage_type(dim: int, pgvector: tuple[int, ...] | None = None) -> str:
    """The column type that keeps vectors of `dim` dimensions indexable where pgvector allows it.

    vector up to 2,000 dimensions; halfvec (16-bit floats, pgvector 0.7+) up to 4,000. Beyond
    that, or on an older pgvector, vector: stored and searched exactly, and `pgask index` says why
    it cannot build an index. `pgvector` None (a script for a server not yet seen, which the
    script itself gives pgvector): a current one.
    """
    if dim <= INDEX_MAX_DIMS["vector"]:
        return "vector"
    if dim <= INDEX_MAX_DIMS["halfvec"] and (pgvector is None or pgvector >= (0, 7)):
        return "halfvec"
    return "vector"


ENGINES = ("postgres", "citus", "greenplum", "cloudberry")
# engine -> the file that spreads the tables over its nodes (plain Postgres needs none)
DISTRIBUTION = {"citus": "distribute_citus.sql", "greenplum": "distribute_greenplum.sql",
                "cloudberry": "distribute_greenplum.sql"}


def install_script(schema: str, *, engine: str, model: str, dim: int, ts_config: str,
                   vector_type: str = "vector") -> list[sql.Composed]:
    """The whole SQL install for one engine, one rendered file per step, in the order they run:
    pgvector and the tables, their distribution, the settings rows, the SQL functions, and the
    PL/Python functions (which install themselves only where plpython3u is available)."""
    if engine not in ENGINES:
        raise PgaskError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    steps = [render("schema.sql", schema, dim=dim, ts_config=ts_config, vector_type=sql.SQL(vector_type)),
             render("keyword_upgrade.sql", schema, schema_name=schema, ts_config=ts_config),
             render("keyword_length.sql", schema, ts_config=ts_config)]
    if engine in DISTRIBUTION:
        steps.append(render(DISTRIBUTION[engine], schema, schema_name=schema))
    steps += [
        # BM25 statistics: kept by triggers on PostgreSQL, counted at search time where tables are distributed
        render("keyword_stats_scan.sql" if engine in DISTRIBUTION else "keyword_stats.sql", schema,
               schema_name=schema),
        render("settings.sql", schema, embedding=Jsonb({"model": model, "dim": dim, "type": vector_type}),
               schema_version=Jsonb(SCHEMA_VERSION), text_search_config=Jsonb(ts_config)),
        render("functions.sql", schema),
        render("search.sql", schema, schema_name=schema),
        render("plpython.sql", schema, schema_name=schema),
    ]
    return steps


def create(conn: psycopg.Connection, schema: str, *, model: str, dim: int, ts_config: str,
           engine: str = "postgres") -> None:
    """Create or complete the schema for this model (idempotent) and record what it was built with.

    A knowledge base that exists keeps the vector type it was built with.
    """
    built = (read_settings(conn, schema).get("embedding") or {}) if exists(conn, schema) else {}
    vector_type = built.get("type") or storage_type(dim, pgvector_version(conn))
    for step in install_script(schema, engine=engine, model=model, dim=dim, ts_config=ts_config,
                               vector_type=vector_type):
        conn.execute(step)
    conn.commit()
    check_model(conn, schema, model=model, dim=dim)


def upgrade(conn: psycopg.Connection, schema: str, engine: str) -> None:
    """Bring a knowledge base made by an earlier pgask up to SCHEMA_VERSION (one transaction):
    the idempotent install runs again with what it was built with (adding the query cache, the
    keyword statistics and the search functions), then the version is recorded."""
    settings = read_settings(conn, schema)
    has_cache = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.query_cache",)).fetchone()[0]
    if has_cache and settings.get("schema_version", 1) >= SCHEMA_VERSION:
        return
    built = settings["embedding"]
    create(conn, schema, model=built["model"], dim=built["dim"], ts_config=settings["text_search_config"],
           engine=engine)
    write_setting(conn, schema, "schema_version", SCHEMA_VERSION)


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
