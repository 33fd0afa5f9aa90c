"""Files sent over HTTP, saved under one folder whatever name the sender gave them."""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Callable

from ..errors import PgaskError
from .loaders import SUPPORTED, supported
from .discovery import source_of

if TYPE_CHECKING:
    from .pipeline import IngestReport

MAX_NAME_CHARS = 120


class UnsupportedFile(PgaskError):
    """A file of a type pgask does not read, or a name that is no file name."""


class FileTooLarge(PgaskError):
    """A file over PGASK_MAX_FILE_MB."""


def safe_name(filename: str) -> str:
    """The file name alone (no folders, no "..", no hidden files), in letters, digits, '.', '-' and '_'."""
    name = unicodedata.normalize("NFKC", filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[^\w.-]+", "_", name).lstrip("._-")
    stem, dot, suffix = name.rpartition(".")
    if dot and len(name) > MAX_NAME_CHARS:
        name = f"{stem[: MAX_NAME_CHARS - len(suffix) - 1]}.{suffix}"
    if not name or not supported(Path(name)):
        raise UnsupportedFile(
            f"cannot ingest a file named {filename!r}: pgask reads {' '.join(sorted(SUPPORTED))} files"
        )
    return name


def save(folder: Path, filename: str, stream: BinaryIO, *, max_bytes: int) -> Path:
    """Write `stream` to folder/safe_name(filename), replacing a file of that name only once it is complete."""
    name = safe_name(filename)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    if target.resolve().parent != folder.resolve():  # a symlink planted in the folder
        raise PgaskError(f"refusing to write {name}: it would land outside {folder}")
    fd, partial = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            size = 0
            while block := stream.read(1 << 20):
                size += len(block)
                if size > max_bytes:
                    raise FileTooLarge(f"{name} is larger than {max_bytes // 1_000_000} MB (PGASK_MAX_FILE_MB)")
                out.write(block)
        if size == 0:
            raise PgaskError(f"{name} is empty")
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)
    return target


def ingest_upload(folder: Path, filename: str, stream: BinaryIO, *, max_bytes: int,
                  ingest: Callable[[list[Path]], "IngestReport"], stored: Callable[[str], dict]) -> dict:
    """Save a file sent by a client under `folder` (its name made safe) and ingest it.

    A second upload of the same name replaces the first. Returns the stored document (`stored`
    reads it by source) and whether it was "added", "updated" or "unchanged".
    """
    path = save(folder, filename, stream, max_bytes=max_bytes)
    report = ingest([path])
    if report.failed:
        path.unlink(missing_ok=True)
        raise PgaskError(report.failed[0]["error"])
    status = "added" if report.added else "updated" if report.updated else "unchanged"
    return {"status": status, **stored(source_of(path))}


def forget(folder: Path, source: str) -> None:
    """A deleted document's file, when it was uploaded (saved in `folder`), is deleted too."""
    path = Path(source)
    if path.parent == folder:
        path.unlink(missing_ok=True)
