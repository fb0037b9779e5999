"""Lung shunt fraction (LSF) from Tc-99m MAA counts: on the SPECT of a predictive run, or planar (geometric mean).

``LSF = C_lung / (C_lung + C_liver)``, the share of the MAA counts that reached the lungs [Gulec2006]_.

SPECT (:func:`spect_lung_shunt`)
    From the ROI activities of a run's ``stats.json`` (``activity_mbq``): lungs = ``lungs_all`` when there
    are several lung ROIs, else the one lung ROI; liver = the sum of the liver ROIs. A factor common to all
    voxels (counts, relative calibration) cancels, so the ratio is the image's own. A lung ROI that lies
    partly outside the SPECT field of view gives too low a fraction: the record says so.
Planar (:func:`planar_lung_shunt_fraction`)
    Anterior and posterior counts per ROI, ``GM = sqrt(C_ant C_post)``, ``LSF = GM_lung / (GM_lung + GM_liver)``
    (the conjugate-view geometric mean corrects most of the depth dependence of attenuation) [Gulec2006]_.

References
----------
.. [Gulec2006] Gulec SA, Mesoloras G, Stabin M. Dosimetric techniques in 90Y-microsphere therapy of liver
   cancer: the MIRD equations for dose calculations. J Nucl Med 2006;47:1209-11 (LSF from the Tc-99m MAA
   lung and liver counts).
"""

from __future__ import annotations

import math

from dosimetry.errors import OptionsError

__all__ = ["planar_lung_shunt_fraction", "spect_lung_shunt", "lung_shunt_section"]


def _counts(value, name: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise OptionsError(f"{name} must be a number of counts, got {value!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise OptionsError(f"{name} must be counts >= 0, got {value}")
    return value


def planar_lung_shunt_fraction(
    lung_anterior: float, lung_posterior: float, liver_anterior: float, liver_posterior: float
) -> float:
    """Lung shunt fraction from planar Tc-99m MAA counts by the geometric mean of conjugate views [Gulec2006]_.

    ``LSF = GM_lung / (GM_lung + GM_liver)``, ``GM = sqrt(anterior x posterior)`` (counts, any common unit).

    Raises
    ------
    OptionsError
        A count that is negative or not a number, or no counts at all in lung and liver.

    Examples
    --------
    >>> round(planar_lung_shunt_fraction(1000, 900, 20000, 18000), 5)
    0.04762
    """
    la = _counts(lung_anterior, "lung anterior counts")
    lp = _counts(lung_posterior, "lung posterior counts")
    ha = _counts(liver_anterior, "liver anterior counts")
    hp = _counts(liver_posterior, "liver posterior counts")
    gm_lung, gm_liver = math.sqrt(la * lp), math.sqrt(ha * hp)
    if gm_lung + gm_liver <= 0:
        raise OptionsError("lung and liver geometric-mean counts are both 0; give the counts of the ROIs")
    return gm_lung / (gm_lung + gm_liver)


def _finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def spect_lung_shunt(stats: dict) -> dict | None:
    """LSF from the lung and liver ROI activities of a run's statistics, with its inputs; None without them.

    Returns
    -------
    dict or None
        ``lung_shunt_fraction``, ``method``, ``lung_roi``, ``liver_rois``, ``lung_counts``, ``liver_counts``
        (image activity in MBq after calibration: counts times a common factor, which cancels),
        ``lung_volume_ml``, ``liver_volume_ml``, ``attenuation_corrected`` and ``scatter_corrected`` (from
        the header's CorrectedImage; None = not stated), ``notes``.
    """
    rois = stats.get("rois") or []
    by_name = {r["name"]: r for r in rois}
    lungs = [r for r in rois if r.get("role") == "lung" and not r.get("derived")]
    if "lungs_all" in by_name:
        lung = by_name["lungs_all"]
    elif len(lungs) == 1:
        lung = lungs[0]
    else:
        return None
    livers = [r for r in rois if r.get("role") == "liver" and not r.get("derived")]
    lung_counts = _finite(lung.get("activity_mbq"))
    liver_counts = [_finite(r.get("activity_mbq")) for r in livers]
    if lung_counts is None or not livers or any(v is None for v in liver_counts):
        return None
    total = lung_counts + sum(liver_counts)
    if total <= 0:
        return None
    header = (((stats.get("inputs") or {}).get("dicom") or {}).get("emission")) or {}
    notes = []
    partial = [
        r["name"] for r in (lung, *livers) if r.get("outside_image_note") or (r.get("outside_image_percent") or 0) > 0
    ]
    if partial:
        notes.append(
            "ROIs partly outside the image (" + ", ".join(partial) + "): their counts are too low, so is the fraction"
        )
    if header.get("attenuation_corrected") is False:
        notes.append("the SPECT is not attenuation corrected: lung counts are relatively overestimated")
    return {
        "lung_shunt_fraction": lung_counts / total,
        "method": "SPECT ROI counts: lung / (lung + liver)",
        "source": "Gulec et al., J Nucl Med 2006;47:1209",
        "lung_roi": lung["name"],
        "liver_rois": [r["name"] for r in livers],
        "lung_counts": lung_counts,
        "liver_counts": sum(liver_counts),
        "counts_unit": "image activity (MBq after calibration; a common factor cancels)",
        "lung_volume_ml": lung.get("volume_ml"),
        "liver_volume_ml": sum(r.get("volume_ml") or 0.0 for r in livers),
        "attenuation_corrected": header.get("attenuation_corrected"),
        "scatter_corrected": header.get("scatter_corrected"),
        "notes": notes,
    }


def lung_shunt_section(stats: dict, *, predictive: bool) -> dict:
    """The ``planning['lung_shunt']`` record: the typed LSF, the image LSF (predictive runs) and which is used.

    The typed value (``--lung-shunt``) is used when given, as it is what the run was calibrated with;
    otherwise the image value of a predictive run; otherwise none.
    """
    typed = _finite(((stats.get("inputs") or {}).get("options") or {}).get("lung_shunt_fraction"))
    image = spect_lung_shunt(stats) if predictive else None
    if typed is not None:
        used, value = "typed (--lung-shunt)", typed
    elif image is not None:
        used, value = "image (MAA SPECT counts)", image["lung_shunt_fraction"]
    else:
        used, value = None, None
    record = {"typed": typed, "image": image, "used": used, "lung_shunt_fraction": value}
    if not predictive:
        record["note"] = "no image LSF: the run is not a predictive (Tc-99m MAA) run"
    elif image is None:
        record["note"] = "no image LSF: the run needs a lung ROI and a liver ROI"
    return record
