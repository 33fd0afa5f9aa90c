"""`status`: where the knowledge base lives, what model and engine it runs on, and what is in it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from psycopg import sql

from .db import cluster as clusters
from .db import schema as db_schema
from .db.cluster import Cluster
from .db.connect import detect_engine, mask_url
from .ingest.table_sources import TableSourceInfo

# keys left out of as_dict() when they do not apply: home (an external server), search (no knowledge base yet)
OPTIONAL = ("home", "search")


@dataclass
class Status:
    database_url: str  # password masked
    embedded: bool
    schema: str
    model: str
    dim: int | None
    embedding: dict  # provider, model; an API's URL, key variable and masked key, batching and limits
    embed_backend: dict | None  # a local model's backend, asked for and in use; None for an API
    llm: dict
    home: str | None = None  # the embedded server's data folder
    engine: str = "postgres"
    cluster: Cluster | None = None  # Citus, Greenplum, Cloudberry: nodes and table distribution
    server_version: str = ""
    pgvector_version: str | None = None
    documents: int = 0
    chunks: int = 0
    indexes: list[dict] = field(default_factory=list)  # name, type, metric
    search: dict | None = None  # per indexed metric: ef_search and probes in force
    table_sources: list[TableSourceInfo] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """`status --json`: the fields in order, the cluster's as `workers`/`segments` and `distribution`."""
        shown: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if key == "cluster":
                shown.update(self.cluster.as_dict() if self.cluster else {})
            elif not (key in OPTIONAL and value is None):
                shown[key] = value
        return shown


def describe(kb) -> Status:
    """The status of `kb` (a KnowledgeBase), with one connection to its database."""
    s, emb = kb.settings, kb.embedder
    info = Status(
        database_url=mask_url(kb.url), embedded=not s.database_url, schema=kb.schema, model=emb.name,
        dim=emb.known_dim,  # a remote model is not asked here
        embedding=emb.describe(),
        # local models: the backend asked for and the one in use (auto: once measured)
        embed_backend=emb.backend_info(),
        llm={"configured": s.llm_configured, "model": s.llm_model if s.llm_configured else None,
             "base_url": s.llm_base_url, "api_key": s.openai_api_key.masked() if s.openai_api_key else None},
        home=None if s.database_url else str(s.home),
    )
    with kb.connection() as conn:
        info.engine = detect_engine(conn)
        info.cluster = clusters.describe(conn, kb.schema, info.engine)
        info.server_version = conn.execute("SHOW server_version").fetchone()[0]
        info.pgvector_version = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
        if db_schema.exists(conn, kb.schema):
            built = db_schema.read_settings(conn, kb.schema).get("embedding") or {}
            info.model, info.dim = built.get("model", info.model), built.get("dim", info.dim)
            ident = sql.Identifier(kb.schema)
            info.documents = conn.execute(sql.SQL("SELECT count(*) FROM {}.documents").format(ident)).fetchone()[0]
            info.chunks = conn.execute(sql.SQL("SELECT count(*) FROM {}.chunks").format(ident)).fetchone()[0]
            info.indexes = kb.indexes.present(conn)
            info.search = {m: kb.indexes.search_params(conn, m) for m in {i["metric"] for i in info.indexes}}
    info.table_sources = kb.table_sources()
    return info


@dataclass
class Health:
    status: str
    database: str
    model: str
    dim: int


def health(pool, emb, *, load: bool) -> Health:
    """The database answers and (with `load`, the first check) the embedding model embeds; raises otherwise."""
    with pool.connection(timeout=10) as conn:
        conn.execute("SELECT 1")
    if load:
        emb.embed_query("ready")
    return Health("ok", "ok", emb.name, emb.dim)
