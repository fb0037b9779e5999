"""The command line's listeners of :mod:`dosimetry.progress`: a live display on a terminal, plain lines else.

=====================  ===========================================================================
stderr, options        what the user sees on stderr
=====================  ===========================================================================
terminal               a live display (rich): one row per stage, a bar when its number of steps is
                       known, a spinner otherwise, and the seconds it took
not a terminal, -v     one plain line when a stage starts and one when it ends:
                       ``dosimetry: dose ...`` / ``dosimetry: dose 3.2 s``; a stage of known size
                       that ends before its last step (an error, Ctrl-C) says where:
                       ``dosimetry: ray tracing stopped after 1.4 s at 812 of 13824``
not a terminal         nothing
-q                     nothing, terminal or not
=====================  ===========================================================================

rich is imported only for the live display (not for ``--help``, ``-q`` or a log file).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator, TextIO

from dosimetry.progress import Reporter, reporting

PREFIX = "dosimetry: "


def _innermost(running: list, name: str):
    """The innermost running entry ``[name, total, done, ...]`` of stage ``name``, or None."""
    return next((entry for entry in reversed(running) if entry[0] == name), None)


class PlainReporter:
    """One line per stage start and end on ``stream`` (nested stages indented), for logs and pipes."""

    def __init__(self, stream: TextIO | None = None):
        self._stream = stream
        self._running: list[list] = []  # [name, total, done] of the stages that run, outermost first

    def _print(self, text: str) -> None:
        stream = self._stream or sys.stderr
        print(f"{PREFIX}{'  ' * len(self._running)}{text}", file=stream, flush=True)

    def start(self, name: str, total: int | None) -> None:
        self._print(f"{name} ...")
        self._running.append([name, total, 0])

    def advance(self, name: str, steps: int) -> None:
        entry = _innermost(self._running, name)
        if entry is not None:
            entry[2] += steps

    def finish(self, name: str, seconds: float) -> None:
        entry = _innermost(self._running, name)
        if entry is None:
            return
        self._running.remove(entry)
        _, total, done = entry
        if total is not None and done < total:  # ended before its last step: an error or an interruption
            self._print(f"{name} stopped after {seconds:.1f} s at {done} of {total}")
        else:
            self._print(f"{name} {seconds:.1f} s")


class LiveReporter:
    """A rich progress display on a terminal: a row per stage, bar or spinner, elapsed time.

    Use it as a context manager (the display runs between enter and exit); rows of finished stages stay
    with a tick and their time.
    """

    def __init__(self, stream: TextIO | None = None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        console = Console(file=stream, stderr=True)  # stream None: sys.stderr
        self._progress = Progress(
            SpinnerColumn(finished_text="[green]✓[/]"),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            redirect_stdout=False,
            redirect_stderr=True,
            transient=False,
        )
        self._tasks: dict[str, list] = {}
        self._depth = 0

    def __enter__(self) -> "LiveReporter":
        self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self._progress.stop()

    def start(self, name: str, total: int | None) -> None:
        task = self._progress.add_task("  " * self._depth + name, total=total)
        self._tasks.setdefault(name, []).append(task)
        self._depth += 1

    def advance(self, name: str, steps: int) -> None:
        tasks = self._tasks.get(name)
        if tasks:
            self._progress.advance(tasks[-1], steps)

    def finish(self, name: str, seconds: float) -> None:
        self._depth = max(0, self._depth - 1)
        tasks = self._tasks.get(name)
        if not tasks:
            return
        task = tasks.pop()
        info = next((t for t in self._progress.tasks if t.id == task), None)
        if info is None:
            return
        if info.total is not None and info.completed < info.total:  # an error or an interruption
            self._progress.stop_task(task)  # the bar stays where it stopped, its clock too
            return
        total = info.total or max(info.completed, 1)
        self._progress.update(task, total=total, completed=total)


@contextlib.contextmanager
def progress_display(*, quiet: bool, verbose: int, stream: TextIO | None = None) -> Iterator[Reporter | None]:
    """Report the progress of the work inside the block as the table of the module says; yields the reporter."""
    stream_or_stderr = stream or sys.stderr
    reporter: Reporter | None
    if quiet:
        reporter = None
    elif _is_terminal(stream_or_stderr):
        with LiveReporter(stream) as live, reporting(live):
            yield live
        return
    elif verbose >= 1:
        reporter = PlainReporter(stream)
    else:
        reporter = None
    with reporting(reporter):
        yield reporter


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


__all__ = ["LiveReporter", "PlainReporter", "progress_display"]
