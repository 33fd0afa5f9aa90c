"""One ingest session into a knowledge base: the ingest lock taken once, the ANN indexes planned
from the session's own counts (dropped before a bulk load), the recorded indexes restored on exit,
and the tokens and cost of each batch's embedding calls added to its report."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Iterable, Sequence

from psycopg import sql

from ..db.locks import ingest_lock
from ..errors import PgaskError
from ..usage import Budget
from .loaders import Document
from .pipeline import Ingest, IngestReport, NoProgress, Progress
from .stages import Flow


def pipeline(kb, progress: Progress | None = None, budget: Budget | None = None) -> Ingest:
    """The pipeline that ingests into `kb` (a KnowledgeBase) with its settings and embedder."""
    emb, s = kb.embedder, kb.settings
    # an API gets full requests, several at once: a batch is one round of them
    requests = emb.requests
    flow = Flow(api_batch=requests[0], batch_chunks=requests[0] * requests[1]) if requests else Flow()
    return Ingest(
        connect=kb.connection, schema=kb.schema, embedder=emb,
        chunk_tokens=s.chunk_tokens, overlap_tokens=s.overlap_tokens,
        max_file_bytes=s.max_file_mb * 1_000_000, max_text_chars=s.max_text_mb * 1_000_000,
        flow=flow, budget=budget, vector_type=kb.knowledge_schema.vector_type, progress=progress or NoProgress(),
    )


class IngestSession:
    """`with IngestSession(kb, ...) as session: session.add_files(...); session.add_documents(...)`.

    With a budget (max_cost_usd, else PGASK_MAX_COST_USD), each add stops before a batch whose
    estimated cost would exceed it: documents finished so far are stored, the rest are listed in
    `report.remaining`.
    """

    def __init__(self, kb, *, progress: Progress | None = None,
                 notify: Callable[[str], None] = lambda message: None, max_cost_usd: float | None = None):
        self.kb, self.progress, self.notify, self.max_cost_usd = kb, progress, notify, max_cost_usd
        self._exit = ExitStack()
        self.stored_documents = 0
        self.indexed: list[dict] = []

    def __enter__(self) -> "IngestSession":
        kb = self.kb
        with ExitStack() as opening:
            opening.enter_context(ingest_lock(kb.connection, kb.schema, self.notify))
            kb.knowledge_schema.ensure(create=True)
            with kb.connection() as conn:
                self.stored_documents = conn.execute(
                    sql.SQL("SELECT count(*) FROM {}.documents").format(sql.Identifier(kb.schema))).fetchone()[0]
                self.indexed = kb.indexes.present(conn)
            self._exit = opening.pop_all()
        self._exit.callback(kb.indexes.restore, self.notify)  # runs first: the lock is held while it builds
        return self

    def __exit__(self, *exc) -> None:
        self._exit.close()

    def add_files(self, paths: Sequence[str | Path], *, include: Sequence[str] = (), exclude: Sequence[str] = (),
                  prune: bool = False) -> IngestReport:
        """Add new and changed documents under `paths`; with prune, delete those whose files are gone."""
        job = self._job()
        plan = job.plan_files([Path(p) for p in paths], include=include, exclude=exclude, prune=prune)
        self._plan(len(plan.todo))
        return self._accounted(job, lambda: job.run_plan(plan))

    def add_documents(self, documents: Iterable[Document], *, prune_scope: Sequence[str] = ()) -> IngestReport:
        """Add new and changed documents that are not files (rows, datasets), streamed; see Ingest.run_documents."""
        job = self._job()
        return self._accounted(job, lambda: job.run_documents(documents, prune_scope=prune_scope))

    def _plan(self, todo: int) -> None:
        if self.kb.indexes.before_load(todo, stored_documents=self.stored_documents, present=self.indexed,
                                       notify=self.notify):
            self.indexed = []  # dropped: rebuilt on exit

    def _job(self) -> Ingest:
        return pipeline(self.kb, self.progress, self._budget())

    def _accounted(self, job: Ingest, run: Callable[[], IngestReport]) -> IngestReport:
        """Run an ingest and add the tokens and cost of its embedding calls to its report."""
        ledger = self.kb.ledger
        tokens, spent = ledger.tokens("embed_documents"), ledger.spent("embed_documents")
        report = run()
        report.tokens = ledger.tokens("embed_documents") - tokens
        report.cost_usd = ledger.spent("embed_documents") - spent
        if job.budget is not None:
            report.budget = dict(job.budget.as_dict(), exhausted=bool(report.remaining))
        self.stored_documents += report.added - report.deleted  # what the next add plans from
        return report

    def _budget(self) -> Budget | None:
        """A budget per add, as each ingest had one before there were sessions."""
        kb = self.kb
        limit = kb.settings.max_cost_usd if self.max_cost_usd is None else self.max_cost_usd
        if limit is None:
            return None
        if limit < 0:
            raise PgaskError(f"the budget must be zero or more dollars, not {limit}")
        emb, ledger = kb.embedder, kb.ledger
        start = ledger.spent("embed_documents")
        priced = emb.describe()["model"]

        def estimate(texts: Sequence[str]) -> float:
            return ledger.prices.cost(priced, emb.count_tokens(texts))  # 0 tokens for a model not billed

        return Budget(limit, estimate=estimate, spent=lambda: ledger.spent("embed_documents") - start)
