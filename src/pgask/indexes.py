"""ANN indexes on the chunk vectors: the rule for rebuilding them around a bulk load, the specs
recorded in settings, their build (sized for the rows and the machine) and their restore."""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import psycopg
from psycopg import sql

from .config import Settings
from .db import schema as db_schema
from .db.schema import INDEX_MAX_DIMS, render
from .errors import PgaskError
from .search import METRICS, check_metric

INDEX_TYPES = ("hnsw", "ivfflat")
# An ingest that adds more chunks than this to an indexed table drops the ANN index and
# rebuilds it once at the end: building over all rows is far cheaper than row-by-row upkeep.
BULK_REBUILD_DOCUMENTS = 200
HNSW_ONLY, IVFFLAT_ONLY = ("m", "ef_construction", "ef_search"), ("lists", "probes")


@dataclass
class IndexInfo:
    """What building an index did (`pgask index --json`); the other type's parameters are left out."""

    name: str
    type: str  # hnsw or ivfflat
    metric: str
    rows: int  # chunks indexed
    build_seconds: float
    memory_mb: int  # maintenance_work_mem of the build
    workers: int | None  # parallel maintenance workers (None: the server's setting)
    lists: int | None = None  # ivfflat
    m: int | None = None  # hnsw
    ef_construction: int | None = None  # hnsw
    ef_search: int | None = None  # hnsw: recorded for searches (None: the default)
    probes: int | None = None  # ivfflat: recorded for searches (None: the default)

    def as_dict(self) -> dict:
        other = IVFFLAT_ONLY if self.type == "hnsw" else HNSW_ONLY
        return {k: v for k, v in asdict(self).items() if k not in other}



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
) -> IndexInfo:
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
    info = IndexInfo(name, kind, metric, rows, round(build_seconds, 3), memory_mb, workers)
    if kind == "ivfflat":
        info.lists = lists
    else:
        info.m, info.ef_construction = m, ef_construction
    return info


class Indexes:
    """The ANN indexes of one knowledge base: those recorded in its `indexes` setting are the ones
    wanted; a bulk load drops them and `restore` builds whatever is wanted and missing."""

    def __init__(self, connection: Callable[[], Iterator[psycopg.Connection]], schema: str, settings: Settings):
        self.connection, self.schema, self.settings = connection, schema, settings

    def create(self, *, kind: str = "hnsw", metric: str = "cosine", lists: int | None = None, m: int = 16,
               ef_construction: int = 64, ef_search: int | None = None, probes: int | None = None) -> IndexInfo:
        """Build the index for `metric` and record it (with its search parameters) for later rebuilds."""
        spec = {"type": kind, "metric": metric, "lists": lists, "lists_fixed": lists is not None,
                "m": m, "ef_construction": ef_construction, "ef_search": ef_search, "probes": probes}
        with self.connection() as conn:
            info = self.build(conn, spec)
            info.ef_search, info.probes = ef_search, probes  # as_dict shows the one of its type
            db_schema.write_setting(conn, self.schema, "indexes", [s for s in self.recorded(conn)
                                                                   if s["metric"] != metric] + [spec])
        return info

    def recorded(self, conn: psycopg.Connection) -> list[dict]:
        return db_schema.read_settings(conn, self.schema).get("indexes") or []

    def present(self, conn: psycopg.Connection) -> list[dict]:
        return ann_indexes(conn, self.schema)

    def before_load(self, todo: int | None, *, stored_documents: int, present: list[dict],
                    notify: Callable[[str], None]) -> bool:
        """The rebuild rule: a load of at least BULK_REBUILD_DOCUMENTS documents, and at least as many as
        are stored, drops the indexes now (True; `restore` rebuilds them); a smaller one updates them row
        by row."""
        if not present or not todo:  # nothing indexed, nothing to do, or a stream of unknown length
            return False
        if todo >= max(BULK_REBUILD_DOCUMENTS, stored_documents):
            names = ", ".join(i["name"] for i in present)
            notify(f"bulk load of {todo} documents: dropping {names} now and rebuilding it at the end, "
                   "instead of updating it row by row")
            with self.connection() as conn:
                drop_ann_indexes(conn, self.schema)
            return True
        notify(f"updating the ANN index row by row for {todo} documents")
        return False

    def restore(self, notify: Callable[[str], None]) -> None:
        """Build any index recorded in settings that is missing (after a bulk load or a crash)."""
        with self.connection() as conn:
            present = {(i["type"], i["metric"]) for i in self.present(conn)}
            for spec in self.recorded(conn):
                if (spec["type"], spec["metric"]) not in present:
                    notify(f"building the {spec['type']} index ({spec['metric']})")
                    self.build(conn, spec)

    def build(self, conn: psycopg.Connection, spec: dict) -> IndexInfo:
        params = {k: spec[k] for k in ("lists", "m", "ef_construction") if spec.get(k)}
        if spec["type"] == "ivfflat" and not spec.get("lists_fixed"):
            params.pop("lists", None)  # re-derived from the current row count
        workers = self.settings.index_workers
        if workers is None and not self.settings.database_url:
            workers = max(0, (os.cpu_count() or 1) - 1)  # the embedded server shares this machine's cores
        return create_index(conn, self.schema, kind=spec["type"], metric=spec["metric"],
                            memory_mb=self.settings.index_memory_mb, workers=workers, **params)

    def search_params(self, conn: psycopg.Connection, metric: str) -> dict:
        """ef_search and probes: from settings (environment), else as recorded with the index."""
        recorded = next((spec for spec in self.recorded(conn) if spec["metric"] == metric), {})
        return {"ef_search": self.settings.hnsw_ef_search or recorded.get("ef_search"),
                "probes": self.settings.ivfflat_probes or recorded.get("probes")}
