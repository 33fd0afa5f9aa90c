"""Retrieval: the chunks nearest a question, and the ANN indexes that make it fast.

Every vector query orders by the distance operator itself and filters afterwards, so that an
HNSW or IVFFlat index on that operator's opclass can serve the ORDER BY ... LIMIT.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import psycopg
from psycopg import sql

from .db.schema import INDEX_MAX_DIMS, render
from .errors import PgaskError

# metric -> pgvector operator; the operator class is {column type}_{metric}_ops (vector_cosine_ops, halfvec_l2_ops ...)
METRICS = {
    "cosine": "<=>",
    "l2": "<->",
    "ip": "<#>",
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
    # keyword-only, so that subclasses (api.Source) may add fields without defaults
    metadata: dict = field(default_factory=dict, kw_only=True)

    @property
    def table_row(self) -> str | None:
        """"support.tickets #4211" when the passage comes from a table row (pgask ingest --table)."""
        if self.source.startswith("table:") and {"table", "row_id"} <= self.metadata.keys():
            return f"{self.metadata['table']} #{self.metadata['row_id']}"
        return None

    def as_dict(self) -> dict:
        return dict(asdict(self), table_row=self.table_row)


def similarity(metric: str, distance: float) -> float:
    """Cosine similarity from a pgvector distance between unit vectors."""
    if metric == "cosine":
        return 1.0 - distance
    if metric == "ip":
        return -distance  # <#> is the negative inner product
    return 1.0 - distance * distance / 2.0  # |a-b|^2 = 2 - 2cos for unit vectors


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise PgaskError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
    return METRICS[metric]


def vector_search(
    conn: psycopg.Connection,
    schema: str,
    embedding: np.ndarray,
    *,
    k: int = 5,
    metric: str = "cosine",
    threshold: float | None = None,
) -> list[Hit]:
    """The k chunks nearest `embedding`, best first, dropping those below `threshold` similarity."""
    operator = check_metric(metric)
    s = sql.Identifier(schema)
    query = sql.SQL(
        """SELECT n.document_id, n.id, d.source, d.title, n.heading, n.content, n.distance, d.metadata
           FROM (SELECT document_id, id, heading, content, embedding {op} %(q)s AS distance
                 FROM {s}.chunks ORDER BY embedding {op} %(q)s LIMIT %(k)s) n
           JOIN {s}.documents d ON d.id = n.document_id
           ORDER BY n.distance, n.document_id, n.id"""
    ).format(op=sql.SQL(operator), s=s)
    with conn.transaction():
        # HNSW returns at most ef_search rows; ask for enough candidates for k
        conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(max(40, 2 * k))))
        conn.execute("SET LOCAL ivfflat.probes = 10")
        rows = conn.execute(query, {"q": np.asarray(embedding, dtype=np.float32), "k": k}).fetchall()
    hits = [Hit(r[0], r[1], r[2], r[3], r[4], r[5], similarity(metric, float(r[6])), metadata=r[7]) for r in rows]
    if threshold is not None:
        hits = [h for h in hits if h.similarity >= threshold]
    return hits


# --- ANN indexes -----------------------------------------------------------------------------


def embedding_column(conn: psycopg.Connection, schema: str) -> tuple[str, int]:
    """The chunk vectors' column type (vector or halfvec) and dimension, from the catalog."""
    row = conn.execute(
        "SELECT t.typname, a.atttypmod FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = to_regclass(%s) AND a.attname = 'embedding'",
        (f"{sql.Identifier(schema).as_string(conn)}.chunks",),
    ).fetchone()
    return row[0], row[1]


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
        metric = next((m for m in METRICS if f"_{m}_ops" in definition), "cosine")
        found.append({"name": name, "type": kind, "metric": metric})
    return found


def drop_ann_indexes(conn: psycopg.Connection, schema: str, metric: str | None = None) -> list[dict]:
    dropped = [i for i in ann_indexes(conn, schema) if metric is None or i["metric"] == metric]
    for index in dropped:
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {}.{}").format(sql.Identifier(schema), sql.Identifier(index["name"])))
    conn.commit()
    return dropped


def create_index(
    conn: psycopg.Connection,
    schema: str,
    *,
    kind: str = "hnsw",
    metric: str = "cosine",
    lists: int | None = None,
    m: int = 16,
    ef_construction: int = 64,
) -> dict:
    """(Re)build the ANN index for one metric, then ANALYZE. Replaces any index on that metric."""
    if kind not in INDEX_TYPES:
        raise PgaskError(f"unknown index type {kind!r}: use hnsw or ivfflat")
    check_metric(metric)
    rows = conn.execute(sql.SQL("SELECT count(*) FROM {}.chunks").format(sql.Identifier(schema))).fetchone()[0]
    if rows == 0:
        raise PgaskError("the knowledge base has no chunks yet: run `pgask ingest PATH` before building an index")
    vector_type, dim = embedding_column(conn, schema)
    if dim > INDEX_MAX_DIMS[vector_type]:
        remedy = (
            "pgvector 0.7+ stores up to 4,000 as halfvec, which can be indexed: upgrade pgvector, then "
            "`pgask init --reset` and ingest again"
            if vector_type == "vector" and dim <= INDEX_MAX_DIMS["halfvec"]
            else "ask the model for fewer with PGASK_EMBED_DIMENSIONS (text-embedding-3 models), then "
            "`pgask init --reset` and ingest again"
        )
        raise PgaskError(f"pgvector indexes {vector_type} columns of at most {INDEX_MAX_DIMS[vector_type]} "
                         f"dimensions and these vectors have {dim}; searches stay exact. To index them, {remedy}")
    opclass = f"{vector_type}_{metric}_ops"
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
    conn.execute(statement)
    conn.execute(sql.SQL("ANALYZE {}.chunks").format(sql.Identifier(schema)))
    conn.commit()
    info = {"name": name, "type": kind, "metric": metric, "rows": rows}
    if kind == "ivfflat":
        info["lists"] = lists
    else:
        info.update(m=m, ef_construction=ef_construction)
    return info
