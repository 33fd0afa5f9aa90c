"""What an ingest of files has to do, before any model time: the files under the paths given, their
content hashes, and which of them are new or changed against what the database stores."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..db import store
from ..errors import PgaskError
from ..wording import plural
from . import loaders
from .loaders import Document, LoadError, read_file, supported

# Part of every content hash: a change to how documents are cut re-ingests them.
CHUNKER_VERSION = "1"
SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", ".tox"}


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


def signature(model: str, chunk_tokens: int, overlap_tokens: int) -> bytes:
    # read when called, so that a new loader version is seen by a process that imported this module
    return (f"pgask-chunker-{CHUNKER_VERSION}|loader-{loaders.LOADER_VERSION}|{model}|{chunk_tokens}|"
            f"{overlap_tokens}").encode()


def content_hash(data: bytes, sig: bytes) -> str:
    return hashlib.sha256(sig + b"\x00" + data).hexdigest()


def document_hash(doc: Document, sig: bytes) -> str:
    """Content hash of a document that did not come from a file (table rows, datasets)."""
    payload = json.dumps([doc.title, doc.text, doc.metadata], sort_keys=True, ensure_ascii=False, default=str)
    return content_hash(payload.encode("utf-8"), sig)


@dataclass
class FilePlan:
    """The files of one ingest, hashed and diffed: `todo` are new or changed (`stored` has the others'
    hashes), the rest is counted in the report the run goes on to fill."""

    paths: Sequence[Path]
    files: list[Path]
    roots: list[Path]
    todo: list[Path]
    stored: dict[str, str]  # source -> content hash, of the files that are stored
    prune: bool
    skipped: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    unchanged: int = 0
    started: float = field(default_factory=time.perf_counter)


def plan_files(paths: Sequence[Path], *, include: Sequence[str] = (), exclude: Sequence[str] = (),
               prune: bool = False, sig: bytes, max_file_bytes: int, connect: Callable, schema: str) -> FilePlan:
    """Discover, hash and diff the files under `paths`; unchanged files cost one read and no model time."""
    started = time.perf_counter()
    files, skipped, roots = discover(paths, include, exclude)
    if not files and not skipped and not prune:
        where = ", ".join(str(p) for p in paths)
        raise PgaskError(f"no documents found in {where}{_filters_named(include, exclude)}")
    if not files and not prune:
        raise PgaskError(
            f"no supported documents in {', '.join(str(p) for p in paths)}{_filters_named(include, exclude)} "
            f"({plural(len(skipped), 'other file')}; pgask reads .md .txt .rst .html .pdf)"
        )
    hashes: dict[Path, str] = {}
    failed: list[dict] = []
    for path in files:
        try:
            hashes[path] = content_hash(read_file(path, max_file_bytes), sig)
        except LoadError as exc:
            failed.append({"source": source_of(path), "error": str(exc)})
    with connect() as conn:
        stored = store.existing_hashes(conn, schema, [source_of(p) for p in hashes])
    todo = [p for p in hashes if stored.get(source_of(p)) != hashes[p]]
    return FilePlan(paths, files, roots, todo, stored, prune, skipped, failed, len(hashes) - len(todo), started)
