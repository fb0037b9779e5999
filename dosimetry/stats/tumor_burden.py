"""Hepatic tumour burden: the volume of all tumours inside the liver as a percentage of the liver volume.

``burden_percent = 100 x V(union of tumour ROIs, inside the liver ROI) / V(liver ROI)``, from the ROI
occupancies on the dose grid (so overlapping lesions count once and a tumour contour reaching outside the
liver contour counts only inside it; the part outside is recorded as ``tumor_outside_liver_ml``). The
liver ROI is the whole liver, tumours included, as for the derived ``normal_liver`` (liver minus tumours).

Burden above :data:`~dosimetry.constants.TUMOR_BURDEN_CAUTION_PERCENT` (50%) and above
:data:`~dosimetry.constants.TUMOR_BURDEN_EXCLUSION_PERCENT` (70%) is warned about: the published patient
selection criteria for radioembolization [Salem2006]_, [Kennedy2007]_, [ACR-SIR]_ (the full references, and
how far each was checked, are in :mod:`dosimetry.constants`). The limits are strict (exactly 50% is not
over 50%). Burden is computed only when the run has a liver ROI and at least one tumour ROI; else
the section says why not (a study without tumour contours does not have 0% burden).

References
----------
.. [Salem2006] Salem R, Thurston KG. J Vasc Interv Radiol 2006;17:1251-78.
.. [Kennedy2007] Kennedy A, Nag S, Salem R, et al. Int J Radiat Oncol Biol Phys 2007;68:13-23.
.. [ACR-SIR] ACR-SIR practice parameter for radioembolization (RMBD), revised 2014; ACR-ABS-ACNM-ASTRO-SIR-SNMMI
   revision: Hong K, et al. Brachytherapy 2021, doi:10.1016/j.brachy.2021.01.006.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from dosimetry.constants import SOURCES, TUMOR_BURDEN_CAUTION_PERCENT, TUMOR_BURDEN_EXCLUSION_PERCENT
from dosimetry.occupancy import Occupancy, minimum, union
from dosimetry.option_names import option_name

__all__ = ["BURDEN_LIMITS", "tumor_burden_section"]

BURDEN_LIMITS: tuple[tuple[float, str, str], ...] = (
    (
        TUMOR_BURDEN_CAUTION_PERCENT,
        "TUMOR_BURDEN_CAUTION_PERCENT",
        "relative contraindication to radioembolization when hepatic reserve is limited (albumin < 3 g/dL): "
        "check liver function",
    ),
    (
        TUMOR_BURDEN_EXCLUSION_PERCENT,
        "TUMOR_BURDEN_EXCLUSION_PERCENT",
        "contraindication to radioembolization unless liver synthetic function (prothrombin time, albumin) "
        "is maintained",
    ),
)
"""(limit %, constant name, meaning), in increasing order."""


def _sum(array: Occupancy) -> float:
    return float(array.sum(dtype=np.float64))


def tumor_burden_section(
    rois: list[dict], roi_weights: Mapping[str, Occupancy | np.ndarray], *, voxel_volume_ml: float
) -> tuple[dict, list[str]]:
    """The ``tumor_burden`` section of ``stats.json`` and its warnings.

    Parameters
    ----------
    rois : list of dict
        ``stats['rois']``: given ROIs (no ``derived`` key) of role ``liver`` and ``tumor`` are used.
    roi_weights : mapping of str to Occupancy or ndarray
        Occupancy (0..1) of each ROI on the dose grid.
    voxel_volume_ml : float
        Volume of one voxel of that grid (mL).

    Returns
    -------
    section : dict
        ``burden_percent`` (None when not computable, with ``note``), ``tumor_volume_ml`` (inside the liver),
        ``liver_volume_ml``, ``tumor_outside_liver_ml``, ``liver_rois``, ``tumor_rois``, ``limits`` (each
        limit with its meaning and source) and ``exceeds`` (the limits passed, %).
    warnings : list of str
    """
    given = [e for e in rois if "derived" not in e and e["name"] in roi_weights]
    livers = [e["name"] for e in given if e["role"] == "liver"]
    tumors = [e["name"] for e in given if e["role"] == "tumor"]
    section: dict = {
        "burden_percent": None,
        "tumor_volume_ml": None,
        "liver_volume_ml": None,
        "tumor_outside_liver_ml": None,
        "liver_rois": livers,
        "tumor_rois": tumors,
        "definition": "100 x volume of the union of tumour ROIs inside the liver ROI / volume of the liver ROI",
        "limits": [
            {"percent": limit, "meaning": meaning, "source": SOURCES[name]} for limit, name, meaning in BURDEN_LIMITS
        ],
        "exceeds": [],
        "note": None,
    }
    if not livers or not tumors:
        missing = "liver" if not livers else "tumour"
        key = "roi_liver" if not livers else "roi_tumor"
        section["note"] = f"not computed: no {missing} ROI (give {option_name(key)})"
        return section, []
    if not voxel_volume_ml > 0:
        section["note"] = "not computed: the voxel volume of the dose grid is unknown"
        return section, []
    # over the ROIs' boxes (dosimetry.occupancy): full-grid copies cost seconds on a 256^3 grid (issue 10)
    grid = Occupancy.of(roi_weights[livers[0]]).grid_shape
    liver_w = union([roi_weights[n] for n in livers], grid)
    if len(tumors) > 1 and "tumors_all" in roi_weights:  # the statistics' own union (a reserved name)
        tumor_w = Occupancy.of(roi_weights["tumors_all"])
    else:
        tumor_w = union([roi_weights[n] for n in tumors], grid)
    liver_ml = _sum(liver_w) * voxel_volume_ml
    tumor_total_ml = _sum(tumor_w) * voxel_volume_ml
    tumor_in_ml = _sum(minimum(tumor_w, liver_w)) * voxel_volume_ml
    if liver_ml <= 0.0:
        section["note"] = "not computed: the liver ROI covers no voxel"
        return section, []
    burden = 100.0 * tumor_in_ml / liver_ml
    section.update(
        burden_percent=burden,
        tumor_volume_ml=tumor_in_ml,
        liver_volume_ml=liver_ml,
        tumor_outside_liver_ml=max(tumor_total_ml - tumor_in_ml, 0.0),
    )
    warnings = []
    section["exceeds"] = [limit for limit, _, _ in BURDEN_LIMITS if burden > limit]
    if section["exceeds"]:
        limit = section["exceeds"][-1]
        meaning = next(m for lim, _, m in BURDEN_LIMITS if lim == limit)
        source = (
            "Salem & Thurston 2006; Kennedy 2007"
            if limit == TUMOR_BURDEN_CAUTION_PERCENT
            else "Salem & Thurston 2006; ACR-SIR"
        )
        warnings.append(
            f"hepatic tumour burden {burden:.1f}% ({tumor_in_ml:.0f} mL of tumour in {liver_ml:.0f} mL of liver) "
            f"is over {limit:g}%: {meaning} ({source})"
        )
    return section, warnings
