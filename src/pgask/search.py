"""Retrieval: the chunks nearest a question, and the ANN indexes that make it fast.

Every vector query orders by the distance operator itself and filters afterwards, so that an
HNSW or IVFFlat index on that operator's opclass can serve the ORDER BY ... LIMIT.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import psycopg
from psycopg import sql

from .db.schema import render
from .errors import PgaskError

# metric -> (pgvector operator, operator class)
METRICS = {
    "cosine": ("<=>", "vector_cosine_ops"),
    "l2": ("<->", "vector_l2_ops"),
    "ip": ("<#>", "vector_ip_ops"),
}
INDEX_TYPES = ("hnsw", "ivfflat")


@dataclass
class Hit:
    document_id: int
    chunk_id: int
    source: str
    title: str
    heading: str
    content: str
    similarity: float  # cosine similarity (stored vectors are unit length, so every metric maps to it)

    def as_dict(self) -> dict:
        return asdict(self)


def similarity(metric: str, distance: float) -> float:
    """Cosine similarity from a pgvector distance between unit vectors."""
    if metric == "cosine":
        return 1.0 - distance
    if metric == "ip":
        return -distance  # <#> is the negative inner product
    return 1.0 - distance * distance / 2.0  # |a-b|^2 = 2 - 2cos for unit vectors


def check_metric(metric: str) -> tuple[str, str]:
    if metric not in METRICS:
        raise PgaskError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
    return METRICS[metric]


DEFAULT_PROBES = 10


def default_ef_search(k: int) -> int:
    """pgvector's default candidate list (40), widened for large k: HNSW returns at most ef_search rows."""
    return max(40, 2 * k)


def vector_search(
    conn: psycopg.Connection,
    schema: str,
    embedding: np.ndarray,
    *,
    k: int = 5,
    metric: str = "cosine",
    threshold: float | None = None,
    ef_search: int | None = None,
    probes: int | None = None,
    exact: bool = False,
) -> list[Hit]:
    """The k chunks nearest `embedding`, best first, dropping those below `threshold` similarity.

    `ef_search` (HNSW) and `probes` (IVFFlat) trade speed for recall; `exact` ignores ANN
    indexes and compares with every chunk (the reference that recall is measured against).
    """
    operator, _ = check_metric(metric)
    s = sql.Identifier(schema)
    query = sql.SQL(
        """SELECT n.document_id, n.id, d.source, d.title, n.heading, n.content, n.distance
           FROM (SELECT document_id, id, heading, content, embedding {op} %(q)s AS distance
                 FROM {s}.chunks ORDER BY embedding {op} %(q)s LIMIT %(k)s) n
           JOIN {s}.documents d ON d.id = n.document_id
           ORDER BY n.distance, n.document_id, n.id"""
    ).format(op=sql.SQL(operator), s=s)
    with conn.transaction():
        # one round trip for all the transaction-local settings: a search takes a few milliseconds
        conn.execute(
            "SELECT set_config('hnsw.ef_search', %s, true), set_config('ivfflat.probes', %s, true),"
            " set_config('enable_indexscan', %s, true)",
            (str(max(k, ef_search or default_ef_search(k))), str(probes or DEFAULT_PROBES), "off" if exact else "on"),
        )
        rows = conn.execute(query, {"q": np.asarray(embedding, dtype=np.float32), "k": k}).fetchall()
    hits = [Hit(r[0], r[1], r[2], r[3], r[4], r[5], similarity(metric, float(r[6]))) for r in rows]
    if threshold is not None:
        hits = [h for h in hits if h.similarity >= threshold]
    return hits


# --- ANN indexes -----------------------------------------------------------------------------


def ivfflat_lists(rows: int) -> int:
    """pgvector's guidance: rows/1000 up to 1M rows, sqrt(rows) beyond."""
    return max(1, rows // 1000) if rows <= 1_000_000 else int(math.sqrt(rows))


def index_name(kind: str, metric: str) -> str:
    return f"chunks_embedding_{kind}_{metric}_idx"


def ann_indexes(conn: psycopg.Connection, schema: str) -> list[dict]:
    """ANN indexes on the chunk vectors: name, type and metric."""
    rows = conn.execute(
        """SELECT i.relname, am.amname, pg_get_indexdef(i.oid)
           FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am am ON am.oid = i.relam
           WHERE x.indrelid = to_regclass(%s) AND am.amname IN ('hnsw', 'ivfflat')""",
        (f"{sql.Identifier(schema).as_string(conn)}.chunks",),
    ).fetchall()
    found = []
    for name, kind, definition in rows:
        # pg_get_indexdef leaves out the default opclass, which is vector_l2_ops for hnsw and ivfflat
        metric = next((m for m, (_, ops) in METRICS.items() if ops in definition), "l2")
        found.append({"name": name, "type": kind, "metric": metric})
    return found


def drop_ann_indexes(conn: psycopg.Connection, schema: str, metric: str | None = None) -> list[dict]:
    dropped = [i for i in ann_indexes(conn, schema) if metric is None or i["metric"] == metric]
    for index in dropped:
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {}.{}").format(sql.Identifier(schema), sql.Identifier(index["name"])))
    conn.commit()
    return dropped


MAX_BUILD_MEMORY_MB = 4096  # unless PGASK_INDEX_MEMORY_MB says otherwise


def build_memory_mb(kind: str, rows: int, dim: int, m: int) -> int:
    """maintenance_work_mem (MB) that holds the whole index while it is built.

    An HNSW graph that outgrows it is finished on disk, many times slower; per element pgvector
    keeps the vector and up to 2m neighbour links on layer 0 (plus a few on upper layers).
    """
    per_row = dim * 4 + (2 * m + m // 2) * 8 + 96 if kind == "hnsw" else dim * 4 + 64
    # a parallel build allocates all of it as shared memory up front, so it is not set higher than needed
    return min(MAX_BUILD_MEMORY_MB, max(64, int(rows * per_row * 1.25 / 2**20) + 1))


def create_index(
    conn: psycopg.Connection,
    schema: str,
    *,
    kind: str = "hnsw",
    metric: str = "cosine",
    lists: int | None = None,
    m: int = 16,
    ef_construction: int = 64,
    memory_mb: int | None = None,
    workers: int | None = None,
) -> dict:
    """(Re)build the ANN index for one metric, then ANALYZE. Replaces any index on that metric.

    The build gets `memory_mb` of maintenance_work_mem (default: enough for the whole index)
    and `workers` parallel maintenance workers (default: the server's setting).
    """
    if kind not in INDEX_TYPES:
        raise PgaskError(f"unknown index type {kind!r}: use hnsw or ivfflat")
    _, opclass = check_metric(metric)
    s = sql.Identifier(schema)
    rows = conn.execute(sql.SQL("SELECT count(*) FROM {}.chunks").format(s)).fetchone()[0]
    if rows == 0:
        raise PgaskError("the knowledge base has no chunks yet: run `pgask ingest PATH` before building an index")
    dim = conn.execute(sql.SQL("SELECT vector_dims(embedding) FROM {}.chunks LIMIT 1").format(s)).fetchone()[0]
    drop_ann_indexes(conn, schema, metric)
    name = index_name(kind, metric)
    params: dict = {"index": sql.Identifier(name), "opclass": sql.SQL(opclass)}
    if kind == "ivfflat":
        lists = lists or ivfflat_lists(rows)
        params["lists"] = lists
        statement = render("index_ivfflat.sql", schema, **params)
    else:
        params.update(m=m, ef_construction=ef_construction)
        statement = render("index_hnsw.sql", schema, **params)
    memory_mb = memory_mb or build_memory_mb(kind, rows, dim, m)
    started = time.perf_counter()
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL maintenance_work_mem = {}").format(sql.Literal(f"{memory_mb}MB")))
        if workers is not None:
            conn.execute(sql.SQL("SET LOCAL max_parallel_maintenance_workers = {}").format(sql.Literal(workers)))
        conn.execute(statement)
    build_seconds = time.perf_counter() - started
    conn.execute(sql.SQL("ANALYZE {}.chunks").format(s))
    conn.commit()
    info = {"name": name, "type": kind, "metric": metric, "rows": rows, "build_seconds": round(build_seconds, 3),
            "memory_mb": memory_mb, "workers": workers}
    if kind == "ivfflat":
        info["lists"] = lists
    else:
        info.update(m=m, ef_construction=ef_construction)
    return info
