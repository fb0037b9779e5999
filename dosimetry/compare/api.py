"""``compare_runs``: predicted (Tc-99m MAA) against delivered (Y-90) dose, ROI by ROI; ``compare_cohort``.

Which numbers are compared (the design choice)
----------------------------------------------
* **Each run's own statistics** (the default): ROIs are matched by name (``match`` maps a predicted name
  to a delivered one) and the ``stats.json`` values of each run are compared: mean dose, D70 and volume per
  ROI, T:N, lung mean dose and lung shunt fraction. Each value is the one reported for its study, computed
  on its own grid with ROIs drawn on its own CT, so no dose is interpolated and no registration is needed
  (the frames of reference may differ). Limit: the two ROIs of a pair are two contours of the same organ or
  lesion; a contouring difference (a lesion drawn 20 % larger on the MAA SPECT/CT) enters the dose
  difference, and lesions must carry the same names (or be matched) in both runs.
* **Delivered ROIs** (``rois`` given, the ROIs of the delivered study): the predicted dose is brought onto
  the delivered dose grid and both doses are evaluated with the same ROIs and the delivered CT's
  densities: differences are then of dose distribution only. Bringing it over: the identity when both runs
  record the same FrameOfReferenceUID (or ``same_frame`` says so); otherwise the predicted CT is
  registered rigidly to the delivered CT (:func:`dosimetry.geometry.registration.register_rigid`, checked, refused
  when its check fails) and the predicted dose resampled linearly (:func:`dosimetry.accumulate.resample_dose`).
  Limits: rigid only (breathing, liver deformation between the scans are not modelled); linear
  interpolation smooths the predicted dose a little at edges; predicted dose outside its grid counts as 0.

The lung shunt fraction is the image's A_lung / (A_lung + A_liver) from each run's own ROI activities in
both modes (:func:`dosimetry.compare.runs.image_lung_shunt`); the typed value of each run is reported
beside it.

Agreement (:mod:`dosimetry.compare.agreement`) is computed over the matched ROIs that are not unions of
others (``tumors_all``, ``lungs_all`` are shown but not counted twice): over the lesions (role tumor) and
over all ROIs (lesions, liver, normal liver, lungs, ...).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dosimetry.compare.agreement import agreement, difference
from dosimetry.compare.runs import DERIVED_UNIONS, RunRecord, check_emission, read_run
from dosimetry.errors import GeometryError, InputFileError, OptionsError, RoiError
from dosimetry.progress import advance, stage

SCHEMA_VERSION = "1.0"
METRICS = ("mean_gy", "D70")
"""Per-ROI dose metrics compared (Gy)."""
STUDY_METRICS = ("tn_ratio", "lung_mean_gy", "lsf_image")
"""Study-level values compared (T:N dose ratio, lung mean dose in Gy, image lung shunt fraction)."""


@dataclass(frozen=True)
class ComparisonResult:
    """The comparison and, in delivered-ROI mode, the predicted dose on the delivered grid.

    Attributes
    ----------
    stats : dict
        Everything written to ``compare.json`` (see README): ``schema_version``, ``mode``, ``runs``,
        ``alignment``, ``rois`` (pairs), ``study``, ``agreement``, ``warnings``.
    predicted_on_delivered : Image or None
        The predicted dose resampled onto the delivered grid (Gy), delivered-ROI mode only.
    delivered_dose : Image or None
        The delivered dose (Gy), delivered-ROI mode only.
    delivered_view : DoseView or None
        Delivered-ROI mode only: the delivered dose with the delivered CT and the ROI weights on its grid
        (:class:`dosimetry.report.overlay.DoseView`), what ``compare.html`` draws.
    """

    stats: dict
    predicted_on_delivered: object = None
    delivered_dose: object = None
    delivered_view: object = None
    input_paths: list = field(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        return list(self.stats.get("warnings", []))


def match_rois(predicted: RunRecord, delivered: RunRecord, match: Mapping[str, str] | None = None):
    """Pairs ``(predicted name, delivered name)``: same names, or ``match`` (predicted -> delivered).

    Returns
    -------
    pairs : list of tuple
        In the predicted run's ROI order.
    warnings : list of str
        ROIs left without a partner, and pairs of different roles.

    Raises
    ------
    RoiError
        A ``match`` name absent from its run, a delivered ROI matched twice, or no pair at all.
    """
    match = dict(match or {})
    p_rois, d_rois = predicted.rois, delivered.rois
    for a, b in match.items():
        if a not in p_rois:
            raise RoiError(f"--match {a}={b}: no ROI {a!r} in {predicted.folder} (it has {', '.join(p_rois)})")
        if b not in d_rois:
            raise RoiError(f"--match {a}={b}: no ROI {b!r} in {delivered.folder} (it has {', '.join(d_rois)})")
    pairs, used, warnings = [], {}, []
    for name in p_rois:
        target = match.get(name, name)
        if target not in d_rois:
            continue
        if target in used:
            raise RoiError(f"delivered ROI {target!r} is matched to both {used[target]!r} and {name!r}; fix --match")
        used[target] = name
        pairs.append((name, target))
        if p_rois[name].get("role") != d_rois[target].get("role"):
            warnings.append(
                f"ROI {name!r} (predicted, {p_rois[name].get('role')}) is compared with {target!r} "
                f"(delivered, {d_rois[target].get('role')}): their roles differ"
            )
    if not pairs:
        raise RoiError(
            f"no ROI name is common to {predicted.folder} ({', '.join(p_rois)}) and {delivered.folder} "
            f"({', '.join(d_rois)}); pair them with --match PREDICTED=DELIVERED"
        )
    left_p = [n for n in p_rois if n not in dict(pairs)]
    left_d = [n for n in d_rois if n not in used]
    if left_p:
        warnings.append(f"predicted ROIs without a delivered partner (not compared): {', '.join(left_p)}")
    if left_d:
        warnings.append(f"delivered ROIs without a predicted partner (not compared): {', '.join(left_d)}")
    return pairs, warnings


def _pair_entry(p_name: str, d_name: str, p: dict, d: dict) -> dict:
    entry = {
        "predicted_roi": p_name,
        "delivered_roi": d_name,
        "role": d.get("role"),
        "derived": bool(d.get("derived")) or d_name in DERIVED_UNIONS,
        "in_agreement": d_name not in DERIVED_UNIONS,
        "volume_ml": {"predicted": p.get("volume_ml"), "delivered": d.get("volume_ml")},
    }
    for metric in METRICS:
        entry[metric] = {
            "predicted": p.get(metric),
            "delivered": d.get(metric),
            **difference(p.get(metric), d.get(metric)),
        }
    return entry


def _agreement_sets(entries: list[dict]) -> dict:
    sets = {
        "lesions": [e for e in entries if e["in_agreement"] and e["role"] == "tumor"],
        "rois": [e for e in entries if e["in_agreement"]],
    }
    out = {}
    for set_name, members in sets.items():
        out[set_name] = {
            "rois": [e.get("case_id", "") + ("/" if e.get("case_id") else "") + e["delivered_roi"] for e in members],
            **{
                m: agreement([e[m]["predicted"] for e in members], [e[m]["delivered"] for e in members])
                for m in METRICS
            },
        }
    return out


def _study_section(p_values: dict, d_values: dict) -> dict:
    section = {}
    for key in STUDY_METRICS:
        section[key] = {
            "predicted": p_values[key],
            "delivered": d_values[key],
            **difference(p_values[key], d_values[key]),
        }
    section["lung_roi"] = {"predicted": p_values["lung_roi"], "delivered": d_values["lung_roi"]}
    section["lsf_stated"] = {"predicted": p_values["lsf_stated"], "delivered": d_values["lsf_stated"]}
    return section


def _run_record(record: RunRecord) -> dict:
    return {
        "folder": os.fspath(record.folder),
        "emission": record.label,
        "verdict": record.verdict,
        "method": record.stats.get("method"),
        "frame_of_reference_uid": record.frame_of_reference_uid,
    }


def _evaluate_on_delivered(predicted, delivered, rois, *, predicted_ct, delivered_ct, same_frame, min_ncc, min_overlap):
    """Both doses on the delivered grid with the delivered ROIs: per-ROI entries, T:N, alignment record."""
    import numpy as np

    from dosimetry.accumulate import roi_weights, resample_dose
    from dosimetry.quantify.density import density_on_grid
    from dosimetry.io.images import read_image
    from dosimetry.geometry.registration import register_rigid
    from dosimetry.report.overlay import view_from_weights
    from dosimetry.stats.roi_stats import roi_statistics

    for record, option in ((predicted, "--predicted"), (delivered, "--delivered")):
        if not record.dose_path.is_file():
            raise InputFileError(f"{option} {record.folder}: no dose.nii.gz; give the complete output folder of a run")
    p_dose, d_dose = read_image(predicted.dose_path), read_image(delivered.dose_path)
    warnings: list[str] = []
    p_for, d_for = predicted.frame_of_reference_uid, delivered.frame_of_reference_uid
    if p_for and d_for and p_for == d_for:
        transform, alignment = None, {"alignment": "same frame of reference (recorded FrameOfReferenceUID)"}
    elif same_frame:
        transform, alignment = None, {"alignment": "same coordinates, as stated (same_frame)"}
        warnings.append("the two runs are taken to share patient coordinates (same_frame): no registration")
    else:
        if predicted_ct is None or delivered_ct is None:
            which = " and ".join(
                w for w, ct in (("predicted", predicted_ct), ("delivered", delivered_ct)) if ct is None
            )
            raise GeometryError(
                f"the frames of reference differ or are unknown and the {which} CT is missing, so the doses cannot be "
                "registered; give --predicted-ct and --delivered-ct, or --same-frame if both share coordinates"
            )
        with stage("register"):
            registration = register_rigid(delivered_ct, predicted_ct, min_ncc=min_ncc, min_overlap=min_overlap)
        transform = registration.transform
        alignment = {
            "alignment": "rigid registration of the predicted CT to the delivered CT",
            "registration": registration.record(),
        }
    p_on_d, coverage = resample_dose(p_dose, d_dose, transform)
    if not coverage.any():
        raise GeometryError(
            "the predicted dose does not overlap the delivered dose grid after alignment; check the runs"
        )
    density = density_on_grid(delivered_ct, d_dose)
    warnings.extend(density.warnings)
    rho = density.density_g_ml.array
    zeros = np.zeros(d_dose.shape, np.float32)
    voxel_ml = d_dose.voxel_volume_ml
    weights = roi_weights(rois, d_dose)
    tumours = [w for _, role, w in weights if role == "tumor"]
    if len(tumours) > 1:
        weights.append(("tumors_all", "tumor", np.minimum(np.sum(tumours, axis=0), 1.0).astype(np.float32)))
    entries, means = [], {}
    for name, role, w in weights:
        if not np.any(w > 0):
            warnings.append(f"ROI {name!r} covers no voxel of the delivered dose grid; skipped")
            continue
        inside = float(np.sum(w * coverage) / np.sum(w))
        if inside < 0.999:
            warnings.append(f"the predicted dose covers {100 * inside:.1f}% of ROI {name!r}; the rest counts as 0 Gy")
        p_values, _ = roi_statistics(p_on_d.array, zeros, rho, w, voxel_ml)
        d_values, _ = roi_statistics(d_dose.array, zeros, rho, w, voxel_ml)
        derived = name in ("normal_liver", "lungs_all", "tumors_all")
        p_values.update(role=role, derived=derived)
        d_values.update(role=role, derived=derived)
        entries.append(_pair_entry(name, name, p_values, d_values))
        means[name] = (p_values["mean_gy"], d_values["mean_gy"])
        advance()
    tumour_name = (
        "tumors_all" if "tumors_all" in means else next((n for n, r, _ in weights if r == "tumor" and n in means), None)
    )
    tn = [None, None]
    if tumour_name and "normal_liver" in means:
        tn = [
            means[tumour_name][i] / means["normal_liver"][i] if means["normal_liver"][i] > 0 else None for i in (0, 1)
        ]
    alignment["density_source"] = density.source
    view = view_from_weights(d_dose, delivered_ct, weights, {r.name for r in rois})
    return entries, tn, alignment, p_on_d, view, warnings


def compare_runs(
    predicted: str | os.PathLike | RunRecord,
    delivered: str | os.PathLike | RunRecord,
    *,
    match: Mapping[str, str] | None = None,
    rois: Sequence | None = None,
    predicted_ct=None,
    delivered_ct=None,
    same_frame: bool = False,
    accept_emission: bool = False,
    min_ncc: float = 0.7,
    min_overlap: float = 0.5,
) -> ComparisonResult:
    """Compare a predictive Tc-99m MAA run with a delivered Y-90 run, ROI by ROI (see the module docstring).

    Parameters
    ----------
    predicted, delivered : path or RunRecord
        Output folders of ``dosimetry run``.
    match : mapping, optional
        Predicted ROI name -> delivered ROI name, for ROIs named differently in the two runs.
    rois : sequence of Roi, optional
        ROIs of the delivered study: evaluate both doses on the delivered grid with them (``match`` is then
        not used: the ROIs are the same).
    predicted_ct, delivered_ct : Image, optional
        CTs (HU) for the registration and the delivered densities (delivered-ROI mode).
    same_frame : bool
        Take both runs as sharing patient coordinates (no registration) in delivered-ROI mode.
    accept_emission : bool
        Compare even when a run's emission verdict is not the expected one (a warning instead of an error).
    min_ncc, min_overlap : float
        Acceptance of the registration (:func:`~dosimetry.geometry.registration.register_rigid`).

    Returns
    -------
    ComparisonResult

    Raises
    ------
    InputFileError
        A run folder without (readable) ``stats.json`` or, in delivered-ROI mode, ``dose.nii.gz``.
    UnitsError
        ``predicted`` is not a predictive dose, or ``delivered`` not a Y-90 dose (without ``accept_emission``).
    RoiError
        No ROI pair, or a ``match`` name that does not exist.
    GeometryError
        The doses cannot be aligned (registration refused, CTs missing, no overlap).
    """
    predicted = predicted if isinstance(predicted, RunRecord) else read_run(predicted, option="--predicted")
    delivered = delivered if isinstance(delivered, RunRecord) else read_run(delivered, option="--delivered")
    warnings = check_emission(predicted, delivered, accept=accept_emission)
    p_study, d_study = predicted.study_values(), delivered.study_values()
    p_for, d_for = predicted.frame_of_reference_uid, delivered.frame_of_reference_uid
    frames = {
        "predicted": p_for,
        "delivered": d_for,
        "same": (p_for == d_for) if (p_for and d_for) else None,
    }
    extra = {}
    if rois:
        if match:
            raise OptionsError("--match applies to the runs' own ROIs; with --roi/--segmentation the ROIs are the same")
        entries, tn, alignment, p_on_d, view, more = _evaluate_on_delivered(
            predicted,
            delivered,
            list(rois),
            predicted_ct=predicted_ct,
            delivered_ct=delivered_ct,
            same_frame=same_frame,
            min_ncc=min_ncc,
            min_overlap=min_overlap,
        )
        warnings += more
        p_study["tn_ratio"], d_study["tn_ratio"] = tn
        lung = next((e for e in entries if e["delivered_roi"] == "lungs_all"), None) or next(
            (e for e in entries if e["role"] == "lung"), None
        )
        p_study["lung_mean_gy"] = lung["mean_gy"]["predicted"] if lung else None
        d_study["lung_mean_gy"] = lung["mean_gy"]["delivered"] if lung else None
        p_study["lung_roi"] = d_study["lung_roi"] = lung["delivered_roi"] if lung else None
        mode = "delivered ROIs"
        extra = {"predicted_on_delivered": p_on_d, "delivered_dose": view.dose_gy, "delivered_view": view}
    else:
        pairs, more = match_rois(predicted, delivered, match)
        warnings += more
        p_rois, d_rois = predicted.rois, delivered.rois
        entries = [_pair_entry(a, b, p_rois[a], d_rois[b]) for a, b in pairs]
        alignment = {"alignment": "none needed: each run's own ROI statistics"}
        mode = "own statistics"
        if frames["same"] is False:
            warnings.append(
                "the runs are in different frames of reference; each ROI is evaluated in its own study "
                "(give the delivered ROIs with --roi/--segmentation to compare on one grid after registration)"
            )
    stats = {
        "schema_version": SCHEMA_VERSION,
        "mode": mode,
        "difference": "delivered - predicted (percent: of the predicted value)",
        "runs": {"predicted": _run_record(predicted), "delivered": _run_record(delivered)},
        "frames_of_reference": frames,
        "alignment": alignment,
        "match": dict(match or {}),
        "rois": entries,
        "study": _study_section(p_study, d_study),
        "agreement": _agreement_sets(entries),
        "warnings": warnings,
    }
    return ComparisonResult(stats, input_paths=[predicted.folder, delivered.folder], **extra)


def read_pairs(path: str | os.PathLike) -> list[dict]:
    """Cases of a cohort from a CSV with the columns ``case_id, predicted, delivered`` (and ``match``:
    optional, ``A=B;C=D``). Relative folders are taken from the CSV's folder.

    Raises
    ------
    InputFileError
        Missing file or columns, an empty table or a duplicate ``case_id``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"--pairs {path}: no such file; give a CSV with columns case_id,predicted,delivered")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"case_id", "predicted", "delivered"} - set(reader.fieldnames or [])
        if missing:
            raise InputFileError(
                f"{path}: missing column(s) {', '.join(sorted(missing))}; expected case_id,predicted,delivered"
            )
        rows = [row for row in reader if any((v or "").strip() for v in row.values())]
    if not rows:
        raise InputFileError(f"{path}: no cases; add one row per case (case_id,predicted,delivered)")
    seen, cases = set(), []
    for n, row in enumerate(rows, start=2):
        case_id = (row["case_id"] or "").strip()
        if not case_id or case_id in seen:
            raise InputFileError(
                f"{path} line {n}: case_id {case_id!r} is empty or repeated; give each case a unique id"
            )
        seen.add(case_id)
        match = {}
        for item in filter(None, (row.get("match") or "").split(";")):
            a, sep, b = item.partition("=")
            if not sep or not a.strip() or not b.strip():
                raise InputFileError(f"{path} line {n}: match {item!r} is not PREDICTED=DELIVERED")
            match[a.strip()] = b.strip()
        folder = path.parent
        cases.append(
            {
                "case_id": case_id,
                "predicted": folder / row["predicted"].strip(),
                "delivered": folder / row["delivered"].strip(),
                "match": match,
            }
        )
    return cases


def compare_cohort(cases: Sequence[Mapping], *, accept_emission: bool = False) -> ComparisonResult:
    """Compare the predicted/delivered pairs of several cases (each run's own statistics) and pool them:
    agreement over all lesions (and ROIs) of all cases, and over the cases for T:N, lung dose and lung shunt.

    Parameters
    ----------
    cases : sequence of mappings
        ``case_id``, ``predicted``, ``delivered`` (run folders), optional ``match`` (as :func:`read_pairs`).

    Raises
    ------
    The errors of :func:`compare_runs`, with the case id in the message.
    """
    if not cases:
        raise OptionsError("no cases to compare; give at least one row in --pairs")
    entries, per_case, warnings, inputs = [], [], [], []
    with stage("compare cases"):
        for case in cases:
            case_id = case["case_id"]
            try:
                result = compare_runs(
                    case["predicted"], case["delivered"], match=case.get("match"), accept_emission=accept_emission
                )
            except Exception as err:
                if hasattr(err, "exit_code"):
                    raise type(err)(f"case {case_id}: {err}") from err
                raise
            for e in result.stats["rois"]:
                entries.append({"case_id": case_id, **e})
            per_case.append({"case_id": case_id, "runs": result.stats["runs"], "study": result.stats["study"]})
            warnings += [f"case {case_id}: {w}" for w in result.stats["warnings"]]
            inputs += result.input_paths
            advance()
    study_agreement = {
        key: agreement(
            [
                c["study"][key]["predicted"] if c["study"][key]["predicted"] is not None else float("nan")
                for c in per_case
            ],
            [
                c["study"][key]["delivered"] if c["study"][key]["delivered"] is not None else float("nan")
                for c in per_case
            ],
        )
        for key in STUDY_METRICS
    }
    stats = {
        "schema_version": SCHEMA_VERSION,
        "mode": "cohort (each run's own statistics)",
        "difference": "delivered - predicted (percent: of the predicted value)",
        "cases": per_case,
        "rois": entries,
        "agreement": _agreement_sets(entries),
        "study_agreement": study_agreement,
        "warnings": warnings,
    }
    return ComparisonResult(stats, input_paths=inputs)


__all__ = ["ComparisonResult", "METRICS", "compare_cohort", "compare_runs", "match_rois", "read_pairs"]
