"""Cumulative absorbed dose: the current treatment plus earlier ones (other lobe, retreatment).

Each earlier dose map lies on its own grid, in the coordinates of its own scan. It is brought onto the
current dose grid by a rigid transform, either given or found by registering its CT to the current CT
(:func:`dosimetry.geometry.registration.register_rigid`, refused when its check fails), resampled with linear
interpolation (outside its grid: 0 Gy), and added voxel by voxel. Statistics of the sum over the ROIs
(on the current grid, weighted by occupancy as everywhere, :mod:`dosimetry.stats.roi_stats`) give the cumulative
normal-liver and lung doses.

Physical dose only
------------------
The sum is of physical absorbed dose (Gy). It ignores radiobiology: the different dose rates of the
treatments, repair and repopulation between them, and the tissue's response to the first treatment
(fibrosis, atrophy, changed perfusion). Compare it with tolerance doses derived for single treatments
with care; a biologically effective dose (BED) needs a radiobiological model, applied per treatment only
in the treatment course (below), never to the summed map. Linear interpolation samples the earlier dose at the current voxel centres (it does not average
over voxels), which is accurate when the earlier grid is finer than, or as fine as, the dose gradients.

Treatment course (BED)
----------------------
With ``course=`` (earlier treatments of any supported nuclide, :class:`dosimetry.course.Treatment`: dose
maps, aligned and added like ``previous``, or stated mean doses) the result's stats gain a ``course``
section: per treatment and region the dose and the BED of its dose-rate model, and the cumulative dose and
BED assuming complete repair between treatments (:mod:`dosimetry.course`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk

from dosimetry.constants import DEFAULT_SOFT_TISSUE_DENSITY_G_ML
from dosimetry.quantify.density import density_on_grid
from dosimetry.errors import GeometryError, OptionsError, RoiError, UnitsError
from dosimetry.image import Image
from dosimetry.io.images import to_sitk
from dosimetry.geometry.registration import RegistrationResult, register_rigid
from dosimetry.geometry.resample import occupancy_on_grid
from dosimetry.roi import Role, Roi
from dosimetry.stats.roi_stats import STAT_KEYS, roi_statistics

SCHEMA_VERSION = "1.0"
PHYSICAL_SUM_NOTE = (
    "cumulative dose = sum of physical absorbed doses after rigid alignment; no radiobiological "
    "correction (dose rate, repair, repopulation, response to earlier treatment)"
)
_CUMULATIVE_KEYS = tuple(k for k in STAT_KEYS if k != "activity_mbq")


@dataclass(frozen=True)
class PreviousDose:
    """An earlier treatment's dose and how to align it.

    Attributes
    ----------
    dose_gy : Image
        Absorbed dose (Gy) on its own grid.
    ct_hu : Image or None
        The CT of the earlier study (same coordinates as ``dose_gy``), registered to the current CT.
    transform : SimpleITK.Transform or None
        Maps current world points to the earlier study's world points (SimpleITK resampling
        convention); used as given, instead of registration.
    label : str
        Name in the outputs (default ``previous_<n>``).
    """

    dose_gy: Image
    ct_hu: Image | None = None
    transform: sitk.Transform | None = None
    label: str = ""


@dataclass(frozen=True)
class AccumulationResult:
    """The cumulative dose and its statistics.

    Attributes
    ----------
    dose_gy : Image
        Cumulative dose (Gy) on the current grid.
    previous_on_current : list of Image
        Each earlier dose resampled onto the current grid (Gy), in input order.
    registrations : list of RegistrationResult or None
        The registration of each earlier CT (None when a transform was given or none was needed).
    stats : dict
        ``schema_version``, ``note``, ``treatments``, ``rois`` (per ROI: ``name``, ``role``,
        ``volume_ml``, ``current_mean_gy``, ``previous_mean_gy`` (list), ``cumulative`` (statistics as
        in stats.json, without activity)), ``normal_liver`` and ``lung`` (the cumulative statistics of
        the normal liver and the lungs, or None), ``warnings``.
    """

    dose_gy: Image
    previous_on_current: list[Image]
    registrations: list[RegistrationResult | None]
    stats: dict = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        return list(self.stats.get("warnings", []))


def _as_previous(item, index: int) -> PreviousDose:
    if isinstance(item, PreviousDose):
        previous = item
    elif isinstance(item, Image):
        previous = PreviousDose(item)
    else:
        values = tuple(item)
        if not 1 <= len(values) <= 3:
            raise OptionsError(f"previous treatment {index}: expected (dose, ct, transform), got {len(values)} items")
        previous = PreviousDose(*values)
    label = previous.label or f"previous_{index}"
    return PreviousDose(previous.dose_gy, previous.ct_hu, previous.transform, label)


def _check_finite(image: Image, what: str) -> None:
    if not np.all(np.isfinite(image.array)):
        raise UnitsError(f"{what} has NaN or infinite voxels; fix or zero them before accumulating")


def resample_dose(dose_gy: Image, reference: Image, transform: sitk.Transform | None) -> tuple[Image, np.ndarray]:
    """``dose_gy`` on the grid of ``reference`` through ``transform`` (linear), and its coverage (0..1).

    Voxels whose centre maps outside the dose grid get 0 Gy and coverage 0.
    """
    transform = transform if transform is not None else sitk.Transform(3, sitk.sitkIdentity)
    source = to_sitk(dose_gy.with_array(dose_gy.array.astype(np.float32)))
    target = to_sitk(reference.with_array(np.zeros(reference.shape, np.float32)))
    values = sitk.Resample(source, target, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    ones = sitk.Resample(source * 0 + 1, target, transform, sitk.sitkNearestNeighbor, 0.0, sitk.sitkFloat32)
    array = sitk.GetArrayFromImage(values).transpose(2, 1, 0)
    coverage = sitk.GetArrayFromImage(ones).transpose(2, 1, 0)
    return reference.with_array(array.astype(np.float32)), coverage


def roi_weights(rois: Sequence[Roi], grid: Image) -> list[tuple[str, str, np.ndarray]]:
    """Given ROIs and the derived normal liver / union of lungs, as (name, role, weights) on ``grid``."""
    entries: list[tuple[str, str, np.ndarray]] = []
    by_role: dict[Role, list[np.ndarray]] = {}
    for roi in rois:
        try:
            weights = occupancy_on_grid(roi.mask, grid).array
        except GeometryError as err:
            raise GeometryError(f"ROI {roi.name!r} ({roi.source or 'mask'}): {err}") from err
        entries.append((roi.name, roi.role.value, weights))
        by_role.setdefault(roi.role, []).append(weights)

    def union(items):
        return np.minimum(np.sum(items, axis=0), 1.0).astype(np.float32)

    if by_role.get(Role.LIVER):
        normal = np.clip(
            union(by_role[Role.LIVER]) - (union(by_role[Role.TUMOR]) if by_role.get(Role.TUMOR) else 0.0), 0.0, 1.0
        )
        if normal.any():
            entries.append(("normal_liver", "normal_liver", normal.astype(np.float32)))
    if len(by_role.get(Role.LUNG, [])) > 1:
        entries.append(("lungs_all", "lung", union(by_role[Role.LUNG])))
    return entries


def accumulate_doses(
    current_dose: Image,
    previous: Sequence,
    *,
    current_ct: Image | None = None,
    rois: Sequence[Roi] = (),
    min_ncc: float = 0.7,
    min_overlap: float = 0.5,
    default_density_g_ml: float = DEFAULT_SOFT_TISSUE_DENSITY_G_ML,
    course: Sequence = (),
    radiobiology=None,
    current_date=None,
) -> AccumulationResult:
    """Add the doses of earlier treatments to the current dose, on the current grid.

    Parameters
    ----------
    current_dose : Image
        Dose (Gy) of the current treatment; its grid is the grid of the result.
    previous : sequence of PreviousDose, Image or tuple (dose, ct, transform)
        The earlier treatments. With a CT (and no transform) the CT is registered rigidly to
        ``current_ct``; with a transform it is used as given; with neither the dose is taken as already
        in the current coordinates (a warning says so).
    current_ct : Image, optional
        The current CT (HU): registration target and, through the HU -> density curve, the masses for
        mass-weighted means (``default_density_g_ml`` without it).
    rois : sequence of Roi
        ROIs on any grid. Normal liver (liver minus tumours) and the union of several lungs are derived as
        in :func:`dosimetry.pipeline.run_dosimetry`.
    min_ncc, min_overlap : float
        Acceptance of each registration (see :func:`~dosimetry.geometry.registration.register_rigid`).
    default_density_g_ml : float
        Density where there is no CT.
    course : sequence of dosimetry.course.Treatment
        Earlier treatments of any supported nuclide (Y-90, Lu-177): dose maps (aligned and added to the
        cumulative dose like ``previous``) or stated mean doses (in the ``course`` totals only). With a
        course or ``radiobiology``, ``stats["course"]`` holds the BED per treatment and the cumulative
        dose and BED (:mod:`dosimetry.course`; the ``previous`` maps count as Y-90 treatments there).
    radiobiology : dosimetry.course.RadiobiologyParameters, optional
        alpha/beta and repair half-times (default :func:`dosimetry.course.radiobiology_parameters`).
    current_date : datetime.date or str, optional
        Day of the current (Y-90) treatment, for the course.

    Returns
    -------
    AccumulationResult

    Raises
    ------
    OptionsError
        No earlier dose, or an earlier CT without the current CT.
    UnitsError
        A dose map with NaN or infinite voxels.
    GeometryError
        A registration fails its check, an earlier dose does not reach the current grid, or an ROI lies
        outside the current grid.
    RoiError
        Two ROIs with the same name.

    Notes
    -----
    The sum is of physical dose: see the module docstring for what that ignores.
    """
    previous_items = [_as_previous(item, n) for n, item in enumerate(previous, start=1)]
    course_items = list(course)
    if not previous_items and not course_items:
        raise OptionsError(
            "no earlier dose given; give at least one previous dose map (--previous DOSE[:CT]) or a treatment "
            "course (--course)"
        )
    with_course = bool(course_items) or radiobiology is not None or current_date is not None
    y90_previous = [item.label for item in previous_items]
    if with_course:
        from dosimetry.course import course_treatments

        course_items, course_maps = course_treatments(
            previous_items, course_items, current_dose=current_dose, current_date=current_date
        )
        previous_items = previous_items + course_maps
    names = [r.name for r in rois]
    if len(set(names)) != len(names):
        raise RoiError(f"ROI names must be unique, got {names}")
    _check_finite(current_dose, "the current dose map")
    warnings: list[str] = []
    resampled: list[Image] = []
    registrations: list[RegistrationResult | None] = []
    treatments: list[dict] = [{"label": "current", "alignment": "reference grid"}]
    coverages: list[np.ndarray] = []
    for item in previous_items:
        _check_finite(item.dose_gy, f"the dose map of {item.label}")
        registration = None
        if item.transform is not None:
            transform, alignment = item.transform, {"alignment": "transform given"}
        elif item.ct_hu is not None:
            if current_ct is None:
                raise OptionsError(
                    f"{item.label} has a CT but the current CT is missing; give the current CT "
                    "(--ct) so that the two can be registered"
                )
            try:
                registration = register_rigid(current_ct, item.ct_hu, min_ncc=min_ncc, min_overlap=min_overlap)
            except GeometryError as err:
                raise GeometryError(f"{item.label}: {err}") from err
            transform, alignment = (
                registration.transform,
                {"alignment": "rigid registration of CTs", "registration": registration.record()},
            )
        else:
            transform, alignment = None, {"alignment": "none (assumed in the current coordinates)"}
            warnings.append(
                f"{item.label}: no CT and no transform; its dose is assumed to be in the current "
                "patient coordinates already (same scanner position)"
            )
        dose_on_current, coverage = resample_dose(item.dose_gy, current_dose, transform)
        if not coverage.any():
            raise GeometryError(
                f"{item.label}: the dose map does not overlap the current dose grid after "
                "alignment; check the files and the transform"
            )
        resampled.append(dose_on_current)
        registrations.append(registration)
        coverages.append(coverage)
        treatments.append({"label": item.label, **alignment})

    total = current_dose.array.astype(np.float64)
    for dose in resampled:
        total = total + dose.array
    cumulative = current_dose.with_array(total.astype(np.float32))

    density = density_on_grid(current_ct, current_dose, default_density_g_ml=default_density_g_ml)
    warnings.extend(density.warnings)
    zeros = np.zeros(current_dose.shape, np.float32)
    voxel_ml = current_dose.voxel_volume_ml
    entries = []
    weight_entries = roi_weights(rois, current_dose)
    for name, role, weights in weight_entries:
        if not np.any(weights > 0):
            warnings.append(f"ROI {name!r} covers no voxel of the current dose grid; skipped")
            continue
        for item, coverage in zip(previous_items, coverages):
            inside = float(np.sum(weights * coverage) / np.sum(weights))
            if inside < 0.999:
                warnings.append(f"{item.label} covers {100 * inside:.1f}% of ROI {name!r}; the rest counts as 0 Gy")
        rho = density.density_g_ml.array
        current_values, _ = roi_statistics(current_dose.array, zeros, rho, weights, voxel_ml)
        values, _ = roi_statistics(cumulative.array, zeros, rho, weights, voxel_ml)
        previous_means = [roi_statistics(d.array, zeros, rho, weights, voxel_ml)[0]["mean_gy"] for d in resampled]
        entries.append(
            {
                "name": name,
                "role": role,
                "volume_ml": values["volume_ml"],
                "current_mean_gy": current_values["mean_gy"],
                "previous_mean_gy": previous_means,
                "cumulative": {**{k: values[k] for k in _CUMULATIVE_KEYS}, "voxel_mean_gy": values["voxel_mean_gy"]},
            }
        )
    by_name = {e["name"]: e for e in entries}
    lung_names = [e["name"] for e in entries if e["role"] == "lung"]
    lung_name = "lungs_all" if "lungs_all" in by_name else (lung_names[0] if lung_names else None)
    if rois and "normal_liver" not in by_name:
        warnings.append("no liver ROI: the cumulative normal-liver dose is not computed")
    stats = {
        "schema_version": SCHEMA_VERSION,
        "note": PHYSICAL_SUM_NOTE,
        "density_source": density.source,
        "treatments": treatments,
        "rois": entries,
        "normal_liver": by_name.get("normal_liver", {}).get("cumulative"),
        "lung": ({"roi": lung_name, **by_name[lung_name]["cumulative"]} if lung_name else None),
        "warnings": warnings,
    }
    if with_course:
        from dosimetry.course import course_record, radiobiology_parameters, region_weights

        on_grid = dict(zip([p.label for p in previous_items], resampled))
        on_grid["current"] = current_dose
        stats["course"] = course_record(
            [(t, on_grid[t.label].array if t.dose_gy is not None else None) for t in course_items],
            weights=region_weights(weight_entries),
            density_g_ml=density.density_g_ml.array,
            parameters=radiobiology if radiobiology is not None else radiobiology_parameters(),
            notes=[
                f"{label}: an earlier dose map without a nuclide, taken as Y-90 (physical decay)"
                for label in y90_previous
            ],
        )
    return AccumulationResult(cumulative, resampled, registrations, stats)
