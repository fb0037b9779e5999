"""Independent pieces of numpy work shared between the calling thread and one more (issue 10).

numpy's copies and ufuncs and scipy's sparse products release the GIL, so slabs of a volume that are
processed independently (each writes its own part of the output) run side by side on two cores. The caller's
thread takes part, reports every finished piece to the progress display (:func:`dosimetry.progress.advance`)
and stays interruptible: a Ctrl-C there stops the other thread after the piece it is working on (a slab, well
under a second) and propagates at once.

Written by hand rather than with :class:`concurrent.futures.ThreadPoolExecutor`: an executor's queued pieces
keep running after an interrupt unless each is cancelled, its threads are joined at interpreter exit, and the
progress calls must come from the caller's thread (its context holds the progress display).
"""

from __future__ import annotations

import os
import threading
from typing import Callable, Iterable, TypeVar

from dosimetry import progress

T = TypeVar("T")

MAX_THREADS = 2
"""At most this many threads work on one call (memory bandwidth, not cores, bounds these slab loops)."""


def available_threads() -> int:
    """Threads worth using: the cores this process may run on, at most :data:`MAX_THREADS`."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_THREADS, cores))


def in_threads(work: Callable[[T], None], pieces: Iterable[T], *, threads: int | None = None) -> None:
    """Call ``work(piece)`` for every piece, in the calling thread and up to ``threads - 1`` others.

    Pieces are handed out in order, one at a time, to whichever thread is free; ``work`` must only write
    to parts of the output no other piece writes. An exception in any thread stops the others after their
    current piece and is raised here (the first one); a KeyboardInterrupt in the calling thread likewise.

    Parameters
    ----------
    work : callable
        Does one piece (returns nothing).
    pieces : iterable
        The pieces, taken in order.
    threads : int, optional
        Threads in all, the caller's included; default :func:`available_threads`.
    """
    pieces = list(pieces)
    threads = min(threads or available_threads(), len(pieces))
    if threads <= 1:
        for piece in pieces:
            work(piece)
            progress.advance()
        return
    lock = threading.Lock()
    state = {"next": 0, "done": 0, "reported": 0}
    stop = threading.Event()
    errors: list[BaseException] = []

    def take() -> T | None:
        with lock:
            if stop.is_set() or state["next"] >= len(pieces):
                return None
            state["next"] += 1
            return pieces[state["next"] - 1]

    def run() -> None:
        try:
            while (piece := take()) is not None:
                work(piece)
                with lock:
                    state["done"] += 1
        except BaseException as err:  # handed to the caller's thread
            errors.append(err)
            stop.set()

    helpers = [threading.Thread(target=run, name=f"y90-slabs-{n}", daemon=True) for n in range(threads - 1)]
    try:
        for helper in helpers:
            helper.start()
        while (piece := take()) is not None:
            work(piece)
            with lock:
                state["done"] += 1
            _report(state, lock)
        for helper in helpers:
            while helper.is_alive():  # a timeout keeps the wait interruptible
                helper.join(timeout=0.05)
                _report(state, lock)
    except BaseException:
        stop.set()
        raise
    if errors:
        raise errors[0]
    _report(state, lock)


def _report(state: dict, lock: threading.Lock) -> None:
    with lock:
        steps = state["done"] - state["reported"]
        state["reported"] = state["done"]
    if steps:
        progress.advance(steps)
