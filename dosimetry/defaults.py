"""Physics defaults a run falls back on, said out loud: the ``assumptions`` record and the lung mass.

Every value a run uses without the user having given it is one entry of ``stats['assumptions']`` (beside
its line in ``warnings``), built with :func:`assumption`: ``what`` was assumed, the ``value_used`` (and its
``unit``), ``why`` (not given, not in the image...) and the ``fix`` (the option that sets it). The terminal
prints them above the results ("ASSUMED: ...") and the report in a box at its top.

:func:`run_assumptions` lists the defaults of :class:`~dosimetry.pipeline.DosimetryOptions` a run used;
other stages add their own entries with :func:`assumption` (``run_dosimetry(extra_assumptions=...)``).

:func:`lung_shunt_estimate` is the lung-shunt dose estimate ``49.67 x A x (1 - R) x LSF / M_lung`` with the
lung mass chosen in this order: ``--lung-mass-kg`` (given; a disagreement of more than
:data:`~dosimetry.constants.LUNG_MASS_DISAGREEMENT_FRACTION` with the lung ROI's CT mass is warned), the
lung ROI's mass from CT density (when a CT covers the ROI: at most :data:`MAX_LUNG_OUTSIDE_CT_FRACTION` of
its volume outside the CT), else the conventional 1 kg, stated. Without a CT, or with the ROI partly outside
the CT, the ROI's mass would come from the default soft-tissue density (about 3 x the density of lung), so
it is not used.
The ROI's mass is used as it is: an ROI of only part of the lungs (the bases inside the emission image)
gives too small a mass and too high an estimate, so a mass outside 1 kg / 2 .. x 2
(:data:`~dosimetry.constants.LUNG_MASS_PLAUSIBLE_FACTOR`) is warned about.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dosimetry.occupancy import Occupancy
from dosimetry.option_names import option_name
from dosimetry.constants import (
    DEFAULT_LUNG_MASS_KG,
    LUNG_MASS_DISAGREEMENT_FRACTION,
    LUNG_MASS_PLAUSIBLE_FACTOR,
    Y90_LDM_CONVENTIONAL_GY_KG_PER_GBQ,
)

__all__ = [
    "assumption",
    "run_assumptions",
    "format_assumption",
    "LungEstimate",
    "lung_shunt_estimate",
    "MAX_LUNG_OUTSIDE_CT_FRACTION",
]

MAX_LUNG_OUTSIDE_CT_FRACTION = 0.01
"""Largest share of the lung ROI's volume outside the CT for its mass to count as "from CT density"
(at 1 % the default density there adds at most about 2.5 % to the mass of lung of 0.3 g/mL)."""

LSF_FORMULA = "49.67 Gy kg/GBq x A_admin x (1 - residual) x LSF / M_lung"


def assumption(what: str, value_used, why: str, fix: str, *, unit: str | None = None) -> dict:
    """One entry of ``stats['assumptions']``: a default used because a value was not given.

    Parameters
    ----------
    what : str
        The quantity assumed, e.g. "residual fraction".
    value_used : number or str
        The value the run used.
    why : str
        Why it was assumed ("not given", "no CT").
    fix : str
        How to give it (the option or input).
    unit : str, optional
        Unit of ``value_used``.

    Examples
    --------
    >>> assumption("residual fraction", 0.0, "not given", "set --residual-fraction")["value_used"]
    0.0
    """
    return {"what": what, "value_used": value_used, "unit": unit, "why": why, "fix": fix}


def format_assumption(entry: dict) -> str:
    """One line for the terminal or the report: "residual fraction 0 (not given; set --residual-fraction)"."""
    value = entry.get("value_used")
    shown = f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
    unit = f" {entry['unit']}" if entry.get("unit") else ""
    return f"{entry['what']} {shown}{unit} ({entry['why']}; {entry['fix']})"


def run_assumptions(options, *, density_source: str) -> list[dict]:
    """The defaults of ``options`` (a :class:`~dosimetry.pipeline.DosimetryOptions`) that a run uses.

    The lung mass is not here: :func:`lung_shunt_estimate` records it, as it depends on the ROIs and the CT.
    """
    out = []
    relative = options.calibration == "relative"
    if options.activity_units is None and not relative:
        out.append(
            assumption("activity units", "Bq/mL", "not stated with the image", f"set {option_name('activity_units')}")
        )
    uses = [
        use
        for use, used in (
            ("relative calibration", relative),
            ("lung-shunt estimate and planning models", options.administered_activity_gbq is not None),
        )
        if used
    ]
    if options.residual_fraction is None and uses:
        out.append(
            assumption(
                "residual fraction",
                0.0,
                f"not given; used in the {' and the '.join(uses)}",
                f"set {option_name('residual_fraction')}",
            )
        )
    if options.lung_shunt_fraction is None and relative:
        out.append(
            assumption(
                "lung shunt fraction",
                0.0,
                "not given; used in the relative calibration",
                f"set {option_name('lung_shunt')}",
            )
        )
    if density_source == "default":
        out.append(
            assumption(
                "tissue density",
                float(options.default_density_g_ml),
                "no CT: every voxel",
                f"give a CT ({option_name('ct')}) or set {option_name('density_g_ml')}",
                unit="g/mL",
            )
        )
    return out


@dataclass(frozen=True)
class LungEstimate:
    """The lung-shunt estimate and its lung mass, with what the run should say about them.

    ``record`` holds the keys of ``stats['lung']`` besides the ROI doses: ``lsf_estimate_gy``,
    ``lsf_formula``, ``lung_mass_kg`` and ``lung_mass_source`` (the mass used by the estimate and the
    partition model), ``lung_roi_mass_kg`` (the ROI's mass from CT density, when usable) and
    ``lung_roi_mass_note`` (why it was not used, when not).
    """

    record: dict
    warnings: list[str] = field(default_factory=list)
    assumptions: list[dict] = field(default_factory=list)


def _roi_mass_kg(
    lung_name: str | None,
    lung_entry: dict | None,
    lung_weights: Occupancy | np.ndarray | None,
    *,
    density_source: str,
    outside_ct: np.ndarray | None,
) -> tuple[float | None, str | None]:
    """The lung ROI's mass from CT density (kg), or None and why not."""
    if lung_name is None or lung_entry is None:
        return None, None
    if density_source != "ct":
        return None, f"lung ROI {lung_name!r}: no CT, so its mass would come from the default density"
    if outside_ct is not None and lung_weights is not None and outside_ct.any():
        lung = Occupancy.of(lung_weights)
        total = float(lung.sum(dtype=np.float64))
        share = float(np.sum(lung.values[lung.crop(outside_ct)], dtype=np.float64)) / total if total > 0 else 0.0
        if share > MAX_LUNG_OUTSIDE_CT_FRACTION:
            return None, (
                f"lung ROI {lung_name!r}: {100 * share:.1f}% of its volume lies outside the CT, "
                "so its mass is not from CT density"
            )
    return lung_entry["mass_g"] / 1000.0, None


def lung_shunt_estimate(
    options,
    *,
    lung_name: str | None,
    lung_entry: dict | None,
    lung_weights: Occupancy | np.ndarray | None,
    density_source: str,
    outside_ct: np.ndarray | None,
) -> LungEstimate:
    """Lung dose from the lung shunt fraction, ``49.67 x A x (1 - R) x LSF / M_lung`` [Gulec2006].

    Parameters
    ----------
    options : DosimetryOptions
        ``administered_activity_gbq``, ``residual_fraction``, ``lung_shunt_fraction``, ``lung_mass_kg``.
    lung_name, lung_entry : str and dict, or None
        The lung ROI (``lungs_all`` when there are several) and its statistics (``mass_g``).
    lung_weights : Occupancy or ndarray or None
        Its occupancy on the dose grid.
    density_source : {"ct", "default"}
    outside_ct : ndarray of bool or None
        Voxels of the dose grid not covered by the CT (they carry the default density).

    Notes
    -----
    The lung mass: ``--lung-mass-kg`` when given, else the lung ROI's mass from CT density, else the
    conventional 1 kg (:data:`~dosimetry.constants.DEFAULT_LUNG_MASS_KG`). Residual and LSF not given are 0
    and null: without the LSF (or the administered activity) there is no estimate.
    """
    warnings: list[str] = []
    assumptions: list[dict] = []
    roi_mass_kg, roi_note = _roi_mass_kg(
        lung_name, lung_entry, lung_weights, density_source=density_source, outside_ct=outside_ct
    )
    given = options.lung_mass_kg
    if given is not None:
        mass_kg, source = float(given), "given"
    elif roi_mass_kg is not None and roi_mass_kg > 0:
        mass_kg, source = roi_mass_kg, f'lung ROI "{lung_name}" mass from CT density'
    else:
        mass_kg, source = DEFAULT_LUNG_MASS_KG, f"default {DEFAULT_LUNG_MASS_KG:g} kg (conventional)"
    estimate = None
    if options.administered_activity_gbq is not None and options.lung_shunt_fraction is not None:
        residual = options.residual_fraction or 0.0
        estimate = (
            Y90_LDM_CONVENTIONAL_GY_KG_PER_GBQ
            * options.administered_activity_gbq
            * (1 - residual)
            * options.lung_shunt_fraction
            / mass_kg
        )
        if options.residual_fraction is None:
            warnings.append(
                f"residual fraction not given: 0 used for the lung-shunt dose estimate (set {option_name('residual_fraction')})"
            )
        if (
            given is not None
            and roi_mass_kg is not None
            and roi_mass_kg > 0
            and abs(given - roi_mass_kg) > LUNG_MASS_DISAGREEMENT_FRACTION * roi_mass_kg
        ):
            warnings.append(
                f"--lung-mass-kg {given:g} kg differs by {100 * abs(given - roi_mass_kg) / roi_mass_kg:.0f}% "
                f"from the mass of lung ROI {lung_name!r} from CT density ({roi_mass_kg:.3f} kg); "
                "the given mass is used: check it, or the lung contour"
            )
        if source.startswith("default"):
            why = "not given" + (f"; {roi_note}" if roi_note else "; no lung ROI")
            warnings.append(
                f"lung mass not given: the lung-shunt dose estimate uses the conventional "
                f"{DEFAULT_LUNG_MASS_KG:g} kg ({why}; set {option_name('lung_mass_kg')})"
            )
            assumptions.append(
                assumption(
                    "lung mass",
                    DEFAULT_LUNG_MASS_KG,
                    why + " (conventional value)",
                    f"set {option_name('lung_mass_kg')}, or give a lung ROI with a CT",
                    unit="kg",
                )
            )
        elif source != "given" and not (
            DEFAULT_LUNG_MASS_KG / LUNG_MASS_PLAUSIBLE_FACTOR
            <= mass_kg
            <= DEFAULT_LUNG_MASS_KG * LUNG_MASS_PLAUSIBLE_FACTOR
        ):
            warnings.append(
                f"lung ROI {lung_name!r} weighs {mass_kg:.3f} kg (CT density), far from a pair of "
                f"whole lungs (about {DEFAULT_LUNG_MASS_KG:g} kg): the lung-shunt estimate uses it and "
                "is too high if the ROI holds only part of the lungs (e.g. the bases in the image); "
                f"check the ROI, or set {option_name('lung_mass_kg')}"
            )
    record = {
        "lsf_estimate_gy": estimate,
        "lsf_formula": LSF_FORMULA,
        "lung_mass_kg": mass_kg,
        "lung_mass_source": source,
        "lung_roi_mass_kg": roi_mass_kg,
        "lung_roi_mass_note": roi_note,
    }
    return LungEstimate(record, warnings, assumptions)
