"""discover -> hash -> diff with the database -> load -> chunk -> embed -> COPY; prune.

Three stages overlap: a reader thread loads and chunks files, the calling thread embeds
batches of chunks, a writer thread stores finished documents (each whole, several per transaction).
Bounded queues between them keep memory flat however large the corpus is.
"""

from __future__ import annotations

import collections
import fnmatch
import functools
import hashlib
import itertools
import json
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np
import psycopg

from ..db import store
from ..errors import PgaskError
from ..wording import plural
from ..usage import Budget
from .chunking import Chunk, chunk_document
from . import loaders
from .loaders import Document, LoadError, load, read_file, supported

# Part of every content hash: a change to how documents are cut re-ingests them.
CHUNKER_VERSION = "1"
SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", ".tox"}


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


def source_of(path: Path) -> str:
    """A document's identity: its absolute path (symlinks kept as named)."""
    return Path(os.path.abspath(path)).as_posix()


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)


def discover(
    paths: Sequence[Path], include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> tuple[list[Path], list[str], list[Path]]:
    """Files to ingest, unsupported files skipped (as sources), and the folders walked.

    Folders are walked without following symlinked folders, so a symlink loop cannot trap us.
    """
    files: list[Path] = []
    skipped: list[str] = []
    roots: list[Path] = []
    seen: set[str] = set()

    def consider(path: Path, rel: str) -> None:
        src = source_of(path)
        if src in seen:
            return
        if include and not _matches(rel, include):
            return
        if exclude and _matches(rel, exclude):
            return
        seen.add(src)
        (files.append(path) if supported(path) else skipped.append(src))

    for root in paths:
        root = Path(root).expanduser()
        if root.is_dir():
            roots.append(root)
            for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
                for name in sorted(filenames):
                    path = Path(dirpath) / name
                    consider(path, path.relative_to(root).as_posix())
        elif root.exists() or root.is_symlink():
            consider(root, root.name)
        else:
            raise PgaskError(f"no such file or directory: {root}")
    return files, skipped, roots


def _filters_named(include: Sequence[str], exclude: Sequence[str]) -> str:
    """' matching --include '*.md', not --exclude 'drafts/*'': the filters that left nothing, for the message."""
    parts = ([f"matching --include {' or '.join(repr(p) for p in include)}"] if include else []) + (
        [f"not matching --exclude {' or '.join(repr(p) for p in exclude)}"] if exclude else [])
    return (" " + " and ".join(parts)) if parts else ""


def _loaded(doc: Document, digest: str) -> tuple[Document, str]:
    return doc, digest


def _batched(items: Iterable, size: int) -> Iterator[tuple]:  # itertools.batched is 3.12+
    iterator = iter(items)
    while batch := tuple(itertools.islice(iterator, size)):
        yield batch


def signature(model: str, chunk_tokens: int, overlap_tokens: int) -> bytes:
    # read when called, so that a new loader version is seen by a process that imported this module
    return (f"pgask-chunker-{CHUNKER_VERSION}|loader-{loaders.LOADER_VERSION}|{model}|{chunk_tokens}|"
            f"{overlap_tokens}").encode()


def content_hash(data: bytes, sig: bytes) -> str:
    return hashlib.sha256(sig + b"\x00" + data).hexdigest()


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


class Embedder(Protocol):
    name: str
    max_tokens: int

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]: ...
    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...


def document_hash(doc: Document, sig: bytes) -> str:
    """Content hash of a document that did not come from a file (table rows, datasets)."""
    payload = json.dumps([doc.title, doc.text, doc.metadata], sort_keys=True, ensure_ascii=False, default=str)
    return content_hash(payload.encode("utf-8"), sig)


@dataclass
class Ingest:
    """One ingest run into a knowledge base: of files (run) or of documents from elsewhere (run_documents)."""

    connect: Callable  # () -> context manager yielding a psycopg connection
    schema: str
    embedder: Embedder
    chunk_tokens: int = 200
    overlap_tokens: int = 32
    max_file_bytes: int = 100_000_000
    max_text_chars: int = 20_000_000
    # chunks per embedding call: the model sorts them by length into batches, so a long call
    # pads little and keeps the model busy
    batch_chunks: int = 512
    # A remote API's inputs per request. When set, batches wait until full and are cut at a
    # multiple of it, so that only the last request of a run is partly filled.
    api_batch: int | None = None
    budget: Budget | None = None  # checked before each batch is sent
    vector_type: str = "vector"  # the embedding column's type (halfvec above 2,000 dimensions)
    queue_documents: int = 64  # documents in flight between stages (back-pressure)
    write_documents: int = 64  # documents stored per transaction at most
    diff_batch: int = 500  # documents looked up at once when streaming documents
    progress: Progress = field(default_factory=NoProgress)
    on_plan: Callable[[int | None], None] = lambda todo: None  # told how many documents will be (re)embedded

    @property
    def signature(self) -> bytes:
        return signature(self.embedder.name, self.chunk_tokens, self.overlap_tokens)

    def run(
        self,
        paths: Sequence[Path],
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        prune: bool = False,
    ) -> IngestReport:
        """Ingest files and folders; unchanged files (same content hash) cost one read and no model time."""
        started = time.perf_counter()
        report = IngestReport()
        files, report.skipped, roots = discover(paths, include, exclude)
        if not files and not report.skipped and not prune:
            where = ", ".join(str(p) for p in paths)
            raise PgaskError(f"no documents found in {where}{_filters_named(include, exclude)}")
        if not files and not prune:
            raise PgaskError(
                f"no supported documents in {', '.join(str(p) for p in paths)}{_filters_named(include, exclude)} "
                f"({plural(len(report.skipped), 'other file')}; pgask reads .md .txt .rst .html .pdf)"
            )
        sig = self.signature

        hashes: dict[Path, str] = {}
        for path in files:
            try:
                hashes[path] = content_hash(read_file(path, self.max_file_bytes), sig)
            except LoadError as exc:
                report.failed.append({"source": source_of(path), "error": str(exc)})
        with self.connect() as conn:
            stored = store.existing_hashes(conn, self.schema, [source_of(p) for p in hashes])
        todo = [p for p in hashes if stored.get(source_of(p)) != hashes[p]]
        report.unchanged = len(hashes) - len(todo)

        def load_file(path: Path) -> tuple[Document, str]:
            data = read_file(path, self.max_file_bytes)
            # hash what was actually read: a file that changed since discovery is stored as read
            return load(path, data, source_of(path), max_text_chars=self.max_text_chars), content_hash(data, sig)

        self.on_plan(len(todo))
        self.progress.start(len(todo))
        pending = (Pending(source_of(p), source_of(p) in stored, functools.partial(load_file, p)) for p in todo)
        self._interruptible(pending, report)

        if prune:
            present = {source_of(p) for p in files} | set(report.skipped)
            scope = [source_of(p) for p in roots] + [source_of(Path(p)) for p in paths if not Path(p).is_dir()]
            self._prune(scope, present, report)
        report.seconds = time.perf_counter() - started
        return report

    def run_documents(self, documents: Iterable[Document], *, prune_scope: Sequence[str] = ()) -> IngestReport:
        """Ingest documents that are not files (table rows, datasets), streamed in bounded memory.

        Each document's `source` is its identity. With `prune_scope` (source prefixes such as
        "table:public.tickets"), stored documents under it that were not in `documents` are deleted.
        """
        started = time.perf_counter()
        report = IngestReport()
        sig = self.signature
        seen: set[str] = set()

        def pending() -> Iterator[Pending]:
            for batch in _batched(documents, self.diff_batch):
                hashes = {doc.source: document_hash(doc, sig) for doc in batch}
                seen.update(hashes)
                with self.connect() as conn:
                    stored = store.existing_hashes(conn, self.schema, list(hashes))
                for doc in batch:
                    if stored.get(doc.source) == hashes[doc.source]:
                        report.unchanged += 1
                    else:
                        yield Pending(doc.source, doc.source in stored, functools.partial(_loaded, doc, hashes[doc.source]))

        self.on_plan(None)
        self.progress.start(None)
        self._interruptible(pending(), report)
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

    # --- the three overlapping stages -------------------------------------------------------

    def _read(self, pending: Iterable[Pending], out: queue.Queue, report: IngestReport,
              stop: threading.Event, out_of_budget: threading.Event) -> None:
        pending = iter(pending)
        try:
            for item in pending:
                if stop.is_set():
                    if out_of_budget.is_set():  # what was never read is part of what remains
                        report.remaining.append(item.source)
                        report.remaining.extend(later.source for later in pending)
                    break
                try:
                    doc, digest = item.load()
                    chunks = self.chunk(doc)
                except LoadError as exc:
                    report.failed.append({"source": item.source, "error": str(exc)})
                    self.progress.advance(1, 0)
                    continue
                out.put(Prepared(item.source, doc.title, digest, doc.metadata, chunks, item.exists))
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            out.put(exc)
        finally:
            out.put(None)

    def _store(self, conn: psycopg.Connection, docs: list, report: IngestReport) -> None:
        """Store documents in one transaction; if the database refuses one, store them one by one
        so that only the unstorable document fails (its transaction rolled back) and the rest go on."""
        try:
            store.replace_documents(conn, self.schema, [self._stored(doc) for doc in docs], self.vector_type)
        except psycopg.DataError as exc:
            if len(docs) > 1:
                for doc in docs:
                    self._store(conn, [doc], report)
                return
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            report.failed.append({"source": docs[0].source, "error": f"the database refused it: {first}"})
            self.progress.advance(1, 0)
            return
        for doc in docs:
            if doc.exists:
                report.updated += 1
            else:
                report.added += 1
        chunks = sum(len(doc.chunks) for doc in docs)
        report.chunks += chunks
        self.progress.advance(len(docs), chunks)

    @staticmethod
    def _stored(doc: Prepared) -> store.StoredDocument:
        return store.StoredDocument(doc.source, doc.title, doc.content_hash, doc.metadata,
                                    [store.StoredChunk(c.ordinal, c.heading, c.content, c.token_count, v)
                                     for c, v in zip(doc.chunks, doc.vectors)])

    def _write(self, inbox: queue.Queue, report: IngestReport, errors: list) -> None:
        done = False  # the end marker was taken: nothing more will come
        try:
            with self.connect() as conn:
                while not done:
                    # everything waiting goes in one transaction: one commit for many documents
                    docs = [inbox.get()]
                    while len(docs) < self.write_documents and not inbox.empty():
                        docs.append(inbox.get())
                    if None in docs:
                        done, docs = True, docs[: docs.index(None)]
                    if docs:
                        self._store(conn, docs, report)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            while not done and inbox.get() is not None:  # drain so the embed stage never blocks on a dead writer
                pass

    def _batch_size(self, queued: int, done: bool, idle: bool) -> int:
        """How many queued chunks to embed now (0: wait for more)."""
        if done:
            return queued
        if self.api_batch is None:
            # a local model: embed when the batch is full, or when the reader has nothing more right now
            return queued if queued >= self.batch_chunks or idle else 0
        return queued - queued % self.api_batch if queued >= self.batch_chunks else 0

    def _interruptible(self, pending: Iterable[Pending], report: IngestReport) -> None:
        """_load_embed_store; a Ctrl-C becomes IngestInterrupted, which carries what was stored by then."""
        try:
            self._load_embed_store(pending, report)
        except KeyboardInterrupt as exc:
            raise IngestInterrupted(report) from exc

    def _load_embed_store(self, pending: Iterable[Pending], report: IngestReport) -> None:
        loaded: queue.Queue = queue.Queue(maxsize=self.queue_documents)
        embedded: queue.Queue = queue.Queue(maxsize=self.queue_documents)
        stop = threading.Event()
        out_of_budget = threading.Event()
        errors: list[BaseException] = []
        reader = threading.Thread(target=self._read, args=(pending, loaded, report, stop, out_of_budget),
                                  name="pgask-read", daemon=True)
        writer = threading.Thread(target=self._write, args=(embedded, report, errors),
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
                    doc.vectors = np.vstack(doc.parts) if doc.parts else np.zeros((0, 1), np.float32)
                    embedded.put(doc)
                if errors:
                    break
        finally:
            stop.set()
            embedded.put(None)
            writer.join()
            left = [doc.source for doc in waiting]
            while reader.is_alive() or not loaded.empty():  # unblock a reader waiting on a full queue
                try:
                    item = loaded.get(timeout=0.1)
                except queue.Empty:
                    continue
                if isinstance(item, Prepared):
                    left.append(item.source)
            if out_of_budget.is_set():
                report.remaining[:0] = left  # before the sources the reader never reached
        if errors:
            raise errors[0]

    def _embed(self, queued: list[tuple[Prepared, str]]) -> None:
        vectors = self.embedder.embed_documents([text for _, text in queued])
        at = 0
        for _, group in itertools.groupby(queued, key=lambda pair: id(pair[0])):
            pairs = list(group)
            doc, n = pairs[0][0], len(pairs)
            doc.parts.append(vectors[at: at + n])
            doc.embedded += n
            at += n
