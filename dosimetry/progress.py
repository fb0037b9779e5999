"""Progress and timing of long work: named stages and their steps, reported to whoever listens.

The library never prints. A stage function wraps its work in :func:`stage`, which times it (into a
``timings_s`` dict when one is given) and tells the current :class:`Reporter` (the command line's progress
bar, a batch job's log, or nobody) that it started, advanced and finished. Long loops call :func:`advance`
between chunks; that is also where a Ctrl-C (KeyboardInterrupt, raised by Python between bytecodes) takes
effect, so compiled loops (numba) must work in chunks short enough (well under a second) and return to
Python between them.

The reporter is held in a :class:`contextvars.ContextVar`, so concurrent studies (threads, tasks) each
report to their own listener, and a library user who sets none pays nothing.

Examples
--------
>>> timings = {}
>>> with stage("dose", timings, total=4):
...     for chunk in range(4):
...         advance()
>>> sorted(timings)
['dose']
"""

from __future__ import annotations

import contextlib
import threading
import time
from contextvars import ContextVar
from typing import Iterator, Protocol


class Reporter(Protocol):
    """What listens to progress (implemented by the command line's progress display)."""

    def start(self, name: str, total: int | None) -> None:
        """Stage ``name`` started; ``total`` steps (None: unknown, a spinner)."""

    def advance(self, name: str, steps: int) -> None:
        """Stage ``name`` did ``steps`` more steps."""

    def finish(self, name: str, seconds: float) -> None:
        """Stage ``name`` ended after ``seconds`` (also when it failed)."""


_REPORTER: ContextVar[Reporter | None] = ContextVar("dosimetry_progress_reporter", default=None)
_STAGES: ContextVar[tuple[str, ...]] = ContextVar("dosimetry_progress_stages", default=())


@contextlib.contextmanager
def reporting(reporter: Reporter | None) -> Iterator[None]:
    """Send the progress of the work inside the ``with`` block to ``reporter`` (None: to nobody)."""
    token = _REPORTER.set(reporter)
    try:
        yield
    finally:
        _REPORTER.reset(token)


@contextlib.contextmanager
def stage(name: str, timings_s: dict | None = None, *, total: int | None = None) -> Iterator[None]:
    """Time and report one named stage of work.

    Parameters
    ----------
    name : str
        Stage name as shown to people and used as the key of ``timings_s`` ('load', 'dose', ...).
    timings_s : dict, optional
        Wall-clock seconds of the stage are added to ``timings_s[name]`` (added, so a stage run twice
        counts both).
    total : int, optional
        Number of :func:`advance` steps the stage will make (None: unknown).
    """
    reporter = _REPORTER.get()
    token = _STAGES.set(_STAGES.get() + (name,))
    if reporter is not None:
        reporter.start(name, total)
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - start
        _STAGES.reset(token)
        if timings_s is not None:
            timings_s[name] = timings_s.get(name, 0.0) + seconds
        if reporter is not None:
            reporter.finish(name, seconds)


_INTERRUPTS: list[type[BaseException]] = []
"""The interruption a signal handler raised (:func:`note_interrupt`), until the command line has handled it."""


def note_interrupt(kind: type[BaseException]) -> None:
    """A signal handler is about to raise ``kind`` (KeyboardInterrupt or a subclass) in the main thread.

    Python raises it wherever the main thread happens to be, and code that swallows every exception there
    (a library's fallback around a callback, a finaliser) would lose it: the run would go on as if no Ctrl-C
    had come. :func:`advance`, which long loops call between chunks, raises it again in the main thread until
    :func:`clear_interrupt`.
    """
    _INTERRUPTS[:] = [kind]


def clear_interrupt() -> None:
    """The interruption has been handled (the command line returns its exit code)."""
    _INTERRUPTS.clear()


def advance(steps: int = 1) -> None:
    """``steps`` more steps of the innermost running stage are done (a no-op outside any stage).

    In the main thread, an interruption noted by :func:`note_interrupt` is raised (again) here."""
    if _INTERRUPTS and threading.current_thread() is threading.main_thread():
        raise _INTERRUPTS[0]()
    reporter = _REPORTER.get()
    stages = _STAGES.get()
    if reporter is not None and stages:
        reporter.advance(stages[-1], steps)


__all__ = ["Reporter", "advance", "clear_interrupt", "note_interrupt", "reporting", "stage"]
