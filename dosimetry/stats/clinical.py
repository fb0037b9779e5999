"""Clinical sections of a run: radiobiology (BED, EUD), planning-model comparison and threshold flags.

:func:`clinical_sections` is the one call the pipeline makes; it returns the ``radiobiology``,
``planning`` and ``flags`` sections of ``stats.json``, the ``tumor_burden`` section (:mod:`.tumor_burden`)
and, with a recovery curve, ``partial_volume_correction`` (:mod:`.recovery`), and adds the per-lesion
partial-volume check (:mod:`.partial_volume`) to the tumour ROIs. Its settings are a :class:`ClinicalOptions`, which
the command line builds in :mod:`dosimetry.cli.clinical_options`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from dosimetry.occupancy import Occupancy
from dosimetry.constants import (
    ALPHA_BETA_LIVER_GY,
    ALPHA_BETA_TUMOR_GY,
    PARTITION_LUNG_LIMIT_GY,
    PARTITION_NORMAL_LIVER_LIMIT_GY,
    Y90_REPAIR_HALF_TIME_H,
)
from dosimetry.errors import OptionsError
from dosimetry.stats.partial_volume import partial_volume_check
from dosimetry.quantify.emission import is_predictive
from dosimetry.stats.lung_shunt import lung_shunt_section
from dosimetry.stats.planning import planning_section
from dosimetry.stats.prescription import METRICS, Target, prescribe_activity
from dosimetry.stats.radiobiology import radiobiology_section
from dosimetry.stats.recovery import RecoveryCurve, pvc_method_record, recovery_curve
from dosimetry.stats.tumor_burden import tumor_burden_section
from dosimetry.stats.thresholds import (
    DEVICES,
    INDICATIONS,
    choose_threshold_sets,
    evaluate_thresholds,
    select_threshold_sets,
)

__all__ = ["ClinicalOptions", "clinical_sections"]

_HEIGHT_RANGE_CM = (50.0, 250.0)
_WEIGHT_RANGE_KG = (10.0, 350.0)


@dataclass(frozen=True)
class ClinicalOptions:
    """Settings of the clinical sections. Units are in the names; None means "not given".

    Attributes
    ----------
    alpha_beta_tumor_gy, alpha_beta_liver_gy : float
        alpha/beta for BED (Gy); liver is used for the liver, normal-liver and perfused ROIs.
    alpha_beta_lung_gy, alpha_beta_other_gy : float or None
        alpha/beta for lung and other ROIs; None = no BED there.
    repair_half_time_h : float
        Repair half-time for BED (h).
    eud_alpha_per_gy : float or None
        Radiosensitivity for EUD (1/Gy); None = no EUD (there is no consensus default).
    threshold_sets : tuple of str or None
        Names of bundled sets or paths of .toml files; None = the bundled sets for ``indication`` and
        ``device`` (:func:`~dosimetry.stats.thresholds.choose_threshold_sets`).
    indication : {"hcc", "crc", "net", "other"} or None
        The patient's disease; None = no threshold flags (a note says so), unless sets are named.
    device : {"resin", "glass"} or None
        Microsphere type; None = sets for one device are not evaluated.
    resolution_mm : float or None
        Resolution (FWHM, mm) of the emission image for the partial-volume check; None = the largest
        voxel spacing, stated as a lower bound.
    height_cm, weight_kg : float or None
        The patient's height and weight, for the BSA method; never guessed.
    planning_tn_ratio : float or None
        Pre-treatment T:N for the partition model; None = the measured post-treatment ratio.
    mird_target_gy : float or None
        Target dose of the MIRD prescription; None = no prescribed activity.
    partition_normal_liver_limit_gy, partition_lung_limit_gy : float
        Limits for the partition model's maximum activity.
    previous_lung_dose_gy : float or None
        Lung dose of earlier treatments, for the cumulative lung limit.
    targets : tuple of (str, float) or None
        Prescription targets of a predictive (Tc-99m MAA) run: ROI name and the dose (Gy) its ``target_metric``
        should reach (:mod:`dosimetry.stats.prescription`); several = non-overlapping perfused volumes inside
        the liver, one activity each. None = no prescription.
    target_metric : {"mean", "d70"}
        The ROI metric of the targets: mass-weighted mean dose or D70.
    recovery_curve : RecoveryCurve, path or str, or None
        Sphere-phantom recovery curve for ``mean_gy_pvc`` of each lesion (:mod:`dosimetry.stats.recovery`): a CSV
        path, a bundled name (``darienzo2017-endpoints``, an example only) or a :class:`RecoveryCurve`;
        read when the options are made (so a bad file fails at once), kept as a :class:`RecoveryCurve`.
        None = no correction.
    """

    alpha_beta_tumor_gy: float = ALPHA_BETA_TUMOR_GY
    alpha_beta_liver_gy: float = ALPHA_BETA_LIVER_GY
    alpha_beta_lung_gy: float | None = None
    alpha_beta_other_gy: float | None = None
    repair_half_time_h: float = Y90_REPAIR_HALF_TIME_H
    eud_alpha_per_gy: float | None = None
    threshold_sets: tuple[str, ...] | None = None
    device: str | None = None
    indication: str | None = None
    resolution_mm: float | None = None
    height_cm: float | None = None
    weight_kg: float | None = None
    planning_tn_ratio: float | None = None
    mird_target_gy: float | None = None
    partition_normal_liver_limit_gy: float = PARTITION_NORMAL_LIVER_LIMIT_GY
    partition_lung_limit_gy: float = PARTITION_LUNG_LIMIT_GY
    previous_lung_dose_gy: float | None = None
    recovery_curve: RecoveryCurve | str | os.PathLike | None = None
    targets: tuple[tuple[str, float], ...] | None = None
    target_metric: str = "mean"

    def __post_init__(self):
        if self.targets is not None:
            parsed = tuple(Target(str(name), dose) for name, dose in self.targets)  # checks each dose
            object.__setattr__(self, "targets", tuple((t.roi, float(t.dose_gy)) for t in parsed))
        if self.target_metric not in METRICS:
            raise OptionsError(f"target_metric must be one of {', '.join(METRICS)}, got {self.target_metric!r}")
        if self.recovery_curve is not None:
            object.__setattr__(self, "recovery_curve", recovery_curve(self.recovery_curve))
        positive = (
            "alpha_beta_tumor_gy",
            "alpha_beta_liver_gy",
            "alpha_beta_lung_gy",
            "alpha_beta_other_gy",
            "repair_half_time_h",
            "eud_alpha_per_gy",
            "planning_tn_ratio",
            "mird_target_gy",
            "partition_normal_liver_limit_gy",
            "partition_lung_limit_gy",
            "resolution_mm",
        )
        for name in positive:
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise OptionsError(f"{name} must be a positive number, got {value!r}")
        if self.previous_lung_dose_gy is not None and not self.previous_lung_dose_gy >= 0:
            raise OptionsError(f"previous_lung_dose_gy must be >= 0, got {self.previous_lung_dose_gy}")
        if self.device is not None and self.device not in DEVICES:
            raise OptionsError(f"device must be resin, glass or None, got {self.device!r}")
        if self.indication is not None and self.indication not in INDICATIONS:
            raise OptionsError(f"indication must be one of {', '.join(INDICATIONS)} or None, got {self.indication!r}")
        for name, (lo, hi), hint in (
            ("height_cm", _HEIGHT_RANGE_CM, "give centimetres, e.g. 172"),
            ("weight_kg", _WEIGHT_RANGE_KG, "give kilograms, e.g. 70"),
        ):
            value = getattr(self, name)
            if value is not None and not lo <= value <= hi:
                raise OptionsError(f"{name} {value} is outside {lo:g}..{hi:g}; {hint}")
        if isinstance(self.threshold_sets, str):
            object.__setattr__(self, "threshold_sets", (self.threshold_sets,))
        elif self.threshold_sets is not None:
            object.__setattr__(self, "threshold_sets", tuple(self.threshold_sets))
        select_threshold_sets(self.threshold_sets, device=self.device)  # unknown names fail here, early

    def alpha_beta_by_role(self) -> dict[str, float | None]:
        """alpha/beta (Gy) per ROI role (given roles and the derived ``normal_liver``)."""
        liver = self.alpha_beta_liver_gy
        return {
            "tumor": self.alpha_beta_tumor_gy,
            "liver": liver,
            "normal_liver": liver,
            "perfused": liver,
            "lung": self.alpha_beta_lung_gy,
            "other": self.alpha_beta_other_gy,
        }


def clinical_sections(
    stats: dict,
    *,
    dose_gy: np.ndarray,
    roi_weights: Mapping[str, Occupancy | np.ndarray],
    options: ClinicalOptions | None = None,
) -> dict:
    """The ``radiobiology``, ``planning`` and ``flags`` sections of ``stats.json``.

    Also, in place: every tumour ROI of ``stats['rois']`` gets its ``partial_volume`` record, and the
    warnings (small lesions, threshold sets that do not match the indication or device) and assumptions
    (resolution not given) of these sections are appended to ``stats['warnings']`` and
    ``stats['assumptions']``.

    Parameters
    ----------
    stats : dict
        The statistics of the run so far (``rois``, ``tumor_to_normal``, ``lung``, ``inputs``).
    dose_gy : ndarray
        The dose array (Gy) on the grid of ``roi_weights``.
    roi_weights : mapping of str to Occupancy or ndarray
        Occupancy (0..1) of every ROI of ``stats['rois']`` on the dose grid.
    options : ClinicalOptions

    Raises
    ------
    OptionsError
        An unknown threshold set or invalid option.
    """
    options = options or ClinicalOptions()
    spacing = ((stats.get("inputs") or {}).get("activity") or {}).get("spacing_mm")
    emission_header = (((stats.get("inputs") or {}).get("dicom") or {}).get("emission")) or {}
    pv_warnings, pv_assumptions = partial_volume_check(
        stats,
        resolution_mm=options.resolution_mm,
        spacing_mm=spacing,
        recovery_curve=options.recovery_curve,
        header_filter_fwhm_mm=emission_header.get("post_filter_fwhm_mm"),
    )
    burden, burden_warnings = tumor_burden_section(
        stats["rois"], roi_weights, voxel_volume_ml=float(np.prod(spacing)) / 1000.0 if spacing else 0.0
    )
    selection = choose_threshold_sets(options.threshold_sets, indication=options.indication, device=options.device)
    stats.setdefault("warnings", []).extend([*burden_warnings, *pv_warnings, *selection.warnings])
    stats.setdefault("assumptions", []).extend(pv_assumptions)
    radiobiology = radiobiology_section(
        stats,
        np.asarray(dose_gy),
        roi_weights,
        alpha_beta_by_role=options.alpha_beta_by_role(),
        repair_half_time_h=options.repair_half_time_h,
        eud_alpha_per_gy=options.eud_alpha_per_gy,
    )
    shunt = lung_shunt_section(stats, predictive=is_predictive(stats))
    planning = planning_section(
        stats,
        height_cm=options.height_cm,
        weight_kg=options.weight_kg,
        planning_tn_ratio=options.planning_tn_ratio,
        mird_target_gy=options.mird_target_gy,
        normal_liver_limit_gy=options.partition_normal_liver_limit_gy,
        lung_limit_gy=options.partition_lung_limit_gy,
        lung_shunt=shunt,
    )
    planning["device"] = options.device
    planning["lung_shunt"] = shunt
    planning["prescription"] = None
    if options.targets:
        planning["prescription"] = prescribe_activity(
            stats,
            options.targets,
            metric=options.target_metric,
            roi_weights=roi_weights,
            lung_shunt_fraction=shunt["lung_shunt_fraction"],
            lung_shunt_source=shunt["used"],
            previous_lung_dose_gy=options.previous_lung_dose_gy,
            device=options.device,
        ).record()
    flags = evaluate_thresholds(stats, selection.sets, previous_lung_dose_gy=options.previous_lung_dose_gy)
    flags["device"] = options.device
    flags["indication"] = options.indication
    flags["evaluated"] = bool(selection.sets)
    flags["selection"] = list(options.threshold_sets) if options.threshold_sets is not None else selection.description
    flags["notes"] = list(selection.notes)
    sections = {"tumor_burden": burden, "radiobiology": radiobiology, "planning": planning, "flags": flags}
    if options.recovery_curve is not None:
        sections["partial_volume_correction"] = pvc_method_record(options.recovery_curve)
    return sections
