"""The three overlapping stages of an ingest: a reader thread loads and chunks documents, the
calling thread embeds batches of chunks, a writer thread stores finished documents (each whole,
several per transaction). Bounded queues between them keep memory flat however large the corpus is.

Only the calling thread writes the run's IngestReport: the reader hands its failures (and, when
the budget stops the run, the sources it never read) down its queue, and the writer counts what it
stored in a tally of its own that is added to the report once it has finished.
"""

from __future__ import annotations

import collections
import itertools
import queue
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

import psycopg

from ..db import store
from ..usage import Budget
from .chunking import Chunk
from .loaders import Document, LoadError

if TYPE_CHECKING:
    import numpy as np

    from .pipeline import IngestReport, Progress


@dataclass
class Pending:
    """A new or changed document waiting to be loaded: `load` returns it with the hash of what it read."""

    source: str
    exists: bool
    load: Callable[[], tuple[Document, str]]


@dataclass
class Prepared:
    """A document read, chunked and (after the embed stage) embedded, ready to store."""

    source: str
    title: str
    content_hash: str
    metadata: dict
    chunks: list[Chunk]
    exists: bool
    vectors: np.ndarray | None = None
    parts: list[np.ndarray] = field(default_factory=list)  # vectors computed so far, in chunk order
    embedded: int = 0  # chunks with a vector

    @property
    def complete(self) -> bool:
        return self.embedded == len(self.chunks)


@dataclass
class Failed:
    """A document the reader could not load (sent down the queue to the thread that keeps the report)."""

    source: str
    error: str


@dataclass
class Unread:
    """The sources the reader did not reach before the budget stopped the run."""

    sources: list[str]


@dataclass
class Flow:
    """How work moves between the stages."""

    # chunks per embedding call: the model sorts them by length into batches, so a long call
    # pads little and keeps the model busy
    batch_chunks: int = 512
    # A remote API's inputs per request. When set, batches wait until full and are cut at a
    # multiple of it, so that only the last request of a run is partly filled.
    api_batch: int | None = None
    queue_documents: int = 64  # documents in flight between stages (back-pressure)
    write_documents: int = 64  # documents stored per transaction at most
    diff_batch: int = 500  # documents looked up at once when streaming documents


class Stages:
    def __init__(self, *, connect: Callable, schema: str, vector_type: str, flow: Flow,
                 embed: Callable, chunk: Callable[[Document], list[Chunk]], budget: Budget | None,
                 progress: "Progress", new_report: Callable[[], "IngestReport"]):
        self.connect, self.schema, self.vector_type, self.flow = connect, schema, vector_type, flow
        self.embed_texts, self.chunk, self.budget, self.progress = embed, chunk, budget, progress
        self.new_report = new_report

    def run(self, pending: Iterable[Pending], report: "IngestReport") -> None:
        flow = self.flow
        loaded: queue.Queue = queue.Queue(maxsize=flow.queue_documents)
        embedded: queue.Queue = queue.Queue(maxsize=flow.queue_documents)
        stop = threading.Event()
        out_of_budget = threading.Event()
        errors: list[BaseException] = []
        written = self.new_report()  # the writer's own tally
        reader = threading.Thread(target=self._read, args=(pending, loaded, stop, out_of_budget),
                                  name="pgask-read", daemon=True)
        writer = threading.Thread(target=self._write, args=(embedded, written, errors),
                                  name="pgask-write", daemon=True)
        reader.start()
        writer.start()
        waiting: collections.deque[Prepared] = collections.deque()  # documents in order, not yet stored
        queued: list[tuple[Prepared, str]] = []  # chunks without a vector, with their documents
        try:
            done = False
            while not done:
                item = loaded.get()
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, Failed):
                    report.failed.append({"source": item.source, "error": item.error})
                    continue
                if item is None:
                    done = True
                else:
                    waiting.append(item)
                    queued.extend((item, chunk.embed_text) for chunk in item.chunks)
                size = self._batch_size(len(queued), done, loaded.empty())
                if size:
                    if self.budget is not None and not self.budget.allows([text for _, text in queued[:size]]):
                        out_of_budget.set()
                        break
                    self._embed(queued[:size])
                    del queued[:size]
                while waiting and waiting[0].complete:
                    doc = waiting.popleft()
                    import numpy as np

                    doc.vectors = np.vstack(doc.parts) if doc.parts else np.zeros((0, 1), np.float32)
                    embedded.put(doc)
                if errors:
                    break
        finally:
            stop.set()
            embedded.put(None)
            writer.join()
            report.add(written)
            left = [doc.source for doc in waiting]
            unread: list[str] = []
            while reader.is_alive() or not loaded.empty():  # unblock a reader waiting on a full queue
                try:
                    item = loaded.get(timeout=0.1)
                except queue.Empty:
                    continue
                if isinstance(item, Prepared):
                    left.append(item.source)
                elif isinstance(item, Failed):
                    report.failed.append({"source": item.source, "error": item.error})
                elif isinstance(item, Unread):
                    unread.extend(item.sources)
            if out_of_budget.is_set():
                # the documents read but not stored, then the sources the reader never reached
                report.remaining[:0] = left + unread
        if errors:
            raise errors[0]

    def _read(self, pending: Iterable[Pending], out: queue.Queue, stop: threading.Event,
              out_of_budget: threading.Event) -> None:
        pending = iter(pending)
        try:
            for item in pending:
                if stop.is_set():
                    if out_of_budget.is_set():  # what was never read is part of what remains
                        out.put(Unread([item.source] + [later.source for later in pending]))
                    break
                try:
                    doc, digest = item.load()
                    chunks = self.chunk(doc)
                except LoadError as exc:
                    out.put(Failed(item.source, str(exc)))
                    self.progress.advance(1, 0)
                    continue
                out.put(Prepared(item.source, doc.title, digest, doc.metadata, chunks, item.exists))
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            out.put(exc)
        finally:
            out.put(None)

    def _store(self, conn: psycopg.Connection, docs: list, written: "IngestReport") -> None:
        """Store documents in one transaction; if the database refuses one, store them one by one
        so that only the unstorable document fails (its transaction rolled back) and the rest go on."""
        try:
            store.replace_documents(conn, self.schema, [self._stored(doc) for doc in docs], self.vector_type)
        except psycopg.DataError as exc:
            if len(docs) > 1:
                for doc in docs:
                    self._store(conn, [doc], written)
                return
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            written.failed.append({"source": docs[0].source, "error": f"the database refused it: {first}"})
            self.progress.advance(1, 0)
            return
        for doc in docs:
            if doc.exists:
                written.updated += 1
            else:
                written.added += 1
        chunks = sum(len(doc.chunks) for doc in docs)
        written.chunks += chunks
        self.progress.advance(len(docs), chunks)

    @staticmethod
    def _stored(doc: Prepared) -> store.StoredDocument:
        return store.StoredDocument(doc.source, doc.title, doc.content_hash, doc.metadata,
                                    [store.StoredChunk(c.ordinal, c.heading, c.content, c.token_count, v)
                                     for c, v in zip(doc.chunks, doc.vectors)])

    def _write(self, inbox: queue.Queue, written: "IngestReport", errors: list) -> None:
        done = False  # the end marker was taken: nothing more will come
        try:
            with self.connect() as conn:
                while not done:
                    # everything waiting goes in one transaction: one commit for many documents
                    docs = [inbox.get()]
                    while len(docs) < self.flow.write_documents and not inbox.empty():
                        docs.append(inbox.get())
                    if None in docs:
                        done, docs = True, docs[: docs.index(None)]
                    if docs:
                        self._store(conn, docs, written)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            while not done and inbox.get() is not None:  # drain so the embed stage never blocks on a dead writer
                pass

    def _batch_size(self, queued: int, done: bool, idle: bool) -> int:
        """How many queued chunks to embed now (0: wait for more)."""
        if done:
            return queued
        if self.flow.api_batch is None:
            # a local model: embed when the batch is full, or when the reader has nothing more right now
            return queued if queued >= self.flow.batch_chunks or idle else 0
        return queued - queued % self.flow.api_batch if queued >= self.flow.batch_chunks else 0

    def _embed(self, queued: list[tuple[Prepared, str]]) -> None:
        vectors = self.embed_texts([text for _, text in queued])
        at = 0
        for _, group in itertools.groupby(queued, key=lambda pair: id(pair[0])):
            pairs = list(group)
            doc, n = pairs[0][0], len(pairs)
            doc.parts.append(vectors[at: at + n])
            doc.embedded += n
            at += n
