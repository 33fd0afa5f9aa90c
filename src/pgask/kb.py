"""KnowledgeBase: the one facade the CLI, the HTTP API, the UI and Python users call."""

from __future__ import annotations

import os
import queue
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import psycopg
from psycopg import sql

from . import answer as answering
from . import answerability
from . import conversation
from . import translation
from . import rerank as reranking
from . import search as searching
from .config import Settings, load_settings
from .db import cluster, query_cache
from .db import schema as db_schema
from .db import store
from .db.connect import connect, detect_engine, mask_url
from .db.store import stable_id
from .embed import Embedder, configured_embedder, is_remote
from .errors import PgaskError
from .ingest import uploads
from .ingest.chunking import Chunk
from .ingest.loaders import Document
from .ingest.pipeline import Ingest, IngestReport, NoProgress, Progress, source_of
from .ingest.table_sync import TableReport, TableSync
from .ingest.tables import TableSpec
from .search import Hit
from .usage import Budget, Call, Ledger, Prices, sum_calls, summarise, summary_of

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
        self._vector_type = "vector"
        # an embeddings API (billed, rate limited, its calls in the ledger) rather than a local model
        self.remote = is_remote(self.settings.embed_model, self.settings.embed_base_url)
        self._embedder: Embedder | None = None
        self._ledger: Ledger | None = None
        self._model_ready = False

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
                self._check_model(conn)
                db_schema.upgrade(conn, self.schema, detect_engine(conn))
            elif create:
                db_schema.create(conn, self.schema, model=emb.name, dim=emb.dim,
                                 ts_config=self.settings.text_search_config, engine=detect_engine(conn))
            else:
                return False
            self._opened(conn)
        return True

    def _check_model(self, conn: psycopg.Connection) -> None:
        """Refuse an existing knowledge base of another model. A remote model of unknown size takes
        the size the knowledge base records (no API call); one of another name is refused unasked."""
        emb = self.embedder
        if self.remote and emb.known_dim is None:
            built = db_schema.read_settings(conn, self.schema).get("embedding") or {}
            if built.get("model") == emb.name:
                emb.dim = built["dim"]
            dim = emb.known_dim
        else:
            dim = emb.dim
        db_schema.check_model(conn, self.schema, model=emb.name, dim=dim)

    def _opened(self, conn: psycopg.Connection) -> None:
        """The schema exists: note its vector type and start writing the ledger."""
        self._vector_type = (db_schema.read_settings(conn, self.schema).get("embedding") or {}).get("type", "vector")
        self.ledger.open()
        self._schema_ready = True

    # --- the SQL API ----------------------------------------------------------------------------

    def sql_script(self, engine: str | None = None) -> str:
        """The whole install as one SQL script for `psql`: pgvector, tables, their distribution on
        `engine` (default: the configured database's), settings, SQL and PL/Python functions. It runs
        in one transaction and every statement is idempotent, so it can be applied again."""
        pgvector = None  # a script for a server not seen: a current pgvector
        if engine is None:
            with self.connection() as conn:
                engine = detect_engine(conn)
                pgvector = db_schema.pgvector_version(conn)
        emb = self.embedder
        steps = db_schema.install_script(self.schema, engine=engine, model=emb.name, dim=emb.dim,
                                         ts_config=self.settings.text_search_config,
                                         vector_type=db_schema.storage_type(emb.dim, pgvector))
        body = "\n\n".join(step.as_string(None).strip() for step in steps)
        return (f"-- pgask: SQL install of schema {self.schema} for {engine}, "
                f"embedding model {emb.name} ({emb.dim} dimensions)\nBEGIN;\n\n{body}\n\nCOMMIT;\n")

    def install_sql(self) -> dict:
        """Install (or refresh) the tables and the SQL API in the configured database and say what is there.
        The PL/Python functions are installed only where the server has plpython3u; `notes` says why not."""
        emb = self.embedder
        notes: list[str] = []
        with self.connection() as conn:
            if db_schema.exists(conn, self.schema):
                self._check_model(conn)
            engine = detect_engine(conn)

            def note(diagnostic) -> None:
                if diagnostic.message_primary.startswith("pgask:"):
                    notes.append(diagnostic.message_primary.removeprefix("pgask:").strip())

            conn.add_notice_handler(note)
            try:
                db_schema.create(conn, self.schema, model=emb.name, dim=emb.dim,
                                 ts_config=self.settings.text_search_config, engine=engine)
            finally:
                conn.remove_notice_handler(note)
            functions = db_schema.functions(conn, self.schema)
            self._opened(conn)
        return {"schema": self.schema, "engine": engine, "functions": functions,
                "plpython": "ask" in functions, "notes": notes}

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
        max_cost_usd: float | None = None,
        progress: Progress | None = None,
        notify: Callable[[str], None] = lambda message: None,
    ) -> IngestReport:
        """Add new and changed documents under `paths`; with prune, delete those whose files are gone.

        With a budget (max_cost_usd, else PGASK_MAX_COST_USD) the ingest stops before a batch whose
        estimated cost would exceed it: documents finished so far are stored, the rest are listed in
        `report.remaining`.
        """
        with self._ingest_lock(notify):
            job = self._ingest_job(progress, notify, max_cost_usd)
            try:
                return self._accounted(job, lambda: job.run([Path(p) for p in paths], include=include,
                                                            exclude=exclude, prune=prune))
            finally:
                self._restore_indexes(notify)

    def ingest_documents(
        self,
        documents: Iterable[Document],
        *,
        prune_scope: Sequence[str] = (),
        max_cost_usd: float | None = None,
        progress: Progress | None = None,
        notify: Callable[[str], None] = lambda message: None,
    ) -> IngestReport:
        """Add new and changed documents that are not files (rows, datasets), streamed; see Ingest.run_documents."""
        with self._ingest_lock(notify):
            job = self._ingest_job(progress, notify, max_cost_usd)
            try:
                return self._accounted(job, lambda: job.run_documents(documents, prune_scope=prune_scope))
            finally:
                self._restore_indexes(notify)

    @contextmanager
    def _ingest_lock(self, notify: Callable[[str], None]) -> Iterator[None]:
        """One ingest at a time per knowledge base, across processes and machines.

        A session-level advisory lock: it is released when the holder finishes, or when its
        connection dies with it (a killed ingest never leaves a stale lock).
        """
        key = stable_id(f"pgask-ingest:{self.schema}")
        with self.connection() as conn:
            conn.autocommit = True
            try:
                if not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
                    holder = conn.execute(
                        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                        "AND ((classid::bigint << 32) | objid::bigint) = %s LIMIT 1", (key,)).fetchone()
                    who = f" (server process {holder[0]})" if holder else ""
                    notify(f"waiting for another ingest into this knowledge base (schema {self.schema}){who} to finish")
                    conn.execute("SELECT pg_advisory_lock(%s)", (key,))
                yield
            finally:
                if not conn.closed:
                    conn.execute("SELECT pg_advisory_unlock_all()")
                conn.autocommit = False

    def _accounted(self, job: Ingest, run: Callable[[], IngestReport]) -> IngestReport:
        """Run an ingest and add the tokens and cost of its embedding calls to its report."""
        tokens, spent = self.ledger.tokens("embed_documents"), self.ledger.spent("embed_documents")
        report = run()
        report.tokens = self.ledger.tokens("embed_documents") - tokens
        report.cost_usd = self.ledger.spent("embed_documents") - spent
        if job.budget is not None:
            report.budget = dict(job.budget.as_dict(), exhausted=bool(report.remaining))
        return report

    def _budget(self, max_cost_usd: float | None) -> Budget | None:
        limit = self.settings.max_cost_usd if max_cost_usd is None else max_cost_usd
        if limit is None:
            return None
        if limit < 0:
            raise PgaskError(f"the budget must be zero or more dollars, not {limit}")
        emb, ledger = self.embedder, self.ledger
        start = ledger.spent("embed_documents")

        def estimate(texts: Sequence[str]) -> float:
            return ledger.prices.cost(emb.model, emb.count_tokens(texts)) if self.remote else 0.0

        return Budget(limit, estimate=estimate, spent=lambda: ledger.spent("embed_documents") - start)

    def chunk_files(self, paths: Sequence[str | Path]) -> Iterator[Chunk]:
        """The chunks an ingest of `paths` would embed, without touching the database."""
        return self._pipeline(NoProgress(), lambda todo: None).chunk_files([Path(p) for p in paths])

    def _pipeline(self, progress: Progress, on_plan: Callable[[int | None], None],
                  budget: Budget | None = None) -> Ingest:
        emb = self.embedder
        # an API gets full requests, several at once: a batch is one round of them
        batching = dict(api_batch=emb.batch_size, batch_chunks=emb.batch_size * emb.concurrency) if self.remote else {}
        return Ingest(
            connect=self.connection, schema=self.schema, embedder=emb,
            chunk_tokens=self.settings.chunk_tokens, overlap_tokens=self.settings.overlap_tokens,
            max_file_bytes=self.settings.max_file_mb * 1_000_000, max_text_chars=self.settings.max_text_mb * 1_000_000,
            progress=progress, on_plan=on_plan, budget=budget, vector_type=self._vector_type, **batching,
        )

    def _ingest_job(self, progress: Progress | None, notify: Callable[[str], None],
                    max_cost_usd: float | None = None) -> Ingest:
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

        return self._pipeline(progress or NoProgress(), plan, self._budget(max_cost_usd))

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

    # --- table sources ----------------------------------------------------------------------------

    def _tables(self, source_url: str | None, progress: Progress | None, notify: Callable[[str], None],
                max_cost_usd: float | None = None) -> TableSync:
        def ingest(documents: Iterable[Document], prune_scope: Sequence[str] = ()) -> IngestReport:
            return self.ingest_documents(documents, prune_scope=prune_scope, max_cost_usd=max_cost_usd,
                                         progress=progress, notify=notify)

        offered = [url for url in (source_url, self.settings.source_url) if url]
        return TableSync(self.schema, self.url, self.connection, ingest, source_urls=offered, notify=notify)

    def ingest_table(
        self,
        table: str,
        *,
        id_column: str | None = None,
        text_columns: Sequence[str] = (),
        title_column: str | None = None,
        metadata_columns: Sequence[str] = (),
        where: str | None = None,
        source_url: str | None = None,
        prune: bool = False,
        watch: bool = False,
        max_cost_usd: float | None = None,
        progress: Progress | None = None,
        notify: Callable[[str], None] = lambda message: None,
    ) -> TableReport:
        """Rows of an existing table as documents (source `table:SCHEMA.TABLE/<id>`), remembered for `sync`.

        The table is read from `source_url` (default PGASK_SOURCE_URL, else this knowledge base's
        database). Unchanged rows are not embedded again; with prune, documents of rows that are
        gone are deleted; with watch, a trigger queues changed ids for `sync`. Without id_column
        and text_columns, the definition remembered from an earlier run is used. max_cost_usd
        limits what embedding the rows may cost, as for files.
        """
        self._ensure_schema(create=True)
        spec = TableSpec(table, id_column, tuple(text_columns), title_column, tuple(metadata_columns), where)
        return self._tables(source_url, progress, notify, max_cost_usd).ingest_table(
            spec, source_url=source_url or self.settings.source_url, prune=prune, watch=watch)

    def sync(
        self,
        tables: Sequence[str] = (),
        *,
        full: bool = False,
        source_url: str | None = None,
        progress: Progress | None = None,
        notify: Callable[[str], None] = lambda message: None,
    ) -> list[TableReport]:
        """Bring table sources (all, or those named) up to date with their tables.

        A watched table has only its queued rows re-read (all of it with `full`); any other is
        read whole, embedding only changed rows and deleting the documents of rows that are gone.
        """
        self._require_schema()
        return self._tables(source_url, progress, notify).sync(tables, full=full)

    def unwatch_table(self, table: str, *, source_url: str | None = None) -> str:
        """Drop a table's watch trigger and change queue; its documents stay and `sync` re-reads it whole."""
        self._require_schema()
        return self._tables(source_url, None, lambda message: None).unwatch(table)

    # --- search and answers ------------------------------------------------------------------------

    def _embed_query(self, text: str, calls: list[Call]) -> np.ndarray:
        """The query's vector: a remote model's from the query cache when it was asked before."""
        emb = self.embedder
        if not self.remote:
            return emb.embed_query(text)
        started = time.perf_counter()
        with self.connection() as conn:
            vector = query_cache.get(conn, self.schema, emb.name, text)
        if vector is not None:
            latency_ms = round((time.perf_counter() - started) * 1000, 1)
            calls.append(self.ledger.record(Call(kind="embed_query", provider=emb.provider, model=emb.model,
                                                 latency_ms=latency_ms, cached=True)))
            return vector
        vector = emb.embed([text], kind="embed_query", on_call=lambda call: calls.append(self.ledger.record(call)))[0]
        with self.connection() as conn:
            query_cache.put(conn, self.schema, emb.name, text, vector)
        return vector

    def _embed_texts(self, texts: Sequence[str], calls: list[Call]) -> np.ndarray:
        if not self.remote:
            return self.embedder.embed_documents(texts)
        return self.embedder.embed(texts, kind="embed_documents",
                                   on_call=lambda call: calls.append(self.ledger.record(call)))

    def search(self, query: str, *, k: int | None = None, threshold: float | None = None,
               metric: str = "cosine", mode: str | None = None, filter: dict | None = None,
               source: str | None = None, embedding=None, exact: bool = False, rerank: bool = False) -> list[Hit]:
        """The passages that best match `query`, best first (all k of them unless a threshold is given).

        mode: vector, keyword or hybrid (default: the `search_mode` setting); filter: documents
        whose metadata contains this object; source: documents whose source starts with this;
        embedding: the query's vector, when already computed; exact: compare with every chunk
        instead of using an ANN index (slower, never misses); rerank: re-order the best passages with
        the cross-encoder, as `ask` does (when PGASK_RERANK and its package allow).
        """
        self._require_schema()
        if not query or not query.strip():
            raise PgaskError("the query is empty")
        return self._retrieve(query, embedding=embedding, k=k or self.settings.top_k, threshold=threshold,
                              metric=metric, mode=mode, filter=filter, source=searching.source_prefix(source),
                              exact=exact, rerank=rerank)

    def _retrieve(self, query: str, *, k: int, embedding=None, mode: str | None, calls: list[Call] | None = None,
                  threshold: float | None = None, rerank: bool = False, **options) -> list[Hit]:
        """`k` hits; with `rerank`, the re-ranker's pick of a deeper list (search shows what the SQL
        functions return, answers read the re-ranked passages). `threshold` applies to what is kept."""
        mode = searching.check_mode(mode or self.settings.search_mode)
        if embedding is None:
            embedding = self._embed_query(query, [] if calls is None else calls)
        with self.connection() as conn:
            # the settings win; else search reads what `pgask index` recorded, in the same round trip
            hits = searching.search(conn, self.schema, query, embedding, mode=mode,
                                    k=reranking.candidates(self.settings, k) if rerank else k,
                                    ef_search=self.settings.hnsw_ef_search, probes=self.settings.ivfflat_probes,
                                    **options)
        if rerank:
            hits = reranking.best(self.settings, query, hits, k)
        return hits if threshold is None else [h for h in hits if h.similarity >= threshold]

    def ask(
        self,
        question: str,
        *,
        history: Sequence[Mapping[str, str]] = (),
        k: int | None = None,
        threshold: float | None = None,
        on_token: Callable[[str], None] | None = None,
        on_question: Callable[[str], None] | None = None,
        mode: str | None = None,
        filter: dict | None = None,
        source: str | None = None,
    ) -> answering.Answer:
        """A cited answer: by the chat model when one is configured, else extractive.

        With `history` (earlier {"role", "content"} messages) a follow-up question is first made
        standalone; `on_question` is told the question that is searched for, before the search.
        mode, filter and source choose the passages as for `search`.
        """
        self._require_schema()
        if not question or not question.strip():
            raise PgaskError("the question is empty")
        calls: list[Call] = []
        standalone = self.standalone_question(question, history, calls)
        if on_question:
            on_question(standalone)
        searched = self.search_question(standalone, calls)
        vector = self._embed_query(searched, calls)
        hits = self._retrieve(searched, embedding=vector, k=k or self.settings.top_k, mode=mode, filter=filter,
                              source=searching.source_prefix(source), threshold=threshold, rerank=True)
        result = answering.compose(standalone, vector, hits, embed=lambda texts: self._embed_texts(texts, calls),
                                   settings=self.settings,
                                   model=self.chat_model if self.settings.llm_configured else None,
                                   on_token=on_token, threshold=threshold)
        if result.usage:  # the chat model wrote it, or read the sources and found no answer
            calls.append(self._record_chat(result.usage))
        result.usage = dict(result.usage or {}, **sum_calls(calls))
        return replace(result, question=question, standalone_question=standalone)

    def answerable(self, hits: Sequence[Hit], *, threshold: float | None = None) -> bool:
        """Whether `hits` (what a search for a question found) answer it, or pgask should say the
        documents do not; `threshold`: the least cosine similarity that can (default PGASK_THRESHOLD)."""
        return answerability.answerable(hits, threshold=self.settings.threshold if threshold is None else threshold)

    def search_question(self, question: str, calls: list[Call] | None = None) -> str:
        """What to search for: `question`, or with a chat model configured, its translation into the
        documents' language when it is written in another script (a Korean question, English docs)."""
        language = translation.needs_translation(question, self.settings.text_search_config)
        if language is None or not self.settings.llm_configured:
            return question
        reply, info = self.chat_model.complete(translation.translate_messages(question, language))
        call = self._record_chat(info)
        if calls is not None:
            calls.append(call)
        return translation.clean_translation(reply, question)

    def standalone_question(self, question: str, history: Sequence[Mapping[str, str]] = (),
                            calls: list[Call] | None = None) -> str:
        """`question` rewritten to stand on its own: by the chat model if configured, else by adding the
        conversation's key terms to a follow-up. Unchanged without history."""
        if not conversation.user_questions(history):
            return question
        if not self.settings.llm_configured:
            return conversation.expand_follow_up(question, history)
        reply, info = self.chat_model.complete(conversation.rewrite_messages(question, history))
        call = self._record_chat(info)
        if calls is not None:
            calls.append(call)
        return conversation.clean_rewrite(reply, question)

    def ask_events(self, question: str, **options: Any) -> Iterator[tuple[str, Any]]:
        """`ask` as a stream for front-ends: ("question", standalone question), ("token", text)...,
        then ("answer", Answer). The work runs on its own thread; its error is raised here."""
        events: queue.Queue = queue.Queue()

        def work() -> None:
            try:
                events.put(("answer", self.ask(question, on_question=lambda q: events.put(("question", q)),
                                               on_token=lambda t: events.put(("token", t)), **options)))
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                events.put(("error", exc))

        threading.Thread(target=work, name="pgask-ask", daemon=True).start()
        while True:
            kind, value = events.get()
            if kind == "error":
                raise value
            yield kind, value
            if kind == "answer":
                return

    @cached_property
    def chat_model(self) -> answering.ChatModel:
        return answering.ChatModel.from_settings(self.settings)

    def _record_chat(self, info: dict) -> Call:
        """A chat model call in the usage ledger."""
        return self.ledger.record(Call(kind="chat", provider=answering.ChatModel.provider, model=info["model"],
                                       tokens_in=info["tokens_in"], tokens_out=info["tokens_out"],
                                       latency_ms=info["latency_ms"]))

    # --- documents ------------------------------------------------------------------------------

    def list_documents(self, *, limit: int = 50, offset: int = 0) -> dict:
        """One page of the stored documents, ordered by source, and how many there are in all."""
        if not self._ensure_schema(create=False):
            return {"total": 0, "limit": limit, "offset": offset, "documents": []}
        with self.connection() as conn:
            total, documents = store.list_documents(conn, self.schema, limit=limit, offset=offset)
        return {"total": total, "limit": limit, "offset": offset, "documents": documents}

    def delete_document(self, document_id: int) -> str | None:
        """Delete one document and its chunks (and its file, if it was uploaded); its source, or None if unknown."""
        if not self._ensure_schema(create=False):
            return None
        with self.connection() as conn:
            deleted = store.delete_by_id(conn, self.schema, [document_id])
        if not deleted:
            return None
        path = Path(deleted[0])
        if path.parent == self.uploads_folder:
            path.unlink(missing_ok=True)
        return deleted[0]

    @property
    def uploads_folder(self) -> Path:
        return Path(source_of(self.settings.home / "uploads"))

    def add_upload(self, filename: str, stream: BinaryIO) -> dict:
        """Save a file sent by a client under PGASK_HOME/uploads (its name made safe) and ingest it.

        A second upload of the same name replaces the first. Returns the stored document and
        whether it was "added", "updated" or "unchanged".
        """
        path = uploads.save(self.uploads_folder, filename, stream, max_bytes=self.settings.max_file_mb * 1_000_000)
        report = self.ingest([path])
        if report.failed:
            path.unlink(missing_ok=True)
            raise PgaskError(report.failed[0]["error"])
        with self.connection() as conn:
            document = store.get_document(conn, self.schema, store.document_id(source_of(path)))
        status = "added" if report.added else "updated" if report.updated else "unchanged"
        return {"status": status, **document}

    def health(self) -> dict:
        """The database answers and the embedding model works (loaded by the first check); raises otherwise."""
        with self.pool.connection(timeout=10) as conn:
            conn.execute("SELECT 1")
        emb = self.embedder
        if not self._model_ready:
            emb.embed_query("ready")
            self._model_ready = True
        return {"database": "ok", "model": emb.name, "dim": emb.dim}

    def usage(self, since: date | None = None) -> dict:
        """Model calls, tokens and cost by day, kind, provider and model (see usage.summarise)."""
        if not self._ensure_schema(create=False):
            return summary_of([], since)
        with self.connection() as conn:
            return summarise(conn, self.schema, since)

    def sources(self) -> list[str]:
        """Sources of all stored documents."""
        self._require_schema()
        with self.connection() as conn:
            return store.all_sources(conn, self.schema)

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
            "dim": emb.known_dim if self.remote else emb.dim,  # a remote model is not asked here
            "embedding": emb.describe() if self.remote else {"provider": "local", "model": emb.name},
            # local models: the backend asked for and the one in use (auto: once measured)
            "embed_backend": emb.backend_info() if hasattr(emb, "backend_info") else None,
            "llm": {"configured": s.llm_configured, "model": s.llm_model if s.llm_configured else None,
                    "base_url": s.llm_base_url, "api_key": s.openai_api_key.masked() if s.openai_api_key else None},
        }
        if not s.database_url:
            info["home"] = str(s.home)
        with self.connection() as conn:
            info["engine"] = detect_engine(conn)
            info.update(cluster.describe(conn, self.schema, info["engine"]))
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
        info["table_sources"] = self._tables(None, None, lambda message: None).describe()
        return info
