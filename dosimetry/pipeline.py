"""The dosimetry of one study, as a function: activity image + ROIs (+ CT) in, dose and statistics out.

:func:`run_dosimetry` is the Python API; the command line only parses options into its arguments. A run
has no global state: everything it needs comes in as arguments and everything it makes goes out in the
:class:`DosimetryResult`, so many studies can run side by side (threads or processes).

Stages, each a public function with a typed result, timed into ``stats['timings_s']`` and reported to
:mod:`.progress`: :func:`load_inputs` (-> :class:`LoadedStudy`) -> :func:`resample_rois` (ROI occupancy on
the activity grid, :mod:`.resample`; -> :class:`RoiOccupancy`) -> :func:`quantify_activity` (activity at
implant, :mod:`.quantify`, and density, :mod:`.density`; -> :class:`QuantifiedStudy`) ->
:func:`compute_study_dose` (:mod:`.dose`; -> :class:`StudyDose`) -> :func:`compute_statistics`
(:mod:`.stats`, :mod:`.clinical`; -> :class:`DosimetryResult`). Writing files is :mod:`.outputs`' job.

One study dosed by two methods, loading and quantifying once::

    study = load_inputs(activity, rois, ct=ct, options=options)
    quantified = quantify_activity(study, resample_rois(study))
    ldm = compute_statistics(quantified, compute_study_dose(quantified, method="ldm"))
    kernel = compute_statistics(quantified, compute_study_dose(quantified, method="kernel"))
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable, Sequence

import numpy as np

from dosimetry._version import __version__
from dosimetry.quantify.checks import check_emission_values, check_total_activity
from dosimetry.constants import DEFAULT_SOFT_TISSUE_DENSITY_G_ML, constants_record
from dosimetry.stats.clinical import ClinicalOptions, clinical_sections
from dosimetry.defaults import lung_shunt_estimate, run_assumptions
from dosimetry.quantify.density import DensityMap, density_on_grid
from dosimetry.dose import compute_dose
from dosimetry.quantify.emission import EmissionDecision, emission_for_run
from dosimetry.errors import GeometryError, OptionsError, RoiError
from dosimetry.image import Image
from dosimetry.occupancy import Occupancy, difference, minimum, union
from dosimetry.io.images import read_image
from dosimetry.quantify.activity import Calibration, Timing, activity_at_implant, parse_units, recovered_activity_check
from dosimetry.option_names import option_name
from dosimetry.option_ranges import check_fields, check_value
from dosimetry.progress import advance, stage
from dosimetry.geometry.resample import check_roi_inside, occupancy_in_box
from dosimetry.roi import Role, Roi, role_warnings
from dosimetry.stats.roi_stats import STAT_KEYS, SortedDose, dvh_table, roi_statistics

SCHEMA_VERSION = "1.0"


@dataclass(frozen=True)
class DosimetryOptions:
    """Everything that decides a run besides the images. All numbers carry their units in their names.

    Attributes
    ----------
    method : str
        Dose method (``ldm``; the kernel methods of :mod:`dosimetry.dose`).
    calibration : str
        ``absolute`` (image in Bq/mL) or ``relative`` (scaled to the delivered liver activity).
    activity_units : str or None
        Units of the activity image; None means not stated, in which case Bq/mL is assumed and a warning
        says so.
    administered_activity_gbq, residual_fraction, lung_shunt_fraction : float
        For relative calibration and the lung-shunt dose estimate. ``residual_fraction`` and
        ``lung_shunt_fraction`` default to None = not given (0 is used for calibration and a warning says so).
    calibration_roi : str or None
        Name of the ROI whose activity is calibrated; default: the liver ROI.
    scan_delay_h, scan_time, implant_time
        When the image values hold, relative to implant (see :class:`~dosimetry.quantify.activity.Timing`).
    default_density_g_ml : float
        Density where there is no CT.
    lung_mass_kg : float or None
        Lung mass for the lung-shunt estimate; None = the lung ROI's mass from CT density, else the
        conventional 1 kg, stated in the output (:func:`dosimetry.defaults.lung_shunt_estimate`).
    clinical : ClinicalOptions
        Radiobiology, planning-model and threshold-flag settings (:mod:`dosimetry.stats.clinical`).
    emission_nuclide : str or None
        The nuclide the emission image shows, as the user states it (``--emission-nuclide``); None = from
        the DICOM header, or Y-90 assumed for image files (stated). See :mod:`dosimetry.quantify.emission`.
    allow_roi_outside : bool
        Accept ROIs more than 20% outside the activity image (else GeometryError); the part outside is
        recorded per ROI in any case (``outside_image_ml``, ``outside_image_percent``).

    Raises
    ------
    OptionsError
        A number outside its range (:mod:`dosimetry.option_ranges`), NaN or infinite.
    """

    method: str = "ldm"
    calibration: str = "absolute"
    activity_units: str | None = None
    administered_activity_gbq: float | None = None
    residual_fraction: float | None = None
    lung_shunt_fraction: float | None = None
    calibration_roi: str | None = None
    scan_delay_h: float | None = None
    scan_time: datetime | None = None
    implant_time: datetime | None = None
    default_density_g_ml: float = DEFAULT_SOFT_TISSUE_DENSITY_G_ML
    lung_mass_kg: float | None = None
    clinical: ClinicalOptions = field(default_factory=ClinicalOptions)
    emission_nuclide: str | None = None
    allow_roi_outside: bool = False

    def __post_init__(self):
        check_fields(self)
        check_fields(self.clinical)
        # the delay matters only where it is used: relative calibration needs no timing (issue 9, part 4)
        if (
            self.calibration == "absolute"
            and self.scan_time is not None
            and self.implant_time is not None
            and ((self.scan_time.tzinfo is None) == (self.implant_time.tzinfo is None))
        ):
            delay_h = (self.scan_time - self.implant_time).total_seconds() / 3600.0
            check_value(
                "scan_delay_h",
                delay_h,
                name="scan time - implant time (--scan-time, --implant-time or the DICOM header)",
            )


@dataclass(frozen=True)
class DosimetryResult:
    """What one run produces, in memory.

    Attributes
    ----------
    dose_gy : Image
        Absorbed dose (Gy) on the activity grid.
    activity_bq : Image
        Activity per voxel at implant time (Bq).
    density_g_ml : Image
        Density used per voxel (g/mL).
    stats : dict
        The content of ``stats.json`` (see README for the schema).
    dvh_dose_gy : ndarray
        Dose axis of the cumulative DVHs (Gy).
    dvh_volume_percent : dict of str to ndarray
        Per ROI name, % of volume receiving at least each dose of ``dvh_dose_gy``.
    roi_weights : dict of str to Occupancy
        Per ROI name, occupancy (0..1) on the dose grid, stored over the ROI's box
        (:class:`~dosimetry.occupancy.Occupancy`; ``np.asarray`` gives the full-grid array).
    ct_hu : Image or None
        The CT as given.
    """

    dose_gy: Image
    activity_bq: Image
    density_g_ml: Image
    stats: dict
    dvh_dose_gy: np.ndarray
    dvh_volume_percent: dict[str, np.ndarray] = field(default_factory=dict)
    roi_weights: dict[str, Occupancy] = field(default_factory=dict)
    """Per ROI name (given and derived), occupancy (0..1) on the dose grid."""
    ct_hu: Image | None = None
    """The CT as given (its own grid), for display and DICOM export."""
    dicom_sources: dict | None = None
    """For runs from a DICOM study: the files of the chosen series ('emission', 'ct', 'structures') and
    the names of the ROIs that did not come from the study ('added_rois'), for the DICOM exports."""

    @property
    def warnings(self) -> list[str]:
        return list(self.stats["warnings"])

    def roi(self, name: str) -> dict:
        """The statistics of the ROI called ``name``."""
        for entry in self.stats["rois"]:
            if entry["name"] == name:
                return entry
        raise KeyError(f"no ROI named {name!r}; ROIs are {[e['name'] for e in self.stats['rois']]}")

    def to_dataframe(self):
        """One row per ROI (given and derived): statistics, lesions' partial-volume fields, the study's
        tumour burden, as a pandas DataFrame (pandas must be installed); ``frame.attrs['units']`` gives the
        unit of each column (:mod:`dosimetry.stats.results_table`)."""
        from dosimetry.stats.results_table import roi_columns, roi_rows, to_frame

        return to_frame(roi_rows(self.stats), roi_columns())

    def lesions(self):
        """One row per lesion (given tumour ROI): volume, mean dose and ``mean_gy_pvc``, recovery
        coefficient, D70/D90/V100, BED and EUD, partial-volume check, as a pandas DataFrame with
        ``attrs['units']`` (:mod:`dosimetry.stats.results_table`)."""
        from dosimetry.stats.results_table import LESION_COLUMNS, lesion_rows, to_frame

        return to_frame(lesion_rows(self.stats), LESION_COLUMNS)


def _as_image(value: Image | str | os.PathLike, notes: list[str] | None = None) -> tuple[Image, str | None]:
    if isinstance(value, Image):
        return value, None
    return read_image(value, notes=notes), os.fspath(value)


def _check_names(rois: Sequence[Roi]) -> None:
    seen: set[str] = set()
    for roi in rois:
        if roi.name in seen:
            raise RoiError(f"two ROIs are named {roi.name!r}; give each a unique name (--roi ROLE:NAME=PATH)")
        seen.add(roi.name)
    reserved = {"tumors_all", "normal_liver", "perfused_normal_liver", "lungs_all"} & seen
    if reserved:
        raise RoiError(f"ROI names {sorted(reserved)} are reserved for derived ROIs; rename them")


# --- stages ----------------------------------------------------------------------------------------------------
# A run is load -> resample ROIs -> quantify (activity and density) -> dose -> statistics; outputs are
# :func:`dosimetry.export.results.write_results`. Each stage is a public function with a typed result, timed by
# :func:`dosimetry.progress.stage` into the ``timings_s`` of its result, so batch jobs can reuse stages (load
# and quantify once, dose with several methods). Warnings are carried stage by stage and joined, in stage
# order, by :func:`compute_statistics`.


@dataclass(frozen=True)
class LoadedStudy:
    """Stage 'load': the inputs of one run, read and checked (:func:`load_inputs`)."""

    activity: Image
    """Emission image as given (units of ``options.activity_units``, at scan time)."""
    rois: tuple[Roi, ...]
    options: DosimetryOptions
    emission: EmissionDecision
    """The emission-nuclide verdict used for this run."""
    ct: Image | None = None
    """CT in HU on its own grid, or None."""
    activity_path: str | None = None
    ct_path: str | None = None
    inputs_record: dict = field(default_factory=dict)
    """Extra description of the inputs, merged into ``stats['inputs']``."""
    extra_assumptions: tuple[dict, ...] = ()
    warnings: tuple[str, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RoiOccupancy:
    """Stage 'resample ROIs': every ROI as occupancy (0..1) on the activity grid (:func:`resample_rois`)."""

    weights: dict[str, Occupancy]
    """Per ROI name, float32 occupancy on the activity grid, over the voxels the ROI reaches."""
    outside_image: dict[str, dict]
    """Per ROI name, ``outside_image_ml`` and ``outside_image_percent``."""
    partial: tuple[str, ...] = ()
    """ROIs partly outside the image, as 'name (x.x% outside)', for the notes of derived statistics."""
    warnings: tuple[str, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class QuantifiedStudy:
    """Stages 'quantify' and 'density': everything of a run that does not depend on the dose method
    (:func:`quantify_activity`). Dose it with :func:`compute_study_dose`, as often as needed."""

    study: LoadedStudy
    occupancy: RoiOccupancy
    activity_bq: Image
    """Activity per voxel at implant time (Bq, float64)."""
    units: str
    """Units the emission image was read in."""
    activity_record: dict
    """How the activity was obtained (calibration, decay factor), for ``stats['inputs']['activity']``."""
    activity_check: dict
    """The recovered-activity check, ``stats['activity_check']``."""
    density: DensityMap
    """Density (g/mL) on the activity grid and its source."""
    warnings: tuple[str, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyDose:
    """Stage 'dose': the absorbed dose of one method (:func:`compute_study_dose`)."""

    dose_gy: Image
    """Absorbed dose (Gy, float32) on the activity grid."""
    method: str
    timings_s: dict[str, float] = field(default_factory=dict)


def _added(*timings: dict[str, float]) -> dict[str, float]:
    """Stage timings of several results in one dict (a stage that ran more than once counts each time)."""
    total: dict[str, float] = {}
    for part in timings:
        for name, seconds in part.items():
            total[name] = total.get(name, 0.0) + seconds
    return total


def load_inputs(
    activity: Image | str | os.PathLike,
    rois: Sequence[Roi],
    *,
    ct: Image | str | os.PathLike | None = None,
    options: DosimetryOptions | None = None,
    inputs_record: dict | None = None,
    extra_warnings: Sequence[str] = (),
    extra_assumptions: Sequence[dict] = (),
    emission: EmissionDecision | None = None,
) -> LoadedStudy:
    """Stage 'load': read the images given as paths, check the ROIs, decide the emission nuclide.

    Parameters are those of :func:`run_dosimetry`.

    Raises
    ------
    DosimetryError
        Unreadable images (InputFileError, GeometryError), no ROI or duplicate names (RoiError), an emission
        nuclide that cannot be used (:mod:`dosimetry.quantify.emission`).
    """
    timings: dict[str, float] = {}
    with stage("load", timings):
        options = options or DosimetryOptions()
        warnings: list[str] = list(extra_warnings)
        activity_image, activity_path = _as_image(activity, warnings)
        ct_image, ct_path = _as_image(ct, warnings) if ct is not None else (None, None)
        rois = tuple(rois)
        if not rois:
            raise RoiError(
                "no ROI given; give at least a liver ROI (an RTSTRUCT or SEG in the DICOM study, --roi "
                "liver=PATH or --segmentation FILE)"
            )
        _check_names(rois)
        warnings.extend(role_warnings(list(rois)))
        what = activity_path or "the emission image"
        decision = emission_for_run(
            emission,
            emission_nuclide=options.emission_nuclide,
            calibration=options.calibration,
            administered_gbq=options.administered_activity_gbq,
            what=what,
        )
        warnings.extend(decision.warnings if emission is None else ())
        if options.clinical.targets and not decision.predictive:
            raise OptionsError(
                f"--target needs a predictive run (Tc-99m MAA), but {what} gives a {decision.label}: a delivered "
                "dose is not a plan; plan on the MAA study"
            )
    return LoadedStudy(
        activity_image,
        rois,
        options,
        decision,
        ct_image,
        activity_path,
        ct_path,
        dict(inputs_record or {}),
        tuple(extra_assumptions),
        tuple(warnings),
        timings,
    )


def resample_rois(study: LoadedStudy) -> RoiOccupancy:
    """Stage 'resample ROIs': each ROI's occupancy on the activity grid, in world coordinates, and the part
    of it outside the image (:func:`dosimetry.geometry.resample.occupancy_in_box`, :func:`~dosimetry.geometry.resample.check_roi_inside`).

    Raises
    ------
    GeometryError
        An ROI that does not overlap the image, or lies more than 20% outside it (unless
        ``options.allow_roi_outside``; ROIs of role 'other' only warn).
    """
    timings: dict[str, float] = {}
    weights: dict[str, Occupancy] = {}
    outside_image: dict[str, dict] = {}
    partial: list[str] = []
    warnings: list[str] = []
    with stage("resample ROIs", timings, total=len(study.rois)):
        for roi in study.rois:
            try:
                weights[roi.name] = occupancy_in_box(roi.mask, study.activity)
            except GeometryError as err:
                raise GeometryError(f"ROI {roi.name!r} ({roi.source or 'mask'}): {err}") from err
            outside_image[roi.name], note = check_roi_inside(
                roi.name,
                roi.mask,
                study.activity,
                source=roi.source,
                allow_outside=study.options.allow_roi_outside,
                refuse=roi.role is not Role.OTHER,
            )
            if note:
                warnings.append(note)
                partial.append(f"{roi.name} ({outside_image[roi.name]['outside_image_percent']:.1f}% outside)")
            advance()
    return RoiOccupancy(weights, outside_image, tuple(partial), tuple(warnings), timings)


def _by_role(rois: Iterable[Roi]) -> dict[Role, list[Roi]]:
    by_role: dict[Role, list[Roi]] = {}
    for roi in rois:
        by_role.setdefault(roi.role, []).append(roi)
    return by_role


def quantify_activity(study: LoadedStudy, occupancy: RoiOccupancy) -> QuantifiedStudy:
    """Stages 'quantify' and 'density': activity per voxel at implant time (units, absolute or relative
    calibration, decay: :func:`dosimetry.quantify.activity.activity_at_implant`) and density on the activity grid
    (:func:`dosimetry.quantify.density.density_on_grid`).

    Raises
    ------
    DosimetryError
        Units, calibration or timing that cannot give activity (UnitsError, OptionsError), no calibration ROI
        for relative calibration (RoiError), an implausible emission image (:mod:`dosimetry.quantify.checks`).
    """
    options = study.options
    timings: dict[str, float] = {}
    warnings: list[str] = []
    what = study.activity_path or "the emission image"
    with stage("quantify", timings):
        if options.activity_units is None:
            units = "Bq/mL"
            if options.calibration == "absolute":
                warnings.append(f"activity units not stated: assumed Bq/mL (set {option_name('activity_units')})")
        else:
            units = parse_units(options.activity_units)
        for name in ("residual_fraction", "lung_shunt_fraction"):
            if getattr(options, name) is None and options.calibration == "relative":
                warnings.append(f"{name.replace('_', ' ')} not given: 0 used for the relative calibration")
        calibration = Calibration(
            options.calibration,
            options.administered_activity_gbq,
            options.residual_fraction or 0.0,
            options.lung_shunt_fraction or 0.0,
        )
        timing = Timing(options.scan_delay_h, options.scan_time, options.implant_time)
        calibration_name = None
        calibration_weights = None
        if options.calibration == "relative":
            calibration_name = options.calibration_roi
            if calibration_name is None:
                livers = _by_role(study.rois).get(Role.LIVER, [])
                if len(livers) != 1:
                    names = f": {', '.join(repr(r.name) for r in livers)}" if livers else ""
                    raise RoiError(
                        f"relative calibration needs one liver ROI (found {len(livers)}{names}); name "
                        "the calibration ROI with --calibration-roi NAME, or give the others another role "
                        "with --segment-role 'NAME=other'"
                    )
                calibration_name = livers[0].name
            if calibration_name not in occupancy.weights:
                raise RoiError(
                    f"--calibration-roi {calibration_name!r} is not among the ROIs: {', '.join(occupancy.weights)}"
                )
            calibration_weights = occupancy.weights[calibration_name]
        check_emission_values(study.activity, source=study.activity_path or "the activity image")
        activity_map = activity_at_implant(
            study.activity,
            units=units,
            calibration=calibration,
            timing=timing,
            calibration_occupancy=calibration_weights,
            calibration_roi_name=calibration_name,
        )
        warnings.extend(activity_map.warnings)
        activity_bq = activity_map.activity_bq
        warnings.extend(
            check_total_activity(
                activity_bq, calibration=options.calibration, source=study.activity_path or "the activity image"
            )
        )
        activity_check, check_warnings = recovered_activity_check(
            activity_bq,
            calibration,
            residual_given=options.residual_fraction is not None,
            what=what,
            administered_source=study.inputs_record.get("administered_activity_source", "given"),
        )
        warnings.extend(check_warnings)

    with stage("density", timings):
        density = density_on_grid(study.ct, study.activity, default_density_g_ml=options.default_density_g_ml)
        warnings.extend(density.warnings)
        if density.outside_ct is not None and density.outside_ct.any():
            outside = density.outside_ct
            total = float(np.sum(np.abs(activity_bq.array)))
            share = float(np.sum(np.abs(activity_bq.array[outside]))) / total if total > 0 else 0.0
            in_rois = sorted(name for name, w in occupancy.weights.items() if np.any(w.crop(outside) & (w.values > 0)))
            if share > 1e-3 or in_rois:
                warnings.append(
                    f"{100 * share:.1f}% of the activity lies outside the CT"
                    + (f" (ROIs {', '.join(in_rois)} partly)" if in_rois else "")
                    + f"; those voxels were given the default density {options.default_density_g_ml} g/mL"
                )
    return QuantifiedStudy(
        study, occupancy, activity_bq, units, activity_map.record, activity_check, density, tuple(warnings), timings
    )


def compute_study_dose(quantified: QuantifiedStudy, *, method: str | None = None) -> StudyDose:
    """Stage 'dose': absorbed dose (Gy) of the quantified study by ``method`` (default: the run's
    ``options.method``; see :data:`dosimetry.dose.METHODS`).

    Raises
    ------
    OptionsError
        Unknown method.
    """
    method = method or quantified.study.options.method
    timings: dict[str, float] = {}
    with stage("dose", timings):
        dose = compute_dose(quantified.activity_bq, quantified.density.density_g_ml, method=method)
    return StudyDose(dose, method, timings)


def compute_statistics(quantified: QuantifiedStudy, dose: StudyDose) -> DosimetryResult:
    """Stage 'statistics': ROI statistics (given and derived ROIs), DVHs, T:N, lung, the run record and the
    clinical sections, as :class:`DosimetryResult`; ``stats['timings_s']`` holds the time of every stage
    (:func:`dosimetry.export.results.write_results` adds the outputs')."""
    timings: dict[str, float] = {}
    study, occupancy = quantified.study, quantified.occupancy
    options, rois, weights = study.options, study.rois, occupancy.weights
    warnings = [*study.warnings, *occupancy.warnings, *quantified.warnings]
    with stage("statistics", timings):
        by_role = _by_role(rois)
        activity_image, density = study.activity, quantified.density
        shape = activity_image.shape
        entries: list[tuple[str, str, Occupancy, dict]] = [
            (roi.name, roi.role.value, weights[roi.name], {"source": roi.source, **occupancy.outside_image[roi.name]})
            for roi in rois
        ]
        tumor_w = union((weights[r.name] for r in by_role.get(Role.TUMOR, [])), shape)
        liver_w = union((weights[r.name] for r in by_role.get(Role.LIVER, [])), shape)
        has_tumors = bool(by_role.get(Role.TUMOR))
        has_liver = bool(by_role.get(Role.LIVER))
        if has_tumors and len(by_role[Role.TUMOR]) > 1:
            entries.append(("tumors_all", "tumor", tumor_w, {"derived": "union of all tumour ROIs"}))
        tumors_all_name = (
            "tumors_all"
            if has_tumors and len(by_role[Role.TUMOR]) > 1
            else (by_role[Role.TUMOR][0].name if has_tumors else None)
        )
        if has_liver:
            normal_w = difference(liver_w, tumor_w)
            if normal_w.any():
                entries.append(("normal_liver", "normal_liver", normal_w, {"derived": "liver minus all tumours"}))
            if by_role.get(Role.PERFUSED):
                perfused_w = union((weights[r.name] for r in by_role[Role.PERFUSED]), shape)
                pn = difference(minimum(perfused_w, liver_w), tumor_w)
                if pn.any():
                    entries.append(
                        ("perfused_normal_liver", "normal_liver", pn, {"derived": "perfused liver minus all tumours"})
                    )
        else:
            warnings.append("no liver ROI: normal-liver statistics and T:N ratios are not computed")
        del tumor_w, liver_w
        lung_rois = by_role.get(Role.LUNG, [])
        if len(lung_rois) > 1:
            entries.append(
                (
                    "lungs_all",
                    "lung",
                    union((weights[r.name] for r in lung_rois), shape),
                    {"derived": "union of all lung ROIs"},
                )
            )

        partial = occupancy.partial
        partial_note = "from the parts inside the image of ROIs partly outside it: " + ", ".join(partial)
        for extra in (e[3] for e in entries if partial and "derived" in e[3]):
            extra["outside_image_note"] = partial_note

        dose_a, act_a, rho_a = dose.dose_gy.array, quantified.activity_bq.array, density.density_g_ml.array
        roi_entries: list[dict] = []
        sorted_doses: dict[str, SortedDose] = {}
        for name, role, w, extra in entries:
            if not np.any(w.values > 0):
                warnings.append(f"ROI {name!r} covers no voxel of the activity grid; skipped")
                continue
            values, sorted_dose = roi_statistics(dose_a, act_a, rho_a, w, activity_image.voxel_volume_ml)
            entry = {"name": name, "role": role}
            entry.update({key: values[key] for key in STAT_KEYS})
            entry["voxel_mean_gy"] = values["voxel_mean_gy"]
            entry.update(extra)
            roi_entries.append(entry)
            sorted_doses[name] = sorted_dose
            advance()
        by_name = {e["name"]: e for e in roi_entries}

        tn = {
            "dose_ratio": None,
            "activity_ratio": None,
            "tumor": tumors_all_name,
            "normal": None,
            **({"outside_image_note": partial_note} if partial else {}),
        }
        if tumors_all_name in by_name and "normal_liver" in by_name:
            t, n = by_name[tumors_all_name], by_name["normal_liver"]
            tn.update(
                {
                    "normal": "normal_liver",
                    "dose_ratio": t["mean_gy"] / n["mean_gy"] if n["mean_gy"] else None,
                    "activity_ratio": (t["activity_mbq"] / t["volume_ml"]) / (n["activity_mbq"] / n["volume_ml"])
                    if n["activity_mbq"]
                    else None,
                }
            )

        lung_name = "lungs_all" if len(lung_rois) > 1 else (lung_rois[0].name if lung_rois else None)
        estimate = lung_shunt_estimate(
            options,
            lung_name=lung_name,
            lung_entry=by_name.get(lung_name),
            lung_weights=next((w for n, _, w, _ in entries if n == lung_name), None),
            density_source=density.source,
            outside_ct=density.outside_ct,
        )
        warnings.extend(estimate.warnings)
        lung = {
            "roi": lung_name,
            "voxel_mean_gy": by_name[lung_name]["voxel_mean_gy"] if lung_name in by_name else None,
            "mean_gy": by_name[lung_name]["mean_gy"] if lung_name in by_name else None,
            **estimate.record,
        }

        inputs = {
            "activity": {
                "file": study.activity_path,
                "shape": list(activity_image.shape),
                "spacing_mm": activity_image.spacing_mm.tolist(),
                "units": quantified.units,
                "units_source": "given" if options.activity_units else "default",
                **quantified.activity_record,
            },
            "ct": {"file": study.ct_path, **density.record},
            "rois": [{"name": r.name, "role": r.role.value, "source": r.source} for r in rois],
            "options": {
                "administered_activity_gbq": options.administered_activity_gbq,
                "residual_fraction": options.residual_fraction,
                "lung_shunt_fraction": options.lung_shunt_fraction,
                "scan_delay_h": options.scan_delay_h,
                "scan_time": options.scan_time.isoformat() if options.scan_time else None,
                "implant_time": options.implant_time.isoformat() if options.implant_time else None,
                "lung_mass_kg": options.lung_mass_kg,
            },
        }
        for key, value in study.inputs_record.items():
            if isinstance(value, dict) and isinstance(inputs.get(key), dict):
                inputs[key] = {**inputs[key], **value}
            else:
                inputs[key] = value
        dvh_axis, dvh_curves = dvh_table(sorted_doses)
        stats = {
            "schema_version": SCHEMA_VERSION,
            "software": {"name": "y90-dosimetry", "version": __version__},
            "method": dose.method,
            "density_source": density.source,
            "constants": constants_record(),
            "emission": study.emission.record(),
            "activity_check": quantified.activity_check,
            "inputs": inputs,
            "rois": roi_entries,
            "tumor_to_normal": tn,
            "lung": lung,
            "warnings": warnings,
            "assumptions": [
                *study.extra_assumptions,
                *run_assumptions(options, density_source=density.source),
                *estimate.assumptions,
            ],
        }
        roi_weights = {name: w for name, _, w, _ in entries if name in by_name}
        stats.update(
            clinical_sections(stats, dose_gy=dose.dose_gy.array, roi_weights=roi_weights, options=options.clinical)
        )
    stats["timings_s"] = _added(study.timings_s, occupancy.timings_s, quantified.timings_s, dose.timings_s, timings)
    return DosimetryResult(
        dose.dose_gy, quantified.activity_bq, density.density_g_ml, stats, dvh_axis, dvh_curves, roi_weights, study.ct
    )


def run_stages(study: LoadedStudy, *, rois_resampled: Callable[[RoiOccupancy], None] | None = None) -> DosimetryResult:
    """The stages after 'load', in order: :func:`resample_rois`, :func:`quantify_activity`,
    :func:`compute_study_dose` (``options.method``), :func:`compute_statistics`. ``rois_resampled`` is
    called with the ROIs' occupancies as soon as they are resampled (the command line starts its SEG export
    then)."""
    from dataclasses import replace

    occupancy = resample_rois(study)
    if rois_resampled is not None:
        rois_resampled(occupancy)
    quantified = quantify_activity(study, occupancy)
    # From here on the emission image as read is needed for its grid only (the activity at implant time is
    # quantified.activity_bq): this run drops its reference to the voxels, one volume less at the peak of
    # the dose stage. A caller that passed the image keeps its own.
    study = replace(study, activity=study.activity.with_array(_grid_only(study.activity.array)))
    quantified = replace(quantified, study=study)
    return compute_statistics(quantified, compute_study_dose(quantified))


def _grid_only(values: np.ndarray) -> np.ndarray:
    """A read-only array of the shape and dtype of ``values`` without their memory (one value broadcast:
    NaN for floats, so that a stage reading the dropped voxels by mistake gives NaN, not a plausible 0)."""
    fill = np.nan if values.dtype.kind == "f" else 0
    return np.broadcast_to(np.array(fill, dtype=values.dtype), values.shape)


def run_dosimetry(
    activity: Image | str | os.PathLike,
    rois: Sequence[Roi],
    *,
    ct: Image | str | os.PathLike | None = None,
    options: DosimetryOptions | None = None,
    inputs_record: dict | None = None,
    extra_warnings: Sequence[str] = (),
    extra_assumptions: Sequence[dict] = (),
    emission: EmissionDecision | None = None,
) -> DosimetryResult:
    """Absorbed dose and ROI statistics of one Y-90 radioembolization study.

    The stages :func:`load_inputs`, :func:`resample_rois`, :func:`quantify_activity`,
    :func:`compute_study_dose` and :func:`compute_statistics`, in that order; each is timed
    (``stats['timings_s']``) and reported to the current :mod:`dosimetry.progress` reporter.

    Parameters
    ----------
    activity : Image or path
        Emission image (Bq/mL at scan time for absolute calibration; any units for relative).
    rois : sequence of Roi
        At least one ROI; masks on any grid (mapped through world coordinates). A ``liver`` ROI is needed
        for normal-liver statistics, T:N and relative calibration.
    ct : Image or path, optional
        CT in HU on any grid, for voxel densities; without it ``options.default_density_g_ml`` is used.
    options : DosimetryOptions
    inputs_record : dict, optional
        Extra description of the inputs (files, series) merged into ``stats['inputs']``.
    extra_warnings : sequence of str
        Warnings from loading, carried into the result.
    extra_assumptions : sequence of dict
        Defaults used while loading (:func:`dosimetry.defaults.assumption`), carried into
        ``stats['assumptions']``.
    emission : EmissionDecision, optional
        The emission-nuclide verdict of a DICOM study (:mod:`dosimetry.quantify.emission`); default: decided from
        ``options.emission_nuclide`` (Y-90 assumed when None, stated).

    Returns
    -------
    DosimetryResult

    Raises
    ------
    DosimetryError
        Any expected fault of the inputs (subclasses say which).
    """
    return run_stages(
        load_inputs(
            activity,
            rois,
            ct=ct,
            options=options,
            inputs_record=inputs_record,
            extra_warnings=extra_warnings,
            extra_assumptions=extra_assumptions,
            emission=emission,
        )
    )


def run_dicom_study(
    folder: str | os.PathLike,
    *,
    options: DosimetryOptions | None = None,
    series_uid: str | Sequence[str] | None = None,
    extra_rois: Sequence[Roi] = (),
    role_overrides: dict[str, str] | None = None,
    calibration_factor_cps_per_mbq: float | None = None,
    extra_warnings: Sequence[str] = (),
    rois_resampled: Callable[[dict, Image, dict[str, Occupancy], dict[str, str]], None] | None = None,
) -> DosimetryResult:
    """:func:`run_dosimetry` on a DICOM folder: find and load the study, then compute as for images.

    Units, the scan time and the implant time come from the DICOM headers (``options.implant_time``
    overrides the implant time); the administered activity comes from ``options`` or else from the
    header's RadionuclideTotalDose, and ``stats['inputs']`` says which. ROIs come from the study's
    RTSTRUCT or SEG, plus ``extra_rois`` (e.g. NIfTI masks drawn on the same scan).

    Parameters
    ----------
    folder : path
        Folder scanned recursively for DICOM files.
    options : DosimetryOptions
        ``scan_delay_h``, ``scan_time`` and ``activity_units`` must be left unset: the headers give them.
    series_uid : str or sequence of str, optional
        Series Instance UID(s) that settle an ambiguous choice of series.
    role_overrides : dict, optional
        Structure name -> role (or 'ignore') for the study's RTSTRUCT/SEG.
    calibration_factor_cps_per_mbq : float, optional
        SPECT calibration factor for absolute calibration of counts.
    rois_resampled : callable, optional
        Called once the ROIs are resampled, with what the SEG export of ``extra_rois`` needs: the result's
        future ``dicom_sources``, the emission grid, the occupancies of ``extra_rois`` on it and their roles
        (the command line's export process builds the SEG meanwhile:
        :func:`dosimetry.export.study.prepare_segmentation`).
    """
    from dataclasses import replace

    from dosimetry.dicom import load_study
    from dosimetry.libwarnings import library_warnings

    options = options or DosimetryOptions()
    if options.scan_delay_h is not None or options.scan_time is not None:
        raise OptionsError(
            "for a DICOM study the scan time comes from the headers: drop --scan-delay-h/--scan-time "
            "(use --implant-time to override the implant time)"
        )
    library_notes: list[str] = []
    timings: dict[str, float] = {}
    with stage("load", timings), library_warnings(library_notes, during="reading the DICOM study"):
        study = load_study(
            folder,
            series_uid=series_uid,
            implant_time=options.implant_time,
            calibration=options.calibration,
            calibration_factor_cps_per_mbq=calibration_factor_cps_per_mbq,
            role_overrides=role_overrides,
            emission_nuclide=options.emission_nuclide,
        )
    if options.activity_units is not None and parse_units(options.activity_units) != parse_units(study.activity_units):
        raise OptionsError(
            f"--activity-units {options.activity_units} contradicts the DICOM header "
            f"({study.activity_units}); drop the option"
        )
    administered_gbq, administered_source = options.administered_activity_gbq, "given"
    if administered_gbq is None and study.administered_activity_bq:
        administered_gbq, administered_source = study.administered_activity_bq / 1e9, "DICOM RadionuclideTotalDose"
    elif administered_gbq is None:
        administered_source = None
    timed = study.activity_time is not None and study.implant_time is not None
    run_options = replace(
        options,
        activity_units=study.activity_units,
        administered_activity_gbq=administered_gbq,
        scan_time=study.activity_time if timed else None,
        implant_time=study.implant_time if timed else None,
    )
    record = {
        "dicom": {**study.provenance, "folder": os.fspath(folder)},
        "activity": {"units_source": "DICOM header"},
        "administered_activity_source": administered_source,
    }
    loaded = load_inputs(
        study.activity,
        [*study.rois, *extra_rois],
        ct=study.ct,
        options=run_options,
        inputs_record=record,
        extra_warnings=[*study.warnings, *library_notes, *extra_warnings],
        emission=study.emission,
    )
    sources = {**study.series_files, "added_rois": tuple(r.name for r in extra_rois)}
    hook = None
    if rois_resampled is not None:
        roles = {roi.name: roi.role.value for roi in extra_rois}

        def hook(occupancy: RoiOccupancy) -> None:
            added = {name: occupancy.weights[name] for name in roles if name in occupancy.weights}
            rois_resampled(sources, loaded.activity, added, roles)

    result = run_stages(replace(loaded, timings_s=_added(timings, loaded.timings_s)), rois_resampled=hook)
    return replace(result, dicom_sources=sources)
