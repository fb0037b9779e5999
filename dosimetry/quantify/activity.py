"""Activity per voxel at implant time, from an emission image: absolute or relative calibration.

* ``absolute``: the image is a calibrated concentration (Bq/mL, kBq/mL or MBq/mL) at scan time; it is
  multiplied by the voxel volume and decay-corrected back to implant time.
* ``relative``: the image (any units, e.g. SPECT counts) is scaled so that the activity inside the
  calibration ROI equals administered activity x (1 - residual fraction) x (1 - lung shunt fraction):
  the activity delivered to the liver. Decay then cancels (the scaling targets implant-time activity).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from dosimetry.occupancy import Occupancy
from dosimetry.quantify.decay import decay_factor_to_implant, delay_s_between
from dosimetry.errors import OptionsError, UnitsError
from dosimetry.image import Image

CONCENTRATION_UNITS_TO_BQ_ML: dict[str, float] = {"Bq/mL": 1.0, "kBq/mL": 1e3, "MBq/mL": 1e6}
"""Calibrated concentration units and their factor to Bq/mL."""
RELATIVE_ONLY_UNITS: tuple[str, ...] = ("counts", "cps", "arbitrary")
"""Units that carry no absolute scale: only relative calibration can use them."""
UNITS = tuple(CONCENTRATION_UNITS_TO_BQ_ML) + RELATIVE_ONLY_UNITS


def parse_units(text: str) -> str:
    """Canonical spelling of an activity unit (case-insensitive, 'BQML' accepted for Bq/mL)."""
    key = text.strip().replace(" ", "").lower()
    aliases = {u.lower(): u for u in UNITS}
    aliases.update(
        {
            "bqml": "Bq/mL",
            "bq/ml": "Bq/mL",
            "bq/cc": "Bq/mL",
            "kbqml": "kBq/mL",
            "mbqml": "MBq/mL",
            "cnts": "counts",
            "count": "counts",
        }
    )
    if key not in aliases:
        raise UnitsError(f"unknown activity units {text!r}; use one of {', '.join(UNITS)}")
    return aliases[key]


@dataclass(frozen=True)
class Timing:
    """When the image values hold, relative to the implant: a delay, or two date-times."""

    scan_delay_h: float | None = None
    scan_time: datetime | None = None
    implant_time: datetime | None = None

    def delay_s(self) -> float | None:
        if self.scan_delay_h is not None and (self.scan_time or self.implant_time):
            raise OptionsError("give either --scan-delay-h or --scan-time with --implant-time, not both")
        if self.scan_delay_h is not None:
            return float(self.scan_delay_h) * 3600.0
        if self.scan_time is not None and self.implant_time is not None:
            return delay_s_between(self.scan_time, self.implant_time)
        if self.scan_time is not None or self.implant_time is not None:
            raise OptionsError("--scan-time and --implant-time must be given together")
        return None


@dataclass(frozen=True)
class Calibration:
    """How image values become activity; see the module docstring."""

    mode: str = "absolute"
    administered_activity_gbq: float | None = None
    residual_fraction: float = 0.0
    lung_shunt_fraction: float = 0.0

    def __post_init__(self):
        if self.mode not in ("absolute", "relative"):
            raise OptionsError(f"calibration must be 'absolute' or 'relative', got {self.mode!r}")
        for name in ("residual_fraction", "lung_shunt_fraction"):
            value = getattr(self, name)
            if not (0.0 <= value < 1.0):
                raise OptionsError(f"{name.replace('_', ' ')} must be in [0, 1), got {value}")
        a = self.administered_activity_gbq
        if a is not None and not (np.isfinite(a) and 0 < a < 100):
            raise OptionsError(
                f"administered activity must be in GBq (0 < A < 100), got {a}; a value in MBq? divide by 1000"
            )

    @property
    def liver_target_gbq(self) -> float:
        """Activity delivered to the liver: A x (1 - residual) x (1 - LSF), GBq."""
        if self.administered_activity_gbq is None:
            raise OptionsError("relative calibration needs the administered activity (--administered-gbq)")
        return self.administered_activity_gbq * (1 - self.residual_fraction) * (1 - self.lung_shunt_fraction)


@dataclass(frozen=True)
class ActivityMap:
    """Activity per voxel at implant time and the record of how it was obtained."""

    activity_bq: Image
    record: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def activity_at_implant(
    image: Image,
    *,
    units: str,
    calibration: Calibration,
    timing: Timing,
    calibration_occupancy: Occupancy | np.ndarray | None = None,
    calibration_roi_name: str | None = None,
) -> ActivityMap:
    """Activity (Bq) in each voxel at implant time.

    Parameters
    ----------
    image : Image
        Emission image in ``units``.
    units : str
        One of :data:`UNITS`.
    calibration : Calibration
    timing : Timing
        Needed for absolute calibration (the delay may be 0 for an image already corrected to implant).
    calibration_occupancy : Occupancy or ndarray, optional
        Occupancy (0..1) of the calibration ROI on the image grid; required for relative calibration.

    Raises
    ------
    UnitsError
        Uncalibrated units with absolute calibration; absolute calibration without timing.
    """
    units = parse_units(units)
    # one float64 copy (the image's memory order: sums over it stay as they were), scaled in place: it
    # becomes the activity
    values = image.array.astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise UnitsError("the activity image holds NaN or infinite values; fix or mask them before dosimetry")
    record: dict = {"units": units, "calibration": calibration.mode}
    warnings: list[str] = []
    delay_s = timing.delay_s()
    if calibration.mode == "absolute":
        if units not in CONCENTRATION_UNITS_TO_BQ_ML:
            raise UnitsError(
                f"image units are {units!r}, which carry no absolute scale; use --calibration relative with "
                "--administered-gbq, or give an image in Bq/mL"
            )
        if delay_s is None:
            raise UnitsError(
                "absolute calibration needs the time from implant to scan: give --scan-delay-h H (0 if the image "
                "is already decay-corrected to implant) or --scan-time and --implant-time"
            )
        factor = decay_factor_to_implant(delay_s)
        negative = int(np.count_nonzero(values < 0))
        activity = values
        activity *= CONCENTRATION_UNITS_TO_BQ_ML[units] * image.voxel_volume_ml * factor
        record.update({"scan_delay_h": delay_s / 3600.0, "decay_factor_to_implant": factor})
    else:
        if calibration_occupancy is None:
            raise OptionsError("relative calibration needs a calibration ROI (a liver or perfused ROI)")
        target_bq = calibration.liver_target_gbq * 1e9
        occupancy = Occupancy.of(calibration_occupancy)  # its box only: the rest of the image weighs 0
        inside = float(np.sum(occupancy.crop(values) * occupancy.values))
        if not inside > 0:
            raise UnitsError(
                f"the image sums to {inside:g} inside the calibration ROI {calibration_roi_name!r}; relative "
                "calibration needs positive counts there (wrong ROI or wrong image?)"
            )
        scale = target_bq / inside
        negative = int(np.count_nonzero(values < 0))
        activity = values
        activity *= scale
        record.update(
            {
                "calibration_roi": calibration_roi_name,
                "administered_activity_gbq": calibration.administered_activity_gbq,
                "residual_fraction": calibration.residual_fraction,
                "lung_shunt_fraction": calibration.lung_shunt_fraction,
                "target_activity_gbq": target_bq / 1e9,
                "scale_bq_per_unit": scale,
                "formula": "A_roi = A_admin x (1 - residual) x (1 - LSF)",
            }
        )
        if delay_s is not None:
            record["scan_delay_h"] = delay_s / 3600.0
            record["note"] = "relative calibration targets implant-time activity: the scan delay cancels"
    if negative:
        warnings.append(
            f"{negative} voxels have negative activity (reconstruction noise); kept as they are, "
            "so doses there are negative"
        )
    return ActivityMap(image.with_array(activity), record, tuple(warnings))


RECOVERED_FRACTION_WARN_RANGE: tuple[float, float] = (0.7, 1.3)
"""Recovered fraction (image activity at implant / delivered activity) outside which a run warns: partial
volume, activity outside the field of view and calibration errors of 10-20% are usual, 30% is not."""
RECOVERED_FRACTION_REFUSE_FACTOR: float = 3.0
"""Beyond this factor either way (< 1/3 or > 3) the image cannot hold the delivered activity: a wrong unit
(x 1000), branching fraction (x 31,000) or calibration; absolute calibration is refused."""


def recovered_activity_check(
    activity_bq: Image,
    calibration: Calibration,
    *,
    residual_given: bool,
    administered_source: str | None = "given",
    what: str = "the activity image",
) -> tuple[dict, tuple[str, ...]]:
    """The recovered fraction of an absolutely calibrated image: does it hold the delivered activity?

    ``recovered_fraction = A_image(implant) / (A_admin x (1 - residual))``, the whole image's activity at
    implant time over the activity that left the vial. Applies to absolute calibration with a known
    administered activity; relative calibration sets the image's activity, so the check does not apply.

    Returns
    -------
    (record, warnings)
        The ``activity_check`` section of ``stats.json`` and the warnings (outside 0.7-1.3; residual
        fraction not given, 0 used).

    Raises
    ------
    UnitsError
        The fraction is beyond a factor 3 either way: likely wrong units (Bq/mL vs kBq/mL), a missing
        Y-90 positron branching fraction, or a wrong calibration or administered activity.
    """
    from dosimetry.constants import Y90_POSITRON_FRACTION

    low, high = RECOVERED_FRACTION_WARN_RANGE
    record: dict = {
        "applies": False,
        "recovered_fraction": None,
        "warn_range": [low, high],
        "refuse_factor": RECOVERED_FRACTION_REFUSE_FACTOR,
        "formula": "A_image(implant) / (A_admin x (1 - residual))",
    }
    if calibration.mode != "absolute":
        record["reason"] = "relative calibration: the image is scaled to the administered activity, no check"
        return record, ()
    if calibration.administered_activity_gbq is None:
        record["reason"] = "no administered activity known (give --administered-gbq): not checked"
        return record, ()
    image_gbq = float(np.sum(activity_bq.array, dtype=np.float64)) / 1e9
    administered = calibration.administered_activity_gbq
    residual = calibration.residual_fraction if residual_given else 0.0
    expected = administered * (1.0 - residual)
    fraction = image_gbq / expected
    record.update(
        {
            "applies": True,
            "recovered_fraction": fraction,
            "image_activity_at_implant_gbq": image_gbq,
            "administered_activity_gbq": administered,
            "administered_activity_source": administered_source,
            "residual_fraction": residual,
            "residual_source": "given" if residual_given else "not given: 0 used",
            "expected_activity_gbq": expected,
        }
    )
    warnings: list[str] = []
    numbers = (
        f"{what} holds {image_gbq:.4g} GBq at implant, {fraction:.3g} x the delivered "
        f"{administered:g} GBq x (1 - {residual:g})"
    )
    if not (1.0 / RECOVERED_FRACTION_REFUSE_FACTOR <= fraction <= RECOVERED_FRACTION_REFUSE_FACTOR):
        ratio = f"{1 / fraction:.3g}x too little" if fraction < 1 else f"{fraction:.3g}x too much"
        raise UnitsError(
            f"{numbers} ({ratio}, beyond a factor {RECOVERED_FRACTION_REFUSE_FACTOR:g}): check the units (Bq/mL vs "
            f"kBq/mL: 1000x, --activity-units), the Y-90 positron branching fraction ({Y90_POSITRON_FRACTION:.4g} "
            f"per decay; a scanner without it reports ~{1 / Y90_POSITRON_FRACTION:,.0f}x too little) and the "
            "calibration or administered activity (--administered-gbq); or use --calibration relative"
        )
    if not (low <= fraction <= high):
        warnings.append(
            f"recovered fraction {fraction:.3g} outside {low:g}-{high:g}: {numbers}; check the "
            "calibration, the administered activity and activity outside the field of view"
        )
    if not residual_given:
        warnings.append("residual fraction not given: 0 used for the recovered-activity check")
    return record, tuple(warnings)
