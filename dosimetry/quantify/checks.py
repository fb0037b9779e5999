"""Plausibility checks of emission images, shared by the file and the DICOM paths.

An activity image that is all zero, holds no positive voxel, sums to zero or less, or whose positive part
is drowned by its negative part cannot give a dose: it is the wrong series or a wrong scaling (a
RescaleSlope of 0, a units label off by 10^6), and a run on it would report 0 Gy everywhere in silence.
:func:`check_emission_values` refuses such images with the image named; :func:`check_total_activity`
does the same for an absolutely calibrated total below any physical Y-90 implant and warns, with the
number, when the total is merely small.
"""

from __future__ import annotations

import numpy as np

from dosimetry.layout import slowest_axis_slabs

from dosimetry.errors import UnitsError
from dosimetry.image import Image

NET_TO_GROSS_MIN: float = 1e-3
"""Smallest accepted ratio of the image sum to the sum of absolute values: below it the image is noise
around zero (its positive and negative voxels cancel), not an activity distribution."""

MIN_TOTAL_ACTIVITY_BQ: float = 1e3
"""Absolute calibration: a total activity at implant below 1 kBq is refused. The smallest Y-90 treatment
is about 100 MBq (10^5 times more); a total this low comes from wrong units or scaling (MBq/mL read as
Bq/mL gives 10^-6 of the truth)."""

LOW_TOTAL_ACTIVITY_BQ: float = 1e7
"""Absolute calibration: a total activity at implant below 10 MBq (below any Y-90 treatment; the
plausible RadionuclideTotalDose range of :mod:`dosimetry.dicom.pet` starts there) gives a warning."""


_SLAB_VOXELS = 2_000_000


def check_emission_values(values, *, source: str) -> None:
    """Refuse an emission image that cannot hold an activity distribution.

    Parameters
    ----------
    values : ndarray or Image
        Voxel values (any units: Bq/mL, counts).
    source : str
        The file or series, named in the message.

    Raises
    ------
    UnitsError
        No positive voxel (all zero, or all zero or negative), a sum of zero or less, or a sum below
        :data:`NET_TO_GROSS_MIN` of the sum of absolute values. Images with NaN or inf are not checked
        here: :func:`dosimetry.quantify.activity.activity_at_implant` refuses them.
    """
    array = np.asarray(values.array if isinstance(values, Image) else values)
    # one pass over slabs along the slowest axis, in float64: no float64 copy of the whole image
    finite_all, any_positive, any_nonzero, largest, total, gross = True, False, False, 0.0, 0.0, 0.0
    for part in slowest_axis_slabs(array, _SLAB_VOXELS):
        slab = array[part].astype(np.float64)
        if not np.all(np.isfinite(slab)):
            finite_all = False
            break
        any_positive = any_positive or bool(np.any(slab > 0))
        any_nonzero = any_nonzero or bool(np.any(slab))
        largest = max(largest, float(slab.max(initial=0.0)))
        total += float(slab.sum())
        gross += float(np.abs(slab).sum())
    if not finite_all:
        return  # NaN or inf: refused by the caller's own check, with its own message
    fix = "check that it is the emission series and that its scaling (RescaleSlope, units) is right"
    if array.size == 0 or not any_positive:
        what = "all zero" if array.size and not any_nonzero else "without a single positive voxel"
        raise UnitsError(f"{source}: the activity image is {what} (maximum {largest:g}); {fix}")
    if total <= 0:
        raise UnitsError(
            f"{source}: the activity image sums to {total:g} (negative voxels outweigh positive ones); {fix}"
        )
    if total < NET_TO_GROSS_MIN * gross:
        raise UnitsError(
            f"{source}: the activity image sums to {total:g}, only {total / gross:.2g} of the sum of its absolute "
            f"values ({gross:g}): noise around zero, not an activity distribution; {fix}"
        )


def check_total_activity(activity_bq: Image, *, calibration: str, source: str) -> list[str]:
    """Refuse an absolutely calibrated total activity at implant below :data:`MIN_TOTAL_ACTIVITY_BQ`;
    return a warning when it is below :data:`LOW_TOTAL_ACTIVITY_BQ`. Relative calibration sets the total
    itself, so it is not checked.

    Raises
    ------
    UnitsError
        Total below 1 kBq with absolute calibration.
    """
    if calibration != "absolute":
        return []
    total_bq = float(np.sum(activity_bq.array, dtype=np.float64))
    if total_bq < MIN_TOTAL_ACTIVITY_BQ:
        raise UnitsError(
            f"{source}: the image holds {total_bq:.3g} Bq in total at implant, below {MIN_TOTAL_ACTIVITY_BQ:g} Bq "
            "(a Y-90 treatment is at least 1e8 Bq); check the activity units (--activity-units: MBq/mL read as "
            "Bq/mL?) and the image scaling"
        )
    if total_bq < LOW_TOTAL_ACTIVITY_BQ:
        return [
            f"{source}: the image holds {total_bq / 1e6:.3g} MBq in total at implant, below any Y-90 treatment "
            f"({LOW_TOTAL_ACTIVITY_BQ / 1e6:g} MBq); check the activity units and the image scaling"
        ]
    return []
