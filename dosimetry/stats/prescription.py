"""Activity prescription from a predictive (Tc-99m MAA) dose map: the Y-90 activity that gives a chosen dose.

A predictive run computes the dose of the planned Y-90 activity ``A_planned`` distributed as the MAA
(relative calibration: the calibration ROI holds ``A_planned (1 - R)(1 - LSF)``). Every voxel's dose is
proportional to the administered activity, and so are an ROI's mean dose and its D70. The activity that
gives the target ``D_target`` in an ROI whose metric is ``D_roi`` at the planned activity is therefore

    ``A = A_eff x D_target / D_roi``                                         (one target)

with ``A_eff = A_planned (1 - LSF_cal) / (1 - LSF)`` the administered activity the map stands for: the
calibration put ``A_planned (1 - R)(1 - LSF_cal)`` into the calibration ROI with the typed LSF (0 when none
was typed, as the run warns), while the lung counts of the MAA scan say the shunt is ``LSF`` (the typed
value when given, so ``A_eff = A_planned``; else the image LSF, so the map's lung activity is counted as
administered activity too). Without any LSF, ``A_eff = A_planned`` and a note says so.

**Several perfused volumes** (bilobar or segmental treatment: one injection each; non-overlapping ROIs
inside the liver). The MAA scan is taken to show all planned injections together, each volume ``i``
holding the share ``w_i = A_i,image / sum_j A_j,image`` of the image activity of the target volumes, and
the activity outside them (lung shunt, rest of the liver) to come from the injections in the same
proportion. Then injection ``i`` needs

    ``A_i = A_eff x w_i x D_target,i / D_roi,i``

which is the single-target formula for one volume (``w = 1``), and gives back ``A_eff`` in total when
every target equals the dose of the map. Cross-irradiation between neighbouring volumes (Y-90 beta range
about 11 mm at most) is scaled with each volume's own activity, a small error at their common border.

**Lung.** The lung dose at the prescribed total activity is the lung-shunt estimate
``49.67 A_total (1 - R) LSF / M_lung`` [Gulec2006]_ (LSF: the typed one, else the image LSF of the MAA
scan, :mod:`dosimetry.stats.lung_shunt`) and, with a lung ROI, the predictive map's lung dose scaled by
``A_total / A_eff``; the larger is checked against 30 Gy for one treatment and 50 Gy cumulative with earlier
treatments' lung dose [Ho1997]_ (the limits are "above is an alert": a dose equal to a limit is within it).

**Devices.** The dose map does not depend on the microsphere: resin and glass get the same activities.
What differs is said per device: resin is not recommended for LSF >= 20 % (SIR-Spheres IFU,
:data:`~dosimetry.constants.RESIN_LSF_ACTIVITY_REDUCTION`; the IFU's activity reductions for LSF 10-20 %
belong to its BSA method and are not applied to a dose-based prescription); both are checked against the
lung limits. Vial sizes and ordering (activity at the calibration time of the vial) are not handled.

**Y-90 runs are refused**: on a post-treatment run the dose has been delivered, and a prescription from it
would read as a plan; plan on the MAA study.

References
----------
.. [Gulec2006] Gulec SA, Mesoloras G, Stabin M. J Nucl Med 2006;47:1209-11 (MIRD equations, lung dose
   from the lung shunt fraction, 49.67 Gy kg/GBq).
.. [Ho1997] Ho S, Lau WY, Leung TWT, et al. Eur J Nucl Med 1997;24:293-8 (lung 30 Gy per treatment, 50 Gy
   cumulative; attribution unverified against the primary text, see ``threshold_sets/lung-ho1997.toml``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np

from dosimetry.occupancy import Occupancy
from dosimetry.constants import (
    DEFAULT_LUNG_MASS_KG,
    LUNG_CUMULATIVE_LIMIT_GY,
    PARTITION_LUNG_LIMIT_GY,
    RESIN_LSF_ACTIVITY_REDUCTION,
    Y90_LDM_CONVENTIONAL_GY_KG_PER_GBQ,
)
from dosimetry.errors import OptionsError, RoiError

__all__ = [
    "METRICS",
    "MAX_OVERLAP_FRACTION",
    "MAX_OUTSIDE_LIVER_FRACTION",
    "Target",
    "VolumeActivity",
    "LungCheck",
    "Prescription",
    "prescribe_activity",
]

METRICS: dict[str, str] = {"mean": "mean_gy", "d70": "D70"}
"""Target metric -> key of the ROI statistics: the mass-weighted mean dose or D70."""

MAX_OVERLAP_FRACTION: float = 0.01
"""Two perfused volumes overlap when their common volume (occupancies summing above 1) exceeds 1 % of the
smaller one (choice of this package: rasterised borders of adjacent contours stay below it)."""

MAX_OUTSIDE_LIVER_FRACTION: float = 0.05
"""A perfused volume lies outside the liver when more than 5 % of it lies outside the liver ROIs (choice of
this package: hand-drawn territories overrun the liver contour by a few voxels)."""

RESIN_MAX_LSF: float = RESIN_LSF_ACTIVITY_REDUCTION[-1][0]
"""Resin is not recommended at or above this lung shunt fraction (SIR-Spheres IFU)."""


@dataclass(frozen=True)
class Target:
    """A target: the ROI's name and the dose (Gy) its metric should reach."""

    roi: str
    dose_gy: float

    def __post_init__(self):
        if not isinstance(self.dose_gy, (int, float)) or not (math.isfinite(self.dose_gy) and self.dose_gy > 0):
            raise OptionsError(f"target dose of {self.roi!r} must be a positive number of Gy, got {self.dose_gy!r}")
        if self.dose_gy > 1000:
            raise OptionsError(f"target dose of {self.roi!r} is {self.dose_gy:g} Gy; give Gy (not cGy), e.g. 120")


@dataclass(frozen=True)
class VolumeActivity:
    """The activity of one target (one injection)."""

    roi: str
    role: str
    volume_ml: float
    target_dose_gy: float
    planned_dose_gy: float
    """The metric in the ROI at the planned activity (from the predictive map)."""
    activity_share: float
    """Share ``w`` of the image activity of the targets in this one (1 for a single target)."""
    activity_gbq: float


@dataclass(frozen=True)
class LungCheck:
    """Lung dose at the prescribed total activity against the per-treatment and cumulative limits."""

    lung_shunt_fraction: float | None
    lung_shunt_source: str | None
    lung_mass_kg: float
    lung_mass_source: str
    lsf_estimate_gy: float | None
    map_lung_gy: float | None
    map_lung_roi: str | None
    lung_dose_gy: float | None
    lung_dose_source: str | None
    single_limit_gy: float
    cumulative_limit_gy: float
    previous_lung_dose_gy: float | None
    cumulative_lung_dose_gy: float | None
    exceeds_single: bool | None
    exceeds_cumulative: bool | None
    max_activity_gbq: float | None
    """Largest total activity within both limits (same distribution); None without a lung dose."""


@dataclass(frozen=True)
class Prescription:
    """Activities for the targets, from a predictive (Tc-99m MAA) dose map, and the lung check."""

    metric: str
    planned_activity_gbq: float
    calibration_lung_shunt_fraction: float
    """The LSF of the relative calibration (typed, or 0 when none was typed)."""
    effective_activity_gbq: float
    """``A_eff``: the administered activity the predictive map stands for."""
    residual_fraction: float
    volumes: tuple[VolumeActivity, ...]
    total_activity_gbq: float
    lung: LungCheck
    devices: dict
    notes: tuple[str, ...]

    def record(self) -> dict:
        """The ``planning['prescription']`` section of ``stats.json``."""
        out = asdict(self)
        out["volumes"] = [asdict(v) for v in self.volumes]
        out["notes"] = list(self.notes)
        out["metric_key"] = METRICS[self.metric]
        out["formula"] = (
            "A_i = A_eff x w_i x D_target,i / D_roi,i(map); w_i = A_i,image / sum A_j,image; "
            "A_eff = A_planned (1 - LSF_cal) / (1 - LSF)"
        )
        out["source"] = "linear scaling of the predictive dose map; lung: Gulec 2006, limits Ho 1997 (unverified)"
        return out


def _above(dose: float | None, limit: float) -> bool | None:
    return None if dose is None else dose > limit


def _check_volumes(names: Sequence[str], stats: dict, roi_weights: Mapping[str, Occupancy | np.ndarray] | None) -> None:
    """Several targets: non-overlapping and inside the liver."""
    if roi_weights is None or any(n not in roi_weights for n in names):
        raise RoiError("several targets need the ROI occupancies to check that they do not overlap; run the pipeline")
    livers = [e["name"] for e in stats["rois"] if e["role"] == "liver" and "derived" not in e]
    if not livers:
        raise RoiError(
            f"several perfused volumes ({', '.join(names)}) need a liver ROI to check that they lie inside it; add one"
        )
    occ = {n: Occupancy.of(roi_weights[n]) for n in (*livers, *names)}

    def window(name: str, start, stop) -> np.ndarray:  # float64 over a box of the grid (only the ROIs' boxes)
        return occ[name].window(start, stop).astype(np.float64)

    for name in names:
        start, stop = occ[name].start, occ[name].stop
        w = window(name, start, stop)
        liver_w = np.clip(sum(window(n, start, stop) for n in livers), 0.0, 1.0)
        total = float(w.sum())
        outside = float(np.clip(w - liver_w, 0.0, None).sum())
        if total > 0 and outside / total > MAX_OUTSIDE_LIVER_FRACTION:
            raise RoiError(
                f"target ROI {name!r}: {100 * outside / total:.1f}% of it lies outside the liver "
                f"({', '.join(livers)}); several perfused volumes must lie inside the liver, fix the ROI"
            )
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            start = np.minimum(occ[a].start, occ[b].start)
            stop = np.maximum(occ[a].stop, occ[b].stop)
            common = float(np.clip(window(a, start, stop) + window(b, start, stop) - 1.0, 0.0, None).sum())
            smaller = min(float(occ[a].sum(dtype=np.float64)), float(occ[b].sum(dtype=np.float64)))
            if smaller > 0 and common / smaller > MAX_OVERLAP_FRACTION:
                raise RoiError(
                    f"target ROIs {a!r} and {b!r} overlap ({100 * common / smaller:.1f}% of the smaller one); "
                    "perfused volumes must not overlap, one activity each: fix the ROIs"
                )


def _device_notes(lsf: float | None, lung: LungCheck, device: str | None) -> dict:
    devices = (device,) if device else ("resin", "glass")
    out = {}
    for name in devices:
        reasons = []
        if lung.exceeds_single:
            reasons.append(f"lung dose {lung.lung_dose_gy:.1f} Gy above {lung.single_limit_gy:g} Gy per treatment")
        if lung.exceeds_cumulative:
            reasons.append(
                f"cumulative lung dose {lung.cumulative_lung_dose_gy:.1f} Gy above {lung.cumulative_limit_gy:g} Gy"
            )
        if name == "resin" and lsf is not None and lsf >= RESIN_MAX_LSF:
            reasons.append(f"lung shunt fraction {100 * lsf:.1f}% >= {100 * RESIN_MAX_LSF:g}%: resin not recommended")
        note = (
            "SIR-Spheres IFU: not recommended for LSF >= 20 %; its activity reductions for LSF 10-20 % belong to "
            "the BSA method and are not applied here"
            if name == "resin"
            else "glass: lung limits as above; vial size and ordering (activity at the vial's calibration time) "
            "are not handled here"
        )
        out[name] = {"status": "not recommended" if reasons else "within limits", "reasons": reasons, "note": note}
    return out


def prescribe_activity(
    stats: dict,
    targets: Sequence[Target | tuple[str, float]],
    *,
    metric: str = "mean",
    roi_weights: Mapping[str, Occupancy | np.ndarray] | None = None,
    lung_shunt_fraction: float | None = None,
    lung_shunt_source: str | None = None,
    previous_lung_dose_gy: float | None = None,
    device: str | None = None,
) -> Prescription:
    """The Y-90 activity (GBq) that gives each target its dose, from a predictive run's statistics.

    Parameters
    ----------
    stats : dict
        Statistics of a predictive (Tc-99m MAA) run: ``emission``, ``rois`` (``mean_gy``, ``D70``,
        ``activity_mbq``), ``lung``, ``inputs['options']`` (``administered_activity_gbq``: the planned activity).
    targets : sequence of Target or (roi, dose_gy)
        One target (any ROI: the whole treatment is scaled) or several non-overlapping perfused volumes
        inside the liver (one injection each).
    metric : {"mean", "d70"}
        The ROI metric that should reach the target dose.
    roi_weights : mapping of str to Occupancy or ndarray, optional
        Occupancy of the ROIs on the dose grid; needed for several targets (overlap and liver checks).
    lung_shunt_fraction, lung_shunt_source : float, str, optional
        The LSF for the lung estimate and where it comes from; None = no lung-shunt estimate.
    previous_lung_dose_gy : float, optional
        Lung dose of earlier treatments (Gy); None = none stated (cumulative = this treatment, said so).
    device : {"resin", "glass"}, optional
        The device; None = both are reported.

    Raises
    ------
    OptionsError
        Not a predictive run, no planned activity, an unknown metric, a repeated target.
    RoiError
        A target ROI not found or without dose, overlapping volumes, a volume outside the liver.

    Examples
    --------
    >>> stats = {"emission": {"verdict": "Tc-99m predictive"},
    ...          "inputs": {"options": {"administered_activity_gbq": 2.0, "residual_fraction": 0.0}},
    ...          "rois": [{"name": "Liver", "role": "liver", "volume_ml": 1500.0, "mean_gy": 50.0, "D70": 40.0,
    ...                    "activity_mbq": 2000.0}], "lung": {}}
    >>> prescribe_activity(stats, [("Liver", 80.0)]).total_activity_gbq
    3.2
    """
    from dosimetry.quantify.emission import is_predictive

    if metric not in METRICS:
        raise OptionsError(f"target metric must be one of {', '.join(METRICS)}, got {metric!r}")
    key = METRICS[metric]
    if not is_predictive(stats):
        raise OptionsError(
            "--target needs a predictive run (Tc-99m MAA): on a Y-90 run the dose has been delivered, not "
            "planned; plan on the MAA study"
        )
    opts = (stats.get("inputs") or {}).get("options") or {}
    planned = opts.get("administered_activity_gbq")
    if planned is None or not planned > 0:
        raise OptionsError("--target needs the planned Y-90 activity of the predictive run (--administered-gbq)")
    residual = opts.get("residual_fraction") or 0.0
    targets = [t if isinstance(t, Target) else Target(str(t[0]), float(t[1])) for t in targets]
    if not targets:
        raise OptionsError("no target given; give --target ROI=GY")
    names = [t.roi for t in targets]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise OptionsError(f"target ROI given more than once: {', '.join(repeated)}; give one dose per ROI")
    by_name = {e["name"]: e for e in stats["rois"]}
    for t in targets:
        if t.roi not in by_name:
            raise RoiError(
                f"target ROI {t.roi!r} not found; ROIs of this run: {', '.join(by_name)}; check --target's name"
            )
        value = by_name[t.roi].get(key)
        if value is None or not value > 0:
            raise RoiError(f"target ROI {t.roi!r} has {key} = {value} at the planned activity: no dose to scale")
    if len(targets) > 1:
        _check_volumes(names, stats, roi_weights)
    activities = [float(by_name[n].get("activity_mbq") or 0.0) for n in names]
    total_image = sum(activities)
    if len(targets) > 1 and not total_image > 0:
        raise RoiError(f"target ROIs {', '.join(names)} hold no activity on the MAA image; check the ROIs")
    calibration = (stats.get("inputs") or {}).get("activity") or {}
    lsf_cal = calibration.get("lung_shunt_fraction")
    if lsf_cal is None:
        lsf_cal = opts.get("lung_shunt_fraction") or 0.0
    notes: list[str] = []
    effective = float(planned)
    if lung_shunt_fraction is not None:
        effective = planned * (1 - lsf_cal) / (1 - lung_shunt_fraction)
    else:
        notes.append("no lung shunt fraction: the map is taken to stand for the planned activity (LSF 0)")
    volumes = []
    for t, act in zip(targets, activities):
        entry = by_name[t.roi]
        share = 1.0 if len(targets) == 1 else act / total_image
        volumes.append(
            VolumeActivity(
                roi=t.roi,
                role=entry["role"],
                volume_ml=entry["volume_ml"],
                target_dose_gy=t.dose_gy,
                planned_dose_gy=float(entry[key]),
                activity_share=share,
                activity_gbq=effective * share * t.dose_gy / float(entry[key]),
            )
        )
    total = sum(v.activity_gbq for v in volumes)
    if len(targets) > 1:
        notes.append(
            "several perfused volumes: the MAA scan is taken to show all injections together, the activity outside "
            "the volumes (lung shunt, rest of the liver) coming from each injection in proportion to its share w"
        )
    lung = _lung_check(stats, total, effective, residual, lung_shunt_fraction, lung_shunt_source, previous_lung_dose_gy)
    if lung.lung_dose_gy is None:
        notes.append("no lung dose: give --lung-shunt, or a lung ROI on the MAA scan")
    if previous_lung_dose_gy is None and lung.lung_dose_gy is not None:
        notes.append("previous lung dose not given (--previous-lung-dose-gy): cumulative = this treatment only")
    return Prescription(
        metric=metric,
        planned_activity_gbq=float(planned),
        calibration_lung_shunt_fraction=float(lsf_cal),
        effective_activity_gbq=float(effective),
        residual_fraction=float(residual),
        volumes=tuple(volumes),
        total_activity_gbq=total,
        lung=lung,
        devices=_device_notes(lung_shunt_fraction, lung, device),
        notes=tuple(notes),
    )


def _lung_check(stats, total_gbq, map_gbq, residual, lsf, lsf_source, previous_gy) -> LungCheck:
    record = stats.get("lung") or {}
    mass_kg, mass_source = record.get("lung_mass_kg"), record.get("lung_mass_source")
    if mass_kg is None:
        mass_kg, mass_source = DEFAULT_LUNG_MASS_KG, f"default {DEFAULT_LUNG_MASS_KG:g} kg (conventional)"
    estimate = None
    if lsf is not None:
        estimate = Y90_LDM_CONVENTIONAL_GY_KG_PER_GBQ * total_gbq * (1 - residual) * lsf / mass_kg
    map_gy = None
    if record.get("roi") and record.get("mean_gy") is not None:
        map_gy = float(record["mean_gy"]) * total_gbq / map_gbq
    candidates = [(v, s) for v, s in ((estimate, "lung-shunt estimate"), (map_gy, "predictive map")) if v is not None]
    dose, source = max(candidates, key=lambda c: c[0]) if candidates else (None, None)
    cumulative = None if dose is None else dose + (previous_gy or 0.0)
    max_activity = None
    if dose is not None and dose > 0:
        per_gbq = dose / total_gbq
        room = min(PARTITION_LUNG_LIMIT_GY, LUNG_CUMULATIVE_LIMIT_GY - (previous_gy or 0.0))
        max_activity = max(room, 0.0) / per_gbq
    return LungCheck(
        lung_shunt_fraction=lsf,
        lung_shunt_source=lsf_source,
        lung_mass_kg=float(mass_kg),
        lung_mass_source=str(mass_source),
        lsf_estimate_gy=estimate,
        map_lung_gy=map_gy,
        map_lung_roi=record.get("roi") if map_gy is not None else None,
        lung_dose_gy=dose,
        lung_dose_source=source,
        single_limit_gy=PARTITION_LUNG_LIMIT_GY,
        cumulative_limit_gy=LUNG_CUMULATIVE_LIMIT_GY,
        previous_lung_dose_gy=previous_gy,
        cumulative_lung_dose_gy=cumulative,
        exceeds_single=_above(dose, PARTITION_LUNG_LIMIT_GY),
        exceeds_cumulative=_above(cumulative, LUNG_CUMULATIVE_LIMIT_GY),
        max_activity_gbq=max_activity,
    )
