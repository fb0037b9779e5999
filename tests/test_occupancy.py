"""ROI occupancy kept over its box (:mod:`dosimetry.occupancy`): every operation gives, voxel for voxel and bit
for bit, what the same operation gives on full-grid arrays, and a run never builds a full-grid occupancy."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dosimetry.image import Image, nonzero_box
from dosimetry.occupancy import Occupancy, difference, minimum, union
from dosimetry.pipeline import run_dosimetry
from dosimetry.stats.radiobiology import roi_radiobiology
from dosimetry.stats.roi_stats import roi_statistics

GRID = (9, 11, 13)


def _random_occupancy(rng, grid=GRID) -> tuple[Occupancy, np.ndarray]:
    """A random box on the grid with fractional and zero voxels, and the same occupancy as a full array."""
    start = [int(rng.integers(0, n)) for n in grid]
    stop = [int(rng.integers(s + 1, n + 1)) for s, n in zip(start, grid)]
    values = rng.random([b - a for a, b in zip(start, stop)]).astype(np.float32)
    values[values < 0.3] = 0.0
    values[values > 0.8] = 1.0
    full = np.zeros(grid, np.float32)
    full[tuple(slice(a, b) for a, b in zip(start, stop))] = values
    return Occupancy(values, start, grid), full


def _full_union(arrays):
    total = np.zeros(GRID, np.float32)
    for a in arrays:
        total += a
    return np.minimum(total, 1.0)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 4))
def test_operations_equal_those_on_full_arrays(seed, count):
    rng = np.random.default_rng(seed)
    pairs = [_random_occupancy(rng) for _ in range(count)]
    occs, fulls = [p[0] for p in pairs], [p[1] for p in pairs]
    assert np.array_equal(np.asarray(union(occs, GRID)), _full_union(fulls))
    a, b = occs[0], union(occs[1:], GRID) if count > 1 else Occupancy.empty(GRID)
    fa, fb = fulls[0], _full_union(fulls[1:]) if count > 1 else np.zeros(GRID, np.float32)
    assert np.array_equal(np.asarray(difference(a, b)), np.clip(fa - fb, 0.0, 1.0))
    assert np.array_equal(np.asarray(minimum(a, b)), np.minimum(fa, fb))
    assert a.sum(dtype=np.float64) == fa.sum(dtype=np.float64)
    assert a.any() == fa.any()
    box = nonzero_box(fa)
    got = a.nonzero_box()
    assert (got is None) == (box is None)
    if box is not None:
        assert np.array_equal(got[0], box[0]) and np.array_equal(got[1], box[1])
    # the ROI's voxels: the weights and flat indices that full[full > 0] selects, in the same order
    weights, flat = a.voxels()
    assert np.array_equal(flat, np.flatnonzero(fa > 0))
    assert np.array_equal(weights, fa[fa > 0])
    # slicing reads the grid
    lo = [int(rng.integers(0, n)) for n in GRID]
    hi = [int(rng.integers(x, n + 1)) for x, n in zip(lo, GRID)]
    sl = tuple(slice(x, y) for x, y in zip(lo, hi))
    assert np.array_equal(a[sl], fa[sl])


def test_statistics_over_the_box_are_bit_identical_to_full_arrays():
    rng = np.random.default_rng(3)
    occ, full = _random_occupancy(rng, (30, 31, 32))
    dose = rng.gamma(2.0, 20.0, full.shape).astype(np.float32)
    activity = rng.random(full.shape) * 1e6
    density = np.asfortranarray(rng.uniform(0.2, 1.2, full.shape).astype(np.float32))  # any memory order
    boxed, _ = roi_statistics(dose, activity, density, occ, 0.008)
    whole, _ = roi_statistics(dose, activity, density, full, 0.008)
    assert boxed == whole
    kw = dict(alpha_beta_gy=10.0, repair_half_time_h=2.5, eud_alpha_per_gy=0.01)
    assert roi_radiobiology(dose, occ, **kw) == roi_radiobiology(dose, full, **kw)


def test_as_image_is_the_same_mask_in_world_coordinates():
    grid = Image(np.zeros(GRID), (-10.0, 4.0, 7.5), (2.0, 3.0, 2.5))
    occ, full = _random_occupancy(np.random.default_rng(8))
    image = occ.as_image(grid)
    assert image.array.shape[0] <= GRID[0]
    offset = image.subgrid_offset(grid)
    assert offset is not None
    back = np.zeros(GRID, np.float32)
    back[tuple(slice(o, o + n) for o, n in zip(offset, image.shape))] = image.array
    assert np.array_equal(back, full)


def test_only_basic_slicing_and_grid_checks():
    occ, _ = _random_occupancy(np.random.default_rng(1))
    with pytest.raises(TypeError, match="basic slicing"):
        occ[np.array([1, 2])]
    with pytest.raises(ValueError, match="not on the grid"):
        occ.crop(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="does not fit"):
        Occupancy(np.ones((3, 3, 3)), (8, 0, 0), GRID)


def test_a_run_never_builds_a_full_grid_occupancy(monkeypatch, tmp_path, phantom_sample):
    """The pipeline, the statistics, the clinical sections and the report read the ROIs' boxes only: building
    a full-grid occupancy anywhere in a run fails this test; and each ROI's box is far smaller than the grid."""
    from dosimetry.export.results import write_results

    activity, ct, rois, options = phantom_sample

    def refuse(self, dtype=None):
        raise AssertionError("a full-grid occupancy was built")

    monkeypatch.setattr(Occupancy, "full", refuse)
    result = run_dosimetry(activity, rois, ct=ct, options=options)
    write_results(result, tmp_path / "out")
    assert (tmp_path / "out" / "report.html").exists()
    grid_voxels = int(np.prod(activity.shape))
    for name, occ in result.roi_weights.items():
        assert isinstance(occ, Occupancy) and occ.grid_shape == activity.shape
        assert occ.values.size < grid_voxels / 2, name
