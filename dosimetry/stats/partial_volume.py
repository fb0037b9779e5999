"""Partial-volume check of each lesion: is it too small for the image to show its activity?

A lesion smaller than about 2-3 x the image's resolution (FWHM) loses counts to its surroundings in the
emission image [Soret2007], so its activity, mean dose and D-values are biased low and dose-response
thresholds derived from larger lesions do not apply reliably. Every tumour ROI (lesion) gets a
``partial_volume`` record in ``stats['rois']`` and, when it is small, a warning:

* its equivalent-sphere diameter ``d = (6 V / pi)^(1/3)``;
* the resolution: ``resolution_mm`` (``--resolution-mm``, the reconstructed FWHM) when given; the scanner
  FWHM is not in the image, so without it the largest voxel spacing is used and said to be a lower bound of
  the FWHM (a reconstructed image cannot resolve finer than its voxels; a real Y-90 PET FWHM is usually
  larger, so with it fewer small lesions are flagged than should be -- give the FWHM);
* a warning when ``V < PARTIAL_VOLUME_MIN_VOLUME_ML`` (5 mL) or ``d < PARTIAL_VOLUME_MIN_DIAMETER_PER_FWHM``
  (3) x the resolution.

References
----------
.. [Soret2007] Soret M, Bacharach SL, Buvat I. Partial-volume effect in PET tumor imaging. J Nucl Med
   2007;48:932-45. doi:10.2967/jnumed.106.035774
"""

from __future__ import annotations

import math
from typing import Sequence

from dosimetry.constants import PARTIAL_VOLUME_MIN_DIAMETER_PER_FWHM, PARTIAL_VOLUME_MIN_VOLUME_ML
from dosimetry.defaults import assumption

__all__ = ["equivalent_sphere_diameter_mm", "partial_volume_record", "partial_volume_check"]


def equivalent_sphere_diameter_mm(volume_ml: float) -> float:
    """Diameter (mm) of the sphere of ``volume_ml`` (mL = 1000 mm3).

    >>> round(equivalent_sphere_diameter_mm(5.0), 1)
    21.2
    """
    return (6.0 * volume_ml * 1000.0 / math.pi) ** (1.0 / 3.0)


def partial_volume_record(volume_ml: float, resolution_mm: float, *, resolution_source: str) -> dict:
    """The ``partial_volume`` record of one lesion.

    Returns
    -------
    dict
        ``equivalent_diameter_mm``, ``resolution_mm``, ``resolution_source``, ``ratio`` (diameter /
        resolution), ``min_volume_ml`` and ``min_ratio`` (the limits), ``warning`` (bool) and ``reason``
        (which limit, or None).
    """
    diameter = equivalent_sphere_diameter_mm(volume_ml)
    ratio = diameter / resolution_mm
    reasons = []
    if volume_ml < PARTIAL_VOLUME_MIN_VOLUME_ML:
        reasons.append(f"under {PARTIAL_VOLUME_MIN_VOLUME_ML:g} mL")
    if ratio < PARTIAL_VOLUME_MIN_DIAMETER_PER_FWHM:
        reasons.append(f"diameter under {PARTIAL_VOLUME_MIN_DIAMETER_PER_FWHM:g} x the resolution")
    return {
        "equivalent_diameter_mm": diameter,
        "resolution_mm": resolution_mm,
        "resolution_source": resolution_source,
        "ratio": ratio,
        "min_volume_ml": PARTIAL_VOLUME_MIN_VOLUME_ML,
        "min_ratio": PARTIAL_VOLUME_MIN_DIAMETER_PER_FWHM,
        "warning": bool(reasons),
        "reason": " and ".join(reasons) or None,
    }


def partial_volume_check(
    stats: dict, *, resolution_mm: float | None, spacing_mm: Sequence[float] | None
) -> tuple[list[str], list[dict]]:
    """Add ``partial_volume`` to every given tumour ROI of ``stats['rois']``; return warnings and assumptions.

    Parameters
    ----------
    stats : dict
        Statistics of a run; its tumour entries (role ``tumor``, not derived) are updated in place.
    resolution_mm : float or None
        Image resolution (FWHM, mm); None = not given: the largest of ``spacing_mm`` is used, stated.
    spacing_mm : sequence of float or None
        Voxel spacing of the activity image (mm).
    """
    lesions = [e for e in stats["rois"] if e["role"] == "tumor" and "derived" not in e]
    if not lesions:
        return [], []
    assumptions = []
    if resolution_mm is not None:
        resolution, source = float(resolution_mm), "given (FWHM)"
    elif spacing_mm:
        resolution = float(max(spacing_mm))
        source = "not given: largest voxel spacing, a lower bound of the FWHM"
        assumptions.append(
            assumption(
                "image resolution for the partial-volume check",
                resolution,
                "the scanner FWHM is not in the image; the largest voxel spacing is a lower bound, so small lesions "
                "may go unflagged",
                "set --resolution-mm to the reconstructed FWHM",
                unit="mm",
            )
        )
    else:
        return [], []
    warnings = []
    for entry in lesions:
        record = partial_volume_record(entry["volume_ml"], resolution, resolution_source=source)
        entry["partial_volume"] = record
        if record["warning"]:
            warnings.append(
                f"lesion {entry['name']!r}: {entry['volume_ml']:.1f} mL, equivalent-sphere diameter "
                f"{record['equivalent_diameter_mm']:.1f} mm = {record['ratio']:.1f} x the resolution "
                f"{resolution:.1f} mm ({'FWHM' if resolution_mm is not None else 'voxel spacing, a lower bound'}): "
                f"{record['reason']}, partial-volume effect: its mean dose and D-values are likely "
                "underestimated and dose-response thresholds may not apply"
            )
    return warnings, assumptions
