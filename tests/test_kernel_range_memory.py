"""kernel-range keeps its peak memory within the bound of issue 13 (4 x the float32 volume x the 3 arrays
it needs: activity, density, dose), and its memory-saving slabs do not change the dose."""

from __future__ import annotations

import tracemalloc

import numba
import numpy as np
import pytest

from dosimetry.dose import kernel_methods as km
from dosimetry.dose import kernels
from dosimetry.image import Image

ARRAYS_NEEDED = 3  # activity, density, dose


def _shunt_case():
    """Soft tissue with an active liver block (homogeneous sources: FFT), a lung block with a patch of
    active lung (a lung shunt: ray-traced on the coarse grid) and an active nodule on the lung's edge
    (ray-traced on the image grid). Odd sizes: the coarse grid is padded."""
    shape = (121, 96, 87)
    density = np.full(shape, 1.04, dtype=np.float32)
    activity = np.zeros(shape)
    density[20:100, 20:76, 8:35] = 1.06  # liver, 10 mm from the lung
    activity[20:100, 20:76, 8:35] = 2e5
    density[:, 10:86, 45:80] = 0.26  # lung
    activity[50:58, 40:48, 55:63] = 1e4  # shunted activity in lung
    density[60:66, 40:46, 42:48] = 1.06  # nodule across the lung's edge
    activity[60:66, 40:46, 42:48] = 4e5
    return Image(activity, spacing_mm=2.0), Image(density, spacing_mm=2.0)


@pytest.fixture
def two_threads():
    before = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    yield
    numba.set_num_threads(before)


def test_peak_memory_within_four_times_the_arrays_needed(two_threads):
    activity, density = _shunt_case()
    km.kernel_range_dose(activity, density)  # kernel tables and ray order cached (fixed, per voxel size)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        dose = km.kernel_range_dose(activity, density)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    volume = 4 * np.prod(activity.shape)
    print(f"peak {peak / 2**20:.1f} MiB = {peak / volume:.1f} float32 volumes (bound {4 * ARRAYS_NEEDED})")
    assert np.any(dose.array > 0)
    assert peak <= 4 * ARRAYS_NEEDED * volume  # before issue 13's memory work: about 25 volumes


def test_accumulator_slabs_do_not_change_the_dose():
    """One group of sources with whole-grid accumulators against groups of one source plane (slabs of
    1 + 2 x reach planes): the same sums in another order (float64 rounding)."""
    rng = np.random.default_rng(5)
    shape = (40, 14, 15)
    decays = np.zeros(shape)
    decays[3:37, 4:10, 3:12] = rng.random((34, 6, 9))
    density = np.full(shape, 1.05)
    density[:, :, 9:] = 0.3
    density[10:30, :, 5:7] = 0.6
    table = kernels.density_kernel_table((2.0, 2.0, 2.0), 0.3)
    whole = km._range_kernel_dose(
        decays, density, table, (2.0, 2.0, 2.0), 3, split_homogeneous=False, accumulator_volumes=100.0
    )
    slabs = km._range_kernel_dose(
        decays, density, table, (2.0, 2.0, 2.0), 3, split_homogeneous=False, accumulator_volumes=1e-6
    )
    assert np.any(whole > 0)
    np.testing.assert_allclose(slabs, whole, rtol=1e-12, atol=0.0)


def test_slab_groups_cover_every_source_and_hold_its_targets():
    planes = np.array([0, 0, 1, 3, 3, 3, 7, 8, 20, 21])
    groups = list(km._source_groups(planes, 22, reach_planes=2, max_slab_planes=7))
    covered = [i for start, stop, _, _ in groups for i in range(start, stop)]
    assert covered == list(range(len(planes)))
    for start, stop, lo, hi in groups:
        assert planes[start:stop].max() - planes[start:stop].min() < 3  # 7 - 2 x 2 planes of sources
        assert lo == max(0, planes[start] - 2) and hi == min(22, planes[stop - 1] + 3)
