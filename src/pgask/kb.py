"""KnowledgeBase: the one facade the CLI, the HTTP API, the UI and Python users call. It delegates to
db/pool.py, db/lifecycle.py, ingest/session.py, indexes.py, asking.py, documents.py, status.py and
ingest/table_sources.py (docs/design.md, Layout)."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Mapping, Sequence

from . import answer as answering, answerability, search as searching, status as status_report
from .asking import Asker
from .documents import DocumentPage, Documents, UploadedDocument
from .config import Settings, load_settings
from .db.lifecycle import Installed, KnowledgeSchema
from .db.pool import Database
from .embed import Embedder, configured_embedder
from .errors import PgaskError
from .indexes import IndexInfo, Indexes
from .ingest.chunking import Chunk
from .ingest.loaders import Document
from .ingest.pipeline import IngestReport, Progress
from .ingest.session import IngestSession, pipeline
from .ingest.table_sources import TableReport, TableSourceInfo, TableSync
from .ingest.table_rows import TableSpec
from .search import Hit
from .usage import Ledger, Prices, summarise, summary_of

Notify = Callable[[str], None]
quiet: Notify = lambda message: None  # noqa: E731


class KnowledgeBase:
    """Documents, their chunks and vectors in one Postgres schema.

    >>> kb = KnowledgeBase()                 # embedded Postgres under PGASK_HOME
    >>> kb.ingest(["docs/"])
    >>> kb.ask("How do I use my own Postgres?").answer
    """

    def __init__(self, settings: Settings | None = None, **overrides):
        self.settings = (settings or load_settings()).with_overrides(**overrides)
        self.schema = self.settings.schema
        self.db = Database(self.settings)
        self._lock = threading.Lock()
        self._embedder: Embedder | None = None
        self._ledger: Ledger | None = None
        self._model_ready = False
        self.knowledge_schema = KnowledgeSchema(self.connection, self.settings, lambda: self.embedder,
                                                on_open=lambda: self.ledger.open())
        self.indexes = Indexes(self.connection, self.schema, self.settings)
        self.asker = Asker(self.connection, self.settings, lambda: self.embedder, lambda: self.ledger)
        self.documents = Documents(self.connection, self.knowledge_schema, Path(self.settings.home) / "uploads",
                                   max_file_bytes=self.settings.max_file_mb * 1_000_000, ingest=self.ingest)

    url = property(lambda self: self.db.url)
    pool = property(lambda self: self.db.pool)
    connection = property(lambda self: self.db.connection)  # kb.connection(): a pooled connection

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "KnowledgeBase":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def ledger(self) -> Ledger:
        """Every model call of this knowledge base, priced and written to its usage table."""
        with self._lock:
            if self._ledger is None:
                self._ledger = Ledger(self.connection, self.schema, Prices.load(self.settings.prices_file))
        return self._ledger

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = configured_embedder(self.settings, on_call=self.ledger.record)
        return self._embedder

    # --- the schema and the SQL API --------------------------------------------------------------

    def drop(self) -> None:
        """Delete the knowledge base: its schema with every document, chunk and vector."""
        self.knowledge_schema.drop()

    def init(self, *, reset: bool = False) -> status_report.Status:
        """Create the schema for the configured model (drop it first with reset=True)."""
        if reset:
            self.drop()
        self.knowledge_schema.ensure(create=True)
        return self.status()

    def sql_script(self, engine: str | None = None) -> str:
        """The whole install as one idempotent SQL script for `psql` (see KnowledgeSchema.script)."""
        return self.knowledge_schema.script(engine)

    def install_sql(self) -> Installed:
        """Install (or refresh) the tables and the SQL API in the configured database and say what is there."""
        return self.knowledge_schema.install()

    # --- ingest --------------------------------------------------------------------------------

    def ingest_session(self, *, progress: Progress | None = None, notify: Notify = quiet,
                       max_cost_usd: float | None = None) -> IngestSession:
        """One ingest (`with kb.ingest_session() as session: session.add_files(...)`), see IngestSession."""
        return IngestSession(self, progress=progress, notify=notify, max_cost_usd=max_cost_usd)

    def ingest(self, paths: Sequence[str | Path], *, include: Sequence[str] = (), exclude: Sequence[str] = (),
               prune: bool = False, max_cost_usd: float | None = None, progress: Progress | None = None,
               notify: Notify = quiet) -> IngestReport:
        """Add new and changed documents under `paths`; with prune, delete those whose files are gone. With a
        budget (max_cost_usd, else PGASK_MAX_COST_USD) it stops before exceeding it (`report.remaining`)."""
        with self.ingest_session(progress=progress, notify=notify, max_cost_usd=max_cost_usd) as session:
            return session.add_files(paths, include=include, exclude=exclude, prune=prune)

    def ingest_documents(self, documents: Iterable[Document], *, prune_scope: Sequence[str] = (),
                         max_cost_usd: float | None = None, progress: Progress | None = None,
                         notify: Notify = quiet) -> IngestReport:
        """Add new and changed documents that are not files (rows, datasets), streamed."""
        with self.ingest_session(progress=progress, notify=notify, max_cost_usd=max_cost_usd) as session:
            return session.add_documents(documents, prune_scope=prune_scope)

    def chunk_files(self, paths: Sequence[str | Path]) -> Iterator[Chunk]:
        """The chunks an ingest of `paths` would embed, without touching the database."""
        return pipeline(self).chunk_files([Path(p) for p in paths])

    # --- table sources ---------------------------------------------------------------------------

    def _tables(self, source_url: str | None = None, session: IngestSession | None = None, notify=quiet) -> TableSync:
        offered = [url for url in (source_url, self.settings.source_url) if url]
        return TableSync(self.schema, self.url, self.connection, session, source_urls=offered, notify=notify)

    def ingest_table(self, table: str, *, id_column: str | None = None, text_columns: Sequence[str] = (),
                     title_column: str | None = None, metadata_columns: Sequence[str] = (), where: str | None = None,
                     source_url: str | None = None, prune: bool = False, watch: bool = False,
                     max_cost_usd: float | None = None, progress: Progress | None = None,
                     notify: Notify = quiet) -> TableReport:
        """Rows of a table as documents (`table:SCHEMA.TABLE/<id>`), remembered for `sync`; see TableSync."""
        spec = TableSpec(table, id_column, tuple(text_columns), title_column, tuple(metadata_columns), where)
        with self.ingest_session(progress=progress, notify=notify, max_cost_usd=max_cost_usd) as session:
            return self._tables(source_url, session, notify).ingest_table(
                spec, source_url=source_url or self.settings.source_url, prune=prune, watch=watch)

    def sync(self, tables: Sequence[str] = (), *, full: bool = False, source_url: str | None = None,
             progress: Progress | None = None, notify: Notify = quiet) -> list[TableReport]:
        """Bring table sources (all, or those named) up to date; see TableSync.sync."""
        self.knowledge_schema.require()
        with self.ingest_session(progress=progress, notify=notify) as session:
            return self._tables(source_url, session, notify).sync(tables, full=full)

    def unwatch_table(self, table: str, *, source_url: str | None = None) -> str:
        """Drop a table's watch trigger and change queue; its documents stay and `sync` re-reads it whole."""
        self.knowledge_schema.require()
        return self._tables(source_url).unwatch(table)

    def table_sources(self) -> list[TableSourceInfo]:
        """Each table source: where it is read from, documents stored, changes queued, last sync."""
        return self._tables().describe()

    # --- search and answers --------------------------------------------------------------------

    def search(self, query: str, *, k: int | None = None, threshold: float | None = None,
               metric: str = "cosine", mode: str | None = None, filter: dict | None = None,
               source: str | None = None, embedding=None, exact: bool = False, rerank: bool = False) -> list[Hit]:
        """The passages that best match `query`, best first (all k unless a threshold is given). mode: vector,
        keyword or hybrid (default PGASK_SEARCH_MODE); filter: metadata containing this object; source: a
        source prefix; embedding: the query's vector if known; exact: no ANN index (slower, never misses);
        rerank: re-order the best passages with the cross-encoder, as `ask` does."""
        self.knowledge_schema.require()
        if not query or not query.strip():
            raise PgaskError("the query is empty")
        return self.asker.retrieve(query, embedding=embedding, k=k or self.settings.top_k, threshold=threshold,
                                   selection=self._selection(mode, filter, source), metric=metric, exact=exact,
                                   rerank=rerank)

    def ask(self, question: str, *, history: Sequence[Mapping[str, str]] = (), k: int | None = None,
            threshold: float | None = None, on_token: Callable[[str], None] | None = None,
            on_question: Callable[[str], None] | None = None, mode: str | None = None,
            filter: dict | None = None, source: str | None = None) -> answering.Answer:
        """A cited answer: by the chat model when one is configured, else extractive. With `history` (earlier
        {"role", "content"} messages) a follow-up is first made standalone; `on_question` is told what is
        searched for, before the search. mode, filter and source choose the passages as for `search`."""
        self.knowledge_schema.require()
        return self.asker.ask(question, history=history, k=k, threshold=threshold, on_token=on_token,
                              on_question=on_question, selection=self._selection(mode, filter, source))

    def _selection(self, mode: str | None, filter, source: str | None) -> searching.Selection:
        """What the front end gave (KEY=VALUE pairs or an object, a relative prefix), normalised once."""
        return searching.Selection.of(mode=mode, filter=filter, source=source, default_mode=self.settings.search_mode)

    def ask_events(self, question: str, **options: Any) -> Iterator[tuple[str, Any]]:
        """`ask` as a stream: ("question", standalone), ("token", text)..., then ("answer", Answer)."""
        return Asker.events(self.ask, question, **options)

    def answerable(self, hits: Sequence[Hit], *, threshold: float | None = None) -> bool:
        """Whether `hits` answer the question they were found for, or pgask says the documents do not
        (ask first refuses a question for names no document mentions: `asker.unmentioned`)."""
        return answerability.answerable(hits, threshold=self.settings.threshold if threshold is None else threshold)

    # --- documents (documents.py) ----------------------------------------------------------------

    def list_documents(self, *, limit: int = 50, offset: int = 0) -> DocumentPage:
        """One page of the stored documents, ordered by source, and how many there are in all."""
        return self.documents.page(limit=limit, offset=offset)

    def delete_document(self, document_id: int) -> str | None:
        """Delete one document and its chunks (and its uploaded file); its source, or None if unknown."""
        return self.documents.delete(document_id)

    def add_upload(self, filename: str, stream: BinaryIO) -> UploadedDocument:
        """Save a file sent by a client under PGASK_HOME/uploads and ingest it; a second of that name replaces it."""
        return self.documents.upload(filename, stream)

    def sources(self) -> list[str]:
        """Sources of all stored documents."""
        return self.documents.sources()

    # --- indexes, health, usage, status ----------------------------------------------------------

    def create_index(self, *, kind: str = "hnsw", metric: str = "cosine", lists: int | None = None,
                     m: int = 16, ef_construction: int = 64, ef_search: int | None = None,
                     probes: int | None = None) -> IndexInfo:
        """Build an ANN index for `metric` and record it (with ef_search / probes for every search on the
        metric unless PGASK_HNSW_EF_SEARCH / PGASK_IVFFLAT_PROBES say otherwise), so bulk loads rebuild it."""
        self.knowledge_schema.require()
        return self.indexes.create(kind=kind, metric=metric, lists=lists, m=m, ef_construction=ef_construction,
                                   ef_search=ef_search, probes=probes)

    def health(self) -> status_report.Health:
        """The database answers and the embedding model works (loaded by the first check); raises otherwise."""
        info = status_report.health(self.pool, self.embedder, load=not self._model_ready)
        self._model_ready = True
        return info

    def usage(self, since: date | None = None) -> dict:
        """Model calls, tokens and cost by day, kind, provider and model (see usage.summarise)."""
        if not self.knowledge_schema.ensure(create=False):
            return summary_of([], since)
        with self.connection() as conn:
            return summarise(conn, self.schema, since)

    def status(self) -> status_report.Status:
        """Where the knowledge base lives, its model and engine, and what is in it."""
        return status_report.describe(self)
