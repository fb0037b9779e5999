"""The allowed range of every numeric option, in one table used by the command line and the Python API.

A value outside its range is almost always a unit slip (MBq for GBq, a percentage for a fraction, cGy for
Gy, grams for kilograms) that would otherwise give a dose that looks fine and is wrong. The command line
checks each value as it is parsed (:func:`option_type`, one line ``error: --option: ...``, exit code 7);
:class:`~dosimetry.pipeline.DosimetryOptions` checks the same table when it is built
(:func:`check_fields`), so a notebook user gets the same message with the attribute's name. NaN and
infinity are refused everywhere.

Example::

    >>> check_value("residual_fraction", 0.03)
    0.03
    >>> check_value("residual_fraction", 3)
    Traceback (most recent call last):
    ...
    dosimetry.errors.OptionsError: residual_fraction: got 3, expected a number >= 0 and < 1; give a fraction, not a percentage (3% is 0.03)
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from dosimetry.errors import OptionsError

__all__ = ["OptionRange", "RANGES", "BY_OPTION", "check_value", "check_fields", "option_type", "OptionValueError"]


@dataclass(frozen=True)
class OptionRange:
    """The allowed values of one numeric option.

    Attributes
    ----------
    field : str
        Name in the Python API (attribute of ``DosimetryOptions``, ``ClinicalOptions`` or keyword argument).
    option : str or None
        Command-line option, None for API-only settings.
    low, high : float
        Bounds; ``low_open`` / ``high_open`` exclude them.
    unit : str
        Unit written after the bounds in messages ('' for ratios).
    fix : str
        What to do instead, for the message.
    """

    field: str
    option: str | None
    low: float
    high: float
    low_open: bool
    high_open: bool
    unit: str
    fix: str

    def describe(self) -> str:
        """The allowed values in words, e.g. ``a number > 0 and < 20 GBq``."""
        unit = f" {self.unit}" if self.unit else ""
        low = f"{'>' if self.low_open else '>='} {self.low:g}"
        high = f"{'<' if self.high_open else '<='} {self.high:g}"
        return f"a number {low} and {high}{unit}"

    def contains(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return math.isfinite(value) and above and below


def _r(field, option, low, high, bounds, unit, fix) -> OptionRange:
    """``bounds`` as in interval notation: '[]', '[)', '(]', '()'."""
    return OptionRange(field, option, float(low), float(high), bounds[0] == "(", bounds[1] == ")", unit, fix)


_FRACTION_FIX = "give a fraction, not a percentage (3% is 0.03)"
_DOSE_FIX = "give Gy (not cGy), e.g. 120"
_ALPHA_BETA_FIX = "give alpha/beta in Gy (typically 10 for tumours, 2.5 for liver)"

RANGES: tuple[OptionRange, ...] = (
    # run: calibration and timing
    _r("administered_activity_gbq", "--administered-gbq", 0, 20, "()", "GBq", "give GBq (not MBq), e.g. 2.5"),
    _r("residual_fraction", "--residual-fraction", 0, 1, "[)", "", _FRACTION_FIX),
    _r("lung_shunt_fraction", "--lung-shunt", 0, 1, "[)", "", _FRACTION_FIX),
    _r(
        "scan_delay_h",
        "--scan-delay-h",
        0,
        720,
        "[]",
        "h",
        "give the hours from implant to scan (at most 30 days; 0 for an image decay-corrected to implant)",
    ),
    _r(
        "calibration_factor_cps_per_mbq",
        "--spect-cps-per-mbq",
        0,
        10_000,
        "(]",
        "cps/MBq",
        "give counts per second per MBq (Y-90 bremsstrahlung SPECT: typically 1 to 100)",
    ),
    # run: dose
    _r("default_density_g_ml", "--density-g-ml", 0, 3, "(]", "g/mL", "give g/mL (soft tissue 1.03), not kg/m3"),
    _r("lung_mass_kg", "--lung-mass-kg", 0, 5, "(]", "kg", "give kilograms (adult lungs about 1 kg), not grams"),
    # run: radiobiology, planning models, thresholds (dosimetry.stats.clinical)
    _r("alpha_beta_tumor_gy", "--alpha-beta-tumor-gy", 0, 100, "(]", "Gy", _ALPHA_BETA_FIX),
    _r("alpha_beta_liver_gy", "--alpha-beta-liver-gy", 0, 100, "(]", "Gy", _ALPHA_BETA_FIX),
    _r("alpha_beta_lung_gy", "--alpha-beta-lung-gy", 0, 100, "(]", "Gy", _ALPHA_BETA_FIX),
    _r("alpha_beta_other_gy", "--alpha-beta-other-gy", 0, 100, "(]", "Gy", _ALPHA_BETA_FIX),
    _r(
        "repair_half_time_h", "--repair-half-time-h", 0, 48, "(]", "h", "give hours (typically 0.5 to 2.5), not minutes"
    ),
    _r(
        "repair_half_time_lung_h",
        "--repair-half-time-lung-h",
        0,
        48,
        "(]",
        "h",
        "give hours (typically 0.5 to 2.5), not minutes",
    ),
    _r("eud_alpha_per_gy", "--eud-alpha-per-gy", 0, 2, "(]", "1/Gy", "give alpha in 1/Gy (typically 0.001 to 0.05)"),
    _r("height_cm", "--height-cm", 50, 250, "[]", "cm", "give centimetres, e.g. 172"),
    _r("weight_kg", "--weight-kg", 2, 400, "[]", "kg", "give kilograms, e.g. 70"),
    _r("planning_tn_ratio", "--planning-tn", 0, 1000, "(]", "", "give the tumour-to-normal ratio, e.g. 3"),
    _r("mird_target_gy", "--mird-target-gy", 0, 1000, "(]", "Gy", _DOSE_FIX),
    _r("previous_lung_dose_gy", "--previous-lung-dose-gy", 0, 1000, "[]", "Gy", _DOSE_FIX),
    _r("partition_normal_liver_limit_gy", None, 0, 1000, "(]", "Gy", _DOSE_FIX),
    _r("partition_lung_limit_gy", None, 0, 1000, "(]", "Gy", _DOSE_FIX),
    # accumulate: registration check
    _r("min_ncc", "--min-ncc", 0, 1, "[]", "", "give a correlation between 0 and 1 (default 0.7)"),
    _r("min_overlap", "--min-overlap", 0, 1, "[]", "", "give a fraction between 0 and 1 (default 0.5)"),
)
"""Every numeric option and its allowed values; the single source of the checks."""

BY_FIELD: dict[str, OptionRange] = {r.field: r for r in RANGES}
BY_OPTION: dict[str, OptionRange] = {r.option: r for r in RANGES if r.option}


def _message(name: str, shown: str, spec: OptionRange) -> str:
    return f"{name}: got {shown}, expected {spec.describe()}; {spec.fix}"


def check_value(field: str, value, *, name: str | None = None) -> float:
    """``value`` as a float if it lies in the range of ``field``; else :class:`OptionsError`.

    ``name`` is the name shown in the message (default: ``field``; the command line shows the option).
    """
    spec = BY_FIELD[field]
    name = name or field
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise OptionsError(_message(name, f"{value!r} ({type(value).__name__})", spec))
    number = float(value)
    if not spec.contains(number):
        raise OptionsError(_message(name, f"{number:g}", spec))
    return number


def check_fields(obj, fields=None) -> None:
    """Check every attribute of ``obj`` named in the table (or in ``fields``); None means not given."""
    for field in fields if fields is not None else BY_FIELD:
        value = getattr(obj, field, None)
        if value is not None:
            check_value(field, value)


class OptionValueError(Exception):
    """A command-line value out of range or unparsable, carrying the :class:`OptionsError` to report.

    Deliberately not a ``ValueError``: argparse turns those into a usage dump with exit code 2, and the
    command line wants one line and exit code 7 instead (see :func:`dosimetry.cli.main`).
    """

    def __init__(self, error: OptionsError):
        super().__init__(str(error))
        self.error = error


def option_type(option: str):
    """The argparse ``type`` of a numeric command-line ``option``: parses and range-checks its value."""
    spec = BY_OPTION[option]

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise OptionValueError(OptionsError(_message(option, repr(text), spec))) from None
        try:
            return check_value(spec.field, value, name=option)
        except OptionsError as err:
            raise OptionValueError(err) from None

    parse.__name__ = spec.field
    return parse
