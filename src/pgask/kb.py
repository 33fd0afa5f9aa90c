"""KnowledgeBase: the one facade the CLI, the HTTP API, the UI and Python users call."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import psycopg
from psycopg import sql

from . import answer as answering
from . import search as searching
from . import usage
from .config import Settings, load_settings
from .db import schema as db_schema
from .db.connect import connect, detect_engine, mask_url
from .embed import Embedder, get_embedder
from .errors import PgaskError
from .ingest.chunking import Chunk
from .ingest.loaders import Document
from .ingest.pipeline import Ingest, IngestReport, NoProgress, Progress
from .search import Hit

# An ingest that adds more chunks than this to an indexed table drops the ANN index and
# rebuilds it once at the end: building over all rows is far cheaper than row-by-row upkeep.
BULK_REBUILD_DOCUMENTS = 200


class KnowledgeBase:
    """Documents, their chunks and vectors in one Postgres schema.

    >>> kb = KnowledgeBase()                 # embedded Postgres under PGASK_HOME
    >>> kb.ingest(["docs/"])
    >>> kb.ask("How do I use my own Postgres?").answer
    """

    def __init__(self, settings: Settings | None = None, **overrides):
        self.settings = (settings or load_settings()).with_overrides(**overrides)
        self.schema = self.settings.schema
        self._url: str | None = None
        self._pool = None
        self._lock = threading.Lock()
        self._schema_ready = False

    # --- connections ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._url is None:
            if self.settings.database_url:
                self._url = self.settings.database_url
            else:
                from .db.embedded import embedded_url

                self._url = embedded_url(self.settings.home)
        return self._url

    @property
    def pool(self):
        with self._lock:
            if self._pool is None:
                from pgvector.psycopg import register_vector
                from psycopg_pool import ConnectionPool

                connect(self.url).close()  # clear errors for bad URLs; creates pgvector if missing

                def configure(conn: psycopg.Connection) -> None:
                    register_vector(conn)
                    conn.commit()

                self._pool = ConnectionPool(
                    self.url, min_size=1, max_size=self.settings.pool_size, configure=configure,
                    kwargs={"connect_timeout": 10}, open=True, name="pgask",
                )
        return self._pool

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self.pool.connection() as conn:
            yield conn

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> "KnowledgeBase":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- model and schema ------------------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        s = self.settings
        return get_embedder(s.embed_model, backend=s.embed_backend, base_url=s.embed_base_url,
                            api_key=s.openai_api_key, cache_dir=s.home / "models")

    def drop(self) -> None:
        """Delete the knowledge base: its schema with every document, chunk and vector."""
        with self.connection() as conn:
            db_schema.drop(conn, self.schema)
        self._schema_ready = False

    def init(self, *, reset: bool = False) -> dict:
        """Create the schema for the configured model (drop it first with reset=True)."""
        if reset:
            self.drop()
        self._ensure_schema(create=True)
        return self.status()

    def _ensure_schema(self, *, create: bool) -> bool:
        """True when the schema exists (created if `create`); refuses a database of another model."""
        if self._schema_ready:
            return True
        emb = self.embedder
        with self.connection() as conn:
            if db_schema.exists(conn, self.schema):
                db_schema.check_model(conn, self.schema, model=emb.name, dim=emb.dim)
            elif create:
                db_schema.create(conn, self.schema, model=emb.name, dim=emb.dim,
                                 ts_config=self.settings.text_search_config)
            else:
                return False
        self._schema_ready = True
        return True

    def _require_schema(self) -> None:
        if not self._ensure_schema(create=False):
            raise PgaskError("the knowledge base is empty: run `pgask ingest PATH` first")

    # --- ingest ------------------------------------------------------------------------------------

    def ingest(
        self,
        paths: Sequence[str | Path],
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        prune: bool = False,
        progress: Progress | None = None,
        notify: Callable[[str], None] = lambda message: None,
    ) -> IngestReport:
        """Add new and changed documents under `paths`; with prune, delete those whose files are gone."""
        job = self._ingest_job(progress, notify)
        try:
            return job.run([Path(p) for p in paths], include=include, exclude=exclude, prune=prune)
        finally:
            self._restore_indexes(notify)

    def ingest_documents(
        self,
        documents: Iterable[Document],
        *,
        prune_scope: Sequence[str] = (),
        progress: Progress | None = None,
        notify: Callable[[str], None] = lambda message: None,
    ) -> IngestReport:
        """Add new and changed documents that are not files (rows, datasets), streamed; see Ingest.run_documents."""
        job = self._ingest_job(progress, notify)
        try:
            return job.run_documents(documents, prune_scope=prune_scope)
        finally:
            self._restore_indexes(notify)

    def chunk_files(self, paths: Sequence[str | Path]) -> Iterator[Chunk]:
        """The chunks an ingest of `paths` would embed, without touching the database."""
        return self._pipeline(NoProgress(), lambda todo: None).chunk_files([Path(p) for p in paths])

    def _pipeline(self, progress: Progress, on_plan: Callable[[int | None], None]) -> Ingest:
        return Ingest(
            connect=self.connection, schema=self.schema, embedder=self.embedder,
            chunk_tokens=self.settings.chunk_tokens, overlap_tokens=self.settings.overlap_tokens,
            max_file_bytes=self.settings.max_file_mb * 1_000_000, progress=progress, on_plan=on_plan,
        )

    def _ingest_job(self, progress: Progress | None, notify: Callable[[str], None]) -> Ingest:
        self._ensure_schema(create=True)
        with self.connection() as conn:
            stored_documents = conn.execute(
                sql.SQL("SELECT count(*) FROM {}.documents").format(sql.Identifier(self.schema))
            ).fetchone()[0]
            indexes = searching.ann_indexes(conn, self.schema)

        def plan(todo: int | None) -> None:
            if not indexes or not todo:  # nothing indexed, nothing to do, or a stream of unknown length
                return
            if todo >= max(BULK_REBUILD_DOCUMENTS, stored_documents):
                names = ", ".join(i["name"] for i in indexes)
                notify(f"bulk load of {todo} documents: dropping {names} now and rebuilding it at the end, "
                       "instead of updating it row by row")
                with self.connection() as conn:
                    searching.drop_ann_indexes(conn, self.schema)
            else:
                notify(f"updating the ANN index row by row for {todo} documents")

        return self._pipeline(progress or NoProgress(), plan)

    def _restore_indexes(self, notify: Callable[[str], None]) -> None:
        """Build any index recorded in settings that is missing (after a bulk load or a crash)."""
        with self.connection() as conn:
            wanted = db_schema.read_settings(conn, self.schema).get("indexes") or []
            present = {(i["type"], i["metric"]) for i in searching.ann_indexes(conn, self.schema)}
            for spec in wanted:
                if (spec["type"], spec["metric"]) not in present:
                    notify(f"building the {spec['type']} index ({spec['metric']})")
                    self._build_index(conn, spec)

    def _build_index(self, conn: psycopg.Connection, spec: dict) -> dict:
        params = {k: spec[k] for k in ("lists", "m", "ef_construction") if spec.get(k)}
        if spec["type"] == "ivfflat" and not spec.get("lists_fixed"):
            params.pop("lists", None)  # re-derived from the current row count
        workers = self.settings.index_workers
        if workers is None and not self.settings.database_url:
            workers = max(0, (os.cpu_count() or 1) - 1)  # the embedded server shares this machine's cores
        return searching.create_index(conn, self.schema, kind=spec["type"], metric=spec["metric"],
                                      memory_mb=self.settings.index_memory_mb, workers=workers, **params)

    def _search_params(self, conn: psycopg.Connection, metric: str) -> dict:
        """ef_search and probes: from settings (environment), else as recorded with the index."""
        specs = db_schema.read_settings(conn, self.schema).get("indexes") or []
        recorded = next((spec for spec in specs if spec["metric"] == metric), {})
        return {"ef_search": self.settings.hnsw_ef_search or recorded.get("ef_search"),
                "probes": self.settings.ivfflat_probes or recorded.get("probes")}

    # --- search and answers ------------------------------------------------------------------------

    def search(self, query: str, *, k: int | None = None, threshold: float | None = None,
               metric: str = "cosine", exact: bool = False) -> list[Hit]:
        """The passages closest to `query`, best first (all k of them unless a threshold is given).

        `exact` compares with every chunk instead of using an ANN index: slower, never misses.
        """
        self._require_schema()
        if not query or not query.strip():
            raise PgaskError("the query is empty")
        vector = self.embedder.embed_query(query)
        with self.connection() as conn:
            return searching.vector_search(conn, self.schema, vector, k=k or self.settings.top_k, metric=metric,
                                           threshold=threshold, exact=exact, **self._search_params(conn, metric))

    def ask(self, question: str, *, k: int | None = None, threshold: float | None = None,
            on_token: Callable[[str], None] | None = None) -> answering.Answer:
        """A cited answer: by the chat model when one is configured, else extractive."""
        self._require_schema()
        if not question or not question.strip():
            raise PgaskError("the question is empty")
        vector = self.embedder.embed_query(question)
        with self.connection() as conn:
            hits = searching.vector_search(
                conn, self.schema, vector, k=k or self.settings.top_k,
                threshold=self.settings.threshold if threshold is None else threshold,
                **self._search_params(conn, "cosine"),
            )
        if not hits:
            return answering.Answer(question, answering.NO_ANSWER, "none")
        if not self.settings.llm_configured:
            text = answering.extractive_answer(vector, hits, self.embedder.embed_documents)
            if on_token:
                on_token(text)
            return answering.Answer(question, text, "extractive", hits)
        model = answering.ChatModel(model=self.settings.llm_model, base_url=self.settings.llm_base_url,
                                    api_key=self.settings.openai_api_key)
        text, info = model.complete(answering.build_messages(question, hits), on_token)
        with self.connection() as conn:
            usage.record(conn, self.schema, kind="chat", provider=model.provider, model=info["model"],
                         tokens_in=info["tokens_in"], tokens_out=info["tokens_out"], latency_ms=info["latency_ms"])
        return answering.Answer(question, text, "llm", hits, usage=info)

    # --- indexes and status ---------------------------------------------------------------------

    def create_index(self, *, kind: str = "hnsw", metric: str = "cosine", lists: int | None = None,
                     m: int = 16, ef_construction: int = 64, ef_search: int | None = None,
                     probes: int | None = None) -> dict:
        """Build an ANN index for `metric` and remember it, so bulk loads can rebuild it.

        `ef_search` (HNSW) and `probes` (IVFFlat) are recorded with it and used by every search
        on this metric, unless PGASK_HNSW_EF_SEARCH / PGASK_IVFFLAT_PROBES say otherwise.
        """
        self._require_schema()
        spec = {"type": kind, "metric": metric, "lists": lists, "lists_fixed": lists is not None,
                "m": m, "ef_construction": ef_construction, "ef_search": ef_search, "probes": probes}
        with self.connection() as conn:
            info = self._build_index(conn, spec)
            if kind == "hnsw":
                info["ef_search"] = ef_search
            else:
                info["probes"] = probes
            wanted = [s for s in db_schema.read_settings(conn, self.schema).get("indexes") or []
                      if s["metric"] != metric]
            db_schema.write_setting(conn, self.schema, "indexes", wanted + [spec])
        return info

    def status(self) -> dict:
        s = self.settings
        emb = self.embedder
        info: dict = {
            "database_url": mask_url(self.url),
            "embedded": not s.database_url,
            "schema": self.schema,
            "model": emb.name,
            "dim": emb.dim,
            # local models: the backend asked for and the one in use (auto: once measured)
            "embed_backend": emb.backend_info() if hasattr(emb, "backend_info") else None,
            "llm": {"configured": s.llm_configured, "model": s.llm_model if s.llm_configured else None,
                    "base_url": s.llm_base_url, "api_key": s.openai_api_key.masked() if s.openai_api_key else None},
        }
        if not s.database_url:
            info["home"] = str(s.home)
        with self.connection() as conn:
            info["engine"] = detect_engine(conn)
            info["server_version"] = conn.execute("SHOW server_version").fetchone()[0]
            info["pgvector_version"] = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]
            if db_schema.exists(conn, self.schema):
                built = db_schema.read_settings(conn, self.schema).get("embedding") or {}
                info["model"], info["dim"] = built.get("model", info["model"]), built.get("dim", info["dim"])
                ident = sql.Identifier(self.schema)
                info["documents"] = conn.execute(sql.SQL("SELECT count(*) FROM {}.documents").format(ident)).fetchone()[0]
                info["chunks"] = conn.execute(sql.SQL("SELECT count(*) FROM {}.chunks").format(ident)).fetchone()[0]
                info["indexes"] = searching.ann_indexes(conn, self.schema)
                info["search"] = {m: self._search_params(conn, m) for m in {i["metric"] for i in info["indexes"]}}
            else:
                info.update(documents=0, chunks=0, indexes=[])
        return info
