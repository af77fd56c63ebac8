"""Progress of ``verify``, ``verify --seeds`` and ``check`` on a terminal, with an ETA.

One bar over the runs (claim × dtype × seed) of a subject. Its ETA comes from the
previous runs' timings: each run is weighted by the seconds it took last time
(:class:`Timings`, a small JSON file in the user's cache), so that a long Monte Carlo
claim moves the bar as much as it costs and the estimate holds from the first run
on. Runs never seen before weigh the median of the known ones. The bar is rich's
(the ``report`` extra); without rich, or with standard error not a terminal, the
CLI's one-line printer or nothing is used, as before.

References
----------
Issue 19 ("Scale out"): "Give verify, check and sweep runs the same bar: claims ×
subjects, with an ETA from the previous run's timings. It shows only on a terminal."
"""

from __future__ import annotations

import json
import os
import statistics
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

__all__ = ["Timings", "cache_dir", "run_bar"]


def cache_dir() -> Path:
    """``$TT_CACHE_DIR``, else ``$XDG_CACHE_HOME/transformer-theory``, else ``~/.cache/...``."""
    if os.environ.get("TT_CACHE_DIR"):
        return Path(os.environ["TT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "transformer-theory"


class Timings:
    """Seconds per run from earlier invocations, keyed by subject, profile, claim and dtype.

    Reading or writing the file never fails a run: a missing, unreadable or
    unwritable cache only loses the estimate.
    """

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else cache_dir() / "timings.json"
        try:
            self.seconds: dict[str, float] = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(self.seconds, dict):
                self.seconds = {}
        except (OSError, ValueError):
            self.seconds = {}

    @staticmethod
    def key(subject: str, profile: str, claim_id: str, dtype: str | None) -> str:
        return f"{subject}|{profile}|{claim_id}|{dtype or ''}"

    def expected(self, keys: Sequence[str]) -> list[float]:
        """The last seconds of each key; the median of the known ones (or 1 s) otherwise."""
        known = [self.seconds[k] for k in keys if k in self.seconds]
        default = statistics.median(known) if known else 1.0
        return [max(self.seconds.get(k, default), 1e-3) for k in keys]

    def record(self, key: str, seconds: float) -> None:
        self.seconds[key] = round(float(seconds), 4)

    def save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.seconds, sort_keys=True), encoding="utf-8")
            tmp.replace(self.path)
        except OSError:
            pass


@contextmanager
def run_bar(enabled: bool, subject: str, profile: str, runs: Sequence[tuple],
            fallback: Callable | None = None, console=None) -> Iterator[Callable]:
    """``advance(i, n, result)`` for each finished run, drawing a bar with an ETA.

    Parameters
    ----------
    enabled : bool
        ``stderr.isatty() and not quiet``.
    subject, profile : str
        For the description and the timing keys.
    runs : sequence of (claim_id, dtype)
        The runs in order (a sweep repeats them per seed).
    fallback : callable, optional
        ``fallback(i, n, result)``, used when rich is not installed.
    console : rich Console, optional
        Where to draw (tests); default standard error.

    The timings of the runs are saved when the block ends, whether or not the bar
    is shown, so that the next run has an estimate.
    """
    timings = Timings()
    keys = [Timings.key(subject, profile, cid, dtype) for cid, dtype in runs]
    weights = timings.expected(keys)
    progress = None
    if enabled:
        try:
            from rich.console import Console
            from rich.progress import (BarColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)
        except ImportError:
            pass
        else:
            progress = Progress(
                TextColumn("{task.description:<22}"), BarColumn(bar_width=28),
                TextColumn("{task.fields[done]}/{task.fields[runs]}"), TimeElapsedColumn(),
                TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[bad]}"),
                console=console or Console(stderr=True), transient=False)
    bad = 0

    def advance(i: int, n: int, result) -> None:
        nonlocal bad
        timings.record(keys[i - 1], result.seconds)
        if progress is None:
            if enabled and fallback is not None:
                fallback(i, n, result)
            return
        status = getattr(result.status, "value", result.status)     # Result or check's
        if status in ("failed", "error"):
            bad += 1
            label = getattr(result, "label", None) or result.id
            progress.console.print(f"[red]{status}[/red] {label}")
        progress.update(task, advance=weights[i - 1], done=i,
                        bad=f"[red]{bad} failed[/red]" if bad else "")

    try:
        if progress is not None:
            with progress:
                task = progress.add_task(f"{subject} · {profile}", total=sum(weights),
                                         done=0, runs=len(runs), bad="")
                yield advance
        else:
            yield advance
    finally:
        timings.save()
