"""discover -> hash -> diff with the database -> load -> chunk -> embed -> COPY; prune.

Three stages overlap: a reader thread loads and chunks files, the calling thread embeds
batches of chunks, a writer thread stores each finished document in its own transaction.
Bounded queues between them keep memory flat however large the corpus is.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol, Sequence

import numpy as np

from ..db import store
from ..errors import PgaskError
from .chunking import Chunk, chunk_document
from .loaders import LoadError, load, read_file, supported

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

    def as_dict(self) -> dict:
        return {
            "added": self.added, "updated": self.updated, "unchanged": self.unchanged,
            "deleted": self.deleted, "failed": self.failed, "skipped": self.skipped,
            "chunks": self.chunks, "seconds": round(self.seconds, 3),
        }


class Progress(Protocol):
    def start(self, total_files: int) -> None: ...
    def advance(self, files: int, chunks: int) -> None: ...


class NoProgress:
    def start(self, total_files: int) -> None:
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


def signature(model: str, chunk_tokens: int, overlap_tokens: int) -> bytes:
    return f"pgask-chunker-{CHUNKER_VERSION}|{model}|{chunk_tokens}|{overlap_tokens}".encode()


def content_hash(data: bytes, sig: bytes) -> str:
    return hashlib.sha256(sig + b"\x00" + data).hexdigest()


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


class Embedder(Protocol):
    name: str
    max_tokens: int

    def token_offsets(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]: ...
    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class Ingest:
    """One ingest run into a knowledge base."""

    connect: Callable  # () -> context manager yielding a psycopg connection
    schema: str
    embedder: Embedder
    chunk_tokens: int = 200
    overlap_tokens: int = 32
    max_file_bytes: int = 100_000_000
    batch_chunks: int = 256  # chunks per embedding call: long enough to keep the model busy
    queue_documents: int = 64  # documents in flight between stages (back-pressure)
    progress: Progress = field(default_factory=NoProgress)
    on_plan: Callable[[int], None] = lambda todo: None  # told how many documents will be (re)embedded

    def run(
        self,
        paths: Sequence[Path],
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        prune: bool = False,
    ) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport()
        files, report.skipped, roots = discover(paths, include, exclude)
        if not files and not report.skipped and not prune:
            where = ", ".join(str(p) for p in paths)
            raise PgaskError(f"no documents found in {where}")
        if not files and not prune:
            raise PgaskError(
                f"no supported documents in {', '.join(str(p) for p in paths)} "
                f"({len(report.skipped)} other files; pgask reads .md .txt .rst .html .pdf)"
            )
        sig = signature(self.embedder.name, self.chunk_tokens, self.overlap_tokens)

        # hash everything first: unchanged documents cost one read and no model time
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

        self.on_plan(len(todo))
        self.progress.start(len(todo))
        if todo:
            self._load_embed_store(todo, stored, sig, report)

        if prune:
            present = {source_of(p) for p in files} | set(report.skipped)
            targets = [source_of(p) for p in roots] + [source_of(Path(p)) for p in paths if not Path(p).is_dir()]
            with self.connect() as conn:
                gone = [s for s in store.sources_under(conn, self.schema, targets) if s not in present]
                report.deleted = store.delete_documents(conn, self.schema, gone)
        report.seconds = time.perf_counter() - started
        return report

    # --- the three overlapping stages -------------------------------------------------------

    def _read(self, paths: Iterable[Path], sig: bytes, stored: dict, out: queue.Queue, report: IngestReport,
              stop: threading.Event) -> None:
        try:
            for path in paths:
                if stop.is_set():
                    break
                source = source_of(path)
                try:
                    data = read_file(path, self.max_file_bytes)
                    doc = load(path, data, source)
                    chunks = list(chunk_document(
                        doc, self.embedder.token_offsets, max_tokens=self.embedder.max_tokens,
                        chunk_tokens=self.chunk_tokens, overlap_tokens=self.overlap_tokens,
                    ))
                except LoadError as exc:
                    report.failed.append({"source": source, "error": str(exc)})
                    self.progress.advance(1, 0)
                    continue
                # hash what was actually read: a file that changed since discovery is stored as read
                out.put(Prepared(source, doc.title, content_hash(data, sig), doc.metadata, chunks, source in stored))
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            out.put(exc)
        finally:
            out.put(None)

    def _write(self, inbox: queue.Queue, report: IngestReport, errors: list) -> None:
        try:
            with self.connect() as conn:
                while (doc := inbox.get()) is not None:
                    store.replace_document(
                        conn, self.schema, source=doc.source, title=doc.title, content_hash=doc.content_hash,
                        metadata=doc.metadata,
                        chunks=[store.StoredChunk(c.ordinal, c.heading, c.content, c.token_count, v)
                                for c, v in zip(doc.chunks, doc.vectors)],
                    )
                    if doc.exists:
                        report.updated += 1
                    else:
                        report.added += 1
                    report.chunks += len(doc.chunks)
                    self.progress.advance(1, len(doc.chunks))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
            while inbox.get() is not None:  # drain so the embed stage never blocks on a dead writer
                pass

    def _load_embed_store(self, todo: list[Path], stored: dict, sig: bytes, report: IngestReport) -> None:
        loaded: queue.Queue = queue.Queue(maxsize=self.queue_documents)
        embedded: queue.Queue = queue.Queue(maxsize=self.queue_documents)
        stop = threading.Event()
        errors: list[BaseException] = []
        reader = threading.Thread(target=self._read, args=(todo, sig, stored, loaded, report, stop),
                                  name="pgask-read", daemon=True)
        writer = threading.Thread(target=self._write, args=(embedded, report, errors),
                                  name="pgask-write", daemon=True)
        reader.start()
        writer.start()
        try:
            batch: list[Prepared] = []
            done = False
            while not done:
                item = loaded.get()
                if isinstance(item, BaseException):
                    raise item
                if item is None:
                    done = True
                else:
                    batch.append(item)
                pending = sum(len(d.chunks) for d in batch)
                # embed when the batch is full, or when the reader has nothing more right now
                if batch and (done or pending >= self.batch_chunks or loaded.empty()):
                    self._embed(batch)
                    for doc in batch:
                        embedded.put(doc)
                    batch = []
                if errors:
                    break
        finally:
            stop.set()
            embedded.put(None)
            writer.join()
            while reader.is_alive():  # unblock a reader waiting on a full queue
                try:
                    loaded.get(timeout=0.1)
                except queue.Empty:
                    pass
        if errors:
            raise errors[0]

    def _embed(self, batch: list[Prepared]) -> None:
        texts = [c.embed_text for doc in batch for c in doc.chunks]
        vectors = self.embedder.embed_documents(texts) if texts else np.zeros((0, 1), np.float32)
        at = 0
        for doc in batch:
            doc.vectors = vectors[at: at + len(doc.chunks)]
            at += len(doc.chunks)
