"""discover -> hash -> diff with the database -> load -> chunk -> embed -> COPY; prune.

An ingest of files is planned first (discovery.py: which files, which are new or changed), so that
whoever runs it (ingest/session.py) can decide about the ANN indexes before any model time; the
planned documents then go through the three overlapping stages (stages.py).
"""

from __future__ import annotations

import functools
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol, Sequence

from ..db import store
from ..embed import Embedder
from ..usage import Budget
from .chunking import Chunk, chunk_document
from .discovery import FilePlan, content_hash, discover, document_hash, plan_files, signature, source_of
from .loaders import Document, LoadError, load, read_file
from .stages import Flow, Pending, Stages


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    failed: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # files of unsupported types
    chunks: int = 0
    seconds: float = 0.0
    tokens: int = 0  # billed by an embeddings API (0 for a local model)
    cost_usd: float = 0.0
    budget: dict | None = None  # the spending limit, when one was set: max_cost_usd, spent_usd, exhausted
    remaining: list[str] = field(default_factory=list)  # sources left unstored when the budget ran out

    def as_dict(self) -> dict:
        return {
            "added": self.added, "updated": self.updated, "unchanged": self.unchanged,
            "deleted": self.deleted, "failed": self.failed, "skipped": self.skipped,
            "chunks": self.chunks, "seconds": round(self.seconds, 3),
            "tokens": self.tokens, "cost_usd": round(self.cost_usd, 8), "budget": self.budget,
            "remaining": self.remaining,
        }

    def add(self, other: "IngestReport") -> "IngestReport":
        """This report with `other`'s counts added (one run made of several batches)."""
        self.added += other.added
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.deleted += other.deleted
        self.failed += other.failed
        self.skipped += other.skipped
        self.chunks += other.chunks
        self.seconds += other.seconds
        self.tokens += other.tokens
        self.cost_usd += other.cost_usd
        self.budget = other.budget or self.budget
        self.remaining += other.remaining
        return self


class IngestInterrupted(KeyboardInterrupt):
    """Ctrl-C during an ingest, once every document finished by then is stored (each one whole).

    `report` counts them (added + updated); the documents not reached are simply not stored, so
    the same command run again stores the rest and skips these as unchanged."""

    def __init__(self, report: "IngestReport") -> None:
        super().__init__("interrupted")
        self.report = report

    @property
    def stored(self) -> int:
        return self.report.added + self.report.updated


class Progress(Protocol):
    def start(self, total_files: int | None) -> None: ...
    def advance(self, files: int, chunks: int) -> None: ...


class NoProgress:
    def start(self, total_files: int | None) -> None:
        pass

    def advance(self, files: int, chunks: int) -> None:
        pass


def _loaded(doc: Document, digest: str) -> tuple[Document, str]:
    return doc, digest


def _batched(items: Iterable, size: int) -> Iterator[tuple]:  # itertools.batched is 3.12+
    iterator = iter(items)
    while batch := tuple(itertools.islice(iterator, size)):
        yield batch


@dataclass
class Ingest:
    """Ingest runs into a knowledge base: of files (plan_files, then run_plan; or run) or of documents
    from elsewhere (run_documents)."""

    connect: Callable  # () -> context manager yielding a psycopg connection
    schema: str
    embedder: Embedder
    chunk_tokens: int = 200
    overlap_tokens: int = 32
    max_file_bytes: int = 100_000_000
    max_text_chars: int = 20_000_000
    flow: Flow = field(default_factory=Flow)
    budget: Budget | None = None  # checked before each batch is sent
    vector_type: str = "vector"  # the embedding column's type (halfvec above 2,000 dimensions)
    progress: Progress = field(default_factory=NoProgress)

    @property
    def signature(self) -> bytes:
        return signature(self.embedder.name, self.chunk_tokens, self.overlap_tokens)

    def plan_files(self, paths: Sequence[Path], *, include: Sequence[str] = (), exclude: Sequence[str] = (),
                   prune: bool = False) -> FilePlan:
        """Which files under `paths` are new or changed (nothing is loaded or embedded yet)."""
        return plan_files(paths, include=include, exclude=exclude, prune=prune, sig=self.signature,
                          max_file_bytes=self.max_file_bytes, connect=self.connect, schema=self.schema)

    def run_plan(self, plan: FilePlan) -> IngestReport:
        """Load, chunk, embed and store the planned files; with the plan's prune, delete documents of files gone."""
        report = IngestReport(unchanged=plan.unchanged, failed=list(plan.failed), skipped=list(plan.skipped))
        sig = self.signature

        def load_file(path: Path) -> tuple[Document, str]:
            data = read_file(path, self.max_file_bytes)
            # hash what was actually read: a file that changed since discovery is stored as read
            return load(path, data, source_of(path), max_text_chars=self.max_text_chars), content_hash(data, sig)

        self.progress.start(len(plan.todo))
        pending = (Pending(source_of(p), source_of(p) in plan.stored, functools.partial(load_file, p))
                   for p in plan.todo)
        self._stages(pending, report)
        if plan.prune:
            present = {source_of(p) for p in plan.files} | set(report.skipped)
            scope = [source_of(p) for p in plan.roots] + [source_of(Path(p)) for p in plan.paths if not Path(p).is_dir()]
            self._prune(scope, present, report)
        report.seconds = time.perf_counter() - plan.started
        return report

    def run(self, paths: Sequence[Path], *, include: Sequence[str] = (), exclude: Sequence[str] = (),
            prune: bool = False) -> IngestReport:
        """Ingest files and folders; unchanged files (same content hash) cost one read and no model time."""
        return self.run_plan(self.plan_files(paths, include=include, exclude=exclude, prune=prune))

    def run_documents(self, documents: Iterable[Document], *, prune_scope: Sequence[str] = ()) -> IngestReport:
        """Ingest documents that are not files (table rows, datasets), streamed in bounded memory.

        Each document's `source` is its identity. With `prune_scope` (source prefixes such as
        "table:public.tickets"), stored documents under it that were not in `documents` are deleted.
        """
        started = time.perf_counter()
        report = IngestReport()
        sig = self.signature
        seen: set[str] = set()
        unchanged = 0

        def pending() -> Iterator[Pending]:
            nonlocal unchanged
            for batch in _batched(documents, self.flow.diff_batch):
                hashes = {doc.source: document_hash(doc, sig) for doc in batch}
                seen.update(hashes)
                with self.connect() as conn:
                    stored = store.existing_hashes(conn, self.schema, list(hashes))
                for doc in batch:
                    if stored.get(doc.source) == hashes[doc.source]:
                        unchanged += 1
                    else:
                        yield Pending(doc.source, doc.source in stored, functools.partial(_loaded, doc, hashes[doc.source]))

        self.progress.start(None)
        try:
            self._stages(pending(), report)
        finally:
            report.unchanged += unchanged  # counted by the reader thread, written here
        if prune_scope:
            self._prune(prune_scope, seen, report)
        report.seconds = time.perf_counter() - started
        return report

    def chunk(self, doc: Document) -> list[Chunk]:
        return list(chunk_document(
            doc, self.embedder.token_offsets, max_tokens=self.embedder.max_tokens,
            chunk_tokens=self.chunk_tokens, overlap_tokens=self.overlap_tokens,
        ))

    def chunk_files(self, paths: Sequence[Path]) -> Iterator[Chunk]:
        """The chunks of the files under `paths`, as an ingest would cut them (nothing is stored)."""
        files, _, _ = discover(paths)
        for path in files:
            try:
                yield from self.chunk(load(path, read_file(path, self.max_file_bytes), source_of(path)))
            except LoadError:
                continue

    def _prune(self, scope: Sequence[str], present: set[str], report: IngestReport) -> None:
        with self.connect() as conn:
            gone = [s for s in store.sources_under(conn, self.schema, scope) if s not in present]
            report.deleted = store.delete_documents(conn, self.schema, gone)

    def _stages(self, pending: Iterable[Pending], report: IngestReport) -> None:
        """The three stages; a Ctrl-C becomes IngestInterrupted, which carries what was stored by then."""
        stages = Stages(connect=self.connect, schema=self.schema, vector_type=self.vector_type, flow=self.flow,
                        embed=self.embedder.embed_documents, chunk=self.chunk, budget=self.budget,
                        progress=self.progress, new_report=IngestReport)
        try:
            stages.run(pending, report)
        except KeyboardInterrupt as exc:
            raise IngestInterrupted(report) from exc
