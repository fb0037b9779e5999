"""Radioactive decay of Y-90: correcting an image back to implant time, cumulated activity of an implant."""

from __future__ import annotations

import math
from datetime import datetime

from dosimetry.constants import Y90_DECAY_CONSTANT_PER_S, Y90_MEAN_LIFE_S
from dosimetry.errors import UnitsError


NEGATIVE_DELAY_TOL_S: float = 60.0
"""A scan up to this many seconds before the implant time is clock skew between scanner and implant log
(the factor is then slightly below 1); earlier is an error."""

MAX_SCAN_DELAY_S: float = 30 * 86400.0
"""Longest implant-to-scan delay accepted (30 days, 11.2 Y-90 half-lives, factor 2.6e3): later, the image
holds less than 0.04% of the implanted activity and the dates are almost certainly wrong."""


def decay_factor_to_implant(delay_s: float) -> float:
    """Factor that turns activity measured ``delay_s`` seconds after implant into activity at implant.

    ``A0 = A(t) * exp(lambda * t)``, lambda = ln 2 / T1/2 (Y-90, ICRP 107).

    Raises
    ------
    UnitsError
        ``delay_s`` not a finite number, more than :data:`NEGATIVE_DELAY_TOL_S` before the implant, or
        longer than :data:`MAX_SCAN_DELAY_S` (the exponent is checked before ``exp``, so nothing overflows).
    """
    try:
        delay_s = float(delay_s)
    except (TypeError, ValueError) as err:
        raise UnitsError(f"scan delay must be a number of seconds, got {delay_s!r}") from err
    if not math.isfinite(delay_s):
        raise UnitsError(
            f"scan delay must be a finite number of seconds, got {delay_s}; check --scan-delay-h or the scan and "
            "implant date-times"
        )
    if delay_s < -NEGATIVE_DELAY_TOL_S:
        raise UnitsError(
            f"the scan is {-delay_s / 3600:.4g} h BEFORE the implant time; check --scan-delay-h or the "
            "scan and implant date-times"
        )
    if delay_s > MAX_SCAN_DELAY_S:
        raise UnitsError(
            f"the scan is {delay_s / 3600:.4g} h ({delay_s / 86400:.4g} days) after the implant, more than the "
            f"{MAX_SCAN_DELAY_S / 86400:.0f} days after which a Y-90 image holds almost no activity; check "
            "--scan-delay-h (hours, not minutes?) or the scan and implant date-times (the year?)"
        )
    return math.exp(Y90_DECAY_CONSTANT_PER_S * delay_s)


def delay_s_between(scan_time: datetime, implant_time: datetime) -> float:
    """Seconds from implant to scan (both timezone-naive local times, or both timezone-aware)."""
    if (scan_time.tzinfo is None) != (implant_time.tzinfo is None):
        raise UnitsError("scan and implant times must both have a time zone, or neither")
    return (scan_time - implant_time).total_seconds()


def cumulated_activity_bq_s(activity_at_implant_bq):
    """Cumulated activity (Bq s) of a permanent implant: ``A0 * T1/2 / ln 2`` (microspheres never leave).

    References
    ----------
    Gulec SA et al. J Nucl Med 2006;47:1209-11; MIRD Pamphlet 21 (Bolch 2009) for cumulated activity.
    """
    return activity_at_implant_bq * Y90_MEAN_LIFE_S
