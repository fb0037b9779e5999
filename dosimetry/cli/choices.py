"""The choices of the command line's options, as plain data (no numpy, no numba).

The command line's parser is built from these names without importing the modules that implement them,
so that ``dosimetry --help`` stays fast. ``tests/test_cli_package.py`` checks that they equal the API's
own lists (:data:`dosimetry.dose.METHODS`, :data:`dosimetry.quantify.activity.UNITS`); the API validates the
values again when it runs.
"""

from __future__ import annotations

METHODS: tuple[str, ...] = ("ldm", "kernel", "kernel-density", "kernel-range")
"""Dose methods, as in :data:`dosimetry.dose.METHODS`."""

ACTIVITY_UNITS: tuple[str, ...] = ("Bq/mL", "kBq/mL", "MBq/mL", "counts", "cps", "arbitrary")
"""Units of an activity image, as in :data:`dosimetry.quantify.activity.UNITS`."""

CALIBRATIONS: tuple[str, ...] = ("absolute", "relative")
"""Calibration modes of :class:`dosimetry.pipeline.DosimetryOptions`."""

__all__ = ["ACTIVITY_UNITS", "CALIBRATIONS", "METHODS"]
