"""Absorbed dose from activity at implant time: one function per method, one dispatcher.

Every method takes the activity per voxel at implant time (Bq, :class:`~dosimetry.image.Image`) and the
mass density per voxel (g/mL, same grid) and returns the absorbed dose of the permanent implant
(decayed to infinity) in Gy on the same grid.
"""

from __future__ import annotations

from dosimetry.errors import GeometryError, OptionsError
from dosimetry.image import Image
from dosimetry.dose.kernel_methods import kernel_density_dose, kernel_dose, kernel_range_dose
from dosimetry.dose.ldm import ldm_dose

METHODS: dict[str, object] = {
    "ldm": ldm_dose,
    "kernel": kernel_dose,
    "kernel-density": kernel_density_dose,
    "kernel-range": kernel_range_dose,
}
"""Dose methods by their command-line name (see :mod:`dosimetry.dose.kernel_methods` for the kernels)."""


def compute_dose(activity_bq: Image, density_g_ml: Image, *, method: str = "ldm") -> Image:
    """Absorbed dose (Gy) of a permanent Y-90 implant by the named method.

    Parameters
    ----------
    activity_bq : Image
        Activity in each voxel at implant time (Bq).
    density_g_ml : Image
        Mass density of each voxel (g/mL), on the same grid.
    method : str
        One of :data:`METHODS`.
    """
    try:
        function = METHODS[method]
    except KeyError:
        raise OptionsError(f"unknown dose method {method!r}; choose one of {', '.join(METHODS)}") from None
    if not activity_bq.same_grid(density_g_ml):
        raise GeometryError("activity and density must be on the same grid; resample the density first")
    return function(activity_bq, density_g_ml)  # type: ignore[operator]


__all__ = ["METHODS", "compute_dose", "kernel_density_dose", "kernel_dose", "kernel_range_dose", "ldm_dose"]
