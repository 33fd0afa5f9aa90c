"""Retrieval: the chunks that best answer a question, and the ANN indexes that make it fast.

Three modes, each one SQL function in the database (db/sql/search.sql), so that SQL users get
what pgask shows: `vector` (nearest embeddings), `keyword` (BM25 over the chunks' tsvector) and
`hybrid` (both, fused by reciprocal rank). Every mode can be restricted to documents whose
metadata contains a JSON object and whose source starts with a prefix.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from . import korean
from .db.schema import INDEX_MAX_DIMS, render
from .errors import PgaskError

# metric -> pgvector operator; the operator class is {column type}_{metric}_ops (vector_cosine_ops, halfvec_l2_ops ...)
METRICS = {
    "cosine": "<=>",
    "l2": "<->",
    "ip": "<#>",
}
MODES = ("vector", "keyword", "hybrid")
INDEX_TYPES = ("hnsw", "ivfflat")
# Hybrid search fuses the top HYBRID_CANDIDATES (or k, if more) of each ranking: the window
# Elasticsearch's reciprocal rank fusion uses by default.
HYBRID_CANDIDATES = 100


@dataclass
class Hit:
    document_id: int
    chunk_id: int
    source: str
    title: str
    heading: str
    content: str
    similarity: float  # cosine similarity to the question, whatever the mode and metric
    score: float | None = None  # the mode's own score (similarity, BM25, reciprocal rank fusion), or relevance
    # keyword-only, so that subclasses (api.Source) may add fields without defaults
    metadata: dict = field(default_factory=dict, kw_only=True)
    # the re-ranker's probability that the passage answers the question (None: not re-ranked)
    relevance: float | None = field(default=None, kw_only=True)

    @property
    def table_row(self) -> str | None:
        """"support.tickets #4211" when the passage comes from a table row (pgask ingest --table)."""
        if self.source.startswith("table:") and {"table", "row_id"} <= self.metadata.keys():
            return f"{self.metadata['table']} #{self.metadata['row_id']}"
        return None

    def cited_as(self, source: str | None = None) -> str:
        """How answers and source lists name the passage, the one rule for every front end:
        "docs/guide.md › Install", "support.tickets #4211 › Printer" for a table row. `source`:
        the document's name as the front end shows it (default: as stored)."""
        name = self.table_row or source or self.source
        return f"{name} › {self.heading}" if self.heading else name

    def as_dict(self) -> dict:
        return dict(asdict(self), table_row=self.table_row)


def source_prefix(prefix: str | None) -> str | None:
    """A source prefix as stored: a relative path made absolute (from the current folder, as the
    CLI and the UI take it), a prefix of other sources (table:, beir:) or an absolute one as given."""
    if not prefix or re.match(r"^[A-Za-z][\w+.-]*:", prefix):
        return prefix or None
    resolved = os.path.abspath(os.path.expanduser(prefix))
    return resolved + "/" if prefix.endswith("/") and resolved != "/" else resolved


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise PgaskError(f"unknown metric {metric!r}: use one of {', '.join(METRICS)}")
    return METRICS[metric]


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise PgaskError(f"unknown search mode {mode!r}: use one of {', '.join(MODES)}")
    return mode


DEFAULT_PROBES = 10


def default_ef_search(k: int) -> int:
    """pgvector's default candidate list (40), widened for large k: HNSW returns at most ef_search rows."""
    return max(40, 2 * k)


def search(
    conn: psycopg.Connection,
    schema: str,
    query: str,
    embedding: np.ndarray,
    *,
    mode: str = "hybrid",
    k: int = 5,
    metric: str = "cosine",
    threshold: float | None = None,
    filter: dict | None = None,
    source: str | None = None,
    ef_search: int | None = None,
    probes: int | None = None,
    exact: bool = False,
) -> list[Hit]:
    """The k best chunks for `query` (text) / `embedding` (its vector), best first.

    `filter` keeps documents whose metadata contains it (jsonb @>), `source` those whose source
    starts with it; `threshold` drops hits below that cosine similarity. `ef_search` (HNSW) and
    `probes` (IVFFlat) trade speed for recall; `exact` ignores ANN indexes and compares with
    every chunk (the reference that recall is measured against).
    """
    check_mode(mode)
    check_metric(metric)
    if filter is not None and not isinstance(filter, dict):
        raise PgaskError("a metadata filter must be a JSON object, such as {\"format\": \"pdf\"}")
    # a Korean question's morphemes join its words, as each chunk's join its tsvector (korean.py)
    query = korean.query_text(query) if mode != "vector" else query
    params = {"query": query, "embedding": np.asarray(embedding, dtype=np.float32), "k": k,
              "filter": Jsonb(filter or {}), "source": source or None, "metric": metric,
              "candidates": HYBRID_CANDIDATES}
    call = {
        "vector": "vector_search(%(embedding)s, %(k)s, %(filter)s, %(source)s, %(metric)s)",
        "keyword": "keyword_search(%(query)s, %(k)s, %(filter)s, %(source)s, %(embedding)s)",
        "hybrid": "hybrid_search(%(query)s, %(embedding)s, %(k)s, candidates => %(candidates)s, "
                  "filter => %(filter)s, source_prefix => %(source)s, metric => %(metric)s)",
    }[mode]
    statement = sql.SQL(
        "SELECT document_id, chunk_id, source, title, heading, content, similarity, score, metadata FROM {}." + call
    ).format(sql.Identifier(schema))
    depth = max(k, HYBRID_CANDIDATES) if mode == "hybrid" else k
    # HNSW returns at most ef_search rows per scan. Hybrid's candidate list needs ef_search >= its
    # depth, no more: the planner prices an HNSW scan by ef_search, and at 2 x 100 it prefers
    # reading every chunk (45 ms instead of 5 on gpdb-docs).
    tuning = {"depth": depth, "ef_search": ef_search, "default_ef_search": default_ef_search(k), "probes": probes,
              "default_probes": DEFAULT_PROBES, "exact": exact, "metric": metric,
              "filtered": bool(filter) or bool(source)}
    with conn.transaction():
        conn.execute(render("search_settings.sql", schema), tuning)
        rows = conn.execute(statement, params).fetchall()
    hits = [Hit(*row[:8], metadata=row[8]) for row in rows]
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


def shard_count(conn: psycopg.Connection, schema: str) -> int:
    """How many shards hold the chunks: Citus's shard count, else 1."""
    if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'").fetchone():
        return 1
    row = conn.execute("SELECT shard_count FROM citus_tables WHERE table_name = to_regclass(%s)",
                       (f"{sql.Identifier(schema).as_string(conn)}.chunks",)).fetchone()
    return max(1, row[0]) if row and row[0] else 1


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
        metric = next((m for m in METRICS if f"_{m}_ops" in definition), "l2")
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
    s = sql.Identifier(schema)
    # Citus builds each shard's index on its own, several at once per worker: lists and memory are
    # sized for one shard's rows
    shard_rows = -(-rows // shard_count(conn, schema))
    drop_ann_indexes(conn, schema, metric)
    name = index_name(kind, metric)
    params: dict = {"index": sql.Identifier(name), "opclass": sql.SQL(opclass)}
    if kind == "ivfflat":
        lists = lists or ivfflat_lists(shard_rows)
        params["lists"] = lists
        statement = render("index_ivfflat.sql", schema, **params)
    else:
        params.update(m=m, ef_construction=ef_construction)
        statement = render("index_hnsw.sql", schema, **params)
    memory_mb = memory_mb or build_memory_mb(kind, shard_rows, dim, m)
    started = time.perf_counter()
    with conn.transaction():
        # on Citus, SET LOCAL then reaches the workers that build the shards' indexes
        conn.execute("SELECT set_config('citus.propagate_set_commands', 'local', true) "
                     "WHERE current_setting('citus.propagate_set_commands', true) IS NOT NULL")
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
