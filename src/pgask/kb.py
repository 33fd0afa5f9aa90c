"""KnowledgeBase: the one facade the CLI, the HTTP API, the UI and Python users call."""

from __future__ import annotations

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
from .db import store
from .db.connect import connect, detect_engine, mask_url
from .embed import Embedder, get_embedder
from .errors import PgaskError
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
                            api_key=s.openai_api_key)

    def init(self, *, reset: bool = False) -> dict:
        """Create the schema for the configured model (drop it first with reset=True)."""
        with self.connection() as conn:
            if reset:
                db_schema.drop(conn, self.schema)
                self._schema_ready = False
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
                db_schema.upgrade(conn, self.schema)
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

        return Ingest(
            connect=self.connection, schema=self.schema, embedder=self.embedder,
            chunk_tokens=self.settings.chunk_tokens, overlap_tokens=self.settings.overlap_tokens,
            max_file_bytes=self.settings.max_file_mb * 1_000_000, progress=progress or NoProgress(),
            on_plan=plan,
        )

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
        return searching.create_index(conn, self.schema, kind=spec["type"], metric=spec["metric"], **params)

    # --- search and answers ------------------------------------------------------------------------

    def search(self, query: str, *, k: int | None = None, threshold: float | None = None,
               metric: str = "cosine", mode: str | None = None, filter: dict | None = None,
               source: str | None = None, embedding=None) -> list[Hit]:
        """The passages that best match `query`, best first (all k of them unless a threshold is given).

        mode: vector, keyword or hybrid (default: the `search_mode` setting); filter: documents
        whose metadata contains this object; source: documents whose source starts with this;
        embedding: the query's vector, when already computed.
        """
        self._require_schema()
        if not query or not query.strip():
            raise PgaskError("the query is empty")
        return self._retrieve(query, embedding=embedding, k=k or self.settings.top_k, threshold=threshold,
                              metric=metric, mode=mode, filter=filter, source=source)

    def _retrieve(self, query: str, *, embedding=None, mode: str | None, **options) -> list[Hit]:
        mode = searching.check_mode(mode or self.settings.search_mode)
        embedding = self.embedder.embed_query(query) if embedding is None else embedding
        with self.connection() as conn:
            return searching.search(conn, self.schema, query, embedding, mode=mode, **options)

    def ask(self, question: str, *, k: int | None = None, threshold: float | None = None,
            on_token: Callable[[str], None] | None = None, mode: str | None = None,
            filter: dict | None = None, source: str | None = None) -> answering.Answer:
        """A cited answer: by the chat model when one is configured, else extractive."""
        self._require_schema()
        if not question or not question.strip():
            raise PgaskError("the question is empty")
        vector = self.embedder.embed_query(question)
        hits = self._retrieve(question, embedding=vector, k=k or self.settings.top_k, mode=mode, filter=filter,
                              source=source, threshold=self.settings.threshold if threshold is None else threshold)
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

    def sources(self) -> list[str]:
        """Sources of all stored documents."""
        self._require_schema()
        with self.connection() as conn:
            return store.all_sources(conn, self.schema)

    # --- indexes and status ---------------------------------------------------------------------

    def create_index(self, *, kind: str = "hnsw", metric: str = "cosine", lists: int | None = None,
                     m: int = 16, ef_construction: int = 64) -> dict:
        """Build an ANN index for `metric` and remember it, so bulk loads can rebuild it."""
        self._require_schema()
        spec = {"type": kind, "metric": metric, "lists": lists, "lists_fixed": lists is not None,
                "m": m, "ef_construction": ef_construction}
        with self.connection() as conn:
            info = self._build_index(conn, spec)
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
            else:
                info.update(documents=0, chunks=0, indexes=[])
        return info
