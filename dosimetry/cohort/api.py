"""``analyse_cohort``: response classification of a cohort's lesions and their dose-response analysis.

Inputs are the ``cohort.csv`` of ``dosimetry batch`` (doses per lesion) and a RESPONSES.csv (sizes per
lesion at baseline and follow-up; :mod:`dosimetry.cohort.responses`). Each lesion and each patient is
classified by one criterion (:mod:`dosimetry.cohort.criteria`); responders (CR, PR) and non-responders are
then compared by lesion mean dose, D70 and BED (:mod:`dosimetry.cohort.dose_response`).

BED: a ``mean_bed_gy`` column of COHORT.csv (the lesion's voxel-wise mean BED) is used when every analysed
lesion has one; otherwise the BED of the lesion's mean dose is computed with the tumour parameters of
:mod:`dosimetry.constants` (:func:`dosimetry.stats.radiobiology.bed_permanent_implant_gy`). The latter is an
increasing function of the mean dose, so its AUC equals the mean dose's and its thresholds are the mean
dose's thresholds converted; it is given so the thresholds can be compared with BED thresholds in the
literature, and it is labelled as what it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dosimetry.cohort.criteria import (
    Classification,
    Criterion,
    classify_lesion,
    classify_patient,
    criterion,
    is_responder,
)
from dosimetry.cohort.dose_response import MetricAnalysis, analyse_metric, check_bootstrap
from dosimetry.cohort.responses import match_lesions, read_cohort, read_responses
from dosimetry.constants import ALPHA_BETA_TUMOR_GY, Y90_REPAIR_HALF_TIME_H
from dosimetry.progress import stage

__all__ = ["ClassifiedLesion", "CohortAnalysis", "PatientResponse", "analyse_cohort"]


def _round(value: float | None) -> float | None:
    """Sums of measurements given to 0.1 um (mm) or 0.001 mm2: no floating-point tails in the tables."""
    return None if value is None else round(value, 4)


@dataclass(frozen=True)
class ClassifiedLesion:
    """One lesion: its measurements, category and the rule that decided it, and its doses.

    ``bed_gy`` is the ``mean_bed_gy`` of COHORT.csv (None without that column); the rows of ``lesions.csv``
    also give the BED of the mean dose (``bed_of_mean_gy``).
    """

    case_id: str
    roi: str
    baseline: float | None
    follow_up: float | None
    unit: str
    change_percent: float | None
    category: str
    rule: str
    mean_gy: float
    d70_gy: float | None
    bed_gy: float | None
    volume_ml: float | None
    target: bool = True

    @property
    def responder(self) -> bool:
        """CR or PR."""
        return is_responder(self.category)

    def row(self, criterion_column: str) -> dict:
        return {
            "case_id": self.case_id,
            "roi": self.roi,
            f"baseline_{criterion_column}": self.baseline,
            f"follow_up_{criterion_column}": self.follow_up,
            "change_percent": None if self.change_percent is None else round(self.change_percent, 4),
            "category": self.category,
            "responder": "yes" if self.responder else "no",
            "target": "yes" if self.target else "no",
            "rule": self.rule,
            "mean_gy": self.mean_gy,
            "D70": self.d70_gy,
            "mean_bed_gy": self.bed_gy,
            "bed_of_mean_gy": round(_bed_of_mean(self.mean_gy), 6),
            "volume_ml": self.volume_ml,
        }


@dataclass(frozen=True)
class PatientResponse:
    """One patient: sums over its target lesions and its category (``NE``: not evaluable, with the reason)."""

    case_id: str
    lesions: tuple[str, ...]
    baseline_sum: float | None
    follow_up_sum: float | None
    change_percent: float | None
    category: str
    rule: str

    def row(self, criterion_column: str) -> dict:
        return {
            "case_id": self.case_id,
            "n_target_lesions": len(self.lesions),
            "target_lesions": " ".join(self.lesions),
            f"baseline_sum_{criterion_column}": _round(self.baseline_sum),
            f"follow_up_sum_{criterion_column}": _round(self.follow_up_sum),
            "change_percent": None if self.change_percent is None else round(self.change_percent, 4),
            "category": self.category,
            "rule": self.rule,
        }


@dataclass(frozen=True)
class CohortAnalysis:
    """The result of :func:`analyse_cohort`."""

    criterion: Criterion
    lesions: tuple[ClassifiedLesion, ...]
    patients: tuple[PatientResponse, ...]
    metrics: dict[str, MetricAnalysis]
    warnings: tuple[str, ...]
    inputs: dict
    options: dict
    notes: tuple[str, ...] = field(default=())

    def lesion_rows(self) -> list[dict]:
        """One dict per lesion (the rows of ``lesions.csv``); ``pandas.DataFrame(result.lesion_rows())``."""
        return [lesion.row(self.criterion.column) for lesion in self.lesions]

    def patient_rows(self) -> list[dict]:
        """One dict per patient (the rows of ``patients.csv``)."""
        return [patient.row(self.criterion.column) for patient in self.patients]

    def to_dict(self) -> dict:
        """Every number of the analysis as a JSON-ready dict (``dose_response.json``)."""
        counts = {c: sum(1 for x in self.lesions if x.category == c) for c in ("CR", "PR", "SD", "PD")}
        patients = {c: sum(1 for x in self.patients if x.category == c) for c in ("CR", "PR", "SD", "PD", "NE")}
        return {
            "criterion": {
                "key": self.criterion.key,
                "name": self.criterion.name,
                "measurement": f"{self.criterion.quantity} ({self.criterion.column}, {self.criterion.unit})",
                "reference": self.criterion.reference,
                "responder": "CR or PR",
            },
            "lesions": {"n": len(self.lesions), "categories": counts},
            "patients": {"n": len(self.patients), "categories": patients},
            "dose_response": {key: m.to_dict() for key, m in self.metrics.items()},
            "notes": list(self.notes),
            "warnings": list(self.warnings),
            "inputs": self.inputs,
            "options": self.options,
        }


def _bed_of_mean(mean_gy: float) -> float:
    from dosimetry.stats.radiobiology import bed_permanent_implant_gy

    return float(
        bed_permanent_implant_gy(mean_gy, alpha_beta_gy=ALPHA_BETA_TUMOR_GY, repair_half_time_h=Y90_REPAIR_HALF_TIME_H)
    )


def _classify(crit: Criterion, pairs, warnings: list[str]) -> list[ClassifiedLesion]:
    lesions = []
    for response, dose in pairs:
        if response.baseline is not None and response.follow_up is not None:
            found = classify_lesion(crit, response.baseline, response.follow_up)
            if response.given and response.given != found.category:
                warnings.append(
                    f"{response.case_id}/{response.roi}: the given category {response.given} differs from the "
                    f"{crit.name} rules' {found.category}; the rules' category is used"
                )
        else:
            found = Classification(response.given, None, f"{crit.name}: category given in RESPONSES.csv")
        lesions.append(
            ClassifiedLesion(
                case_id=response.case_id,
                roi=response.roi,
                baseline=response.baseline,
                follow_up=response.follow_up,
                unit=crit.unit,
                change_percent=found.change_percent,
                category=found.category,
                rule=found.rule,
                mean_gy=dose.mean_gy,
                d70_gy=dose.d70_gy,
                bed_gy=dose.mean_bed_gy,
                volume_ml=dose.volume_ml,
                target=response.target,
            )
        )
    return sorted(lesions, key=lambda x: (x.case_id, x.roi))


def _sum(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else float(sum(values))


def _patients(
    crit: Criterion, lesions: list[ClassifiedLesion], new_cases: set[str], warnings: list[str]
) -> list[PatientResponse]:
    by_case: dict[str, list[ClassifiedLesion]] = {}
    for lesion in lesions:
        by_case.setdefault(lesion.case_id, [])
        if lesion.target:
            by_case[lesion.case_id].append(lesion)
    patients: list[PatientResponse] = []
    crowded: list[str] = []
    for case_id, own in sorted(by_case.items()):
        names = tuple(x.roi for x in own)
        if crit.max_targets_per_organ is not None and len(own) > crit.max_targets_per_organ:
            crowded.append(f"{case_id} ({len(own)})")
        if not own:
            patients.append(
                PatientResponse(
                    case_id, (), None, None, None, "NE", "not evaluable: no target lesion (all target = no)"
                )
            )
            continue
        given = [x.roi for x in own if x.baseline is None]
        if case_id in new_cases:
            patients.append(
                PatientResponse(
                    case_id,
                    names,
                    _sum([x.baseline for x in own]),
                    _sum([x.follow_up for x in own]),
                    None,
                    "PD",
                    f"{crit.name}: new lesions at follow-up (new_lesions in RESPONSES.csv): PD",
                )
            )
            continue
        if given:
            patients.append(
                PatientResponse(
                    case_id,
                    names,
                    None,
                    None,
                    None,
                    "NE",
                    f"not evaluable: {', '.join(given)} has a given category but no {crit.column}, so the "
                    "sum over the target lesions cannot be formed",
                )
            )
            continue
        found = classify_patient(crit, {x.roi: (x.baseline, x.follow_up) for x in own})
        patients.append(
            PatientResponse(
                case_id,
                names,
                float(sum(x.baseline for x in own)),
                float(sum(x.follow_up for x in own)),
                found.change_percent,
                found.category,
                found.rule,
            )
        )
    if crowded:
        warnings.append(
            f"{crit.name} takes at most {crit.max_targets_per_organ} target lesions per organ "
            f"({crit.max_targets_total} in total), and these patients have more: {', '.join(crowded)}; if their "
            "lesions are all in the liver, mark the others target = no in RESPONSES.csv"
        )
    return patients


def _metric_values(lesions: list[ClassifiedLesion], warnings: list[str], notes: list[str]) -> dict:
    values = {"mean_gy": ("lesion mean dose (Gy)", [x.mean_gy for x in lesions])}
    d70 = [x.d70_gy for x in lesions]
    if all(v is not None for v in d70):
        values["D70"] = ("lesion D70 (Gy)", d70)
    else:
        missing = [f"{x.case_id}/{x.roi}" for x in lesions if x.d70_gy is None]
        warnings.append(f"D70 is missing for {', '.join(missing)} in COHORT.csv: no dose-response by D70")
    if all(x.bed_gy is not None for x in lesions):
        values["mean_bed_gy"] = ("lesion mean BED (Gy)", [x.bed_gy for x in lesions])
    else:
        values["bed_of_mean_gy"] = (
            f"BED of the lesion mean dose (Gy; alpha/beta {ALPHA_BETA_TUMOR_GY:g} Gy, repair half-time "
            f"{Y90_REPAIR_HALF_TIME_H:g} h)",
            [_bed_of_mean(x.mean_gy) for x in lesions],
        )
        notes.append(
            "BED: COHORT.csv has no mean_bed_gy for every lesion, so the BED of each lesion's mean dose is used "
            f"(permanent implant, Dale 1985; alpha/beta {ALPHA_BETA_TUMOR_GY:g} Gy, repair half-time "
            f"{Y90_REPAIR_HALF_TIME_H:g} h). It increases with the mean dose: same AUC, thresholds converted."
        )
    return values


def analyse_cohort(
    cohort_csv: str | os.PathLike,
    responses_csv: str | os.PathLike,
    *,
    criteria: str = "recist11",
    n_bootstrap: int = 1000,
    bootstrap_unit: str = "patient",
    seed: int = 0,
) -> CohortAnalysis:
    """Classify the lesions of RESPONSES.csv and analyse their response against their dose in COHORT.csv.

    Parameters
    ----------
    cohort_csv : path
        The ``cohort.csv`` written by ``dosimetry batch``.
    responses_csv : path
        One row per lesion and time point (see :mod:`dosimetry.cohort.responses`).
    criteria : {"recist11", "mrecist", "who", "easl"}
        The response criteria.
    n_bootstrap : int
        Bootstrap resamples for the confidence intervals (0: none; else >= 100).
    bootstrap_unit : {"patient", "lesion"}
        Resample whole patients (default; lesions of a patient are correlated) or single lesions.
    seed : int
        Seed of the bootstrap's random generator (results repeat exactly for one seed).

    Returns
    -------
    CohortAnalysis
        Lesions and patients classified, and per dose metric the analysis (empty when all lesions fall in
        one group; a warning says so).

    Raises
    ------
    InputFileError
        A missing or unreadable file or column; :class:`~dosimetry.cohort.responses.CohortInputError`
        listing every fault in the rows (lesions in one file and not the other, missing time points,
        negative sizes, ...).
    OptionsError
        Unknown criteria, bad bootstrap options.
    """
    crit = criterion(criteria)
    check_bootstrap(n_bootstrap, bootstrap_unit)
    warnings: list[str] = []
    notes: list[str] = []
    with stage("read"):
        cohort = read_cohort(cohort_csv)
        responses = read_responses(responses_csv, crit)
        pairs, match_warnings = match_lesions(
            responses, cohort, responses_path=Path(responses_csv), cohort_path=Path(cohort_csv)
        )
        warnings += match_warnings
    with stage("classify"):
        lesions = _classify(crit, pairs, warnings)
        patients = _patients(
            crit, lesions, {response.case_id for response, _ in pairs if response.new_lesions}, warnings
        )
    metrics: dict[str, MetricAnalysis] = {}
    responder = np.array([x.responder for x in lesions])
    if responder.all() or not responder.any():
        warnings.append(
            f"all {len(lesions)} lesions are {'responders' if responder.all() else 'non-responders'} by "
            f"{crit.name}: no dose-response analysis"
        )
    else:
        groups = [x.case_id for x in lesions]
        for key, (label, values) in _metric_values(lesions, warnings, notes).items():
            with stage(f"dose-response {key}"):
                metrics[key] = analyse_metric(
                    values,
                    responder,
                    groups,
                    metric=key,
                    label=label,
                    n_bootstrap=n_bootstrap,
                    bootstrap_unit=bootstrap_unit,
                    seed=seed,
                )
    cautions = sorted({m.bootstrap["caution"] for m in metrics.values() if m.bootstrap.get("caution")})
    warnings += [f"bootstrap: {c}" for c in cautions]
    return CohortAnalysis(
        criterion=crit,
        lesions=tuple(lesions),
        patients=tuple(patients),
        metrics=metrics,
        warnings=tuple(warnings),
        inputs={"cohort": str(cohort_csv), "responses": str(responses_csv)},
        options={"criteria": crit.key, "n_bootstrap": n_bootstrap, "bootstrap_unit": bootstrap_unit, "seed": seed},
        notes=tuple(notes),
    )
