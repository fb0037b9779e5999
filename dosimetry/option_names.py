"""How a message names an option: the command line's flag, or the Python API's parameter.

A warning that tells a notebook user to "set --resolution-mm" names something they cannot set. Library
messages therefore name options through :func:`option_name`, which gives the API parameter
(``ClinicalOptions(resolution_mm=...)``) by default and the command-line flag (``--resolution-mm``)
inside :func:`command_line_vocabulary`, which only the ``dosimetry`` command enters (``cli.main``; batch
cases and the nightly job run through it). The choice is a context variable, so threads and studies run
side by side keep their own.

>>> option_name("resolution_mm")
'ClinicalOptions(resolution_mm=...)'
>>> with command_line_vocabulary():
...     option_name("resolution_mm")
'--resolution-mm'
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Iterator

__all__ = ["OPTION_NAMES", "command_line_vocabulary", "option_name"]

OPTION_NAMES: dict[str, tuple[str, str]] = {
    "resolution_mm": ("--resolution-mm", "ClinicalOptions(resolution_mm=...)"),
    "recovery_curve": ("--recovery-curve", "ClinicalOptions(recovery_curve=...)"),
    "emission_nuclide": ("--emission-nuclide", "DosimetryOptions(emission_nuclide=...)"),
    "ct": ("--ct", "ct= of run_dosimetry"),
    "density_g_ml": ("--density-g-ml", "DosimetryOptions(default_density_g_ml=...)"),
    "activity_units": ("--activity-units", "DosimetryOptions(activity_units=...)"),
    "residual_fraction": ("--residual-fraction", "DosimetryOptions(residual_fraction=...)"),
    "lung_shunt": ("--lung-shunt", "DosimetryOptions(lung_shunt_fraction=...)"),
    "lung_mass_kg": ("--lung-mass-kg", "DosimetryOptions(lung_mass_kg=...)"),
    "roi_liver": ("--roi liver=PATH", "a Roi of role 'liver' in rois"),
    "roi_tumor": ("--roi tumor:NAME=PATH", "Roi(NAME, 'tumor', mask) in rois"),
}
"""Option key -> (command-line flag, Python API parameter)."""

_VOCABULARY: contextvars.ContextVar[str] = contextvars.ContextVar("dosimetry_option_vocabulary", default="api")


def option_name(key: str) -> str:
    """The name of option ``key`` (a key of :data:`OPTION_NAMES`) in the current vocabulary."""
    cli, api = OPTION_NAMES[key]
    return cli if _VOCABULARY.get() == "cli" else api


@contextmanager
def command_line_vocabulary() -> Iterator[None]:
    """Within this block, :func:`option_name` gives command-line flags (the ``dosimetry`` command)."""
    token = _VOCABULARY.set("cli")
    try:
        yield
    finally:
        _VOCABULARY.reset(token)
