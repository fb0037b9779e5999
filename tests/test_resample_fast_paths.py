"""The fast paths of resampling and density give exactly what the plain computation gives (issue 10)."""

import numpy as np
import pytest
import SimpleITK as sitk

from dosimetry.io.data_files import hu_to_density_table
from dosimetry.quantify.density import hu_to_density
from dosimetry.image import Image
from dosimetry.io.images import to_sitk
from dosimetry.geometry.resample import (
    _coverage_counts,
    _inner_box,
    _supersampled_sums,
    _target_box,
    mean_on_grid,
    supersampling_factor,
)
from helpers import oblique_direction

FLIP_PERMUTE = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


@pytest.mark.parametrize("direction, aligned", [(np.eye(3), True), (FLIP_PERMUTE, True), (oblique_direction(), False)])
def test_coverage_counts_equal_sampling_every_voxel(direction, aligned):
    """A CT smaller than the emission grid on one side, larger on another: the voxels counted as inside
    without sampling (axis-aligned grids only) have the counts that sampling gives."""
    target = Image(np.zeros((24, 22, 20)), (-46.0, -42.0, -38.0), (4.0, 4.0, 4.0))
    centre = np.array([5.0, -3.0, 2.0])
    shape = np.array([61, 75, 33])
    spacing = np.array([1.3, 0.9, 2.1])
    origin = centre - direction @ (spacing * (shape - 1) / 2)
    ct = Image(np.zeros(tuple(shape), np.float32), origin, spacing, direction)
    n = supersampling_factor(ct, target, per_source_voxel=1.0, maximum=4)
    lower, upper = _target_box(ct, target, None)
    src = to_sitk(ct)
    ones = sitk.Add(sitk.Image(src.GetSize(), sitk.sitkUInt8), 1)
    ones.CopyInformation(src)
    plain = _supersampled_sums(ones, target, lower, upper, n, "nearest", 0.0, pixel_type=sitk.sitkUInt8)
    fast = _coverage_counts(ct, src, target, lower, upper, n)
    assert np.array_equal(fast, plain)
    assert (_inner_box(ct, target, lower, upper, n) is not None) == aligned  # the fast path was taken
    assert np.any(plain == n**3) and np.any((plain > 0) & (plain < n**3))  # fully and partly covered voxels


def test_mean_on_grid_of_a_constant_is_the_constant_where_covered():
    target = Image(np.zeros((12, 12, 12)), (-22.0, -22.0, -22.0), (4.0, 4.0, 4.0))
    ct = Image(np.full((40, 30, 20), 1.25, np.float32), (-15.0, -10.0, -12.0), (1.0, 1.1, 1.3))
    mean, coverage = mean_on_grid(ct, target)
    covered = coverage > 0
    assert covered.any() and not covered.all()
    assert np.allclose(mean.array[covered], 1.25, rtol=1e-6)
    assert np.all(np.isnan(mean.array[~covered]))


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint16, np.float64, np.int8, np.uint8, np.int32])
def test_hu_lookup_table_equals_interpolation(dtype):
    """Every lookup table (per slab; over the whole range of 8- and 16-bit types, by bit pattern) gives the
    interpolation's values, the type's extremes included."""
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    low = max(info.min, -1100) if info is not None else -1100
    high = min(info.max, 3199) if info is not None else 3199
    hu = rng.integers(low, high + 1, (30, 20, 40)).astype(dtype)
    if info is not None:
        hu[0, 0, :2] = info.min, info.max
    nodes, densities = hu_to_density_table()
    expected = np.interp(hu.astype(np.float64), nodes, densities).astype(np.float32)
    assert np.array_equal(hu_to_density(hu), expected)


def test_hu_with_fractions_and_nan_are_interpolated():
    rng = np.random.default_rng(8)
    hu = rng.normal(0, 400, (10, 11, 12)).astype(np.float32)
    hu[1, 2, 3] = np.nan
    nodes, densities = hu_to_density_table()
    expected = np.interp(hu.astype(np.float64), nodes, densities).astype(np.float32)
    assert np.array_equal(hu_to_density(hu), expected, equal_nan=True)


@pytest.mark.parametrize("order", ["F", "C"])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64, bool])
def test_blocked_c_order_copy_equals_numpy(order, dtype):
    from dosimetry.layout import c_order_copy

    values = np.asarray(np.random.default_rng(9).random((23, 19, 37)) * 3, dtype=dtype, order=order)
    copied = c_order_copy(values, np.float32)
    assert copied.flags.c_contiguous and copied.dtype == np.float32
    assert np.array_equal(copied, np.ascontiguousarray(values, dtype=np.float32))
    view = values[2:, ::2, 1:]  # neither C nor Fortran: numpy's own conversion
    assert np.array_equal(c_order_copy(view, np.float32), np.ascontiguousarray(view, dtype=np.float32))


def _blob_mask(shape, direction=np.eye(3), spacing=(1.0, 1.0, 1.0), centre=(-5.0, -5.0, 0.0)):
    rng = np.random.default_rng(7)
    values = np.zeros(shape, np.uint8)
    values[9:20, 5:17, 4:11] = rng.random((11, 12, 7)) > 0.3
    origin = np.asarray(centre) - direction @ (np.asarray(spacing) * (np.asarray(shape) - 1) / 2)
    return Image(values, origin, spacing, direction)


@pytest.mark.parametrize("direction", [np.eye(3), FLIP_PERMUTE, oblique_direction()])
def test_mask_cropped_to_support_maps_to_the_same_occupancy(direction):
    """A mask stored cropped to its extent (as the Slicer reader stores segments) is the same function of
    world position: on a finer grid, on the target's own lattice (pasted) and on an oblique grid, its
    occupancy is bit-identical to the full mask's."""
    from dosimetry.geometry.resample import occupancy_on_grid

    target = Image(np.zeros((16, 14, 10)), (-20.0, -18.0, -9.0), (2.0, 2.0, 2.0))
    fine = _blob_mask((40, 36, 20), direction=direction, spacing=(1.0, 1.0, 1.0))
    cropped = fine.cropped_to_support()
    assert cropped.array.size < fine.array.size / 5
    assert np.array_equal(occupancy_on_grid(cropped, target).array, occupancy_on_grid(fine, target).array)
    # the same lattice as the target: the full mask takes the same-grid path, the cropped one is pasted
    same = Image(np.zeros((16, 14, 10), np.uint8), target.origin_mm, target.spacing_mm)
    same.array[3:7, 2:9, 4:6] = 1
    same.array[5, 5, 5] = 0
    small = same.cropped_to_support(margin=0)
    assert small.shape == (4, 7, 2)
    assert np.array_equal(small.subgrid_offset(target), [3, 2, 4])
    assert np.array_equal(occupancy_on_grid(small, target).array, occupancy_on_grid(same, target).array)


def test_subgrid_offset_needs_the_same_lattice():
    target = Image(np.zeros((8, 8, 8)), (0.0, 0.0, 0.0), (2.0, 2.0, 2.0))
    assert np.array_equal(
        Image(np.zeros((2, 2, 2)), (4.0, -2.0, 6.0), (2.0, 2.0, 2.0)).subgrid_offset(target), [2, -1, 3]
    )
    assert Image(np.zeros((2, 2, 2)), (1.0, 0.0, 0.0), (2.0, 2.0, 2.0)).subgrid_offset(target) is None  # half a voxel
    assert Image(np.zeros((2, 2, 2)), (0.0, 0.0, 0.0), (1.0, 2.0, 2.0)).subgrid_offset(target) is None  # spacing


def test_keep_freed_memory_switch(monkeypatch):
    """The command line's allocator tuning applies on glibc Linux and is off with Y90_KEEP_FREED_MEMORY=0."""
    import ctypes
    import sys

    from dosimetry.allocator import ENVIRONMENT_SWITCH, keep_freed_memory

    monkeypatch.setenv(ENVIRONMENT_SWITCH, "0")
    assert keep_freed_memory() is False
    monkeypatch.delenv(ENVIRONMENT_SWITCH)
    try:
        glibc = sys.platform.startswith("linux") and hasattr(ctypes.CDLL("libc.so.6"), "mallopt")
    except OSError:
        glibc = False
    assert keep_freed_memory() is glibc


@pytest.mark.parametrize("numpy_first", [False, True])
def test_command_line_turns_off_numpys_huge_page_advice(numpy_first):
    """With the tuning, numpy no longer advises huge pages (whether numpy was imported before or after it);
    with Y90_KEEP_FREED_MEMORY=0 numpy keeps its own default."""
    import os
    import subprocess
    import sys

    code = (
        ("import numpy; " if numpy_first else "")
        + "from dosimetry.allocator import keep_freed_memory; keep_freed_memory(); import numpy; "
        "from numpy._core.multiarray import _set_madvise_hugepage as s; print(s(False))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("NUMPY_MADVISE_HUGEPAGE", "Y90_KEEP_FREED_MEMORY")}
    tuned = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    default = subprocess.run(
        [
            sys.executable,
            "-c",
            "import numpy; from numpy._core.multiarray import _set_madvise_hugepage as s; print(s(False))",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    off = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "Y90_KEEP_FREED_MEMORY": "0"},
        capture_output=True,
        text=True,
        check=True,
    )
    if sys.platform.startswith("linux"):
        assert tuned.stdout.strip() == "False"
    assert off.stdout.strip() == default.stdout.strip()


@pytest.mark.parametrize("direction", [np.eye(3), FLIP_PERMUTE, oblique_direction()])
@pytest.mark.parametrize("shift_mm", [(0.0, 0.0, 0.0), (9.0, -4.0, 13.0), (-30.0, 0.0, 0.0)])
def test_volume_outside_grid_plane_by_plane_equals_every_voxel(direction, shift_mm):
    """The plane-by-plane classification (whole planes inside, whole planes beyond a face, voxels of the
    planes across a face) gives exactly the volume that testing every mask voxel gives."""
    from dosimetry.geometry.resample import _inside, volume_outside_grid

    target = Image(np.zeros((16, 14, 10)), (-20.0, -18.0, -9.0), (2.0, 2.0, 2.0))
    mask = _blob_mask((40, 36, 20), direction=direction, centre=np.array([-5.0, -5.0, 0.0]) + shift_mm)
    volume_ml, outside_ml = volume_outside_grid(mask, target)
    nz = np.argwhere(mask.array > 0)
    brute = float(mask.array[tuple(nz[~_inside(target, mask.index_to_world(nz))].T)].sum()) * mask.voxel_volume_ml
    assert volume_ml == pytest.approx(float(mask.array.sum()) * mask.voxel_volume_ml)
    assert outside_ml == brute


# --- separable nearest-neighbour counts (dosimetry.geometry.separable_nearest) ---------------------------------
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dosimetry.geometry.resample import _slab_planes  # noqa: E402
from dosimetry.geometry.separable_nearest import nearest_counts, signed_permutation  # noqa: E402
from dosimetry.image import nonzero_box  # noqa: E402

# spacings in simple ratios (the usual 700/256 mm PET and 500/512 mm CT are 2.8 apart) and round origins: many
# sub-voxel centres land exactly on voxel faces, where ITK's arithmetic decides the nearest voxel
_FINE_MM = (0.9765625, 1.0, 1.25, 2.0, 2.5, 0.5)
_COARSE_MM = (2.734375, 2.0, 3.27, 4.0, 5.0, 3.0, 2.5)
_DIRECTIONS = (np.eye(3), FLIP_PERMUTE, np.diag([-1.0, -1.0, 1.0]), np.array([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]]))


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    fine=st.tuples(*[st.sampled_from(_FINE_MM)] * 3),
    coarse=st.tuples(*[st.sampled_from(_COARSE_MM)] * 3),
    shape=st.tuples(*[st.integers(6, 30)] * 3),
    origin_steps=st.tuples(*[st.integers(-8, 8)] * 3),
    quarter=st.tuples(*[st.sampled_from((0.0, 0.25, 0.5, 0.125))] * 3),
    mask_direction=st.sampled_from(range(len(_DIRECTIONS))),
    target_direction=st.sampled_from(range(len(_DIRECTIONS))),
    seed=st.integers(0, 2**16),
    supersample=st.sampled_from((None, 2, 3, 5)),
    small_slabs=st.booleans(),
)
@example(  # the benchmark's real geometry: CT 0.9765625 x 0.9765625 x 2.5 mm in a 2.734375 x 2.734375 x 3.27 mm PET
    fine=(0.9765625, 0.9765625, 2.5),
    coarse=(2.734375, 2.734375, 3.27),
    shape=(30, 30, 12),
    origin_steps=(0, 0, 0),
    quarter=(0.0, 0.0, 0.0),
    mask_direction=0,
    target_direction=0,
    seed=1,
    supersample=None,
    small_slabs=True,
)
def test_separable_nearest_counts_equal_simpleitk_sampling(
    fine, coarse, shape, origin_steps, quarter, mask_direction, target_direction, seed, supersample, small_slabs
):
    """The per-axis counts equal SimpleITK's supersampled nearest-neighbour counts exactly, ties included
    (``small_slabs``: the resampling in slabs of a few planes, each with its own output origin, as a large
    ROI is resampled)."""
    import dosimetry.geometry.resample as resample

    limit = resample._MAX_SUBVOXELS_PER_SLAB
    resample._MAX_SUBVOXELS_PER_SLAB = 5_000 if small_slabs else limit
    try:
        _compare_separable_counts(
            fine, coarse, shape, origin_steps, quarter, mask_direction, target_direction, seed, supersample
        )
    finally:
        resample._MAX_SUBVOXELS_PER_SLAB = limit


def _compare_separable_counts(
    fine, coarse, shape, origin_steps, quarter, mask_direction, target_direction, seed, supersample
):
    rng = np.random.default_rng(seed)
    values = (rng.random(shape) < 0.4).astype(np.uint8)
    values[0] = 0  # a border of zeros on some faces, as a cropped mask has
    origin = np.asarray(origin_steps, dtype=float) * np.asarray(fine) + np.asarray(quarter)
    mask = Image(values, origin, fine, _DIRECTIONS[mask_direction])
    extent = np.abs(_DIRECTIONS[mask_direction] @ (np.asarray(shape) * np.asarray(fine)))
    target_shape = tuple(int(v) for v in np.ceil(extent / np.asarray(coarse)) + 4)
    target_origin = mask.index_to_world((np.asarray(shape) - 1) / 2.0) - _DIRECTIONS[target_direction] @ (
        (np.asarray(target_shape) - 1) / 2.0 * np.asarray(coarse)
    )
    target_origin = np.round(target_origin * 4.0) / 4.0  # round numbers: ties
    target = Image(np.zeros(target_shape, np.float32), target_origin, coarse, _DIRECTIONS[target_direction])
    box = nonzero_box(values)
    if box is None:
        return
    lower, upper = _target_box(mask, target, box)
    if not np.all(upper > lower):
        return
    n = supersample or supersampling_factor(mask, target)
    expected = _supersampled_sums(
        to_sitk(mask), target, lower, upper, n, "nearest", 0.0, pixel_type=sitk.sitkUInt8
    ).astype(np.float64)
    counts = nearest_counts(mask, target, lower, upper, n, _slab_planes(lower, upper, n))
    assert counts is not None
    np.testing.assert_array_equal(counts, expected)


def test_separable_nearest_counts_need_exactly_axis_aligned_grids():
    assert signed_permutation(FLIP_PERMUTE) and signed_permutation(np.eye(3))
    assert not signed_permutation(oblique_direction())
    almost = np.eye(3)
    almost[0, 1] = 1e-12  # a scanner's rounding: the per-axis maps would not be exact
    assert not signed_permutation(almost)
    mask = Image(np.ones((4, 4, 4), np.uint8), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    target = Image(np.zeros((3, 3, 3), np.float32), (0.5, 0.5, 0.5), (2.0, 2.0, 2.0), oblique_direction())
    assert nearest_counts(mask, target, (0, 0, 0), (3, 3, 3), 2, 3) is None
