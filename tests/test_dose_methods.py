"""Kernel dose methods: convolution paths, charged-particle equilibrium, energy, anisotropy, Monte Carlo.

The Monte Carlo references (EGSnrc, tests/data/mc_egsnrc/README.md) are what the methods are measured
against; the measured deviations are printed (``pytest -s``) for the record.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
from scipy.special import erf
from helpers import sphere_mask_supersampled, world_grid

from dosimetry.dose import kernels
from dosimetry.constants import JOULE_PER_MEV, Y90_MEAN_BETA_ENERGY_MEV, Y90_MEAN_LIFE_S
from dosimetry.dose import METHODS, compute_dose
from dosimetry.dose import kernel_methods as km
from dosimetry.dose.convolution import convolve, direct_convolve, fft_convolve
from dosimetry.image import Image

MC_DIR = Path(__file__).parent / "data" / "mc_egsnrc"
MC_MEAN_ENERGY_MEV = 0.935516  # mean emitted energy of the EGSnrc Y-90 source (README there)
KERNEL_METHODS = ("kernel", "kernel-density", "kernel-range")


def _mc_csv(name: str) -> list[dict[str, str]]:
    with open(MC_DIR / name, newline="") as handle:
        return list(csv.DictReader(handle))


def _dose(method: str, activity: np.ndarray, density, spacing_mm) -> np.ndarray:
    a = Image(activity, spacing_mm=spacing_mm)
    rho = Image(np.broadcast_to(np.asarray(density, dtype=float), activity.shape).copy(), spacing_mm=spacing_mm)
    return compute_dose(a, rho, method=method).array.astype(np.float64)


# --- convolution ----------------------------------------------------------------------------------------
def test_methods_are_registered():
    assert set(KERNEL_METHODS) | {"ldm"} <= set(METHODS)


@pytest.mark.parametrize("path", ["fft", "direct"])
def test_point_source_gives_the_kernel_back(path):
    s = kernels.voxel_s_values((4.07, 4.07, 3.0), 1.03)
    volume = np.zeros((15, 16, 17), dtype=np.float32)
    volume[5, 9, 8] = 1.0
    out = convolve(volume, s, method=path)
    c = np.array(s.shape) // 2
    expected = np.zeros(volume.shape)
    expected[5 - c[0] : 5 + c[0] + 1, 9 - c[1] : 9 + c[1] + 1, 8 - c[2] : 8 + c[2] + 1] = s
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6 * s.max())


def test_point_source_dose_is_s_value_times_decays():
    spacing = (4.0, 4.0, 4.0)
    activity = np.zeros((13, 13, 13))
    activity[6, 6, 6] = 1e6 / Y90_MEAN_LIFE_S  # 1 MBq s of decays = 1e6 decays
    dose_mgy = _dose("kernel", activity, 1.03, spacing) * 1e3
    s = kernels.voxel_s_values(spacing, 1.03)
    c = s.shape[0] // 2
    window = dose_mgy[6 - c : 6 + c + 1, 6 - c : 6 + c + 1, 6 - c : 6 + c + 1]
    np.testing.assert_allclose(window, s, rtol=1e-5, atol=1e-6 * s.max())  # float32 FFT rounding


def test_fft_and_direct_paths_agree_and_do_not_wrap():
    rng = np.random.default_rng(4)
    volume = rng.random((24, 21, 19)).astype(np.float32)
    kernel = rng.random((5, 7, 3))  # not symmetric: exercises the complex kernel spectrum
    reference = scipy.signal.fftconvolve(volume.astype(np.float64), kernel, mode="same")
    for out in (fft_convolve(volume, kernel), direct_convolve(volume, kernel)):
        assert np.max(np.abs(out - reference)) <= 1e-5 * np.max(np.abs(reference))
    s = kernels.voxel_s_values(2.0, 1.03)
    a = fft_convolve(volume, s)
    b = direct_convolve(volume, s)
    assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(b))
    corner = np.zeros((20, 20, 20), dtype=np.float32)
    corner[0, 0, 0] = 1.0
    out = fft_convolve(corner, s)
    assert np.all(out[10:, 10:, 10:] == pytest.approx(0.0, abs=1e-7))


# --- charged-particle equilibrium -----------------------------------------------------------------------
def _uniform_block(n: int = 22, margin: int = 4) -> np.ndarray:
    activity = np.zeros((n, n, n))
    activity[margin:-margin, margin:-margin, margin:-margin] = 1e6
    return activity


def test_uniform_soft_tissue_all_kernel_methods_equal_ldm():
    spacing, rho = 4.0, 1.03
    activity = _uniform_block()
    ldm = _dose("ldm", activity, rho, spacing)
    interior = (slice(9, 13),) * 3  # >= 5 voxels (20 mm) from the edge of the activity
    for method in KERNEL_METHODS:
        ratio = _dose(method, activity, rho, spacing)[interior] / ldm[interior]
        print(f"soft tissue {method}: dose / LDM = {ratio.min():.5f} .. {ratio.max():.5f}")
        np.testing.assert_allclose(ratio, 1.0, atol=0.005)


def test_uniform_lung_density_methods_equal_ldm_and_the_plain_kernel_bias_is_bounded():
    spacing, rho = 4.0, 0.3
    activity = _uniform_block(n=30, margin=2)
    ldm = _dose("ldm", activity, rho, spacing)
    interior = (slice(13, 17),) * 3  # 11 voxels = 44 mm > 12 mm / 0.3 = 40 mm from the activity edge
    for method in ("kernel-density", "kernel-range"):
        ratio = _dose(method, activity, rho, spacing)[interior] / ldm[interior]
        print(f"lung 0.3 {method}: dose / LDM = {ratio.min():.5f} .. {ratio.max():.5f}")
        np.testing.assert_allclose(ratio, 1.0, atol=0.005)
    # the soft-tissue kernel divides the same energy by soft-tissue mass: 0.3 / 1.03 = 0.291, 71% low
    ratio = _dose("kernel", activity, rho, spacing)[interior] / ldm[interior]
    print(f"lung 0.3 kernel: dose / LDM = {ratio.mean():.4f} (known bias)")
    np.testing.assert_allclose(ratio, 0.3 / 1.03, rtol=0.005)


# --- energy ---------------------------------------------------------------------------------------------
def test_total_energy_equals_emitted_energy():
    spacing = (4.0, 4.0, 4.0)
    n = 24
    rng = np.random.default_rng(7)
    activity = np.zeros((n, n, n))
    activity[8:16, 8:16, 8:16] = rng.random((8, 8, 8)) * 1e6  # 32 mm from every face
    density = np.full((n, n, n), 1.03)
    density[:, :, 14:] = 1.06
    density[:, 17:, :] = 0.95
    emitted_j = activity.sum() * Y90_MEAN_LIFE_S * Y90_MEAN_BETA_ENERGY_MEV * JOULE_PER_MEV
    mass_kg = density * np.prod(spacing) * 1e-6
    for method in KERNEL_METHODS:
        deposited = np.sum(_dose(method, activity, density, spacing) * mass_kg)
        if method == "kernel":  # dose to 1.03 g/cm3 tissue: its energy is dose x soft-tissue mass
            deposited = np.sum(_dose(method, activity, density, spacing) * 1.03 * np.prod(spacing) * 1e-6)
        print(f"{method}: deposited / emitted = {deposited / emitted_j:.5f}")
        assert deposited == pytest.approx(emitted_j, rel=0.005)


def test_kernel_range_energy_in_heterogeneous_tissue():
    """Energy is conserved exactly only in homogeneous media; at a liver-lung plane within 0.1% (measured;
    3.6% lost for a 20 mm liver sphere in lung with 4 mm voxels before the sub-voxel correction, 2.4% after)."""
    spacing = (4.0, 4.0, 4.0)
    n = 40
    activity = np.zeros((n, n, n))
    activity[12:20, 14:26, 14:26] = 1e6  # liver block touching the lung at i = 20
    density = np.full((n, n, n), 1.06)
    density[20:, :, :] = 0.26
    emitted_j = activity.sum() * Y90_MEAN_LIFE_S * Y90_MEAN_BETA_ENERGY_MEV * JOULE_PER_MEV
    deposited = np.sum(_dose("kernel-range", activity, density, spacing) * density * np.prod(spacing) * 1e-6)
    print(f"kernel-range liver/lung: deposited / emitted = {deposited / emitted_j:.4f}")
    assert deposited == pytest.approx(emitted_j, rel=0.005)


def test_homogeneous_split_matches_per_pair_rays():
    """The FFT shortcut for sources in homogeneous surroundings equals the per-pair ray computation."""
    spacing = (4.0, 4.0, 3.0)
    rng = np.random.default_rng(1)
    decays = np.zeros((16, 16, 18))
    decays[4:12, 5:11, 4:14] = rng.random((8, 6, 10))
    density = np.full(decays.shape, 1.05)
    density[:, :, 12:] = 0.3
    table = kernels.density_kernel_table(spacing, 0.3)
    split = km._range_kernel_dose(decays, density, table, spacing, 2, split_homogeneous=True)
    rays = km._range_kernel_dose(decays, density, table, spacing, 2, split_homogeneous=False)
    assert np.max(np.abs(split - rays)) <= 0.02 * np.max(rays)


# --- anisotropy -----------------------------------------------------------------------------------------
def test_anisotropic_grid_gives_the_same_roi_mean_dose():
    sigma_mm, roi_radius_mm = 20.0, 30.0  # smooth activity, ROI far larger than the voxels

    def run(spacing, shape):
        origin = -(np.asarray(shape) - 1) / 2 * np.asarray(spacing)
        img = Image(np.zeros(shape), origin_mm=origin, spacing_mm=spacing)
        # the Gaussian integrated exactly over every voxel (separable): both grids hold the same activity
        factors = []
        for axis in range(3):
            centres = origin[axis] + np.arange(shape[axis]) * spacing[axis]
            lo = (centres - spacing[axis] / 2) / (sigma_mm * np.sqrt(2))
            hi = (centres + spacing[axis] / 2) / (sigma_mm * np.sqrt(2))
            factors.append(0.5 * (erf(hi) - erf(lo)))
        activity = 1e9 * np.einsum("i,j,k->ijk", *factors)  # Bq
        roi = sphere_mask_supersampled(img, (0, 0, 0), roi_radius_mm, n=3).astype(float)
        dose = compute_dose(img.with_array(activity), img.with_array(np.full(shape, 1.03)), method="kernel").array
        return np.sum(dose * roi) / np.sum(roi)

    iso = run((2.0, 2.0, 2.0), (50, 50, 50))
    aniso = run((4.07, 4.07, 3.0), (25, 25, 33))
    print(f"ROI mean dose isotropic 2 mm {iso:.4g} Gy, 4.07 x 4.07 x 3.0 mm {aniso:.4g} Gy")
    assert aniso == pytest.approx(iso, rel=0.01)


# --- Monte Carlo references -----------------------------------------------------------------------------
def _mc_slab():
    """EGSnrc liver/lung slab: 0.5 mm bin edges, dose normalised to the deep-liver plateau, bin density."""
    rows = _mc_csv("c_slab_liver_only.csv")
    lo = np.array([float(r["x_lo_mm"]) for r in rows])
    hi = np.array([float(r["x_hi_mm"]) for r in rows])
    dose = np.array([float(r["D_over_LDM_liver"]) for r in rows])
    dose /= dose[hi <= -12].mean()
    return lo, hi, dose, np.array([float(r["rho_g_cm3"]) for r in rows])


def _mc_mean(lo_mm: float, hi_mm: float) -> float:
    """The MC dose averaged over [lo, hi] (energy over mass), clipped to the MC range -20..20 mm."""
    x_lo, x_hi, dose, rho = _mc_slab()
    overlap = np.clip(np.minimum(x_hi, min(hi_mm, 20.0)) - np.maximum(x_lo, max(lo_mm, -20.0)), 0.0, None) * rho
    return float(np.sum(overlap * dose) / np.sum(overlap))


def _slab_profile(
    method: str,
    spacing,
    axis: int = 0,
    interface_in_voxel: float = 0.0,
    x_range=(-34.0, 24.0),
    lateral_mm: float = 30.0,
):
    """Voxel dose across a liver (x < 0, active) / lung (x > 0) slab along ``axis``, normalised to the
    deep-liver plateau (-20..-12 mm). ``interface_in_voxel``: where the interface cuts its voxel (0: on a
    voxel boundary; 0.5: through the middle, the voxel then holds the mixture). Returns the voxel lower
    edges (mm), the voxel size along ``axis`` and the normalised profile."""
    h = float(spacing[axis])
    shift = interface_in_voxel * h
    lo = (np.arange(int(np.floor((x_range[0] - shift) / h)), int(np.ceil((x_range[1] - shift) / h)))) * h + shift
    liver = np.clip(-lo / h, 0.0, 1.0)  # liver fraction of every voxel
    shape = [2 * int(np.ceil(lateral_mm / s)) + 1 for s in spacing]
    shape[axis] = len(lo)
    along = [1, 1, 1]
    along[axis] = len(lo)
    density = np.broadcast_to((1.06 * liver + 0.26 * (1.0 - liver)).reshape(along), shape)
    activity = np.broadcast_to((1e6 * liver).reshape(along), shape)
    dose = _dose(method, np.ascontiguousarray(activity), np.ascontiguousarray(density), tuple(spacing))
    centre = [slice(n // 2 - 1, n // 2 + 2) for n in shape]
    centre[axis] = slice(None)
    profile = dose[tuple(centre)].mean(axis=tuple(a for a in range(3) if a != axis))
    return lo, h, profile / profile[(lo >= -20 - 1e-9) & (lo + h <= -12 + 1e-9)].mean()


def _slab_bins(lo, h, profile):
    """(bin lo, bin hi, model / MC - 1) from -10 to +20 mm: 2 mm bins for voxels that tile them (voxel doses
    averaged in each bin), else the voxels themselves (the MC averaged over the voxel's extent)."""
    out = []
    per_bin = 2.0 / h
    tiles = abs(per_bin - round(per_bin)) < 1e-9 and np.allclose((lo + 10.0) / h, np.round((lo + 10.0) / h))
    if tiles:
        for b in range(-10, 20, 2):
            inside = (lo >= b - 1e-9) & (lo + h <= b + 2 + 1e-9)
            out.append((b, b + 2.0, profile[inside].mean() / _mc_mean(b, b + 2) - 1))
    else:
        for x, value in zip(lo, profile):
            if x + h > -10 + 1e-9 and x < 20 - 1e-9:
                out.append((x, x + h, value / _mc_mean(x, x + h) - 1))
    return out


def _straight_line_slab(lo, h, points_per_voxel: int = 20):
    """The straight-line transport model of kernel-range in the continuum for the voxelised slab (the voxels
    of ``lo`` with their mixed densities and activities), averaged over every voxel, normalised to the
    plateau. For layers, the dose at depth b is ``integral A(a) P(|integral_a^b rho|) da`` with ``P`` the
    planar kernel of water at radiological depth: no voxel S values, rays or density tables involved."""
    s = np.linspace(0.0, 12.0, 12001)
    de_ds = np.gradient(kernels.water_cumulative_energy_mev(s), s)
    integrand = np.where(s > 0, de_ds / (2.0 * np.maximum(s, 1e-12)), 0.0)
    planar = np.cumsum(integrand[::-1])[::-1] * (s[1] - s[0])
    liver = np.clip(-lo / h, 0.0, 1.0)
    step = 0.02
    a = np.arange(lo[0] - 30.0, lo[-1] + h + 30.0, step) + step / 2
    cell = np.clip(np.searchsorted(lo, a, side="right") - 1, 0, len(lo) - 1)
    inside = (a >= lo[0]) & (a < lo[-1] + h)
    frac = np.where(inside, liver[cell], np.where(a < lo[0], 1.0, 0.0))
    path = np.concatenate([[0.0], np.cumsum((1.06 * frac + 0.26 * (1.0 - frac)) * step)])
    edges = np.concatenate([[a[0] - step / 2], a + step / 2])

    def dose_at(b):
        depth = np.abs(np.interp(b, edges, path) - np.interp(a, edges, path))
        return np.sum(frac * np.interp(depth, s, planar, right=0.0)) * step

    sub = (np.arange(points_per_voxel) + 0.5) / points_per_voxel
    voxel = np.array([np.mean([dose_at(x + t * h) for t in sub]) for x in lo])
    return voxel / voxel[(lo >= -20 - 1e-9) & (lo + h <= -12 + 1e-9)].mean()


def test_mc_slab_liver_lung_profile():
    """1 mm across the interface: all methods against EGSnrc (2 mm bins)."""
    results = {}
    for method in ("ldm",) + KERNEL_METHODS:
        lo, h, profile = _slab_profile(method, (1.0, 4.0, 4.0))
        results[method] = np.array([d for _, _, d in _slab_bins(lo, h, profile)])
    edges = np.arange(-10, 21, 2)
    print("bin (mm)  " + "  ".join(f"{m:>14s}" for m in results))
    for i, lo in enumerate(edges[:-1]):
        print(f"{lo:+3d}..{lo + 2:+3d}  " + "  ".join(f"{results[m][i]:+14.1%}" for m in results))
    assert np.all(np.abs(results["kernel-range"]) <= 0.10)
    # the known failures the README describes
    lung = edges[:-1] >= 0
    assert np.all(results["kernel"][lung][1:4] < -0.6)  # soft-tissue kernel: far too low in lung
    assert results["kernel-density"][lung][0] > 0.5  # density-scaled: about 2x high in the first 2 mm


@pytest.mark.parametrize(
    ("spacing", "axis"),
    [
        ((2.0, 2.0, 2.0), 0),
        ((4.0, 4.0, 4.0), 0),
        ((4.07, 4.07, 3.0), 0),
        ((4.07, 4.07, 3.0), 1),
        ((4.07, 4.07, 3.0), 2),
    ],
    ids=["2mm", "4mm", "4.07x4.07x3-normal0", "4.07x4.07x3-normal1", "4.07x4.07x3-normal2"],
)
def test_mc_slab_kernel_range_at_clinical_voxel_sizes(spacing, axis):
    """kernel-range within 10% of EGSnrc at PET voxel sizes, the interface on a voxel boundary; 2 mm bins
    for 2 mm voxels, the voxel extents (MC averaged over the same extent) for 3-4.07 mm voxels. And within
    3% of the exact straight-line solution for the same voxels (the voxelisation error of the method; before
    the sub-voxel correction it was -10% with 2 mm and -34% with 4 mm voxels)."""
    lo, h, profile = _slab_profile("kernel-range", spacing, axis)
    bins = _slab_bins(lo, h, profile)
    window = (lo + h > -10 + 1e-9) & (lo < 20 - 1e-9)
    vs_model = profile[window] / _straight_line_slab(lo, h)[window] - 1
    print(f"{spacing} normal along axis {axis}: " + "  ".join(f"[{a:+.1f},{b:+.1f}] {d:+.1%}" for a, b, d in bins))
    print("  vs the straight-line solution, per voxel: " + " ".join(f"{d:+.1%}" for d in vs_model))
    assert max(abs(d) for _, _, d in bins) <= 0.10
    assert np.all(np.abs(vs_model) <= 0.03)


def test_mc_slab_interface_inside_a_voxel_is_a_voxelisation_error():
    """The liver/lung interface through the middle of 4 mm voxels: the mixed voxel (0.66 g/cm3, half the
    activity, spread uniformly) is a different object from the MC geometry, and lung dose is then 12-30%
    above the MC; kernel-range still computes that object right: within 5% of the straight-line model of
    the voxelised slab in every voxel, the bound tested here."""
    lo, h, profile = _slab_profile("kernel-range", (4.0, 4.0, 4.0), interface_in_voxel=0.5)
    model = _straight_line_slab(lo, h)
    window = (lo + h > -10 + 1e-9) & (lo < 20 - 1e-9)
    vs_model = profile[window] / model[window] - 1
    vs_mc = np.array([d for _, _, d in _slab_bins(lo, h, profile)])
    print("voxel lo (mm) " + " ".join(f"{x:+7.1f}" for x in lo[window]))
    print("vs MC         " + " ".join(f"{d:+7.1%}" for d in vs_mc))
    print("vs model      " + " ".join(f"{d:+7.1%}" for d in vs_model))
    assert np.all(np.abs(vs_model) <= 0.05)
    assert np.all(vs_mc[lo[window] > 0] > 0.05)  # the partial-volume error the docstring states


def test_mc_sphere_absorbed_fraction():
    summary = {r["quantity"]: float(r["value"]) for r in _mc_csv("d_sphere_summary.csv")}
    af_mc = summary["absorbed_fraction[Emean_brief_0.9329]"]
    shells = _mc_csv("d_sphere_shells.csv")
    shell_volume_cm3 = np.array([float(r["shell_volume_cm3"]) for r in shells])
    spacing = 0.5
    n = 80
    img = Image(np.zeros((n, n, n)), spacing_mm=spacing)
    centre = (n - 1) / 2 * spacing
    occupancy = sphere_mask_supersampled(img, (centre,) * 3, 5.0, n=4).astype(float)
    radius = np.linalg.norm(world_grid(img) - centre, axis=-1)
    activity = occupancy / occupancy.sum() / Y90_MEAN_LIFE_S  # one decay in total
    for method in ("ldm", "kernel", "kernel-density", "kernel-range"):
        dose_mev_g = _dose(method, activity, 1.0, spacing) / (JOULE_PER_MEV * 1e3)
        shell_dose = np.array([dose_mev_g[(radius >= k) & (radius < k + 1)].mean() for k in range(5)])
        af = float(np.sum(shell_dose * shell_volume_cm3[:5])) / Y90_MEAN_BETA_ENERGY_MEV
        print(f"10 mm sphere {method}: absorbed fraction {af:.4f} (EGSnrc {af_mc:.4f}, {af / af_mc - 1:+.1%})")
        if method in ("kernel-density", "kernel-range"):
            # the Graves kernel carries more energy beyond 6 mm than EGSnrc: measured -1.4% and -2.9%
            assert af == pytest.approx(af_mc, rel=0.035)


def test_mc_uniform_block_central_dose():
    rows = {r["quantity"]: float(r["value"]) for r in _mc_csv("a_block_central_voxel.csv")}
    # per decay, with the EGSnrc mean energy normalised away (0.9329 / 0.935516)
    mc = rows["D_central_MeV_per_g_per_decay"] * Y90_MEAN_BETA_ENERGY_MEV / MC_MEAN_ENERGY_MEV
    spacing, n = 5.0, 26
    activity = np.zeros((n, n, n))
    activity[3:-3, 3:-3, 3:-3] = 1.0  # the 10 cm water cube
    activity /= activity.sum() * Y90_MEAN_LIFE_S
    centre = (slice(n // 2 - 1, n // 2 + 1),) * 3  # the central 1 cm3
    for method in ("ldm",) + KERNEL_METHODS:
        value = _dose(method, activity, 1.0, spacing)[centre].mean() / (JOULE_PER_MEV * 1e3)
        print(f"uniform water block {method}: {value:.5e} MeV/g per decay, / EGSnrc = {value / mc:.4f}")
        if method != "kernel":  # the kernel method assumes 1.03 g/cm3, not water: 3% low here
            # EGSnrc loses 0.3% to bremsstrahlung that the renormalised kernel keeps; MC 1 sigma 0.25%
            assert value == pytest.approx(mc, rel=0.01)
