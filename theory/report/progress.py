"""The terminal progress bar of ``transformer-theory report`` (rich, on standard error).

One bar per stage: the claims of each subject, the derivations, the figures.
The claims bar shows the running count of failures. Without rich (the
``report`` extra not installed) the CLI's one-line-per-claim printer is used,
and with progress off (``-q``, or standard error not a terminal) nothing is
printed.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from ..claim import Status


class _Silent:
    """No output."""

    def task(self, description: str, total: int):
        return None

    def advance(self, task, result=None) -> None:
        return None

    def running(self, task, what: str) -> None:
        """Show what is being worked on now."""
        return None


class _Printer(_Silent):
    """The CLI's printer ``report(i, n, result)`` for claims; stages are not shown."""

    def __init__(self, printer: Callable):
        self._printer = printer
        self._counts: dict[int, list] = {}

    def task(self, description: str, total: int):
        key = len(self._counts)
        self._counts[key] = [0, total, description.startswith("claims")]
        return key

    def advance(self, task, result=None) -> None:
        state = self._counts.get(task)
        if state is None:
            return
        state[0] += 1
        if state[2] and result is not None:
            self._printer(state[0], state[1], result)


class _RichBar(_Silent):
    """rich.progress bars with elapsed time and the failures so far."""

    def __init__(self, progress):
        self._progress = progress
        self._bad: dict = {}

    def task(self, description: str, total: int):
        task = self._progress.add_task(description, total=max(total, 1), bad="")
        self._bad[task] = 0
        if total == 0:
            self._progress.update(task, completed=1)
        return task

    def advance(self, task, result=None) -> None:
        if result is not None and result.status in (Status.FAILED, Status.ERROR):
            self._bad[task] += 1
            self._progress.console.print(f"[red]{result.status.value}[/red] {result.id} "
                                         f"({result.subject})")
        self._progress.update(task, advance=1, bad=self._label(task, ""))

    def running(self, task, what: str) -> None:
        self._progress.update(task, bad=self._label(task, what))

    def _label(self, task, what: str) -> str:
        bad = self._bad.get(task, 0)
        label = f"[red]{bad} failed[/red] " if bad else ""
        if len(what) > 46:
            what = what[:45] + "…"
        return label + (f"[dim]{what}[/dim]" if what else "")


@contextmanager
def make_progress(enabled: bool, fallback: Callable | None = None) -> Iterator[_Silent]:
    """A progress reporter: rich bars when enabled and installed, else ``fallback``.

    Parameters
    ----------
    enabled : bool
        Show progress at all (the CLI passes ``stderr.isatty() and not quiet``).
    fallback : callable, optional
        ``fallback(i, n, result)``, the CLI's per-claim printer, used without rich.
    """
    if not enabled:
        yield _Silent()
        return
    try:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn)
    except ImportError:
        yield _Printer(fallback) if fallback is not None else _Silent()
        return
    console = Console(stderr=True)
    columns = (TextColumn("{task.description:<20}"), BarColumn(bar_width=28),
               MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[bad]}"))
    with Progress(*columns, console=console, transient=False) as progress:
        yield _RichBar(progress)
