"""Slab work shared between two threads (dosimetry.threads) gives the same arrays as one thread, stops on errors
and Ctrl-C, and reports every piece to the progress display."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from dosimetry import progress, threads
from dosimetry.dose.ldm import ldm_dose
from dosimetry.geometry.resample import mean_on_grid
from dosimetry.image import Image
from dosimetry.quantify.density import hu_to_density


def _helper_takes_part():
    """A work function whose first piece in each thread waits (up to 10 s) until the other thread has started
    one too, so that both threads certainly work."""
    barrier = threading.Barrier(2, timeout=10)
    first: set[str] = set()
    seen = []

    def work(piece):
        name = threading.current_thread().name
        if name not in first:
            first.add(name)
            barrier.wait()
        seen.append((piece, name))

    return work, seen


def test_every_piece_once_in_both_threads():
    work, seen = _helper_takes_part()
    threads.in_threads(work, range(40), threads=2)
    assert sorted(p for p, _ in seen) == list(range(40))
    assert len({name for _, name in seen}) == 2


class _Counter:
    def __init__(self):
        self.steps = 0

    def start(self, name, total):
        pass

    def advance(self, name, steps):
        self.steps += steps

    def finish(self, name, seconds):
        pass


def test_progress_counts_every_piece_from_the_callers_thread():
    work, _ = _helper_takes_part()
    counter = _Counter()
    with progress.reporting(counter), progress.stage("slabs"):
        threads.in_threads(work, range(25), threads=2)
    assert counter.steps == 25


def test_error_in_the_helper_thread_is_raised_and_stops_the_rest():
    done = []
    release = threading.Event()

    def work(piece):
        if threading.current_thread() is not threading.main_thread():
            release.set()
            raise ValueError(f"bad piece {piece}")
        release.wait(timeout=10)
        done.append(piece)

    with pytest.raises(ValueError, match="bad piece"):
        threads.in_threads(work, range(100), threads=2)
    assert len(done) < 99


def test_interrupt_in_the_callers_thread_stops_the_helper_after_its_piece():
    done = []
    lock = threading.Lock()
    helper_started = threading.Event()

    def work(piece):
        if threading.current_thread() is threading.main_thread():
            helper_started.wait(timeout=10)
            raise KeyboardInterrupt
        helper_started.set()
        with lock:
            done.append(piece)

    with pytest.raises(KeyboardInterrupt):
        threads.in_threads(work, range(10_000), threads=2)
    for helper in threading.enumerate():
        if helper.name.startswith("y90-slabs"):
            helper.join(timeout=10)
    assert 1 <= len(done) < 9_999


def test_one_thread_when_asked_or_one_piece():
    names = []
    threads.in_threads(lambda p: names.append(threading.current_thread().name), range(5), threads=1)
    threads.in_threads(lambda p: names.append(threading.current_thread().name), [0], threads=2)
    assert set(names) == {threading.main_thread().name}


def _density_and_dose(monkeypatch, max_threads):
    monkeypatch.setattr(threads, "MAX_THREADS", max_threads)
    rng = np.random.default_rng(5)
    hu = np.asfortranarray(rng.integers(-1000, 1500, size=(96, 80, 60)).astype(np.int16))
    ct = Image(hu, [-100.0, -90.0, -70.0], [0.97, 1.1, 2.5])
    pet = Image(np.zeros((40, 36, 50), np.float32), [-98.0, -88.5, -66.0], [2.7, 2.7, 3.27])
    mean, coverage = mean_on_grid(ct, pet, values=hu_to_density)
    activity = pet.with_array(np.asfortranarray(rng.random(pet.shape, dtype=np.float32) * 1e5))
    density = pet.with_array(np.nan_to_num(mean.array, nan=1.03))
    return mean.array, coverage, ldm_dose(activity, density).array


def test_two_threads_give_the_same_density_and_dose_as_one(monkeypatch):
    import dosimetry.dose.ldm as ldm
    import dosimetry.geometry.separable_mean as sm

    monkeypatch.setattr(sm, "_SLAB_SOURCE_VOXELS", 20_000)  # many slabs
    monkeypatch.setattr(ldm, "_SLAB_VOXELS", 5_000)
    one = _density_and_dose(monkeypatch, 1)
    two = _density_and_dose(monkeypatch, 2)
    assert np.isfinite(one[0]).sum() > 10_000
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_an_interrupt_swallowed_where_it_landed_is_raised_again_between_chunks():
    """The command line's signal handler raises KeyboardInterrupt wherever the main thread is; if code there
    swallows it (a library's catch-all), the next progress.advance() of a long loop raises it again (only in
    the main thread), until the command line has handled it."""
    import signal

    from dosimetry import cli

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for signum, kind in ((signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, cli.Terminated)):
            try:
                cli._on_signal(signum, None)
            except BaseException:  # noqa: BLE001 - swallowed, as a careless library would
                pass
            raised = []
            worker = threading.Thread(target=lambda: raised.append(progress.advance()))
            worker.start()
            worker.join()
            assert raised == [None]  # other threads are not interrupted this way
            with pytest.raises(kind) as caught:
                progress.advance()
            assert type(caught.value) is kind
            with pytest.raises(kind):  # again, until handled
                progress.advance()
            progress.clear_interrupt()
            progress.advance()
    finally:
        progress.clear_interrupt()
        for signum, handler in saved.items():
            signal.signal(signum, handler)
