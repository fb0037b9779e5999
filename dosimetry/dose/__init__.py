"""Absorbed dose from activity at implant time: one function per method, one dispatcher.

Every method takes the activity per voxel at implant time (Bq, :class:`~dosimetry.image.Image`) and the
mass density per voxel (g/mL, same grid) and returns the absorbed dose of the permanent implant
(decayed to infinity) in Gy on the same grid.
"""

from __future__ import annotations

import importlib

from dosimetry.errors import GeometryError, OptionsError
from dosimetry.image import Image

_METHOD_FUNCTIONS = {
    "ldm": ("dosimetry.dose.ldm", "ldm_dose"),
    "kernel": ("dosimetry.dose.kernel_methods", "kernel_dose"),
    "kernel-density": ("dosimetry.dose.kernel_methods", "kernel_density_dose"),
    "kernel-range": ("dosimetry.dose.kernel_methods", "kernel_range_dose"),
}
"""Dose methods by their command-line name: (module, function). The kernel methods' module compiles numba
loops (about 90 MiB and 0.8 s to import), so it is imported when a kernel method is used, not for LDM."""

METHODS: tuple[str, ...] = tuple(_METHOD_FUNCTIONS)
"""Dose method names (see :mod:`dosimetry.dose.kernel_methods` for the kernels)."""


def method_function(method: str):
    """The dose function of a method name (imported on first use)."""
    try:
        module, name = _METHOD_FUNCTIONS[method]
    except KeyError:
        raise OptionsError(f"unknown dose method {method!r}; choose one of {', '.join(METHODS)}") from None
    return getattr(importlib.import_module(module), name)


def __getattr__(name: str):  # PEP 562: dosimetry.dose.kernel_dose etc. without importing numba up front
    for module, function in _METHOD_FUNCTIONS.values():
        if name == function:
            return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    function = method_function(method)
    if not activity_bq.same_grid(density_g_ml):
        raise GeometryError("activity and density must be on the same grid; resample the density first")
    return function(activity_bq, density_g_ml)  # type: ignore[operator]


__all__ = [
    "METHODS",
    "compute_dose",
    "method_function",
    "kernel_density_dose",
    "kernel_dose",
    "kernel_range_dose",
    "ldm_dose",
]
