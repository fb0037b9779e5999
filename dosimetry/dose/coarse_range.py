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

import math
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


SLAB_FRACTION = 0.125
"""The split and the prolongation work in slabs of coarse planes along axis 0 of about this fraction of
the grid, so that their float64 temporaries stay small against the volume (issue 13: peak memory)."""


@dataclass(frozen=True)
class LongRangeSplit:
    """Sources split into short-range ones (fine grid) and long-range ones (coarse grid)."""

    long_range: np.ndarray
    """Boolean, fine grid: the sources moved to the coarse grid."""
    decays: np.ndarray
    """The decays as given (read only; a reference, not a copy)."""
    scale: float
    """Factor applied to ``decays`` (e.g. Bq -> decays x 1e-9)."""
    coarse_decays: np.ndarray
    """Decays (x ``scale``) of the long-range sources summed over blocks of 2 x 2 x 2 fine voxels."""
    coarse_density: np.ndarray
    """Block-mean density (g/cm3), the coarse grid."""
    coarse_spacing_mm: tuple[float, float, float]
    fine_shape: tuple[int, int, int]
    long_range_sources: int
    """Number of fine source voxels moved to the coarse grid."""

    @property
    def fine_decays(self) -> np.ndarray:
        """Decays (x ``scale``) of the short-range sources, fine grid (the long-range ones set to 0); a new
        full-size array (``kernel_range_dose`` uses ``long_range`` instead)."""
        return np.where(self.long_range, 0.0, np.asarray(self.decays, dtype=np.float64) * self.scale)


def reach_mm(density_g_cm3: np.ndarray) -> np.ndarray:
    """Range of the Y-90 point kernel (mm) at each density, clamped as the ray tracing clamps it."""
    rho = np.clip(density_g_cm3, KERNEL_RANGE_MIN_DENSITY_G_CM3, KERNEL_RANGE_MAX_DENSITY_G_CM3)
    return Y90_DPK_MAX_RADIUS_WATER_MM * DPK_WATER_DENSITY_G_CM3 / rho


def _block_mean(values: np.ndarray) -> np.ndarray:
    n0, n1, n2 = values.shape
    return values.reshape(n0 // 2, 2, n1 // 2, 2, n2 // 2, 2).mean(axis=(1, 3, 5))


def _coarse_slabs(m0: int):
    """(c0, c1) slabs of coarse planes, about SLAB_FRACTION of the grid each."""
    step = max(1, int(math.ceil(m0 * SLAB_FRACTION)))
    for c0 in range(0, m0, step):
        yield c0, min(m0, c0 + step)


def split_long_range(
    decays: np.ndarray, density_g_cm3: np.ndarray, spacing_mm, *, scale: float = 1.0
) -> LongRangeSplit | None:
    """Split the sources into short- and long-range ones (module documentation); None if none is long-range.

    ``decays`` (times ``scale``) and ``density_g_cm3`` are read, never written; the work is done in slabs of
    planes (no full-size float64 temporary).
    """
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    shape = decays.shape
    n0 = shape[0]
    long_range = np.empty(shape, dtype=bool)
    step = max(1, int(math.ceil(n0 * SLAB_FRACTION)))
    for f0 in range(0, n0, step):
        sl = slice(f0, min(n0, f0 + step))
        d = density_g_cm3[sl]
        long_range[sl] = (
            (decays[sl] != 0)
            & (d < KERNEL_RANGE_COARSE_MAX_DENSITY_G_CM3)
            & (reach_mm(d) >= LONG_RANGE_VOXELS * float(spacing.max()))
        )
    n_long = int(np.count_nonzero(long_range))
    if n_long == 0:
        return None
    m = tuple((n + 1) // 2 for n in shape)
    coarse_decays = np.empty(m)
    coarse_density = np.empty(m)
    lateral = [(0, n % 2) for n in shape[1:]]
    for c0, c1 in _coarse_slabs(m[0]):
        sl = slice(2 * c0, min(n0, 2 * c1))
        pad = [(0, 2 * (c1 - c0) - (sl.stop - sl.start))] + lateral
        values = np.where(long_range[sl], np.asarray(decays[sl], dtype=np.float64) * scale, 0.0)
        coarse_decays[c0:c1] = 8.0 * _block_mean(np.pad(values, pad))
        rho = np.asarray(density_g_cm3[sl], dtype=np.float64)
        coarse_density[c0:c1] = _block_mean(np.pad(rho, pad, mode="edge"))
    return LongRangeSplit(
        long_range=long_range,
        decays=decays,
        scale=float(scale),
        coarse_decays=coarse_decays,
        coarse_density=coarse_density,
        coarse_spacing_mm=tuple(float(2.0 * h) for h in spacing),
        fine_shape=tuple(int(n) for n in shape),
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
    interpolation is 0 takes its own dose in every fine voxel. Done in slabs of coarse planes (the
    interpolation along axis 0 reads the neighbouring coarse planes), so the float64 temporaries are a
    fraction of the volume."""
    n0, n1, n2 = fine_dose.shape
    m0, m1, m2 = coarse_dose.shape
    lateral = [(0, 2 * m - n) for m, n in zip((m1, m2), (n1, n2))]
    for c0, c1 in _coarse_slabs(m0):
        planes = np.arange(c0, c1)
        values = coarse_dose[c0:c1]
        lower = coarse_dose[np.maximum(planes - 1, 0)]
        upper = coarse_dose[np.minimum(planes + 1, m0 - 1)]
        up = np.empty((2 * (c1 - c0), m1, m2))
        up[0::2] = 0.75 * values + 0.25 * lower
        up[1::2] = 0.75 * values + 0.25 * upper
        del lower, upper
        for axis in (1, 2):
            up = _linear_up(up, axis)
        f0, f1 = 2 * c0, min(n0, 2 * c1)
        pad = [(0, 2 * (c1 - c0) - (f1 - f0))] + lateral
        rho = np.pad(np.asarray(density_g_cm3[f0:f1], dtype=np.float64), pad, mode="edge")
        k = c1 - c0
        mass_blocks = rho.reshape(k, 2, m1, 2, m2, 2)
        energy = (up * rho).reshape(k, 2, m1, 2, m2, 2).sum(axis=(1, 3, 5))
        target = values * mass_blocks.sum(axis=(1, 3, 5))
        del rho, mass_blocks
        scale = np.divide(target, energy, out=np.zeros_like(target), where=energy > 0)
        up = up.reshape(k, 2, m1, 2, m2, 2)
        up *= scale[:, None, :, None, :, None]
        flat = (energy <= 0) & (values != 0)
        if np.any(flat):
            mask = flat[:, None, :, None, :, None].repeat(2, 1).repeat(2, 3).repeat(2, 5)
            up[mask] = np.broadcast_to(values[:, None, :, None, :, None], up.shape)[mask]
        fine_dose[f0:f1] += up.reshape(2 * k, 2 * m1, 2 * m2)[: f1 - f0, :n1, :n2]


__all__ = ["LONG_RANGE_VOXELS", "SLAB_FRACTION", "LongRangeSplit", "add_prolonged", "reach_mm", "split_long_range"]
