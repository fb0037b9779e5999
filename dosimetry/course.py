"""A treatment course: earlier treatments of any supported nuclide, their BED, and the cumulative totals.

Patients with neuroendocrine liver metastases often had Lu-177 PRRT before radioembolization. This module
describes each earlier treatment as a :class:`Treatment` -- nuclide, date, either a dose map (registered to
the current study by :func:`dosimetry.accumulate.accumulate_doses`, as every earlier dose map) or a stated
mean dose per region, and the dose-rate model -- and computes, per treatment and region, the absorbed dose
and the biologically effective dose (BED), then sums them over the course.

Dose-rate models
----------------
=========  ==========================================================================================
Y-90       microspheres: a permanent implant, the dose rate falls with the physical half-life
           (:data:`~dosimetry.constants.Y90_HALF_LIFE_H`, ICRP 107). An effective half-life is refused.
Lu-177     PRRT: the dose rate falls with an **effective half-life the user gives** (there is no default:
           it depends on the patient and the tissue). It must not exceed the physical half-life
           (:data:`~dosimetry.constants.LU177_HALF_LIFE_H`, 6.647 d, ENSDF).
=========  ==========================================================================================

Any other nuclide is refused. A Lu-177 treatment's effective half-life is used for every region unless a
region has its own (``region_half_lives_h``; tumour clearance often differs from normal liver's).

BED per treatment
-----------------
The decaying-source form of the linear-quadratic model (Dale 1985; as in
:func:`dosimetry.stats.radiobiology.bed_permanent_implant_gy`), for instantaneous uptake and a dose rate
falling mono-exponentially with half-life ``T`` (physical for Y-90, effective for Lu-177) until the
source has decayed::

    BED = D (1 + G D / (alpha/beta)),      G = lambda / (lambda + mu) = T_rep / (T_rep + T)

``lambda = ln2 / T``, ``mu = ln2 / T_rep`` (repair half-time). For Lu-177 the uptake phase is ignored.
A treatment given as ``cycles`` = N equal cycles (its dose the total of them) has
``BED = N BED(D / N)`` = ``D (1 + G (D / N) / (alpha/beta))``, complete repair between cycles.

* **Dose map**: the BED is computed voxel by voxel, then its mass-weighted mean over the region
  (``bed_kind`` "mean of voxel BED").
* **Stated mean**: only the BED of the mean dose can be computed (``bed_kind`` "BED of the stated mean").
  BED is convex in D, so for a non-uniform dose the BED of the mean is **lower** than the mean BED: the
  output says so in ``notes``.

Sum over the course: treatments are separated well enough for **complete repair between them**, so BEDs
add (and doses add). Repopulation and the tissue's response to earlier treatments (fibrosis, atrophy) are
not modelled. When two dated treatments are so close that more than 1% of the earlier dose was still to
be delivered at the later date, a note says so (the two then overlap and the sum understates the BED).
A cumulative value is given only when every treatment has a value for that region (a stated mean without
``lung_gy`` leaves the cumulative lung dose out; state 0 Gy if it is negligible).

Regions: ``normal_liver`` (liver minus tumours), ``tumor`` (union of the tumour ROIs), ``lung`` (union of
the lung ROIs), on the current grid with the current ROIs. Means are mass-weighted (energy / mass), as
``mean_gy`` everywhere (:mod:`dosimetry.stats.roi_stats`); the radiobiology section of a single run
weights BED by volume instead (equal on uniform density).

Radiobiology parameters
-----------------------
alpha/beta and the repair half-time of each region are inputs (:func:`radiobiology_parameters`). Defaults
exist only where :mod:`dosimetry.constants` cites a source: normal liver alpha/beta 2.5 Gy
(Strigari 2010; Cremonesi 2014), tumour 10 Gy (Cremonesi 2014), repair half-time 2.5 h for both
(Strigari 2010; Cremonesi 2014). The lung has none: its BED is computed only when both its alpha/beta and
repair half-time are given. Every value is recorded with its source (the citation, or the source the
user stated, or "given by the user; source not stated").

The ``course`` section (``accumulate.json`` of ``dosimetry accumulate --course``; ``AccumulationResult.stats``)
------------------------------------------------------------------------------------------------------------------
::

    {"schema_version": "1.0",
     "model": "<the BED formula in words>",
     "weighting": "mass",
     "parameters": {REGION: {"alpha_beta_gy", "alpha_beta_source", "repair_half_time_h",
                             "repair_half_time_source"}},            # REGION: normal_liver, tumor, lung
     "treatments": [                                                 # earlier treatments in input order,
        {"label", "nuclide", "date" (ISO or None), "source": "dose map" | "stated mean",   # current last
         "cycles", "dose_rate_model": "physical decay" | "effective half-life",
         "half_life_h", "half_life_source",
         "regions": {REGION: {"mean_gy", "bed_gy", "bed_kind", "half_life_h"} or None}}],
     "cumulative": {REGION: {"dose_gy", "bed_gy", "bed_kind", "missing": [labels]}},
     "notes": [str]}

``bed_gy`` is None where the region has no alpha/beta; ``cumulative`` values are None when a treatment has
no value for the region (``missing`` names it). ``bed_kind`` of a cumulative row is "mean of voxel BED"
when every treatment is a dose map, else "sum of mean voxel BED and BED of stated means".

Example
-------
>>> from dosimetry.course import Treatment, treatment_bed_of_mean_gy, radiobiology_parameters
>>> prrt = Treatment("Lu-177", date="2025-01-15", mean_gy={"normal_liver": 20.0}, effective_half_life_h=50.0,
...                  cycles=4)
>>> round(treatment_bed_of_mean_gy(prrt, 20.0, radiobiology_parameters().tissue("normal_liver")), 3)
21.905

With a dose map and a current dose, through the accumulation (registered as any earlier dose map)::

    from dosimetry.accumulate import accumulate_doses
    result = accumulate_doses(y90_dose, [], current_ct=ct, rois=rois, course=[prrt],
                              radiobiology=radiobiology_parameters(alpha_beta_tumor_gy=10.0))
    result.stats["course"]["cumulative"]["normal_liver"]["bed_gy"]

References
----------
.. [Dale1985] Dale RG. The application of the linear-quadratic dose-effect equation to fractionated and
   protracted radiotherapy. Br J Radiol 1985;58:515-28.
.. [Strigari2010] Strigari L, et al. J Nucl Med 2010;51:1377-85.
.. [Cremonesi2014] Cremonesi M, et al. Front Oncol 2014;4:210.
"""

from __future__ import annotations

import csv
import math
import numbers
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date as Date
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dosimetry.constants import (
    ALPHA_BETA_LIVER_GY,
    ALPHA_BETA_TUMOR_GY,
    LU177_HALF_LIFE_H,
    SOURCES,
    Y90_HALF_LIFE_H,
    Y90_REPAIR_HALF_TIME_H,
)
from dosimetry.errors import InputFileError, OptionsError
from dosimetry.option_ranges import check_value

if TYPE_CHECKING:
    import numpy as np

    from dosimetry.image import Image

__all__ = [
    "REGIONS",
    "NUCLIDES",
    "Treatment",
    "TissueParameters",
    "RadiobiologyParameters",
    "radiobiology_parameters",
    "treatment_bed_of_mean_gy",
    "course_record",
    "course_treatments",
    "read_course_csv",
    "COURSE_CSV_COLUMNS",
    "course_table",
    "write_course_csv",
    "format_course",
]

SCHEMA_VERSION = "1.0"
REGIONS: tuple[str, ...] = ("normal_liver", "tumor", "lung")
"""Regions of the course: normal liver (liver minus tumours), tumours (union), lungs (union)."""

NUCLIDES: dict[str, str] = {"Y-90": "physical decay", "Lu-177": "effective half-life"}
"""Supported nuclides and their dose-rate model."""

_ALIASES = {"y-90": "Y-90", "y90": "Y-90", "90y": "Y-90", "lu-177": "Lu-177", "lu177": "Lu-177", "177lu": "Lu-177"}

MODEL_TEXT = (
    "BED = D (1 + G D / (alpha/beta)), G = Trep / (Trep + T), T the physical (Y-90) or effective (Lu-177) "
    "half-life (decaying source, instantaneous uptake; Dale 1985); N equal cycles: N BED(D/N); "
    "BEDs of treatments added (complete repair between treatments)"
)
BED_OF_MEAN_NOTE = (
    "BED of a stated mean dose is the BED of the mean, not the mean BED: BED is convex in dose, so for a "
    "non-uniform dose the mean of voxel BED is higher than the BED of the mean"
)
MAP_ONLY_NOTE = (
    "cumulative_dose.nii.gz holds the dose maps only; treatments given as stated means enter the course "
    "totals (course.csv, accumulate.json 'course') and not the map"
)
_NOT_STATED = "given by the user; source not stated"


def canonical_nuclide(text: str) -> str:
    """``'Lu-177'`` for ``'lu177'``, ``'177Lu'``...; :class:`OptionsError` for a nuclide without a dose-rate model."""
    key = str(text).strip().lower().replace(" ", "")
    if key not in _ALIASES:
        raise OptionsError(
            f"nuclide {text!r} is not supported for a treatment course; give one of {', '.join(NUCLIDES)}"
        )
    return _ALIASES[key]


def _as_date(value) -> Date | None:
    if isinstance(value, datetime):
        return value.date()
    if value is None or isinstance(value, Date):
        return value
    try:
        return Date.fromisoformat(str(value).strip())
    except ValueError:
        raise OptionsError(f"treatment date {value!r} is not a date; give YYYY-MM-DD, e.g. 2025-03-01") from None


def _effective_half_life(value, name: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise OptionsError(f"treatment {name}: {what} {value!r} is not a number of hours")
    value = float(value)
    if not (math.isfinite(value) and 0 < value <= LU177_HALF_LIFE_H):
        raise OptionsError(
            f"treatment {name}: {what} {value:g} h is outside (0, {LU177_HALF_LIFE_H:.1f}] h "
            "(it cannot exceed the Lu-177 physical half-life, 6.647 d); give hours, not days"
        )
    return value


@dataclass(frozen=True)
class Treatment:
    """One treatment of the course.

    Attributes
    ----------
    nuclide : str
        ``"Y-90"`` or ``"Lu-177"`` (also ``"Lu177"``, ``"177Lu"``...); others are refused.
    date : datetime.date or str or None
        Day of the treatment (ISO ``YYYY-MM-DD``); None = not known (then no interval is checked).
    dose_gy : Image or None
        Its absorbed dose map (Gy) on its own grid, aligned as any earlier dose map (``ct_hu``, ``transform``).
    ct_hu : Image or None
        CT of the study of ``dose_gy``, registered to the current CT.
    transform : SimpleITK.Transform or None
        Current world -> this study's world, used as given instead of registration.
    mean_gy : mapping or None
        Stated mean dose (Gy) per region instead of a map: ``normal_liver`` required, ``tumor``, ``lung``
        optional. Exactly one of ``dose_gy`` and ``mean_gy``.
    effective_half_life_h : float or None
        Lu-177: required (h), at most the physical half-life. Y-90: must be None (physical decay).
    region_half_lives_h : mapping or None
        Lu-177: effective half-life (h) of single regions (``normal_liver``, ``tumor``, ``lung``), used there
        instead of ``effective_half_life_h`` (tumour clearance often differs from normal liver's).
    half_life_source : str
        Where the effective half-life comes from (recorded; "given by the user; source not stated" if empty).
    cycles : int
        The dose is the total of this many equal cycles, with complete repair between them (default 1).
        Cycles that differ: give one treatment per cycle.
    label : str
        Name in the outputs.

    Raises
    ------
    OptionsError
        An unknown nuclide, Lu-177 without an effective half-life, an effective half-life for Y-90, both or
        neither of a map and stated means, a stated mean without the normal liver or with an unknown
        region, a negative or non-finite dose, cycles < 1.
    """

    nuclide: str
    date: Date | str | None = None
    dose_gy: Image | None = None
    ct_hu: Image | None = None
    transform: Any = None
    mean_gy: Mapping[str, float] | None = None
    effective_half_life_h: float | None = None
    region_half_lives_h: Mapping[str, float] | None = None
    half_life_source: str = ""
    cycles: int = 1
    label: str = ""

    def __post_init__(self):
        nuclide = canonical_nuclide(self.nuclide)
        name = self.label or nuclide
        object.__setattr__(self, "nuclide", nuclide)
        object.__setattr__(self, "date", _as_date(self.date))
        if (self.dose_gy is None) == (self.mean_gy is None):
            raise OptionsError(
                f"treatment {name}: give either a dose map or stated mean doses (normal_liver_gy=...), not "
                f"{'both' if self.dose_gy is not None else 'neither'}"
            )
        if self.dose_gy is None and (self.ct_hu is not None or self.transform is not None):
            raise OptionsError(f"treatment {name}: a CT or transform aligns a dose map; this one has stated means")
        if self.mean_gy is not None:
            means = dict(self.mean_gy)
            unknown = sorted(set(means) - set(REGIONS))
            if unknown:
                raise OptionsError(
                    f"treatment {name}: unknown region(s) {', '.join(unknown)}; give {', '.join(REGIONS)}"
                )
            if means.get("normal_liver") is None:
                raise OptionsError(
                    f"treatment {name}: a stated mean needs at least the normal-liver dose (normal_liver_gy=...)"
                )
            clean = {}
            for region, value in means.items():
                if value is None:
                    continue
                if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                    raise OptionsError(f"treatment {name}: {region} dose {value!r} is not a finite number of Gy")
                if value < 0:
                    raise OptionsError(f"treatment {name}: {region} dose {value} Gy is negative")
                clean[region] = float(value)
            object.__setattr__(self, "mean_gy", clean)
        teff = self.effective_half_life_h
        by_region = {r: v for r, v in dict(self.region_half_lives_h or {}).items() if v is not None}
        object.__setattr__(self, "region_half_lives_h", by_region)
        if nuclide == "Y-90" and by_region:
            raise OptionsError(
                f"treatment {name}: Y-90 microspheres are a permanent implant (physical decay, "
                f"{Y90_HALF_LIFE_H} h); remove the effective half-lives of the regions"
            )
        if nuclide == "Y-90" and teff is not None:
            raise OptionsError(
                f"treatment {name}: Y-90 microspheres are a permanent implant (physical decay, "
                f"{Y90_HALF_LIFE_H} h); remove the effective half-life"
            )
        if nuclide == "Lu-177":
            if teff is None:
                raise OptionsError(
                    f"treatment {name}: Lu-177 needs the effective half-life in hours (effective_half_life_h, "
                    "e.g. from the patient's post-therapy imaging); there is no default"
                )
            object.__setattr__(self, "effective_half_life_h", _effective_half_life(teff, name, "effective half-life"))
            unknown = sorted(set(by_region) - set(REGIONS))
            if unknown:
                raise OptionsError(
                    f"treatment {name}: effective half-life of unknown region(s) {', '.join(unknown)}; "
                    f"give {', '.join(REGIONS)}"
                )
            object.__setattr__(
                self,
                "region_half_lives_h",
                {
                    r: _effective_half_life(v, name, f"{r} effective half-life")
                    for r, v in by_region.items()
                    if v is not None
                },
            )
        if isinstance(self.cycles, bool) or not isinstance(self.cycles, numbers.Integral) or self.cycles < 1:
            raise OptionsError(f"treatment {name}: cycles must be a whole number >= 1, got {self.cycles!r}")
        object.__setattr__(self, "cycles", int(self.cycles))

    @property
    def source(self) -> str:
        """``"dose map"`` or ``"stated mean"``."""
        return "dose map" if self.dose_gy is not None else "stated mean"

    def half_life(self, region: str | None = None) -> tuple[float, str, str]:
        """(half-life in h of the dose rate in ``region`` (None: the treatment's), model, where it comes from)."""
        if self.nuclide == "Y-90":
            return Y90_HALF_LIFE_H, "physical decay", f"Y-90 physical half-life, {SOURCES['Y90_HALF_LIFE_H']}"
        by_region = self.region_half_lives_h or {}
        value = by_region.get(region, self.effective_half_life_h)
        return value, "effective half-life", self.half_life_source or _NOT_STATED


@dataclass(frozen=True)
class TissueParameters:
    """alpha/beta (Gy) and repair half-time (h) of one region, with their sources; None = not given."""

    alpha_beta_gy: float | None
    alpha_beta_source: str | None
    repair_half_time_h: float | None
    repair_half_time_source: str | None

    @property
    def complete(self) -> bool:
        return self.alpha_beta_gy is not None and self.repair_half_time_h is not None


@dataclass(frozen=True)
class RadiobiologyParameters:
    """:class:`TissueParameters` per region (:data:`REGIONS`); build with :func:`radiobiology_parameters`."""

    tissues: Mapping[str, TissueParameters] = field(default_factory=dict)

    def tissue(self, region: str) -> TissueParameters:
        return self.tissues[region]

    def record(self) -> dict:
        return {region: vars(self.tissues[region]).copy() for region in REGIONS}


def radiobiology_parameters(
    *,
    alpha_beta_normal_liver_gy: float | None = None,
    alpha_beta_tumor_gy: float | None = None,
    alpha_beta_lung_gy: float | None = None,
    repair_half_time_normal_liver_h: float | None = None,
    repair_half_time_tumor_h: float | None = None,
    repair_half_time_lung_h: float | None = None,
    source: str | None = None,
) -> RadiobiologyParameters:
    """The radiobiology parameters of the course; None = the cited default (normal liver, tumour) or none (lung).

    Parameters
    ----------
    alpha_beta_normal_liver_gy, alpha_beta_tumor_gy, alpha_beta_lung_gy : float, optional
        alpha/beta (Gy). Defaults: 2.5 Gy normal liver (Strigari 2010; Cremonesi 2014), 10 Gy tumour
        (Cremonesi 2014); lung none.
    repair_half_time_normal_liver_h, repair_half_time_tumor_h, repair_half_time_lung_h : float, optional
        Repair half-time (h). Default 2.5 h for normal liver and tumour (Strigari 2010; Cremonesi 2014);
        lung none.
    source : str, optional
        Where the given values come from (recorded with each of them).

    Raises
    ------
    OptionsError
        A value out of range (alpha/beta in (0, 100] Gy, repair half-time in (0, 48] h), or only one of
        the two lung parameters.
    """
    given_source = source.strip() if source and source.strip() else _NOT_STATED

    def pick(value, field_name, default, default_key):
        if value is not None:
            return check_value(field_name, value), given_source
        if default is None:
            return None, None
        return default, SOURCES[default_key]

    ab_range = {"normal_liver": "alpha_beta_liver_gy", "tumor": "alpha_beta_tumor_gy", "lung": "alpha_beta_lung_gy"}
    tissues = {}
    for region, ab, trep, ab_default, ab_key in (
        (
            "normal_liver",
            alpha_beta_normal_liver_gy,
            repair_half_time_normal_liver_h,
            ALPHA_BETA_LIVER_GY,
            "ALPHA_BETA_LIVER_GY",
        ),
        ("tumor", alpha_beta_tumor_gy, repair_half_time_tumor_h, ALPHA_BETA_TUMOR_GY, "ALPHA_BETA_TUMOR_GY"),
        ("lung", alpha_beta_lung_gy, repair_half_time_lung_h, None, None),
    ):
        trep_default = Y90_REPAIR_HALF_TIME_H if region != "lung" else None
        ab_value, ab_source = pick(ab, ab_range[region], ab_default, ab_key)
        trep_field = "repair_half_time_lung_h" if region == "lung" else "repair_half_time_h"
        trep_value, trep_source = pick(trep, trep_field, trep_default, "Y90_REPAIR_HALF_TIME_H")
        tissues[region] = TissueParameters(ab_value, ab_source, trep_value, trep_source)
    lung = tissues["lung"]
    if (lung.alpha_beta_gy is None) != (lung.repair_half_time_h is None):
        raise OptionsError(
            "lung BED needs both its alpha/beta and its repair half-time (there are no cited defaults for lung); "
            "give both or neither"
        )
    return RadiobiologyParameters(tissues)


def _bed_gy(dose_gy, tissue: TissueParameters, half_life_h: float, cycles: int):
    """``N BED(D/N)`` of the decaying source, ``D (1 + G (D/N) / (alpha/beta))`` (array or float): the
    permanent-implant BED of :mod:`dosimetry.stats.radiobiology` with the treatment's (effective) half-life."""
    from dosimetry.stats.radiobiology import bed_permanent_implant_gy

    per_cycle = bed_permanent_implant_gy(
        dose_gy / cycles,
        alpha_beta_gy=tissue.alpha_beta_gy,
        repair_half_time_h=tissue.repair_half_time_h,
        physical_half_life_h=half_life_h,
    )
    return cycles * per_cycle


def treatment_bed_of_mean_gy(
    treatment: Treatment, mean_gy: float, tissue: TissueParameters, region: str | None = None
) -> float | None:
    """BED (Gy) of a mean dose ``mean_gy`` delivered by ``treatment`` to ``region`` (None without tissue parameters)."""
    if not tissue.complete:
        return None
    return float(_bed_gy(float(mean_gy), tissue, treatment.half_life(region)[0], treatment.cycles))


def _region_of_map(
    dose_gy: np.ndarray,
    weights: np.ndarray,
    density_g_ml: np.ndarray,
    tissue: TissueParameters,
    treatment: Treatment,
    region: str,
) -> dict:
    import numpy as np

    from dosimetry.occupancy import Occupancy, gather

    w, sel = Occupancy.of(weights).voxels()
    mass = w.astype(np.float64) * gather(density_g_ml, sel)
    dose = gather(dose_gy, sel).astype(np.float64)
    total = mass.sum()
    mean = float(np.sum(mass * dose) / total)
    bed = None
    if tissue.complete:
        half_life_h = treatment.half_life(region)[0]
        bed = float(np.sum(mass * _bed_gy(dose, tissue, half_life_h, treatment.cycles)) / total)
    return {
        "mean_gy": mean,
        "bed_gy": bed,
        "bed_kind": "mean of voxel BED",
        "half_life_h": treatment.half_life(region)[0],
    }


def region_weights(entries: Sequence[tuple[str, str, np.ndarray]]) -> dict[str, np.ndarray | None]:
    """The weights of :data:`REGIONS` from :func:`dosimetry.accumulate.roi_weights` entries (None: no such ROI)."""
    import numpy as np

    by_name = {name: w for name, _, w in entries}
    tumors = [w for _, role, w in entries if role == "tumor"]
    lungs = [(name, w) for name, role, w in entries if role == "lung"]
    tumor = None
    if tumors:
        tumor = tumors[0] if len(tumors) == 1 else np.minimum(np.sum(tumors, axis=0), 1.0).astype(np.float32)
    lung = by_name.get("lungs_all", lungs[0][1] if lungs else None)
    out = {"normal_liver": by_name.get("normal_liver"), "tumor": tumor, "lung": lung}
    return {k: (w if w is not None and np.any(w > 0) else None) for k, w in out.items()}


def course_record(
    treatments: Sequence[tuple[Treatment, np.ndarray | None]],
    *,
    weights: Mapping[str, np.ndarray | None],
    density_g_ml: np.ndarray,
    parameters: RadiobiologyParameters,
    notes: Sequence[str] = (),
) -> dict:
    """The ``course`` section (schema in the module docstring).

    Parameters
    ----------
    treatments : sequence of (Treatment, ndarray or None)
        Every treatment in order, the current one last, each with its dose on the current grid (Gy; None for
        stated means).
    weights : mapping
        Occupancy of each region on the current grid (:func:`region_weights`), None where there is no ROI.
    density_g_ml : ndarray
        Density on the current grid (mass weighting).
    parameters : RadiobiologyParameters
    notes : sequence of str
        Notes to put first (e.g. that ``--previous`` maps count as Y-90).
    """
    from dosimetry.progress import advance

    entries, notes = [], list(notes)
    for treatment, dose_on_grid in treatments:
        half_life_h, model, half_life_source = treatment.half_life()
        regions: dict[str, dict | None] = {}
        for region in REGIONS:
            tissue = parameters.tissue(region)
            if treatment.dose_gy is not None:
                w = weights.get(region)
                regions[region] = (
                    None if w is None else _region_of_map(dose_on_grid, w, density_g_ml, tissue, treatment, region)
                )
            else:
                value = treatment.mean_gy.get(region)
                regions[region] = (
                    None
                    if value is None
                    else {
                        "mean_gy": value,
                        "bed_gy": treatment_bed_of_mean_gy(treatment, value, tissue, region),
                        "bed_kind": "BED of the stated mean",
                        "half_life_h": treatment.half_life(region)[0],
                    }
                )
        entries.append(
            {
                "label": treatment.label,
                "nuclide": treatment.nuclide,
                "date": treatment.date.isoformat() if treatment.date else None,
                "source": treatment.source,
                "cycles": treatment.cycles,
                "dose_rate_model": model,
                "half_life_h": half_life_h,
                "half_life_source": half_life_source,
                "regions": regions,
            }
        )
        advance()
    cumulative = {}
    for region in REGIONS:
        values = [e["regions"][region] for e in entries]
        missing = [e["label"] for e, v in zip(entries, values) if v is None]
        beds = [v["bed_gy"] for v in values if v is not None]
        complete = not missing
        kinds = {v["bed_kind"] for v in values if v is not None}
        cumulative[region] = {
            "dose_gy": sum(v["mean_gy"] for v in values) if complete else None,
            "bed_gy": sum(beds) if complete and None not in beds else None,
            "bed_kind": None if not complete else _cumulative_kind(kinds),
            "missing": missing,
        }
        if missing:
            notes.append(f"{region}: no value for {', '.join(missing)}; the cumulative {region} dose is not computed")
        elif not parameters.tissue(region).complete:
            notes.append(f"{region}: no alpha/beta and repair half-time given; BED not computed")
    if any(t.source == "stated mean" for t, _ in treatments):
        notes += [BED_OF_MEAN_NOTE, MAP_ONLY_NOTE]
    notes += _interval_notes([t for t, _ in treatments])
    if any(t.nuclide == "Lu-177" for t, _ in treatments):
        notes.append(
            "Lu-177: a treatment's effective half-life is used for every region without its own "
            "(region_half_lives_h, effective_half_life_<region>_h); the uptake phase is ignored"
        )
    notes += [
        f"{region} {kind}: {_NOT_STATED}"
        for region, tissue in parameters.tissues.items()
        for kind, src in (
            ("alpha/beta", tissue.alpha_beta_source),
            ("repair half-time", tissue.repair_half_time_source),
        )
        if src == _NOT_STATED
    ]
    return {
        "schema_version": SCHEMA_VERSION,
        "model": MODEL_TEXT,
        "weighting": "mass",
        "parameters": parameters.record(),
        "treatments": entries,
        "cumulative": cumulative,
        "notes": notes,
    }


def _cumulative_kind(kinds: set[str]) -> str:
    return "mean of voxel BED" if kinds == {"mean of voxel BED"} else "sum of mean voxel BED and BED of stated means"


def _interval_notes(treatments: Sequence[Treatment]) -> list[str]:
    """Notes where a dated treatment follows an earlier one before 99% of its dose was delivered."""
    notes, previous = [], None
    for treatment in treatments:
        if treatment.date is None:
            continue
        if previous is not None and previous.cycles == 1:  # a row of cycles: the last cycle's day is unknown
            days = (treatment.date - previous.date).days
            if days < 0:
                notes.append(f"{treatment.label} ({treatment.date}) is dated before {previous.label} ({previous.date})")
            else:
                remaining = 2.0 ** (-days * 24.0 / previous.half_life()[0])
                if remaining > 0.01:
                    notes.append(
                        f"{treatment.label} was given {days} d after {previous.label}, when "
                        f"{100 * remaining:.0f}% of its dose was still to be delivered: the treatments overlap and "
                        "the sum of BEDs (complete repair between them) understates the BED"
                    )
        previous = treatment
    return notes


_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def course_treatments(
    previous: Sequence, course: Sequence[Treatment], *, current_dose: Image, current_date=None
) -> tuple[list[Treatment], list]:
    """Every treatment of the course in order and the course's dose maps as ``PreviousDose`` to align.

    ``previous`` (:class:`dosimetry.accumulate.PreviousDose`, labelled) count as Y-90 dose maps without a
    date; ``course`` follows (unlabelled ones become ``course_<n>``); the current Y-90 treatment is last.

    Raises
    ------
    OptionsError
        An item of ``course`` that is not a :class:`Treatment`, or labels that repeat or are not usable as
        file names (letters, digits, ``_ . -``).
    """
    from dataclasses import replace

    from dosimetry.accumulate import PreviousDose

    treatments = [
        Treatment("Y-90", dose_gy=p.dose_gy, ct_hu=p.ct_hu, transform=p.transform, label=p.label) for p in previous
    ]
    maps = []
    for n, item in enumerate(course, start=1):
        if not isinstance(item, Treatment):
            raise OptionsError(f"course item {n} is a {type(item).__name__}; give dosimetry.course.Treatment objects")
        item = item if item.label else replace(item, label=f"course_{n}")
        if not _LABEL.fullmatch(item.label):
            raise OptionsError(
                f"treatment label {item.label!r}: use letters, digits, '_', '.', '-' (it names an output file)"
            )
        treatments.append(item)
        if item.dose_gy is not None:
            maps.append(PreviousDose(item.dose_gy, item.ct_hu, item.transform, item.label))
    treatments.append(Treatment("Y-90", date=current_date, dose_gy=current_dose, label="current"))
    labels = [t.label for t in treatments]
    if len(set(labels)) != len(labels):
        raise OptionsError(f"treatment labels must be unique ('current' and previous_<n> are taken), got {labels}")
    return treatments, maps


# --- the course CSV of ``dosimetry accumulate --course`` ----------------------------------------------------

COURSE_CSV_COLUMNS: dict[str, str] = {
    "label": "name in the outputs (default prior_<row>)",
    "nuclide": "Y-90 or Lu-177 (required)",
    "date": "treatment day, YYYY-MM-DD (required; for a row of several cycles the first cycle's day)",
    "dose_map": "dose map (Gy; NIfTI/NRRD/MHA or RT Dose .dcm), path relative to the CSV",
    "ct": "CT of the dose map's study (file or DICOM folder), registered to the current CT",
    "normal_liver_gy": "stated mean normal-liver dose (Gy), instead of a dose map",
    "tumor_gy": "stated mean tumour dose (Gy), optional",
    "lung_gy": "stated mean lung dose (Gy), optional",
    "effective_half_life_h": "Lu-177: effective half-life (h), required; Y-90: leave empty",
    "effective_half_life_normal_liver_h": "Lu-177: normal-liver effective half-life (h), if it differs",
    "effective_half_life_tumor_h": "Lu-177: tumour effective half-life (h), if it differs",
    "effective_half_life_lung_h": "Lu-177: lung effective half-life (h), if it differs",
    "half_life_source": "where the effective half-lives come from",
    "cycles": "the dose is the total of this many equal cycles (default 1)",
}
"""Columns of the course CSV (one row per treatment; lines starting with '#' are comments)."""


def read_course_csv(path: str | os.PathLike) -> tuple[list[Treatment], list[dict]]:
    """The treatments of a course CSV (columns :data:`COURSE_CSV_COLUMNS`) and a record of each row's files.

    Dose maps and CTs are read (paths relative to the CSV's folder). The CSV is only read.

    Raises
    ------
    InputFileError
        The CSV or a file it names is missing or unreadable, an unknown column, a number that does not parse.
    OptionsError
        A row that is not a valid :class:`Treatment` (unknown nuclide, Lu-177 without an effective half-life,
        a stated mean without the normal liver...), named by its line.
    """
    from dosimetry.io.run_folder import read_ct, read_dose

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such course file; give a CSV with one row per earlier treatment")
    try:
        lines = [
            line for line in path.read_text(encoding="utf-8-sig").splitlines() if not line.lstrip().startswith("#")
        ]
    except (OSError, UnicodeDecodeError) as err:
        raise InputFileError(f"{path}: cannot be read as UTF-8 text ({err}); save the course as CSV") from err
    rows = list(csv.DictReader(lines))
    if not rows:
        raise InputFileError(f"{path}: no treatment rows; give a header line and one row per treatment")
    header = [h.strip() for h in (csv.DictReader(lines).fieldnames or [])]
    unknown = [h for h in header if h not in COURSE_CSV_COLUMNS]
    if unknown:
        raise InputFileError(
            f"{path}: unknown column(s) {', '.join(unknown)}; the columns are {', '.join(COURSE_CSV_COLUMNS)}"
        )
    base = path.parent
    treatments, records = [], []
    for n, raw in enumerate(rows, start=1):
        if None in raw:
            raise InputFileError(f"{path} row {n}: more values than columns; check the commas of this row")
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        where = f"{path} row {n}"

        def number(column, *, integer=False):
            text = row.get(column, "")
            if not text:
                return None
            try:
                value = int(text) if integer else float(text)
            except ValueError:
                kind = "a whole number" if integer else "a number"
                raise InputFileError(f"{where}: {column} {text!r} is not {kind}") from None
            return value

        def file(column):
            text = row.get(column, "")
            if not text:
                return None
            p = Path(text) if Path(text).is_absolute() else base / text
            if not p.exists():
                raise InputFileError(f"{where}: {column} {p} does not exist; check the path (relative to the CSV)")
            return p

        label = row.get("label") or f"prior_{n}"
        if not row.get("nuclide"):
            raise OptionsError(f"{where}: no nuclide; give Y-90 or Lu-177")
        if not row.get("date"):
            raise OptionsError(f"{where}: no date; give the treatment day as YYYY-MM-DD")
        dose_path, ct_path = file("dose_map"), file("ct")
        cycles = number("cycles", integer=True)
        means = {r: number(f"{r}_gy") for r in REGIONS}
        stated = {r: v for r, v in means.items() if v is not None}
        try:
            treatment = Treatment(
                row["nuclide"],
                date=row["date"],
                dose_gy=read_dose(dose_path) if dose_path else None,
                ct_hu=read_ct(ct_path) if ct_path else None,
                mean_gy=stated if stated or dose_path is None else None,
                effective_half_life_h=number("effective_half_life_h"),
                region_half_lives_h={r: number(f"effective_half_life_{r}_h") for r in REGIONS},
                half_life_source=row.get("half_life_source", ""),
                cycles=1 if cycles is None else cycles,
                label=label,
            )
        except OptionsError as err:
            raise OptionsError(f"{where}: {err}") from err
        treatments.append(treatment)
        records.append(
            {"label": label, "dose": str(dose_path) if dose_path else None, "ct": str(ct_path) if ct_path else None}
        )
    labels = [t.label for t in treatments]
    if len(set(labels)) != len(labels):
        raise OptionsError(f"{path}: treatment labels must be unique, got {labels}")
    return treatments, records


def course_table(course: Mapping) -> tuple[list[str], list[list]]:
    """The ``course`` section as a table: one row per treatment, then the row ``cumulative`` (course.csv).

    Columns: label, nuclide, date, source, cycles, dose-rate model, half-life and its source, then per region
    ``<region>_mean_gy``, ``<region>_bed_gy``, ``<region>_bed_kind``, ``<region>_half_life_h`` (empty where
    there is no value).
    """
    header = ["label", "nuclide", "date", "source", "cycles", "dose_rate_model", "half_life_h", "half_life_source"]
    for region in REGIONS:
        header += [f"{region}_mean_gy", f"{region}_bed_gy", f"{region}_bed_kind", f"{region}_half_life_h"]
    rows = []
    for t in course["treatments"]:
        row = [t["label"], t["nuclide"], t["date"], t["source"], t["cycles"], t["dose_rate_model"]]
        row += [t["half_life_h"], t["half_life_source"]]
        for region in REGIONS:
            value = t["regions"][region] or {}
            row += [value.get("mean_gy"), value.get("bed_gy"), value.get("bed_kind"), value.get("half_life_h")]
        rows.append(row)
    row = ["cumulative", "", "", "", "", "", None, ""]
    for region in REGIONS:
        value = course["cumulative"][region]
        row += [value["dose_gy"], value["bed_gy"], value["bed_kind"], None]
    rows.append(row)
    return header, rows


def write_course_csv(course: Mapping, path: str | os.PathLike) -> None:
    """Write :func:`course_table` to ``path`` (numbers to 6 significant digits, None as empty)."""
    header, rows = course_table(course)
    with Path(path).open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow(["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for v in row])


def format_course(course: Mapping) -> str:
    """A short plain-text table of the course: dose / BED (Gy) per region and treatment, and the totals."""

    def cell(value: dict | None) -> str:
        if not value or value.get("mean_gy", value.get("dose_gy")) is None:
            return f"{'-':>17}"
        dose = value.get("mean_gy", value.get("dose_gy"))
        bed = value.get("bed_gy")
        return f"{dose:>8.1f} /{'-' if bed is None else f'{bed:.1f}':>7}"

    lines = [f"{'treatment':<14}{'nuclide':<8}{'date':<11}" + "".join(f"{r + ' Gy/BED':>17}" for r in REGIONS)]
    for t in course["treatments"]:
        lines.append(
            f"{t['label'][:13]:<14}{t['nuclide']:<8}{t['date'] or '?':<11}"
            + "".join(cell(t["regions"][r]) for r in REGIONS)
        )
    lines.append(f"{'cumulative':<33}" + "".join(cell(course["cumulative"][r]) for r in REGIONS))
    lines += [f"course note: {n}" for n in course["notes"]]
    return "\n".join(lines)
