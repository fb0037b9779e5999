"""Dose statistics over ROIs given as occupancy weights on the dose grid: means, DVH metrics, T:N.

Conventions (also in ARCHITECTURE.md):

* Each voxel counts with weight ``w`` = fraction of it inside the ROI (0..1).
* ``mean_gy`` is the mass-weighted mean, ``sum(w m D) / sum(w m)`` = energy imparted / mass: the quantity
  the MIRD and partition-model formulas give. ``voxel_mean_gy`` (lung) is the volume-weighted mean.
* Dose-volume metrics are by volume: ``Dx`` is the minimum dose to the hottest ``x`` % of the volume,
  ``Vx`` the percentage of the volume receiving at least ``x`` Gy; ``median_gy`` = D50 and ``std_gy``
  are volume-weighted too; ``min_gy``/``max_gy`` are over voxels with ``w > 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dosimetry.occupancy import Occupancy, gather

D_LEVELS_PERCENT: tuple[int, ...] = (2, 50, 70, 90, 98)
V_LEVELS_GY: tuple[int, ...] = (20, 40, 70, 100, 120, 150, 200)
STAT_KEYS: tuple[str, ...] = (
    ("volume_ml", "mass_g", "activity_mbq", "mean_gy", "std_gy", "min_gy", "max_gy", "median_gy")
    + tuple(f"D{x}" for x in D_LEVELS_PERCENT)
    + tuple(f"V{x}" for x in V_LEVELS_GY)
)
"""Keys of every ROI's statistics, in output order (D in Gy, V in % of volume)."""


def dose_at_volume_percent(dose_sorted_desc: np.ndarray, cumulative_fraction: np.ndarray, percent: float) -> float:
    """Dx: the dose of the voxel at which the hottest ``percent`` % of the volume is reached."""
    index = int(np.searchsorted(cumulative_fraction, percent / 100.0 - 1e-12, side="left"))
    return float(dose_sorted_desc[min(index, dose_sorted_desc.size - 1)])


@dataclass(frozen=True)
class SortedDose:
    """Doses of an ROI's voxels sorted hottest first, with volume weights, for DVH queries."""

    dose_gy: np.ndarray
    cumulative_fraction: np.ndarray

    @classmethod
    def from_weights(cls, dose_gy: np.ndarray, weights: np.ndarray) -> "SortedDose":
        order = np.argsort(-dose_gy, kind="stable")
        w = weights[order]
        return cls(dose_gy[order], np.cumsum(w) / np.sum(w))

    def volume_percent_at_least(self, dose_gy) -> np.ndarray:
        """Percentage of volume receiving at least each of ``dose_gy`` (the cumulative DVH)."""
        d = np.asarray(dose_gy, dtype=float)
        # number of voxels with dose >= d in a descending array
        count = np.searchsorted(-self.dose_gy, -d, side="right")
        fraction = np.where(count > 0, self.cumulative_fraction[np.maximum(count - 1, 0)], 0.0)
        return 100.0 * fraction


def roi_statistics(
    dose_gy: np.ndarray, activity_bq: np.ndarray, density_g_ml: np.ndarray, weights: np.ndarray, voxel_volume_ml: float
) -> tuple[dict[str, float], SortedDose]:
    """Statistics of one ROI (keys :data:`STAT_KEYS`) and its sorted doses for the DVH.

    Parameters
    ----------
    dose_gy, activity_bq, density_g_ml : ndarray
        Dose (Gy), activity at implant (Bq) and density (g/mL) per voxel, same shape.
    weights : Occupancy or ndarray
        Occupancy (0..1) of the ROI per voxel on the same grid (:class:`~dosimetry.occupancy.Occupancy` or a
        full-grid array).
    voxel_volume_ml : float
    """
    w32, sel = Occupancy.of(weights).voxels()  # gathers touch only the ROI's voxels
    w = w32.astype(np.float64)
    del w32
    d = gather(dose_gy, sel).astype(np.float64)
    mass_g = gather(density_g_ml, sel).astype(np.float64) * voxel_volume_ml * w
    volume_ml = float(w.sum() * voxel_volume_ml)
    mean_volume = float(np.sum(w * d) / w.sum())
    sorted_dose = SortedDose.from_weights(d, w)
    stats: dict[str, float] = {
        "volume_ml": volume_ml,
        "mass_g": float(mass_g.sum()),
        "activity_mbq": float(np.sum(gather(activity_bq, sel) * w) / 1e6),
        "mean_gy": float(np.sum(mass_g * d) / mass_g.sum()),
        "std_gy": float(np.sqrt(np.sum(w * (d - mean_volume) ** 2) / w.sum())),
        "min_gy": float(d.min()),
        "max_gy": float(d.max()),
        "median_gy": dose_at_volume_percent(sorted_dose.dose_gy, sorted_dose.cumulative_fraction, 50.0),
    }
    for x in D_LEVELS_PERCENT:
        stats[f"D{x}"] = dose_at_volume_percent(sorted_dose.dose_gy, sorted_dose.cumulative_fraction, x)
    for x in V_LEVELS_GY:
        stats[f"V{x}"] = float(sorted_dose.volume_percent_at_least(float(x)))
    stats["voxel_mean_gy"] = mean_volume
    return stats, sorted_dose


def dvh_table(
    sorted_doses: dict[str, SortedDose], *, bin_gy: float | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Cumulative DVHs of several ROIs on one dose axis (Gy): volume % receiving at least each dose.

    The dose step is ``bin_gy`` or about 1/500 of the largest dose, rounded to 1, 2 or 5 x 10^n Gy.
    """
    top = max((float(s.dose_gy[0]) for s in sorted_doses.values()), default=0.0)
    if bin_gy is None:
        raw = max(top, 1e-6) / 500.0
        exponent = np.floor(np.log10(raw))
        mantissa = raw / 10**exponent
        bin_gy = float(min((m for m in (1, 2, 5, 10) if m >= mantissa)) * 10**exponent)
    axis = np.arange(0.0, top + 2 * bin_gy, bin_gy)
    return axis, {name: s.volume_percent_at_least(axis) for name, s in sorted_doses.items()}
