"""Y-90 PET (classic PET Image and Enhanced PET Image storage) to activity concentration at scan start.

The loader returns Bq/mL that is true at the acquisition start of the series (``activity_time``), whatever
decay correction the scanner applied: for every frame (slice or bed) the scanner's Decay Factor is divided
out, which gives the mean activity concentration over that frame (PS3.3 C.8.9.4.1.9: the factor "used to
scale this image"), and the Y-90 decay is then put back from the frame to the series start:

    A(t_scan) = v / DF x lambda T / (1 - exp(-lambda T)) x exp(lambda (t_frame - t_scan))

with v = stored x RescaleSlope + RescaleIntercept of that slice (float64), T the frame duration,
t_frame the frame start and lambda the Y-90 decay constant. For the usual header (START correction, Y-90
half-life) the product is 1 to within 1e-6; for a scanner set to another nuclide (F-18 for example) it
removes the wrong decay correction. This needs no Series Time (which post-processing rewrites) and no
Frame Reference Time.

Enhanced PET Image storage (one multi-frame file): v is the stored value through the frame's Real World
Value Mapping in Bq/ml (else its Pixel Value Transformation), T and t_frame come from Frame Acquisition
Duration and Frame Acquisition DateTime (Frame Content), DF from PET Frame Correction Factors, and Decay
Corrected / Decay Correction DateTime say whether and to when the scanner corrected. Legacy Converted
Enhanced PET (converted from classic files) has no Enhanced PET Isotope or Corrections module: the
classic Units, Decay Correction, Decay Factor and Radiopharmaceutical Information Sequence are read from
its Unassigned Shared / Per-Frame Converted Attributes.

References
----------
.. [PS3.3-C.8.9.1] DICOM PS3.3 C.8.9.1 PET Series Module: Units (0054,1001), Decay Correction (0054,1102)
   with the defined terms NONE, START, ADMIN.
.. [PS3.3-C.8.9.2] DICOM PS3.3 C.8.9.2 PET Isotope Module: Radiopharmaceutical Information Sequence,
   Radionuclide Half Life (s), Radionuclide Total Dose (Bq), Radiopharmaceutical Start (Date)Time.
.. [PS3.3-C.8.9.4] DICOM PS3.3 C.8.9.4 PET Image Module: Acquisition Date/Time, Actual Frame Duration
   (ms), Frame Reference Time, Decay Factor.
.. [PS3.3-C.8.22] DICOM PS3.3 C.8.22 Enhanced PET modules: Enhanced PET Isotope (Radiopharmaceutical Start
   DateTime, Radionuclide Half Life, Total Dose), Enhanced PET Corrections (Decay Corrected (0018,9758),
   Decay Correction DateTime (0018,9701), required when corrected), PET Frame Correction Factors (Decay
   Factor, required when decay corrected).
.. [PS3.3-A.56] DICOM PS3.3 A.56.4 Enhanced PET functional groups: Real World Value Mapping (M, units
   from CID 84 "PET Units", UCUM "Bq/ml"), Pixel Value Transformation (M), Frame Content (M, per frame).
.. [PS3.3-A.72] DICOM PS3.3 A.72 Legacy Converted Enhanced PET Image IOD (no Enhanced PET Isotope or
   Corrections module) and C.7.6.16.2.25 Unassigned Shared / Per-Frame Converted Attributes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from dosimetry.quantify.checks import check_emission_values
from dosimetry.constants import Y90_HALF_LIFE_S
from dosimetry.errors import InputFileError, UnitsError
from dosimetry.image import Image
from dosimetry.dicom import slices
from dosimetry.dicom.reading import read_series
from dosimetry.dicom.resolution import post_filter_fwhm_mm
from dosimetry.dicom.timing import (
    TimeSource,
    acquisition_start,
    combine,
    decay_factor,
    frame_average_to_start,
    header_implant_time,
    identify_nuclide,
    parse_date,
    parse_datetime,
    parse_time,
    seconds_between,
)

ABSOLUTE_UNITS = {"BQML": "Bq/mL"}
"""PET Units that give absolute activity concentration, and our name for them."""

UCUM_TO_UNITS = {"bq/ml": "BQML", "{counts}": "CNTS", "cnts": "CNTS", "{propcps}": "PROPCPS", "g/ml": "GML"}
"""Units code values of Enhanced PET Real World Value Mapping (UCUM) and the classic PET Units term."""

ADMINISTERED_BQ_RANGE = (1e7, 1e11)
"""Plausible Y-90 administered activities (Bq): 10 MBq to 100 GBq."""


@dataclass(frozen=True)
class EmissionVolume:
    """An emission image with its units, times and the notes of how it was read."""

    image: Image
    units: str
    activity_time: datetime | None
    implant_time: TimeSource | None
    administered_activity_bq: float | None
    warnings: tuple[str, ...] = ()
    provenance: dict = field(default_factory=dict)


def _text_value(value) -> str | None:
    """A (possibly multi-valued) header string as one text, for the record; None when absent."""
    if value is None:
        return None
    return "\\".join(str(v) for v in value) if not isinstance(value, str) else str(value)


def check_administered_activity(value, warnings: list[str]) -> float | None:
    """Radionuclide Total Dose (Bq by the standard) after the Bq/MBq magnitude check.

    Values from 1e7 to 1e11 Bq are taken as they are; values from 1 to 1e5 are taken as MBq (a common
    vendor fault) and converted, with a warning; anything else is dropped with a warning.
    """
    if value in (None, ""):
        return None
    dose = float(value)
    lo, hi = ADMINISTERED_BQ_RANGE
    if lo <= dose <= hi:
        return dose
    if 1.0 <= dose < 1e5 and lo <= dose * 1e6 <= hi:
        warnings.append(
            f"RadionuclideTotalDose is {dose:g}, too small for Bq: read as {dose:g} MBq "
            f"(= {dose * 1e6:.4g} Bq); check the administered activity"
        )
        return dose * 1e6
    warnings.append(f"RadionuclideTotalDose {dose:g} Bq is outside the plausible Y-90 range {lo:g}-{hi:g} Bq; ignored")
    return None


def _header_half_life(ds, warnings: list[str], label: str) -> float | None:
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    value = seq[0].get("RadionuclideHalfLife") if seq else None
    if value in (None, ""):
        return None
    try:
        half_life_s = float(value)
    except (TypeError, ValueError):
        half_life_s = math.nan
    if not (math.isfinite(half_life_s) and half_life_s > 0):
        warnings.append(
            f"{label}: the header half-life {value!r} is not a positive number of seconds; ignored "
            f"(Y-90's {Y90_HALF_LIFE_S:g} s is used wherever the scanner's decay correction is redone)"
        )
        return None
    nuclide = identify_nuclide(half_life_s)
    if nuclide != "Y-90":
        warnings.append(
            f"{label}: the header half-life is {half_life_s:g} s ({nuclide or 'unknown nuclide'}), not Y-90 "
            f"({Y90_HALF_LIFE_S:g} s): the scanner's decay correction was undone from its Decay Factors and "
            "redone with Y-90; check also that the scanner applied the Y-90 positron branching ratio "
            "(3.2e-5), or use relative calibration"
        )
    return half_life_s


def _rwvm_units(item) -> str:
    """The classic Units term of a Real World Value Mapping item (from its UCUM code), or ''."""
    codes = item.get("MeasurementUnitsCodeSequence")
    if not codes:
        return ""
    code = str(codes[0].get("CodeValue", "")).strip().lower()
    return UCUM_TO_UNITS.get(code, code.upper())


def _enhanced_value_mapping(frames, header_units: str, label: str) -> tuple[str, str]:
    """Set the stored-to-activity mapping of each Enhanced PET frame; return (units, where they came from).

    The Real World Value Mapping functional group is where an Enhanced PET image states its units
    (PS3.3 A.56.4: Measurement Units Code Sequence from CID 84 "PET Units"; C.7.6.16.2.11: the mapping
    applies to the stored values). The item in Bq/ml is used when there is one (a frame may also carry
    SUV or counts mappings, and its Pixel Value Transformation may be the identity). Otherwise the Pixel
    Value Transformation applies with the classic Units attribute (which a Legacy Converted image keeps
    among its unassigned converted attributes), and failing that the first mapping item with its units.
    """
    units_found: set[str] = set()
    sources: set[str] = set()
    for fr in frames:
        items = fr.meta.get("rwvm_items") or []
        chosen = next((item for item in items if _rwvm_units(item) in ABSOLUTE_UNITS), None)
        if chosen is None and not header_units and items:
            chosen = items[0]
        if chosen is None:
            units_found.add(header_units)
            sources.add("PixelValueTransformation+Units")
            continue
        if chosen.get("RealWorldValueSlope") in (None, ""):
            raise UnitsError(
                f"{label}: {fr.source}: Real World Value Mapping in {_rwvm_units(chosen) or 'unstated units'} "
                "has no RealWorldValueSlope (a lookup table?); expected a linear mapping; re-export the series "
                "with a linear mapping or as classic PET images"
            )
        fr.slope = float(chosen.RealWorldValueSlope)
        fr.intercept = float(chosen.get("RealWorldValueIntercept") or 0.0)
        units_found.add(_rwvm_units(chosen))
        sources.add("RealWorldValueMapping")
    if len(units_found) > 1:
        raise UnitsError(
            f"{label}: frames are in different units ({', '.join(sorted(u or '(absent)' for u in units_found))}); "
            "expected one unit for the whole series"
        )
    return (units_found.pop() if units_found else ""), "+".join(sorted(sources))


def _decay_mode(header, enhanced: bool, implant: TimeSource | None, label: str) -> tuple[str, datetime | None]:
    """(mode, reference time) of the scanner's decay correction.

    Enhanced PET: Decay Corrected (0018,9758) YES/NO with Decay Correction DateTime (0018,9701) (PS3.3
    C.8.22, Enhanced PET Corrections), mode 'DATETIME' or 'NONE'. Classic PET, and Legacy Converted
    Enhanced PET, whose IOD has no Decay Corrected but keeps the classic Decay Correction (0054,1102)
    among its converted attributes: NONE, START (reference Series Date/Time) or ADMIN (reference the
    administration time). 'UNSTATED' for an enhanced image that states neither.
    """
    flag = str(header.get("DecayCorrected", "") or "").strip().upper() if enhanced else ""
    if flag:
        if flag not in ("YES", "NO"):
            raise UnitsError(f"{label}: DecayCorrected is {flag!r}; expected YES or NO; fix the header")
        if flag == "NO":
            return "NONE", None
        return "DATETIME", parse_datetime(header.get("DecayCorrectionDateTime"))
    mode = str(header.get("DecayCorrection", "") or "").strip().upper()
    if not mode:
        if enhanced:
            return "UNSTATED", None
        mode = "NONE"
    if mode not in ("NONE", "START", "ADMIN"):
        raise UnitsError(f"{label}: DecayCorrection is {mode!r}; expected NONE, START or ADMIN; fix the header")
    reference = None
    if mode == "START":
        reference = combine(parse_date(header.get("SeriesDate")), parse_time(header.get("SeriesTime")))
    elif mode == "ADMIN":
        reference = implant.time if implant else None
    return mode, reference


def _frame_times(entries, enhanced: bool):
    """(start datetime or None, duration s) for each (name, dataset) or frame."""
    if not enhanced:
        out = []
        for _, item in entries:
            start = parse_datetime(item.get("AcquisitionDateTime")) or combine(
                parse_date(item.get("AcquisitionDate")), parse_time(item.get("AcquisitionTime"))
            )
            duration = item.get("ActualFrameDuration")
            out.append((start, float(duration) / 1000.0 if duration not in (None, "") else 0.0))
        return out
    out = []
    for fr in entries:
        content = fr.meta.get("frame_content")
        start = parse_datetime(content.get("FrameAcquisitionDateTime")) if content is not None else None
        duration = content.get("FrameAcquisitionDuration") if content is not None else None  # ms
        out.append((start, float(duration) / 1000.0 if duration not in (None, "") else 0.0))
    return out


def load_pet(files, *, calibration: str = "absolute", label: str = "PET series", headers: tuple = ()) -> EmissionVolume:
    """Read a PET series as activity concentration true at its acquisition start.

    Parameters
    ----------
    files : sequence of path
        The files of one series (classic single-frame files, or one Enhanced PET file).
    calibration : {'absolute', 'relative'}
        'absolute' requires Units BQML; 'relative' accepts any units (the result is then labelled
        'counts', a relative scale to be normalised by the pipeline).
    label : str
        Series label (UID and description) used in messages.
    headers : tuple of Header, optional
        The files' headers as the inventory read them (:mod:`dosimetry.dicom.reading`): completed, not read
        again.

    Returns
    -------
    EmissionVolume
        ``image`` in Bq/mL (or relative units) at ``activity_time``; ``implant_time`` from the header.

    Raises
    ------
    UnitsError
        Units other than BQML with absolute calibration; a Decay Correction that cannot be undone.
    GeometryError
        Missing slices, uneven spacing, mixed orientations (see :func:`slices.sort_frames`).
    """
    if calibration not in ("absolute", "relative"):
        raise UnitsError(f"calibration must be 'absolute' or 'relative', got {calibration!r}")
    warnings: list[str] = []
    datasets = read_series(files, headers, label=label)
    first = datasets[0][1]
    enhanced = "PerFrameFunctionalGroupsSequence" in first
    if enhanced:
        if len(datasets) != 1:
            raise InputFileError(f"{label}: {len(datasets)} Enhanced PET files in one series; expected one")
        frames = slices.frames_from_enhanced(*datasets[0])
        header = slices.with_converted_attributes(first)
        times = _frame_times(frames, True)
    else:
        frames = slices.frames_from_single_frame_files(datasets)
        header = first
        times = _frame_times(datasets, False)
    for fr, (start, duration), entry in zip(frames, times, datasets if not enhanced else frames):
        fr.meta["start"] = start
        fr.meta["duration_s"] = duration
        if enhanced:
            corr = fr.meta.get("pet_corrections")
            factor = corr.get("DecayFactor") if corr is not None else None
            if factor in (None, ""):  # Legacy Converted: the classic Decay Factor, unassigned
                factor = slices.first_present(fr.meta.get("converted", ()), "DecayFactor")
            fr.meta["decay_factor"] = factor
        else:
            fr.meta["decay_factor"] = entry[1].get("DecayFactor")

    header_units = str(header.get("Units", "") or "").strip().upper()
    if enhanced:
        units, value_mapping = _enhanced_value_mapping(frames, header_units, label)
    else:
        units, value_mapping = header_units, "RescaleSlope/Intercept+Units"
    if units not in ABSOLUTE_UNITS and calibration == "absolute":
        raise UnitsError(
            f"{label}: Units is {units or '(absent)'}; expected BQML for absolute calibration; use relative "
            "calibration (scale to the administered activity) or export the series in Bq/mL"
        )
    out_units = ABSOLUTE_UNITS.get(units, "counts")

    # times
    starts = [fr.meta["start"] for fr in frames if fr.meta["start"] is not None]
    if starts:
        scan = TimeSource(
            min(starts),
            "FrameAcquisitionDateTime" if enhanced else acquisition_start([d for _, d in datasets]).source,
        )
    else:
        scan = acquisition_start([header])
        if scan is not None:
            warnings.append(f"{label}: no acquisition time in the header; scan time taken from {scan.source}")
    implant = header_implant_time(header, scan.time if scan else None)
    header_half_life_s = _header_half_life(header, warnings, label)

    # decay correction: which one, and to what reference (only needed when Decay Factors are missing)
    mode, reference = _decay_mode(header, enhanced, implant, label)
    stated = "Decay Corrected YES" if mode == "DATETIME" else f"DecayCorrection {mode}"

    factors = []
    fallback_used = False
    for fr in frames:
        start = fr.meta["start"] or (scan.time if scan else None)
        duration = fr.meta["duration_s"]
        if mode == "NONE":
            scanner_df = 1.0
        elif fr.meta["decay_factor"] not in (None, ""):
            scanner_df = float(fr.meta["decay_factor"])
        elif mode == "UNSTATED":
            raise UnitsError(
                f"{label}: neither Decay Corrected (0018,9758) nor Decay Correction (0054,1102) in the header "
                f"and no DecayFactor in {fr.source}; expected the decay correction to be stated; fix the header "
                "or re-export the series"
            )
        else:
            if reference is None or start is None:
                raise UnitsError(
                    f"{label}: {stated} but no DecayFactor and no reference time in "
                    f"{fr.source}; expected per-image DecayFactor; the decay correction cannot be undone, "
                    "re-export the series with Decay Correction NONE or START"
                )
            half_life = header_half_life_s or Y90_HALF_LIFE_S
            try:  # exp(+lambda dt), refused (UnitsError) where it would overflow
                scanner_df = decay_factor(-seconds_between(start, reference), half_life)
            except UnitsError as err:
                raise UnitsError(
                    f"{label}: the scanner's decay correction cannot be recomputed from the reference "
                    f"time {reference} and half-life {half_life:g} s in {fr.source} ({err})"
                ) from None
            scanner_df *= frame_average_to_start(duration, half_life)
            fallback_used = True
        if not (scanner_df > 0 and math.isfinite(scanner_df)):
            raise UnitsError(f"{label}: DecayFactor {scanner_df!r} in {fr.source}; expected a positive number")
        offset_s = seconds_between(start, scan.time) if (start is not None and scan is not None) else 0.0
        try:
            factor = frame_average_to_start(duration) * decay_factor(-offset_s) / scanner_df
        except UnitsError as err:
            raise UnitsError(
                f"{label}: the frame of {fr.source} starts {offset_s:g} s from the scan time; check the "
                f"acquisition times ({err})"
            ) from None
        factors.append(factor)
    if fallback_used:
        warnings.append(
            f"{label}: no DecayFactor in the header; the scanner's {stated} decay correction was recomputed "
            f"from the header half-life and reference time {reference}"
        )
    if mode == "UNSTATED":
        warnings.append(
            f"{label}: the header does not say whether the image is decay corrected (no Decay Corrected nor "
            "Decay Correction); its per-frame DecayFactor was divided out"
        )

    for fr, factor in zip(frames, factors):
        fr.meta["factor"] = factor
    ordered = slices.sort_frames(frames, label=label)
    planes = (fr.values * fr.meta["factor"] for fr in ordered.frames)
    image, geo_warnings = slices.build_image(ordered, planes, label=label, tilt="refuse")
    check_emission_values(image, source=label)
    warnings += geo_warnings

    seq = header.get("RadiopharmaceuticalInformationSequence")
    administered = check_administered_activity(seq[0].get("RadionuclideTotalDose") if seq else None, warnings)
    slopes = [fr.slope for fr in frames]
    provenance = {
        "modality": "PT",
        "sop_class_uid": str(first.get("SOPClassUID", "")),
        "series_uid": str(first.get("SeriesInstanceUID", "")),
        "series_description": str(first.get("SeriesDescription", "")),
        "n_files": len(datasets),
        "n_frames": len(frames),
        "units_header": units,
        "value_mapping": value_mapping,
        "decay_correction": mode,
        "decay_reference_time": reference.isoformat() if reference else None,
        "decay_factors_from_header": not fallback_used and mode != "NONE",
        "header_half_life_s": header_half_life_s,
        "header_nuclide": identify_nuclide(header_half_life_s),
        "scan_time_source": scan.source if scan else None,
        "implant_time_source": implant.source if implant else None,
        "rescale_slope_range": [float(min(slopes)), float(max(slopes))],
        "correction_factor_range": [float(min(factors)), float(max(factors))],
        "convolution_kernel": _text_value(first.get("ConvolutionKernel")),
        "post_filter_fwhm_mm": post_filter_fwhm_mm(first.get("ConvolutionKernel")),
    }
    return EmissionVolume(
        image=image.with_array(image.array.astype(np.float32)),
        units=out_units,
        activity_time=scan.time if scan else None,
        implant_time=implant,
        administered_activity_bq=administered,
        warnings=tuple(warnings),
        provenance=provenance,
    )
