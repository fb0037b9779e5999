"""Radioactive decay of Y-90: correcting an image back to implant time, cumulated activity of an implant."""

from __future__ import annotations

import math
from datetime import datetime

from .constants import Y90_DECAY_CONSTANT_PER_S, Y90_MEAN_LIFE_S
from .errors import UnitsError


def decay_factor_to_implant(delay_s: float) -> float:
    """Factor that turns activity measured ``delay_s`` seconds after implant into activity at implant.

    ``A0 = A(t) * exp(lambda * t)``, lambda = ln 2 / T1/2 (Y-90, ICRP 107).
    """
    if not math.isfinite(delay_s):
        raise UnitsError(f"scan delay must be a finite number of seconds, got {delay_s}")
    if delay_s < 0:
        raise UnitsError(
            f"the scan is {-delay_s / 3600:.2f} h BEFORE the implant time; check --scan-delay-h or the "
            "scan and implant date-times")
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
