"""Progress on stderr: ingest bars and lines, eval questions, bench phases."""

from __future__ import annotations

import time
from typing import Callable

from rich.markup import escape

from ..wording import plural
from .common import err


class IngestProgress:
    """Ingest progress on stderr: documents done, chunks, chunks per second and time left.

    On a terminal, a Rich bar; elsewhere (a log, CI, a pipe) a plain line every `every` seconds
    and at the end (none for a run that fails before its first document, whose error stays the
    one line). Before the bar, `prepare` (when given) is told that
    documents are to be embedded, so that loading the model, or choosing the backend the first
    time, is said and done before the bar starts instead of holding it at 0.
    """

    def __init__(self, prepare: Callable[[], None] | None = None, *, every: float = 10.0) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.chunks = 0
        self.done = 0
        self.total: int | None = None
        self.prepare = prepare
        self.every = every
        self.plain = not err.is_terminal
        self.bar = Progress(
            TextColumn("[bold]{task.description}[/bold]"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=err, transient=True, disable=self.plain,
        )
        self.task = None
        self.started = 0.0
        self.last_line = 0.0

    def start(self, total_files: int | None) -> None:
        if self.task is None:  # a sync runs several batches; they count on as one
            if self.prepare is not None and total_files != 0:
                self.prepare()
                self.prepare = None
            self.started = self.last_line = time.monotonic()
            self.total = total_files
            self.bar.start()
            self.task = self.bar.add_task("ingest", total=total_files, info="")
        elif total_files:
            self.total = (self.total or 0) + total_files
            self.bar.update(self.task, total=self.total)

    def advance(self, files: int, chunks: int) -> None:
        self.chunks += chunks
        self.done += files
        elapsed = time.monotonic() - self.started
        rate = f" · {self.chunks / elapsed:.0f} chunks/s" if elapsed > 1 else ""
        last = self.total is not None and self.done >= self.total
        self.bar.update(self.task, advance=files, info=f"{plural(self.chunks, 'chunk')}{rate}",
                        description="all stored, finishing" if last else "ingest")
        if self.plain and (last or time.monotonic() - self.last_line >= self.every):
            self.line()

    def line(self) -> None:
        """One plain progress line: '120/644 documents · 1,830 chunks · 95 chunks/s · about 1m20s left'."""
        self.last_line = time.monotonic()
        elapsed = self.last_line - self.started
        parts = [f"{self.done}/{self.total} documents" if self.total is not None else plural(self.done, "document"),
                 plural(self.chunks, "chunk")]
        if elapsed > 1 and self.chunks:
            parts.append(f"{self.chunks / elapsed:.0f} chunks/s")
        if self.total and 0 < self.done < self.total and elapsed > 1:
            left = elapsed / self.done * (self.total - self.done)
            parts.append(f"about {_duration(left)} left")
        err.print("ingest: " + " · ".join(parts), highlight=False)

    def stop(self) -> None:
        if self.task is not None:
            self.bar.stop()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def model_loader(kb) -> Callable[[], None]:
    """What IngestProgress runs before its bar: say what the model is doing, then load it."""

    def prepare() -> None:
        emb = kb.embedder
        backend = emb.backend_info()
        if backend is None:  # an embeddings API: nothing to load
            return
        if backend["backend"] is None:
            err.print("[dim]choosing the embedding backend: timing each one on this machine "
                      "(once; later runs reuse the choice)…[/dim]")
        else:
            err.print(f"[dim]loading the embedding model {escape(emb.name)} ({backend['backend']})…[/dim]")
        emb.prepare()

    return prepare


class QueryProgress:
    """A Rich progress bar on stderr per evaluated mode: questions answered."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("[bold]{task.description}[/bold]"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=err, transient=True)
        self.task = None

    def start(self, mode: str, total: int) -> None:
        self.bar.start()
        self.task = self.bar.add_task(f"eval {mode}", total=total)

    def advance(self) -> None:
        self.bar.update(self.task, advance=1)

    def stop(self) -> None:
        self.bar.stop()


class PhaseProgress:
    """Rich progress on stderr with one bar per phase of a long job."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=err, transient=True)

    def __call__(self, name: str, total: int | None) -> Callable[[int], None]:
        self.bar.start()
        task = self.bar.add_task(name, total=total)
        return lambda n: self.bar.update(task, advance=n)

    def stop(self) -> None:
        self.bar.stop()
