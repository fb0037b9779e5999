"""kernel-range with long-range (lung) sources on the coarse grid (issue 13), and cost-sized ray batches."""

from __future__ import annotations

import numpy as np
import pytest

from dosimetry.constants import JOULE_PER_MEV, Y90_MEAN_BETA_ENERGY_MEV, Y90_MEAN_LIFE_S
from dosimetry.dose import compute_dose
from dosimetry.dose import coarse_range as cr
from dosimetry.dose import kernel_methods as km
from dosimetry.image import Image


def _lung_slab(spacing: float, lung_fraction: float, x_range=(-24.0, 50.0), lateral_mm: float = 30.0):
    """Active liver (x < 0, 1.06 g/cm3) beside lung (0.26) holding ``lung_fraction`` of the liver's
    concentration; returns voxel lower edges (mm), activity (Bq), density."""
    lo = np.arange(int(np.floor(x_range[0] / spacing)), int(np.ceil(x_range[1] / spacing))) * spacing
    liver = (lo < 0).astype(float)
    n = 2 * int(np.ceil(lateral_mm / spacing)) + 1
    density = np.broadcast_to((1.06 * liver + 0.26 * (1 - liver))[:, None, None], (len(lo), n, n)).copy()
    activity = np.broadcast_to((1e6 * (liver + lung_fraction * (1 - liver)))[:, None, None], density.shape).copy()
    return lo, activity, density


def test_split_moves_only_long_range_sources_and_keeps_activity_and_mass():
    lo, activity, density = _lung_slab(2.0, 0.1)
    activity = activity[:, :7, :9].copy()  # odd lateral sizes: the coarse grid is padded
    density = density[:, :7, :9].copy()
    before = (activity.copy(), density.copy())
    split = cr.split_long_range(activity, density, (2.0, 2.0, 2.0))
    assert np.array_equal(activity, before[0]) and np.array_equal(density, before[1])  # inputs untouched
    lung = density < 0.5
    assert split.long_range_sources == np.count_nonzero(lung)
    assert np.array_equal(split.fine_decays[~lung], activity[~lung]) and not np.any(split.fine_decays[lung])
    assert split.coarse_decays.sum() == pytest.approx(activity[lung].sum(), rel=1e-12)
    assert split.coarse_spacing_mm == (4.0, 4.0, 4.0)
    # the block mean density keeps the mass of the fine voxels it covers (odd axes padded from the edge)
    padded = np.pad(density, [(0, n % 2) for n in density.shape], mode="edge")
    assert split.coarse_density.sum() * 8 == pytest.approx(padded.sum(), rel=1e-12)
    # at 4 mm no source reaches 12 voxels (lung: 46 mm < 48 mm): nothing is split
    assert cr.split_long_range(activity, density, (4.0, 4.0, 4.0)) is None


def test_prolongation_keeps_the_energy_of_every_block():
    rng = np.random.default_rng(3)
    shape = (9, 8, 7)
    density = rng.uniform(0.2, 1.2, shape)
    coarse = rng.random((5, 4, 4))
    coarse[2, 1, 1] = 0.0
    fine = np.zeros(shape)
    cr.add_prolonged(fine, coarse, density)
    rho = np.pad(density, [(0, 1), (0, 0), (0, 1)], mode="edge")
    padded = np.pad(fine, [(0, 1), (0, 0), (0, 1)])
    # blocks wholly inside the grid keep block dose x block mass
    energy = (padded * rho).reshape(5, 2, 4, 2, 4, 2).sum(axis=(1, 3, 5))[:4, :, :3]
    mass = rho.reshape(5, 2, 4, 2, 4, 2).sum(axis=(1, 3, 5))[:4, :, :3]
    np.testing.assert_allclose(energy, coarse[:4, :, :3] * mass, rtol=1e-12)


def test_uniform_lung_at_2mm_equals_ldm_and_keeps_the_energy():
    """Charged-particle equilibrium in uniform lung (0.3 g/cm3) at 2 mm: the long-range sources, now on the
    4 mm grid, still give LDM in the interior (> 40 mm from the edge) and deposit all the energy."""
    spacing, rho, n, margin = 2.0, 0.3, 64, 4
    activity = np.zeros((n, n, n))
    activity[margin:-margin, margin:-margin, margin:-margin] = 1e5
    img = Image(activity, spacing_mm=spacing)
    density = img.with_array(np.full(activity.shape, rho))
    dose = compute_dose(img, density, method="kernel-range").array.astype(np.float64)
    ldm = compute_dose(img, density, method="ldm").array.astype(np.float64)
    interior = (slice(28, 36),) * 3  # 24 voxels = 48 mm from the edge of the activity
    ratio = dose[interior] / ldm[interior]
    print(f"uniform lung 2 mm, coarse long-range sources: dose / LDM = {ratio.min():.5f} .. {ratio.max():.5f}")
    np.testing.assert_allclose(ratio, 1.0, atol=0.005)
    emitted_j = activity.sum() * Y90_MEAN_LIFE_S * Y90_MEAN_BETA_ENERGY_MEV * JOULE_PER_MEV
    deposited_j = np.sum(dose * rho * spacing**3 * 1e-6)
    # energy reaching beyond the volume is lost: the activity lies 8 mm from the faces, range 40 mm
    assert 0.8 * emitted_j < deposited_j <= emitted_j * (1 + 1e-6)


def test_active_lung_beside_liver_matches_the_fine_grid_rays():
    """Liver next to lung that holds activity (a lung shunt), 2 mm voxels: the lung sources on the 4 mm grid
    against the same sources ray-traced on the 2 mm grid, in 2 mm bins from -10 to +36 mm (bound: the
    measured worst bin, README "Dose methods", with a margin)."""
    lo, activity, density = _lung_slab(2.0, 0.1, x_range=(-24.0, 40.0), lateral_mm=14.0)
    a, rho = Image(activity, spacing_mm=2.0), Image(density, spacing_mm=2.0)
    fast = km.kernel_range_dose(a, rho).array.astype(np.float64)
    fine = km.kernel_range_dose(a, rho, coarse_long_range=False).array.astype(np.float64)
    n = activity.shape[1] // 2
    centre = (slice(None), slice(n - 1, n + 2), slice(n - 1, n + 2))
    p_fast, p_fine = fast[centre].mean(axis=(1, 2)), fine[centre].mean(axis=(1, 2))
    deviations = []
    for b in range(-10, 36, 2):
        inside = (lo >= b - 1e-9) & (lo + 2.0 <= b + 2 + 1e-9)
        deviations.append(p_fast[inside].mean() / p_fine[inside].mean() - 1)
    print("coarse / fine - 1 per 2 mm bin: " + " ".join(f"{d:+.1%}" for d in deviations))
    assert max(abs(d) for d in deviations) <= BIN_BOUND
    assert not np.array_equal(fast, fine)  # the coarse grid was used


BIN_BOUND = 0.03  # measured: 1.7% (2 mm bin +0..+2 mm); piecewise-constant blocks instead: 4.8%


def test_batches_are_sized_by_cost_so_ctrl_c_acts_quickly(monkeypatch):
    """A run of cheap sources followed by sources 64x costlier (soft tissue, then lung): with batches sized
    in sources the first costly batch lasted 4 x 64 batch times; sized by cost, every batch lasts about
    RAY_BATCH_SECONDS (simulated clock: time proportional to the cost)."""
    cost = np.concatenate([np.ones(20000), np.full(20000, 64.0)])
    clock = [0.0]
    monkeypatch.setattr(km.time, "perf_counter", lambda: clock[0])
    seconds_per_cost = 1e-5
    durations, covered = [], []
    for start, stop in km._source_batches(len(cost), 2, None, cost):
        seconds = cost[start:stop].sum() * seconds_per_cost
        clock[0] += seconds
        durations.append(seconds)
        covered.extend(range(start, stop))
    assert covered == list(range(len(cost)))
    print(f"{len(durations)} batches, longest {max(durations):.3f} s")
    assert max(durations) <= 1.05 * km.RAY_BATCH_SECONDS
