"""The progress bar of a long sync on a terminal, drawn from the engine's
progress events (peersync._engine.progress) on stderr: one line per one-way
session with the share of the source's ticks walked, rows, batches, bytes
and rate. Nothing is drawn under ``--json`` or when stderr is not a terminal
(a pipe, a log file, a cron job), and then rich is not even imported."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from peersync._engine.progress import BatchApplied, ProgressCallback, ProgressEvent, SessionEnded, SessionStarted

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

# What makes rich's console call a stream that is not a terminal one all the same.
_TERMINAL_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE")


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


class _Bar:
    """Turns events into rich tasks, one per session."""

    def __init__(self, progress: Progress, names: dict[str, str]) -> None:
        self.progress, self.names = progress, names
        self.task: TaskID | None = None
        self.first = 0

    def __call__(self, event: ProgressEvent) -> None:
        p = self.progress
        if isinstance(event, SessionStarted):
            name = self.names.get
            label = f"{name(event.source, event.source)} -> {name(event.destination, event.destination)}"
            self.first = event.first_tick
            total = max(event.upto - event.first_tick + 1, 0)
            self.task = p.add_task(label, total=total or None, rows=0, batches=0, size="0 B", rate="")
        elif isinstance(event, BatchApplied) and self.task is not None:
            rate = event.total_rows / event.seconds if event.seconds > 0 else 0.0
            p.update(
                self.task,
                total=max(event.upto - self.first + 1, 1),
                completed=max(event.tick - self.first + 1, 0),
                rows=event.total_rows,
                batches=event.total_batches,
                size=_size(event.total_bytes),
                rate=f"{rate:,.0f} rows/s, {_size(event.total_bytes / event.seconds if event.seconds > 0 else 0)}/s",
            )
        elif isinstance(event, SessionEnded) and self.task is not None:
            done = next(t.total for t in p.tasks if t.id == self.task) or 1
            p.update(self.task, total=done, completed=done)
            self.task = None


@contextmanager
def progress_bar(
    enabled: bool, names: dict[str, str], console: Console | None = None
) -> Iterator[ProgressCallback | None]:
    """A progress callback drawing on ``console`` (stderr by default), or None
    when not ``enabled`` or not on a terminal (as rich's console judges it;
    without importing rich when stderr is plainly no terminal)."""
    plain = console is None and not _isatty(sys.stderr) and not any(v in os.environ for v in _TERMINAL_ENV)
    if not enabled or plain:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    console = console if console is not None else Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rows]} rows, {task.fields[batches]} batches, {task.fields[size]}"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        yield _Bar(progress, names)


def _isatty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False
