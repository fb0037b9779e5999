"""The per-axis volume average (axis-aligned grids) against SimpleITK sampling at every sub-voxel (issue 10).

"Identical" here means equal to float32 rounding: SimpleITK rounds each linear-interpolation sample to
float32 before the samples are summed, the per-axis average sums in float64 and rounds once. The covered
fractions are the same integers over n**3, so the voxels that take the default density are the same.
"""

import numpy as np
import pytest

from dosimetry.constants import DEFAULT_SOFT_TISSUE_DENSITY_G_ML
from dosimetry.quantify.density import density_on_grid, hu_to_density
from dosimetry.image import Image
from dosimetry.geometry.resample import mean_on_grid, sampled_mean_on_grid, supersampling_factor
from dosimetry.geometry.separable_mean import axis_alignment, linear_axis_weights, separable_mean
from helpers import oblique_direction

FLIP_PERMUTE = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
RTOL = 2e-6


def _ct(direction, *, shape=(61, 75, 33), spacing=(1.3, 0.9, 2.1), centre=(5.0, -3.0, 2.0), seed=3):
    rng = np.random.default_rng(seed)
    shape, spacing = np.asarray(shape), np.asarray(spacing)
    origin = np.asarray(centre) - direction @ (spacing * (shape - 1) / 2)
    values = rng.normal(1.0, 0.3, tuple(shape)).astype(np.float32)
    return Image(values, origin, spacing, direction)


def _target(direction=np.eye(3)):
    """A 4 mm grid around (0, 0, 0) larger than the CT on some sides, smaller on others."""
    shape, spacing = np.array([24, 22, 20]), np.full(3, 4.0)
    origin = np.array([2.0, 2.0, 2.0]) - direction @ (spacing * shape / 2)
    return Image(np.zeros(tuple(shape)), origin, spacing, direction)


def _assert_same(fast, plain, *, some_uncovered=True):
    (mean_f, cov_f), (mean_p, cov_p) = fast, plain
    assert np.array_equal(cov_f, cov_p)  # the same integer counts over n**3
    assert np.array_equal(np.isnan(mean_f), np.isnan(mean_p))
    covered = ~np.isnan(mean_p)
    assert covered.sum() > 100 and (not covered.all() or not some_uncovered)  # inside, border, outside voxels
    np.testing.assert_allclose(mean_f[covered], mean_p[covered], rtol=RTOL, atol=0)


@pytest.mark.parametrize("ct_direction", [np.eye(3), FLIP_PERMUTE])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_per_axis_mean_equals_sampling(ct_direction, n):
    ct, target = _ct(ct_direction), _target()
    plain_mean, plain_cov = sampled_mean_on_grid(ct, target, n)
    fast = separable_mean(ct, target, n)
    assert fast is not None
    _assert_same(fast, (plain_mean.array, plain_cov))


def test_per_axis_mean_with_a_flipped_target_and_a_finer_target():
    ct = _ct(np.eye(3))
    for target in (_target(FLIP_PERMUTE), Image(np.zeros((40, 50, 30)), (-45.0, -30.0, -25.0), (1.1, 0.7, 1.9))):
        n = supersampling_factor(ct, target, per_source_voxel=1.0, maximum=4)
        plain_mean, plain_cov = sampled_mean_on_grid(ct, target, n)
        _assert_same(separable_mean(ct, target, n), (plain_mean.array, plain_cov))


def test_small_slabs_give_the_same_mean(monkeypatch):
    """The slab loop (bounded memory) joins its slabs without seams."""
    import dosimetry.geometry.separable_mean as sm

    ct, target = _ct(np.eye(3)), _target()
    whole = separable_mean(ct, target, 3)
    monkeypatch.setattr(sm, "_SLAB_SOURCE_VOXELS", 1)  # one target slice per slab
    sliced = separable_mean(ct, target, 3)
    assert np.array_equal(whole[1], sliced[1])
    np.testing.assert_allclose(sliced[0], whole[0], rtol=1e-12)
    assert np.array_equal(np.isnan(sliced[0]), np.isnan(whole[0]))


def test_oblique_grids_are_sampled():
    ct = _ct(oblique_direction())
    assert axis_alignment(ct, _target()) is None
    assert separable_mean(ct, _target(), 2) is None
    mean, coverage = mean_on_grid(ct, _target(), supersample=2)  # falls back to the sampling
    plain_mean, plain_cov = sampled_mean_on_grid(ct, _target(), 2)
    assert np.array_equal(mean.array, plain_mean.array, equal_nan=True) and np.array_equal(coverage, plain_cov)


def test_axis_weights_integrate_a_linear_function_exactly():
    """Linear interpolation of a linear function is exact inside, so each row averages the positions."""
    weights, counts = linear_axis_weights(10, 17, offset=1.25, slope=1.7, n=4)
    source = np.arange(17, dtype=float)
    t = np.arange(10)[:, None]
    positions = 1.25 + 1.7 * (t - 0.5 + (np.arange(4)[None, :] + 0.5) / 4)
    inside = (positions >= -0.5) & (positions < 16.5)
    expected = np.where(inside, np.clip(positions, 0, 16), 0.0).sum(axis=1)
    np.testing.assert_allclose(weights @ source, expected, rtol=1e-12)
    assert np.array_equal(counts, inside.sum(axis=1))
    assert counts[0] == 4 and counts[-1] < 4  # the last target voxel reaches past the source


def test_density_from_hu_slab_by_slab_equals_converting_first():
    rng = np.random.default_rng(5)
    ct = _ct(np.eye(3))
    hu = ct.with_array(rng.integers(-1050, 1600, ct.shape).astype(np.int16))
    target = _target()
    density = density_on_grid(hu, target)
    n = supersampling_factor(hu, target, per_source_voxel=1.0, maximum=4)
    plain_mean, plain_cov = sampled_mean_on_grid(hu.with_array(hu_to_density(hu.array)), target, n)
    expected = np.where(
        (plain_cov < 0.5) | np.isnan(plain_mean.array), np.float32(DEFAULT_SOFT_TISSUE_DENSITY_G_ML), plain_mean.array
    )
    assert np.array_equal(density.outside_ct, plain_cov < 0.5)
    np.testing.assert_allclose(density.density_g_ml.array, expected, rtol=RTOL)


def test_sub_voxel_centres_on_the_outer_face_are_outside_as_in_the_sampling():
    """The sample's grids: 4 mm PET over a 3 mm CT whose last face falls exactly on sub-voxel centres
    (73.5 in CT index, computed as 73.49999999999999): outside, as SimpleITK decides."""
    ct = Image(np.ones((171, 132, 74), np.float32), (-169.25, -131.25, -109.5), (2.0, 2.0, 3.0))
    pet = Image(np.zeros((86, 66, 56)), (-170.0, -130.0, -110.0), (4.0, 4.0, 4.0))
    plain_mean, plain_cov = sampled_mean_on_grid(ct, pet, 2)
    fast = separable_mean(ct, pet, 2)
    assert np.any(plain_cov[:, :, 55] == 0.25)  # the last slice is partly outside
    _assert_same(fast, (plain_mean.array, plain_cov), some_uncovered=False)
