"""What a distributed engine says about its nodes and about how the knowledge base's tables are spread."""

from __future__ import annotations

import psycopg

CITUS_TABLES = """SELECT c.relname, t.citus_table_type, t.distribution_column, t.colocation_id, t.shard_count
FROM citus_tables t JOIN pg_class c ON c.oid = t.table_name JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s ORDER BY c.relname"""

GREENPLUM_TABLES = """SELECT c.relname, pg_get_table_distributedby(c.oid)
FROM gp_distribution_policy p JOIN pg_class c ON c.oid = p.localoid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s ORDER BY c.relname"""


def describe(conn: psycopg.Connection, schema: str, engine: str) -> dict:
    """Worker or segment count and each table's distribution; empty on plain Postgres.

    Citus: {"workers": 2, "distribution": {"chunks": {"type": "distributed", "column": "document_id",
    "colocation_id": 2, "shards": 32}, ...}}. Greenplum and Cloudberry: {"segments": 4,
    "distribution": {"chunks": "DISTRIBUTED BY (document_id)", ...}}.
    """
    if engine == "citus":
        workers = conn.execute("SELECT count(*) FROM citus_get_active_worker_nodes()").fetchone()[0]
        tables = {
            name: {"type": kind, "column": None if column == "<none>" else column, "colocation_id": colocation,
                   "shards": shards}
            for name, kind, column, colocation, shards in conn.execute(CITUS_TABLES, (schema,))
        }
        return {"workers": workers, "distribution": tables}
    if engine in ("greenplum", "cloudberry"):
        segments = conn.execute(
            "SELECT count(*) FROM gp_segment_configuration WHERE role = 'p' AND content >= 0").fetchone()[0]
        tables = {name: policy for name, policy in conn.execute(GREENPLUM_TABLES, (schema,))}
        return {"segments": segments, "distribution": tables}
    return {}
