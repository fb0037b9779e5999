"""Kernel dose methods: convolution paths, charged-particle equilibrium, energy, anisotropy, Monte Carlo.

The Monte Carlo references (EGSnrc, tests/data/mc_egsnrc/README.md) are what the methods are measured
against; the measured deviations are printed (``pytest -s``) for the record.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
from scipy.special import erf
from helpers import sphere_mask_supersampled, world_grid

from dosimetry import kernels
from dosimetry.constants import JOULE_PER_MEV, Y90_MEAN_BETA_ENERGY_MEV, Y90_MEAN_LIFE_S
from dosimetry.dose import METHODS, compute_dose
from dosimetry.dose import kernel_methods as km
from dosimetry.dose.convolution import convolve, direct_convolve, fft_convolve
from dosimetry.image import Image

MC_DIR = Path(__file__).parent / "data" / "mc_egsnrc"
MC_MEAN_ENERGY_MEV = 0.935516  # mean emitted energy of the EGSnrc Y-90 source (README there)
KERNEL_METHODS = ("kernel", "kernel-density", "kernel-range")


@pytest.fixture(scope="module", autouse=True)
def kernel_cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("kernel_cache")
    old = os.environ.get(kernels.CACHE_ENV_VAR)
    os.environ[kernels.CACHE_ENV_VAR] = str(path)
    yield path
    if old is None:
        os.environ.pop(kernels.CACHE_ENV_VAR, None)
    else:
        os.environ[kernels.CACHE_ENV_VAR] = old


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
    expected[5 - c[0]:5 + c[0] + 1, 9 - c[1]:9 + c[1] + 1, 8 - c[2]:8 + c[2] + 1] = s
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6 * s.max())


def test_point_source_dose_is_s_value_times_decays():
    spacing = (4.0, 4.0, 4.0)
    activity = np.zeros((13, 13, 13))
    activity[6, 6, 6] = 1e6 / Y90_MEAN_LIFE_S  # 1 MBq s of decays = 1e6 decays
    dose_mgy = _dose("kernel", activity, 1.03, spacing) * 1e3
    s = kernels.voxel_s_values(spacing, 1.03)
    c = s.shape[0] // 2
    window = dose_mgy[6 - c:6 + c + 1, 6 - c:6 + c + 1, 6 - c:6 + c + 1]
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
    for method, rho in (("kernel", density), ("kernel-density", density), ("kernel-range", 1.03)):
        deposited = np.sum(_dose(method, activity, rho, spacing) * (mass_kg if rho is density else 1.03 * np.prod(spacing) * 1e-6))
        if method == "kernel":  # dose to 1.03 g/cm3 tissue: its energy is dose x soft-tissue mass
            deposited = np.sum(_dose(method, activity, rho, spacing) * 1.03 * np.prod(spacing) * 1e-6)
        print(f"{method}: deposited / emitted = {deposited / emitted_j:.5f}")
        assert deposited == pytest.approx(emitted_j, rel=0.005)


def test_kernel_range_energy_in_heterogeneous_tissue():
    """Energy is conserved exactly only in homogeneous media; measured here at a liver-lung interface."""
    spacing = (4.0, 4.0, 4.0)
    n = 40
    activity = np.zeros((n, n, n))
    activity[12:20, 14:26, 14:26] = 1e6  # liver block touching the lung at i = 20
    density = np.full((n, n, n), 1.06)
    density[20:, :, :] = 0.26
    emitted_j = activity.sum() * Y90_MEAN_LIFE_S * Y90_MEAN_BETA_ENERGY_MEV * JOULE_PER_MEV
    deposited = np.sum(_dose("kernel-range", activity, density, spacing) * density * np.prod(spacing) * 1e-6)
    print(f"kernel-range liver/lung: deposited / emitted = {deposited / emitted_j:.4f}")
    assert deposited == pytest.approx(emitted_j, rel=0.03)


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
def test_mc_slab_liver_lung_profile():
    rows = _mc_csv("c_slab_liver_only.csv")
    x_mc = np.array([float(r["x_center_mm"]) for r in rows])
    d_mc = np.array([float(r["D_over_LDM_liver"]) for r in rows])
    d_mc /= d_mc[x_mc < -12].mean()
    spacing = (1.0, 4.0, 4.0)  # 1 mm across the interface; the slab is laterally uniform
    nx, ny = 100, 25
    x = (np.arange(nx) + 0.5) * spacing[0] - 50.0
    density = np.broadcast_to(np.where(x < 0, 1.06, 0.26)[:, None, None], (nx, ny, ny)).copy()
    activity = np.broadcast_to(np.where(x < 0, 1e6, 0.0)[:, None, None], (nx, ny, ny)).copy()
    c = slice(ny // 2 - 1, ny // 2 + 2)
    edges = np.arange(-10, 21, 2)
    mc_bins = np.array([d_mc[(x_mc > lo) & (x_mc < lo + 2)].mean() for lo in edges[:-1]])
    results = {}
    for method in ("ldm",) + KERNEL_METHODS:
        profile = _dose(method, activity, density, spacing)[:, c, c].mean(axis=(1, 2))
        profile /= profile[(x > -20) & (x < -12)].mean()
        results[method] = np.array([profile[(x > lo) & (x < lo + 2)].mean() for lo in edges[:-1]]) / mc_bins - 1
    print("bin (mm)  " + "  ".join(f"{m:>14s}" for m in results))
    for i, lo in enumerate(edges[:-1]):
        print(f"{lo:+3d}..{lo + 2:+3d}  " + "  ".join(f"{results[m][i]:+14.1%}" for m in results))
    assert np.all(np.abs(results["kernel-range"]) <= 0.10)
    # the known failures the README describes
    lung = edges[:-1] >= 0
    assert np.all(results["kernel"][lung][1:4] < -0.6)  # soft-tissue kernel: far too low in lung
    assert results["kernel-density"][lung][0] > 0.5  # density-scaled: about 2x high in the first 2 mm


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
