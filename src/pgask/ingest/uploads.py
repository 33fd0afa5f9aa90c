"""Files sent over HTTP, saved under one folder whatever name the sender gave them."""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import BinaryIO

from ..errors import PgaskError
from .loaders import SUPPORTED, supported

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
