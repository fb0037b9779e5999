"""Partial-volume check of each lesion: is it too small for the image to show its activity?

A lesion smaller than about 2-3 x the image's resolution (FWHM) loses counts to its surroundings in the
emission image [Soret2007], so its activity, mean dose and D-values are biased low and dose-response
thresholds derived from larger lesions do not apply reliably. Every tumour ROI (lesion) gets a
``partial_volume`` record in ``stats['rois']`` and, when it is small, a warning:

* its equivalent-sphere diameter ``d = (6 V / pi)^(1/3)``;
* the resolution: ``resolution_mm`` (``--resolution-mm``, the reconstructed FWHM) when given; the scanner
  FWHM is not in the image, so without it the larger of the largest voxel spacing and the post-reconstruction
  filter FWHM of a PET header (:mod:`dosimetry.dicom.resolution`) is used and said to be a lower bound of
  the FWHM (a reconstructed image cannot resolve finer than its voxels; a real Y-90 PET FWHM is usually
  larger, so with it fewer small lesions are flagged than should be -- give the FWHM);
* a warning when ``V < PARTIAL_VOLUME_MIN_VOLUME_ML`` (5 mL) or ``d < PARTIAL_VOLUME_MIN_DIAMETER_PER_FWHM``
  (3) x the resolution;
* with a recovery curve (:mod:`.recovery`; ``--recovery-curve``, ``ClinicalOptions(recovery_curve=...)``):
  the lesion's ``recovery_coefficient`` (and ``recovery_clamped`` when its volume is outside the phantom
  spheres) in the record, and ``mean_gy_pvc = mean_gy / RC`` beside ``mean_gy`` in the ROI entry.

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
from dosimetry.option_names import option_name
from dosimetry.stats.recovery import RecoveryCurve

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
    stats: dict,
    *,
    resolution_mm: float | None,
    spacing_mm: Sequence[float] | None,
    recovery_curve: RecoveryCurve | None = None,
    header_filter_fwhm_mm: float | None = None,
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
    recovery_curve : RecoveryCurve or None
        When given, each lesion also gets ``recovery_coefficient`` and ``mean_gy_pvc`` (see the module).
    header_filter_fwhm_mm : float or None
        FWHM (mm) of the post-reconstruction filter named in the PET header, a lower bound of the
        resolution used (with the voxel spacing) when ``resolution_mm`` is None.
    """
    lesions = [e for e in stats["rois"] if e["role"] == "tumor" and "derived" not in e]
    if not lesions:
        return [], []
    assumptions: list[dict] = []
    warnings = _recovery_correction(lesions, recovery_curve) if recovery_curve is not None else []
    if resolution_mm is not None:
        resolution, source, shown = float(resolution_mm), "given (FWHM)", "FWHM"
    elif spacing_mm or header_filter_fwhm_mm:
        spacing = float(max(spacing_mm)) if spacing_mm else 0.0
        if header_filter_fwhm_mm and header_filter_fwhm_mm > spacing:
            resolution = float(header_filter_fwhm_mm)
            source = "not given: post-reconstruction filter FWHM of the PET header, a lower bound of the FWHM"
            why = "the scanner FWHM is not in the image; the header's filter FWHM is a lower bound"
            shown = "the header's filter FWHM, a lower bound"
        else:
            resolution = spacing
            source = "not given: largest voxel spacing, a lower bound of the FWHM"
            why = "the scanner FWHM is not in the image; the largest voxel spacing is a lower bound"
            shown = "voxel spacing, a lower bound"
        assumptions.append(
            assumption(
                "image resolution for the partial-volume check",
                resolution,
                f"{why}, so small lesions may go unflagged",
                f"set {option_name('resolution_mm')} to the reconstructed FWHM",
                unit="mm",
            )
        )
    else:
        return warnings, assumptions
    for entry in lesions:
        record = partial_volume_record(entry["volume_ml"], resolution, resolution_source=source)
        entry["partial_volume"] = {**record, **entry.get("partial_volume", {})}
        if record["warning"]:
            warnings.append(
                f"lesion {entry['name']!r}: {entry['volume_ml']:.1f} mL, equivalent-sphere diameter "
                f"{record['equivalent_diameter_mm']:.1f} mm = {record['ratio']:.1f} x the resolution "
                f"{resolution:.1f} mm ({shown}): "
                f"{record['reason']}, partial-volume effect: its mean dose and D-values are likely "
                "underestimated and dose-response thresholds may not apply"
            )
    return warnings, assumptions


def _recovery_correction(lesions: list[dict], curve: RecoveryCurve) -> list[str]:
    """``mean_gy_pvc`` and the ``partial_volume`` recovery fields of each lesion; warnings for clamping."""
    warnings = []
    for entry in lesions:
        rc, clamped = curve.coefficient(entry["volume_ml"])
        entry["mean_gy_pvc"] = entry["mean_gy"] / rc
        entry["partial_volume"] = {"recovery_coefficient": rc, "recovery_clamped": clamped}
        if clamped:
            lo, hi = curve.volumes_ml[0], curve.volumes_ml[-1]
            warnings.append(
                f"lesion {entry['name']!r}: {entry['volume_ml']:.2f} mL is outside the recovery curve's spheres "
                f"({lo:g}-{hi:g} mL, {curve.file}): the recovery coefficient of the nearest sphere ({rc:.3g}) was "
                "used for mean_gy_pvc, an extrapolation"
            )
    return warnings
