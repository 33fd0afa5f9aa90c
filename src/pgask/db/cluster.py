"""What a distributed engine says about its nodes and about how the knowledge base's tables are spread."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

CITUS_TABLES = """SELECT c.relname, t.citus_table_type, t.distribution_column, t.colocation_id, t.shard_count
FROM citus_tables t JOIN pg_class c ON c.oid = t.table_name JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s ORDER BY c.relname"""

GREENPLUM_TABLES = """SELECT c.relname, pg_get_table_distributedby(c.oid)
FROM gp_distribution_policy p JOIN pg_class c ON c.oid = p.localoid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s ORDER BY c.relname"""


@dataclass
class Cluster:
    """A distributed engine's nodes and how each table is spread over them.

    Citus: nodes "workers", distribution {"chunks": {"type": "distributed", "column": "document_id",
    "colocation_id": 2, "shards": 32}, ...}. Greenplum and Cloudberry: nodes "segments",
    distribution {"chunks": "DISTRIBUTED BY (document_id)", ...}.
    """

    nodes: str  # "workers" (Citus) or "segments" (Greenplum, Cloudberry)
    count: int
    distribution: dict

    @property
    def citus(self) -> bool:
        return self.nodes == "workers"

    def as_dict(self) -> dict:
        """As `status --json` gives it: {"workers": 2, "distribution": {...}} or {"segments": 4, ...}."""
        return {self.nodes: self.count, "distribution": self.distribution}


def describe(conn: psycopg.Connection, schema: str, engine: str) -> Cluster | None:
    """Worker or segment count and each table's distribution; None on plain Postgres."""
    if engine == "citus":
        workers = conn.execute("SELECT count(*) FROM citus_get_active_worker_nodes()").fetchone()[0]
        tables = {
            name: {"type": kind, "column": None if column == "<none>" else column, "colocation_id": colocation,
                   "shards": shards}
            for name, kind, column, colocation, shards in conn.execute(CITUS_TABLES, (schema,))
        }
        return Cluster("workers", workers, tables)
    if engine in ("greenplum", "cloudberry"):
        segments = conn.execute(
            "SELECT count(*) FROM gp_segment_configuration WHERE role = 'p' AND content >= 0").fetchone()[0]
        tables = {name: policy for name, policy in conn.execute(GREENPLUM_TABLES, (schema,))}
        return Cluster("segments", segments, tables)
    return None
