"""Long-range sources of ``kernel-range`` on a grid twice as coarse (issue 13: lung at clinical resolution).

Why: the ray tracing of ``kernel-range`` costs one kernel evaluation per source-target pair within the
source's reach, ``12 mm / rho`` (:data:`~dosimetry.constants.Y90_DPK_MAX_RADIUS_WATER_MM`): 46 mm in lung of
0.26 g/cm3, 23 voxels of 2 mm, so about 50 000 targets per lung source and 64x the cost of a soft-tissue
source. With a lung shunt every lung voxel is a source and the lungs dominate the run (512 s for the sample
phantom at 2 mm; issue 13). A source whose reach spans at least :data:`LONG_RANGE_VOXELS` voxels is
resolved far more finely than its dose needs, so such sources are ray-traced on a grid with voxels twice
as large along every axis (8x fewer sources, 8x fewer targets each: 64x fewer pairs) and their dose is
put back on the fine grid.

How, exactly:

* **Split by source.** A source voxel is *long-range* when its density is below
  :data:`~dosimetry.constants.KERNEL_RANGE_COARSE_MAX_DENSITY_G_CM3` (0.9 g/cm3: lung and its edge) and
  ``12 mm / rho`` (``rho`` clamped to the range of the kernel table, as the ray tracing does) is at least
  ``LONG_RANGE_VOXELS`` times the largest voxel spacing. The others (liver, tumour, soft tissue, bone at
  any voxel size) stay on the fine grid unchanged, so every liver- or water-source result of
  ``kernel-range`` (the EGSnrc liver/lung slab, sphere and block) is the same as without the split (a
  density criterion is needed: at 0.5 mm voxels water's reach spans 24 voxels, and the 10 mm EGSnrc
  sphere on the 1 mm grid lost 5% of its absorbed fraction). Lung (46 mm) is split at voxels up to 3.8 mm; at 4 mm nothing is split.
* **Coarse grid.** Blocks of 2 x 2 x 2 fine voxels (the grid padded by one voxel at the upper end of odd
  axes, density copied from the edge, no activity): the block's activity is the sum of its long-range
  sources, its density the mean of its 8 voxels (so its mass is theirs). The block-mean density is the
  mass-weighted path density a ray sees through the block, so paths are unchanged on average; what is lost
  is the position of a source inside its block (up to half a coarse voxel).
* **Back to the fine grid.** The coarse dose is interpolated trilinearly (cell-centred: weights 3/4 and
  1/4 along each axis) and rescaled in every block so that the block keeps its energy (block dose x block
  mass = sum of fine dose x fine mass: energy is conserved exactly). The straight-line model puts the same
  dose in every medium a ray crosses (``rho_bar^2 D_w(rho_bar r)`` does not depend on the target density),
  so interpolating the dose across media of a mixed block is the model's own answer. Giving every fine
  voxel its block's dose (piecewise constant) was 4.8% off the fine rays in the worst 2 mm bin of an
  active-lung slab; the interpolation, 1.7%.

Accuracy (measured, README "Dose methods"): against the full fine-grid ray tracing, on the sample phantom
at 2 mm (5% lung shunt) and on a liver/active-lung slab. The split does not change the dose from
short-range sources.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dosimetry.constants import (
    DPK_WATER_DENSITY_G_CM3,
    KERNEL_RANGE_COARSE_MAX_DENSITY_G_CM3,
    KERNEL_RANGE_MAX_DENSITY_G_CM3,
    KERNEL_RANGE_MIN_DENSITY_G_CM3,
    Y90_DPK_MAX_RADIUS_WATER_MM,
)

LONG_RANGE_VOXELS = 12.0
"""A source whose reach (12 mm / rho) spans at least this many voxels (of the largest spacing) is
ray-traced on the grid twice as coarse: there its reach still spans at least 6 voxels (lung at 2 mm:
23 fine, 11.5 coarse voxels, the 4 mm grid that kernel-range resolves within 10% of EGSnrc in lung).
16 left the lung's partial-volume edge voxels (0.38-0.5 g/cm3) on the fine grid: 2x the time."""


@dataclass(frozen=True)
class LongRangeSplit:
    """Decays split into short-range sources (fine grid) and long-range ones (coarse grid)."""

    fine_decays: np.ndarray
    """Decays of the short-range sources, fine grid (the long-range ones set to 0)."""
    coarse_decays: np.ndarray
    """Decays of the long-range sources summed over blocks of 2 x 2 x 2 fine voxels."""
    coarse_density: np.ndarray
    """Block-mean density (g/cm3), the coarse grid."""
    coarse_spacing_mm: tuple[float, float, float]
    fine_shape: tuple[int, int, int]
    long_range_sources: int
    """Number of fine source voxels moved to the coarse grid."""


def reach_mm(density_g_cm3: np.ndarray) -> np.ndarray:
    """Range of the Y-90 point kernel (mm) at each density, clamped as the ray tracing clamps it."""
    rho = np.clip(density_g_cm3, KERNEL_RANGE_MIN_DENSITY_G_CM3, KERNEL_RANGE_MAX_DENSITY_G_CM3)
    return Y90_DPK_MAX_RADIUS_WATER_MM * DPK_WATER_DENSITY_G_CM3 / rho


def _block_mean(values: np.ndarray) -> np.ndarray:
    n0, n1, n2 = values.shape
    return values.reshape(n0 // 2, 2, n1 // 2, 2, n2 // 2, 2).mean(axis=(1, 3, 5))


def split_long_range(decays: np.ndarray, density_g_cm3: np.ndarray, spacing_mm) -> LongRangeSplit | None:
    """Split the sources into short- and long-range ones (module documentation); None if none is long-range.

    ``decays`` and ``density_g_cm3`` are read, never written.
    """
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    long_range = (
        (decays != 0)
        & (density_g_cm3 < KERNEL_RANGE_COARSE_MAX_DENSITY_G_CM3)
        & (reach_mm(density_g_cm3) >= LONG_RANGE_VOXELS * float(spacing.max()))
    )
    n_long = int(np.count_nonzero(long_range))
    if n_long == 0:
        return None
    fine = np.where(long_range, 0.0, decays)
    pad = [(0, n % 2) for n in decays.shape]
    coarse_decays = 8.0 * _block_mean(np.pad(np.where(long_range, decays, 0.0), pad))
    coarse_density = _block_mean(np.pad(np.asarray(density_g_cm3, dtype=np.float64), pad, mode="edge"))
    return LongRangeSplit(
        fine_decays=fine,
        coarse_decays=coarse_decays,
        coarse_density=coarse_density,
        coarse_spacing_mm=tuple(float(2.0 * h) for h in spacing),
        fine_shape=tuple(int(n) for n in decays.shape),
        long_range_sources=n_long,
    )


def _linear_up(values: np.ndarray, axis: int) -> np.ndarray:
    """Cell-centred linear interpolation to twice the resolution along ``axis`` (weights 3/4, 1/4; edges
    repeat the last value)."""
    values = np.moveaxis(values, axis, 0)
    lower = np.concatenate([values[:1], values[:-1]])
    upper = np.concatenate([values[1:], values[-1:]])
    out = np.empty((2 * values.shape[0],) + values.shape[1:])
    out[0::2] = 0.75 * values + 0.25 * lower
    out[1::2] = 0.75 * values + 0.25 * upper
    return np.moveaxis(out, 0, axis)


def add_prolonged(fine_dose: np.ndarray, coarse_dose: np.ndarray, density_g_cm3: np.ndarray) -> None:
    """Add the coarse dose to ``fine_dose`` in place: trilinear (cell-centred) interpolation, rescaled in
    every block so that the block keeps its energy (block dose x block mass); a block where the
    interpolation is 0 takes its own dose in every fine voxel."""
    n0, n1, n2 = fine_dose.shape
    m0, m1, m2 = coarse_dose.shape
    up = coarse_dose
    for axis in range(3):
        up = _linear_up(up, axis)
    pad = [(0, 2 * m - n) for m, n in zip(coarse_dose.shape, fine_dose.shape)]
    rho = np.pad(np.asarray(density_g_cm3, dtype=np.float64), pad, mode="edge")
    mass_blocks = rho.reshape(m0, 2, m1, 2, m2, 2)
    energy = (up * rho).reshape(m0, 2, m1, 2, m2, 2).sum(axis=(1, 3, 5))
    target = coarse_dose * mass_blocks.sum(axis=(1, 3, 5))
    scale = np.divide(target, energy, out=np.zeros_like(target), where=energy > 0)
    up = up.reshape(m0, 2, m1, 2, m2, 2)
    up *= scale[:, None, :, None, :, None]
    flat = (energy <= 0) & (coarse_dose != 0)
    if np.any(flat):
        up[flat[:, None, :, None, :, None].repeat(2, 1).repeat(2, 3).repeat(2, 5)] = np.broadcast_to(
            coarse_dose[:, None, :, None, :, None], up.shape
        )[flat[:, None, :, None, :, None].repeat(2, 1).repeat(2, 3).repeat(2, 5)]
    fine_dose += up.reshape(2 * m0, 2 * m1, 2 * m2)[:n0, :n1, :n2]


__all__ = ["LONG_RANGE_VOXELS", "LongRangeSplit", "add_prolonged", "reach_mm", "split_long_range"]
