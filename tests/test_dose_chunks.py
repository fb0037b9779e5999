"""The compiled dose loops work in chunks (Ctrl-C and progress between them) and give bit-identical results."""

from __future__ import annotations

import numpy as np
import pytest

from dosimetry import progress
from dosimetry.dose import kernels
from dosimetry.dose import kernel_methods as km
from dosimetry.dose.convolution import direct_convolve


class Recorder:
    """A progress Reporter that keeps what it is told."""

    def __init__(self):
        self.events = []

    def start(self, name, total):
        self.events.append(("start", name, total))

    def advance(self, name, steps):
        self.events.append(("advance", name, steps))

    def finish(self, name, seconds):
        self.events.append(("finish", name, None))

    def steps(self, name):
        return sum(e[2] for e in self.events if e[0] == "advance" and e[1] == name)

    def total(self, name):
        return next(e[2] for e in self.events if e[0] == "start" and e[1] == name)


def test_direct_convolution_in_slabs_is_bit_identical_and_reports_progress():
    rng = np.random.default_rng(3)
    volume = rng.random((23, 17, 19)).astype(np.float32)
    kernel = rng.random((5, 3, 7))
    kernel[kernel < 0.4] = 0.0
    whole = direct_convolve(volume, kernel)  # one call: the default slab holds all 23 planes
    recorder = Recorder()
    plane = 17 * 19 * np.count_nonzero(kernel)
    with progress.reporting(recorder):
        for planes in (1, 2, 5):
            sliced = direct_convolve(volume, kernel, terms_per_chunk=planes * plane)
            assert np.array_equal(sliced, whole), planes
    assert recorder.total("direct convolution") == 23  # the first run: one plane per call
    assert recorder.steps("direct convolution") == 23 + 12 + 5
    assert not [e for e in recorder.events if e[0] == "start" and e[2] == 1]


def test_direct_convolution_of_one_slab_opens_no_stage():
    recorder = Recorder()
    with progress.reporting(recorder):
        direct_convolve(np.ones((4, 4, 4), np.float32), np.ones((3, 3, 3)))
    assert recorder.events == []


def _heterogeneous_case(*, strip: bool = True):
    spacing = (4.0, 4.0, 3.0)
    rng = np.random.default_rng(1)
    decays = np.zeros((16, 16, 18))
    decays[4:12, 5:11, 4:14] = rng.random((8, 6, 10))
    density = np.full(decays.shape, 1.05)
    density[:, :, 12:] = 0.3
    if strip:
        density[8:, :, 6:9] = 0.6
    return decays, density, kernels.density_kernel_table(spacing, 0.3), spacing


@pytest.mark.parametrize("n_chunks", [1, 2, 3])
def test_ray_tracing_in_batches_is_bit_identical(n_chunks):
    decays, density, table, spacing = _heterogeneous_case()
    n_sources = int(np.count_nonzero(decays))
    one_call = km._range_kernel_dose(
        decays, density, table, spacing, n_chunks, split_homogeneous=False, batch_sources=n_sources
    )
    assert np.any(one_call > 0)
    for batch in (1, 7, 100):
        batched = km._range_kernel_dose(
            decays, density, table, spacing, n_chunks, split_homogeneous=False, batch_sources=batch
        )
        assert np.array_equal(batched, one_call), batch
    adaptive = km._range_kernel_dose(decays, density, table, spacing, n_chunks, split_homogeneous=False)
    assert np.array_equal(adaptive, one_call)


def test_ray_tracing_reports_every_source_as_progress():
    decays, density, table, spacing = _heterogeneous_case(strip=False)
    decays[4:12, 5:11, 1:4] = 1.0  # sources far from the lung: homogeneous surroundings
    recorder = Recorder()
    with progress.reporting(recorder):
        km._range_kernel_dose(decays, density, table, spacing, 2, batch_sources=10)
    traced = recorder.total("ray tracing")
    assert 0 < traced < np.count_nonzero(decays)  # the homogeneous sources went by FFT
    assert recorder.steps("ray tracing") == traced
    assert [e[0] for e in recorder.events if e[1] == "ray tracing"][-1] == "finish"
    assert recorder.steps("homogeneous sources") == recorder.total("homogeneous sources") > 0


def test_source_batches_cover_every_source_once():
    for n, batch in ((0, None), (1, None), (1000, None), (10, 3), (9, 3)):
        batches = list(km._source_batches(n, 2, batch))
        covered = [i for start, stop in batches for i in range(start, stop)]
        assert covered == list(range(n)), (n, batch)
