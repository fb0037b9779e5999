"""Radiobiology of a permanent Y-90 implant: voxel BED, and per ROI the mean BED, EUD and EUBED.

Everything here works on absorbed-dose arrays (Gy) and ROI occupancy weights on the same grid; the
parameters (alpha/beta, repair half-time, radiosensitivity alpha) are arguments, with defaults in
:mod:`dosimetry.constants`.

Biologically effective dose (BED) of a permanent implant
--------------------------------------------------------
For a dose delivered with an exponentially decreasing dose rate (physical half-life ``T_phys``) and
mono-exponential sublethal-damage repair (repair half-time ``T_rep``), the linear-quadratic model gives
(Dale 1985)::

    BED = D * (1 + D * lambda / ((mu + lambda) * (alpha/beta)))      lambda = ln2/T_phys, mu = ln2/T_rep
        = D * (1 + D * T_rep / ((T_rep + T_phys) * (alpha/beta)))

the form used for Y-90 radioembolization by Strigari 2010 and Cremonesi 2014. It is applied voxel by voxel
(each voxel's dose is its own permanent implant). Because BED is not linear in D, the mean BED of an ROI
is larger than the BED of its mean dose when the dose is heterogeneous; both are reported.

Equivalent uniform dose (EUD)
-----------------------------
The exponential EUD (Niemierko 1997; O'Donoghue 1999) is the uniform dose that gives the same surviving
fraction of clonogens as the actual distribution, with survival ``exp(-alpha D)``::

    EUD = -ln( sum_i v_i exp(-alpha D_i) ) / alpha        (v_i = volume fractions, sum v_i = 1)

``eud_gy`` is computed on the **absorbed dose** D, as O'Donoghue defined it, so it can be compared with
absorbed-dose thresholds and with the mean dose (EUD <= mean dose, equal for a uniform dose). The
quadratic (dose-rate) term is left out there on purpose: at Y-90 dose rates it is what BED adds, and mixing
both in one number would hide which assumption drives it. ``eubed_gy`` is the same formula applied to the
voxel BED (the "equivalent uniform BED" of Strigari 2010 / Cremonesi 2014), for comparison across dose
rates and devices. Both need a radiosensitivity ``alpha`` (Gy^-1): there is no consensus value for liver
tumours, so the package has no default and computes EUD only when one is given.

Weights: each voxel counts with its volume occupancy (as the DVH metrics), so mean BED, EUD and EUBED are
volume-weighted.

References
----------
.. [Dale1985] Dale RG. The application of the linear-quadratic dose-effect equation to fractionated and
   protracted radiotherapy. Br J Radiol 1985;58:515-28. doi:10.1259/0007-1285-58-690-515
.. [Strigari2010] Strigari L, Sciuto R, Rea S, et al. Efficacy and toxicity related to treatment of
   hepatocellular carcinoma with 90Y-SIR spheres: radiobiologic considerations. J Nucl Med
   2010;51:1377-85.
.. [Cremonesi2014] Cremonesi M, Chiesa C, Strigari L, et al. Radioembolization of hepatic lesions from a
   radiobiology and dosimetric perspective. Front Oncol 2014;4:210. doi:10.3389/fonc.2014.00210
.. [Niemierko1997] Niemierko A. Reporting and analyzing dose distributions: a concept of equivalent uniform
   dose. Med Phys 1997;24:103-10. doi:10.1118/1.598063
.. [ODonoghue1999] O'Donoghue JA. Implications of nonuniform tumor doses for radioimmunotherapy. J Nucl
   Med 1999;40:1337-41.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from dosimetry.constants import Y90_HALF_LIFE_H
from dosimetry.errors import OptionsError
from dosimetry.occupancy import Occupancy, gather

__all__ = ["bed_permanent_implant_gy", "eud_exponential_gy", "roi_radiobiology"]


def _check_positive(value: float, name: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise OptionsError(f"{name} must be a positive number, got {value}")
    return value


def bed_permanent_implant_gy(
    dose_gy, *, alpha_beta_gy: float, repair_half_time_h: float, physical_half_life_h: float = Y90_HALF_LIFE_H
) -> np.ndarray:
    """Biologically effective dose (Gy) of a permanent implant, voxel by voxel.

    Parameters
    ----------
    dose_gy : array_like
        Absorbed dose (Gy), any shape.
    alpha_beta_gy : float
        alpha/beta of the tissue (Gy), > 0.
    repair_half_time_h : float
        Half-time of mono-exponential sublethal-damage repair (h), > 0.
    physical_half_life_h : float
        Half-life of the nuclide (h); Y-90 by default (:data:`~dosimetry.constants.Y90_HALF_LIFE_H`).

    Returns
    -------
    ndarray of float64, same shape as ``dose_gy``

    Raises
    ------
    OptionsError
        A parameter that is not a positive finite number.

    Notes
    -----
    ``BED = D (1 + D T_rep / ((T_rep + T_phys) alpha/beta))`` [Dale1985]_, [Strigari2010]_,
    [Cremonesi2014]_ (see the module docstring).

    Examples
    --------
    >>> round(float(bed_permanent_implant_gy(100.0, alpha_beta_gy=10.0, repair_half_time_h=2.5)), 3)
    137.538
    """
    alpha_beta_gy = _check_positive(alpha_beta_gy, "alpha/beta (Gy)")
    repair_half_time_h = _check_positive(repair_half_time_h, "repair half-time (h)")
    physical_half_life_h = _check_positive(physical_half_life_h, "physical half-life (h)")
    d = np.asarray(dose_gy, dtype=np.float64)
    g = repair_half_time_h / ((repair_half_time_h + physical_half_life_h) * alpha_beta_gy)
    return d * (1.0 + d * g)


def eud_exponential_gy(dose_gy, weights=None, *, alpha_per_gy: float) -> float:
    """Exponential equivalent uniform dose: ``-ln(sum_i v_i exp(-alpha D_i)) / alpha`` (Gy).

    Parameters
    ----------
    dose_gy : array_like
        Dose (or BED) per voxel, Gy.
    weights : array_like, optional
        Volume weight of each voxel (occupancy), >= 0, same shape; normalised to fractions ``v_i``.
        Equal weights if omitted.
    alpha_per_gy : float
        Radiosensitivity alpha (Gy^-1), > 0.

    Returns
    -------
    float

    Raises
    ------
    OptionsError
        ``alpha_per_gy`` not positive, or weights that sum to zero or are negative.

    Notes
    -----
    [Niemierko1997]_, [ODonoghue1999]_. Computed with a log-sum-exp, so large doses do not underflow.

    Examples
    --------
    >>> round(eud_exponential_gy([0.0, 100.0], alpha_per_gy=0.01), 2)   # two halves at 0 and 100 Gy
    37.99
    """
    alpha = _check_positive(alpha_per_gy, "EUD radiosensitivity alpha (1/Gy)")
    d = np.asarray(dose_gy, dtype=np.float64).ravel()
    w = np.ones_like(d) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w.shape != d.shape:
        raise OptionsError(f"weights of shape {w.shape} do not match doses of shape {d.shape}")
    if np.any(w < 0) or not w.sum() > 0:
        raise OptionsError("EUD weights must be >= 0 and not all zero")
    keep = w > 0
    v = w[keep] / w[keep].sum()
    from scipy.special import logsumexp  # here: scipy.special costs 0.2 s to import, for this one line

    return float(-logsumexp(-alpha * d[keep], b=v) / alpha)


def roi_radiobiology(
    dose_gy: np.ndarray,
    weights: Occupancy | np.ndarray,
    *,
    alpha_beta_gy: float | None,
    repair_half_time_h: float,
    eud_alpha_per_gy: float | None,
    physical_half_life_h: float = Y90_HALF_LIFE_H,
) -> dict[str, float | None]:
    """BED and EUD figures of one ROI (volume-weighted).

    Parameters
    ----------
    dose_gy : ndarray
        Dose per voxel (Gy).
    weights : Occupancy or ndarray
        Occupancy (0..1) of the ROI per voxel on the grid of ``dose_gy``.
    alpha_beta_gy : float or None
        None: no BED for this ROI (its keys are None).
    repair_half_time_h : float
    eud_alpha_per_gy : float or None
        None: no EUD/EUBED.

    Returns
    -------
    dict
        ``voxel_mean_gy`` (volume-weighted mean dose), ``bed_mean_gy`` (mean of voxel BED),
        ``bed_of_mean_gy`` (BED of the volume-weighted mean dose), ``bed_min_gy``, ``bed_max_gy``,
        ``eud_gy`` (on dose), ``eubed_gy`` (on BED); None where not computable.
    """
    w32, sel = Occupancy.of(weights).voxels()  # flat indices: gathers touch only the ROI's voxels
    w = w32.astype(np.float64)
    d = gather(dose_gy, sel).astype(np.float64)
    mean_dose = float(np.sum(w * d) / w.sum())
    out: dict[str, float | None] = {
        "voxel_mean_gy": mean_dose,
        "bed_mean_gy": None,
        "bed_of_mean_gy": None,
        "bed_min_gy": None,
        "bed_max_gy": None,
        "eud_gy": None,
        "eubed_gy": None,
    }
    bed = None
    if alpha_beta_gy is not None:
        kw = dict(
            alpha_beta_gy=alpha_beta_gy,
            repair_half_time_h=repair_half_time_h,
            physical_half_life_h=physical_half_life_h,
        )
        bed = bed_permanent_implant_gy(d, **kw)
        out.update(
            bed_mean_gy=float(np.sum(w * bed) / w.sum()),
            bed_of_mean_gy=float(bed_permanent_implant_gy(mean_dose, **kw)),
            bed_min_gy=float(bed.min()),
            bed_max_gy=float(bed.max()),
        )
    if eud_alpha_per_gy is not None:
        out["eud_gy"] = eud_exponential_gy(d, w, alpha_per_gy=eud_alpha_per_gy)
        if bed is not None:
            out["eubed_gy"] = eud_exponential_gy(bed, w, alpha_per_gy=eud_alpha_per_gy)
    return out


def radiobiology_section(
    stats: dict,
    dose_gy: np.ndarray,
    roi_weights: Mapping[str, Occupancy | np.ndarray],
    *,
    alpha_beta_by_role: Mapping[str, float | None],
    repair_half_time_h: float,
    eud_alpha_per_gy: float | None,
) -> dict:
    """The ``radiobiology`` section of ``stats.json``: parameters, formulas and one entry per ROI.

    ROIs are those of ``stats['rois']`` (given and derived), in the same order; the alpha/beta of an ROI
    is looked up by its role (``tumor``, ``liver``, ``normal_liver``, ``perfused``, ``lung``, ``other``).
    """
    rois = []
    for entry in stats["rois"]:
        name, role = entry["name"], entry["role"]
        if name not in roi_weights:
            continue
        ab = alpha_beta_by_role.get(role)
        values = roi_radiobiology(
            dose_gy,
            roi_weights[name],
            alpha_beta_gy=ab,
            repair_half_time_h=repair_half_time_h,
            eud_alpha_per_gy=eud_alpha_per_gy,
        )
        rois.append({"name": name, "role": role, "alpha_beta_gy": ab, **values})
    notes = []
    missing = sorted({e["role"] for e in stats["rois"] if alpha_beta_by_role.get(e["role"]) is None})
    if missing:
        notes.append(
            f"no alpha/beta for role(s) {', '.join(missing)}: BED not computed there "
            "(set --alpha-beta-lung-gy / --alpha-beta-other-gy)"
        )
    if eud_alpha_per_gy is None:
        notes.append(
            "EUD not computed: no radiosensitivity alpha given (set --eud-alpha-per-gy; there is no consensus default)"
        )
    return {
        "parameters": {
            "repair_half_time_h": repair_half_time_h,
            "physical_half_life_h": Y90_HALF_LIFE_H,
            "alpha_beta_gy_by_role": dict(alpha_beta_by_role),
            "eud_alpha_per_gy": eud_alpha_per_gy,
        },
        "formulas": {
            "bed": "BED = D (1 + D Trep / ((Trep + Tphys) alpha/beta)), voxel by voxel (Dale 1985; "
            "Strigari 2010; Cremonesi 2014)",
            "eud": "EUD = -ln(sum_i v_i exp(-alpha D_i)) / alpha on absorbed dose (Niemierko 1997; "
            "O'Donoghue 1999); EUBED: the same on voxel BED",
            "weighting": "volume (occupancy) weighted",
        },
        "rois": rois,
        "notes": notes,
    }
