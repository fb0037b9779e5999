"""One call from a DICOM folder to the inputs of a dosimetry: :func:`load_study`.

It scans the folder (:mod:`.discovery`), picks the series, reads the emission image as activity at its
scan time (:mod:`.pet`, :mod:`.spect`), the CT (:mod:`.ct`) and the structures (:mod:`.rtstruct`,
:mod:`.seg`), and settles the implant time. Nothing is printed: every warning is returned in
:attr:`StudyInputs.warnings` and every choice in :attr:`StudyInputs.provenance` (which holds no patient
name, ID or birth date).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime

import pydicom

from dosimetry.constants import Y90_HALF_LIFE_S
from dosimetry.quantify.emission import EmissionDecision, Verdict, decide, evidence_from_header
from dosimetry.errors import InputFileError, OptionsError, UnitsError
from dosimetry.image import Image
from dosimetry.roi import Roi
from dosimetry.dicom.ct import load_ct
from dosimetry.dicom.discovery import Kind, inventory, select_series
from dosimetry.dicom.pet import load_pet
from dosimetry.dicom.rtstruct import rtstruct_to_rois
from dosimetry.dicom.seg import seg_to_rois
from dosimetry.dicom.slices import with_converted_attributes
from dosimetry.dicom.spect import load_spect
from dosimetry.dicom.timing import emission_time_notes, parse_datetime, seconds_between

IMPLANT_TIME_DISAGREEMENT_S: float = 60.0
"""A ``--implant-time`` that differs from the header by more than this (s) is reported in a warning."""


@dataclass(frozen=True)
class StudyInputs:
    """What a DICOM study gives the dosimetry pipeline.

    Attributes
    ----------
    activity : Image
        Emission image. PET: activity concentration (Bq/mL) true at ``activity_time`` (the scanner's
        decay correction undone); SPECT: counts, or Bq/mL at ``activity_time`` with a calibration factor.
    activity_units : str
        'Bq/mL' or 'counts' (a relative scale that the pipeline normalises).
    activity_time : datetime or None
        Acquisition start of the emission series (local scanner time).
    implant_time : datetime or None
        Y-90 administration time (``--implant-time``, else the header).
    ct : Image or None
        CT in HU (float32) on the emission Frame of Reference.
    rois : tuple of Roi
        Occupancy masks (on the emission grid for RTSTRUCT, on their own grid for SEG).
    administered_activity_bq : float or None
        Radionuclide Total Dose after the Bq/MBq magnitude check; only when the header names Y-90 (the
        Total Dose of another radiopharmaceutical is never taken as Y-90 activity).
    warnings : tuple of str
    provenance : dict
        Series UIDs, descriptions, file counts, decay correction, time sources; no patient identifiers.
    series_files : dict
        Paths of the chosen series' files: 'emission', 'ct', 'structures'.
    """

    activity: Image
    activity_units: str
    activity_time: datetime | None
    implant_time: datetime | None
    ct: Image | None
    rois: tuple[Roi, ...]
    administered_activity_bq: float | None
    warnings: tuple[str, ...] = ()
    provenance: dict = field(default_factory=dict)
    series_files: dict = field(default_factory=dict)
    """Paths of the files of the chosen series by role ('emission', 'ct', 'structures'), for DICOM exports
    (RT Dose, SEG and SR refer to them)."""
    emission: EmissionDecision | None = None
    """The emission-nuclide verdict (:mod:`dosimetry.quantify.emission`), made from the header before the images
    are read; its warnings are in :attr:`warnings`."""


def _release_pixel_data(record) -> None:
    """Drop the pixel data a loader read into the kept headers of ``record`` (the volume holds the values now)."""
    for header in record.headers:
        for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
            if keyword in header.dataset:
                del header.dataset[keyword]


def _parse_implant_time(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    text = str(value).strip()
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    parsed = parse_datetime(text) if text.replace(".", "").isdigit() else None
    if parsed is None:
        raise OptionsError(
            f"--implant-time {value!r} is not a date and time; give ISO 8601 like 2024-03-01T09:30 (local scanner time)"
        )
    return parsed


def load_study(
    folder: str | os.PathLike,
    *,
    series_uid=None,
    implant_time=None,
    calibration: str = "absolute",
    calibration_factor_cps_per_mbq: float | None = None,
    role_overrides: dict | None = None,
    emission_nuclide: str | None = None,
) -> StudyInputs:
    """Find, choose and read the series of a Y-90 post-treatment study in a DICOM folder.

    Parameters
    ----------
    folder : path
        Folder scanned recursively (any file names; DICOMDIR optional).
    series_uid : str or sequence of str, optional
        Series Instance UID(s) that settle an ambiguous choice (``--series``).
    implant_time : datetime or str, optional
        Administration time (local scanner time, ISO 8601); overrides the header.
    calibration : {'absolute', 'relative'}
        'absolute' needs PET in Bq/mL or SPECT with a calibration factor; 'relative' accepts any scale.
    calibration_factor_cps_per_mbq : float, optional
        SPECT tomographic calibration factor (counts per second per MBq).
    role_overrides : dict, optional
        Structure name -> role ('liver', 'tumor', 'lung', 'perfused', 'other' or 'ignore').
    emission_nuclide : str, optional
        The nuclide the emission series shows, as the user states it (``--emission-nuclide``); overrides
        the header's evidence (recorded). See :mod:`dosimetry.quantify.emission`.

    Returns
    -------
    StudyInputs

    Raises
    ------
    InputFileError, GeometryError, UnitsError, OptionsError, RoiError
        See the loaders; :class:`~dosimetry.dicom.discovery.AmbiguousSeriesError` (an OptionsError)
        lists the candidates when the series choice is ambiguous.
    """
    if calibration not in ("absolute", "relative"):
        raise OptionsError(f"calibration must be 'absolute' or 'relative', got {calibration!r}")
    user_implant = _parse_implant_time(implant_time)
    # the headers kept: the loaders complete them instead of reading every file again (dicom/reading.py)
    records = inventory(folder, keep_headers=True)
    selection = select_series(records, series_uids=series_uid or ())
    n_series = len(records)
    del records  # (the selected series' records hold their headers until loaded)
    warnings: list[str] = list(selection.notes)
    em_rec = selection.emission
    series_label = f"{'SPECT' if em_rec.modality == 'NM' else 'PET'} series {em_rec.series_uid}"
    decision = emission_decision(em_rec.files[0], override=emission_nuclide)
    decision.require_computable(series_label)
    warnings += decision.warnings
    predictive = decision.verdict is Verdict.TC99M_PREDICTIVE
    if predictive and (calibration == "absolute" or calibration_factor_cps_per_mbq is not None):
        raise UnitsError(
            f"{series_label} is Tc-99m MAA: a predictive run, and absolute calibration would take Tc-99m activity "
            "for Y-90; use --calibration relative with --administered-gbq (the planned Y-90 activity)"
        )
    if em_rec.modality == "NM":
        if calibration == "absolute" and calibration_factor_cps_per_mbq is None:
            raise UnitsError(
                f"{series_label}: Y-90 bremsstrahlung SPECT counts give no absolute activity; "
                "expected a calibration factor (counts/s/MBq) for absolute calibration; give one, or use "
                "relative calibration"
            )
        emission = load_spect(
            em_rec.files,
            calibration_factor_cps_per_mbq=calibration_factor_cps_per_mbq,
            label=series_label,
            emission_label="Tc-99m MAA SPECT" if predictive else None,
        )
    else:
        if calibration_factor_cps_per_mbq is not None:
            warnings.append("a SPECT calibration factor was given for a PET series and was not used")
        emission = load_pet(
            em_rec.files, calibration=calibration, label=f"PET series {em_rec.series_uid}", headers=em_rec.headers
        )
        _release_pixel_data(em_rec)
    warnings += emission.warnings
    time_notes = emission_time_notes(em_rec.files[0], label=f"emission series {em_rec.series_uid}")
    if (
        calibration == "absolute"
        and time_notes
        and (emission.activity_time is None or (user_implant is None and emission.implant_time is None))
    ):
        raise UnitsError(
            f"{time_notes[0].removesuffix(', not used')}; absolute calibration needs the scan and "
            "implant times: give --implant-time if only the implant time is unusable, or use "
            "--calibration relative"
        )
    warnings += time_notes

    header_implant = emission.implant_time
    if predictive:  # the header's start time is the MAA injection; a predictive dose needs no implant time
        header_implant = None
        if user_implant is not None:
            warnings.append("--implant-time is not used: a predictive dose from Tc-99m MAA needs no implant time")
            user_implant = None
    if user_implant is not None:
        implant = user_implant
        implant_source = "--implant-time"
        if header_implant and abs(seconds_between(user_implant, header_implant.time)) > IMPLANT_TIME_DISAGREEMENT_S:
            warnings.append(
                f"--implant-time {user_implant.isoformat()} differs from the header "
                f"({header_implant.source}: {header_implant.time.isoformat()}); the option is used"
            )
    elif header_implant is not None:
        implant = header_implant.time
        implant_source = header_implant.source
    elif predictive:
        implant, implant_source = None, "not used (predictive dose from Tc-99m MAA)"
    else:
        implant, implant_source = None, None
        message = (
            f"emission series {em_rec.series_uid}: no RadiopharmaceuticalInformationSequence start time and "
            "no --implant-time; expected the Y-90 administration time; give --implant-time"
        )
        if calibration == "absolute":
            raise UnitsError(message)
        warnings.append(message + " (relative calibration: not needed for the dose)")
    if calibration == "absolute" and emission.activity_time is None:
        raise UnitsError(
            f"emission series {em_rec.series_uid}: no acquisition, series or frame time in the header; expected "
            "the scan time to correct decay; re-export the series with its acquisition time"
        )
    if implant is not None and emission.activity_time is not None:
        delay_s = seconds_between(emission.activity_time, implant)
        if delay_s < 0:
            message = (
                f"the scan ({emission.activity_time.isoformat()}) starts before the implant "
                f"({implant.isoformat()}, from {implant_source}); expected the implant first; "
                "check --implant-time"
            )
            if calibration == "absolute":
                raise UnitsError(message)
            warnings.append(message + " (relative calibration: the times are not used)")
        if delay_s > 5 * Y90_HALF_LIFE_S:
            warnings.append(
                f"the scan is {delay_s / 3600:.1f} h after the implant (over 5 Y-90 half-lives): check the dates"
            )

    ct_image = None
    ct_prov = None
    if selection.ct is not None:
        ct = load_ct(selection.ct.files, label=f"CT series {selection.ct.series_uid}", headers=selection.ct.headers)
        _release_pixel_data(selection.ct)
        ct_image = ct.image
        ct_prov = ct.provenance
        warnings += ct.warnings
    else:
        warnings.append("no CT on the emission Frame of Reference: the density will not come from a CT")

    rois: tuple[Roi, ...] = ()
    structures_prov = None
    st_rec = selection.structures
    if st_rec is not None:
        for_uid = em_rec.frame_of_reference_uid or None
        if st_rec.kind is Kind.RTSTRUCT:
            rois, st_warnings = rtstruct_to_rois(
                st_rec.files[0], emission.image, frame_of_reference_uid=for_uid, role_overrides=role_overrides
            )
        else:
            rois, st_warnings = seg_to_rois(
                st_rec.files[0], frame_of_reference_uid=for_uid, role_overrides=role_overrides
            )
        warnings += st_warnings
        structures_prov = {
            "modality": st_rec.modality,
            "series_uid": st_rec.series_uid,
            "series_description": st_rec.description,
            "n_files": st_rec.n_files,
            "rois": {roi.name: roi.role.value for roi in rois},
        }
        if len(st_rec.files) > 1:
            warnings.append(
                f"{st_rec.modality} series {st_rec.series_uid} has {len(st_rec.files)} files; the first was used"
            )

    provenance = {
        "folder_series": n_series,
        "selection_notes": list(selection.notes),
        "emission": {
            **emission.provenance,
            "frame_of_reference_uid": em_rec.frame_of_reference_uid,
            "attenuation_corrected": em_rec.attenuation_corrected,
            "scatter_corrected": em_rec.scatter_corrected,
        },
        "ct": ct_prov,
        "structures": structures_prov,
        "activity_time": emission.activity_time.isoformat() if emission.activity_time else None,
        "implant_time": implant.isoformat() if implant else None,
        "implant_time_source": implant_source,
        "header_implant_time": header_implant.time.isoformat() if header_implant else None,
        "calibration": calibration,
        "emission_nuclide": decision.nuclide,
        "study_date": em_rec.study_date or None,
    }
    administered = emission.administered_activity_bq
    if administered is not None and not decision.header_activity_is_y90:
        provenance["header_total_dose_bq_not_used"] = administered
        what = (
            f"the header names {decision.header_nuclide}"
            if decision.header_nuclide
            else "the header does not name the radionuclide"
        )
        warnings.append(
            f"{series_label}: RadionuclideTotalDose {administered / 1e6:.4g} MBq is not taken as the Y-90 "
            f"administered activity ({what})"
        )
        administered = None
    return StudyInputs(
        activity=emission.image,
        activity_units=emission.units,
        activity_time=emission.activity_time,
        implant_time=implant,
        ct=ct_image,
        rois=rois,
        administered_activity_bq=administered,
        warnings=tuple(warnings),
        provenance=provenance,
        series_files={
            "emission": tuple(em_rec.files),
            "ct": tuple(selection.ct.files) if selection.ct else (),
            "structures": tuple(st_rec.files) if st_rec else (),
        },
        emission=decision,
    )


def emission_decision(path, *, override: str | None = None) -> EmissionDecision:
    """The emission-nuclide verdict of a series from the header of one of its files (no pixel data read).

    Raises
    ------
    InputFileError
        The file cannot be read.
    OptionsError
        ``override`` names no nuclide.
    """
    try:
        header = with_converted_attributes(pydicom.dcmread(path, stop_before_pixels=True))
    except Exception as err:
        raise InputFileError(f"{path}: cannot read as DICOM ({type(err).__name__}: {err})") from err
    return decide(evidence_from_header(header), override=override)


def load_ct_from_folder(folder: str | os.PathLike, *, series_uid: str | None = None) -> Image:
    """The CT series (HU) of a DICOM folder: the only CT there, or the one with ``series_uid``.

    Raises
    ------
    InputFileError
        No CT series in the folder, or no series with ``series_uid``.
    AmbiguousSeriesError
        Several CT series and no ``series_uid``; the message lists them.
    """
    from dosimetry.dicom.discovery import AmbiguousSeriesError

    records = [r for r in inventory(folder) if r.kind is Kind.CT]
    if series_uid is not None:
        records = [r for r in records if r.series_uid == series_uid]
    if not records:
        from dosimetry.errors import InputFileError

        raise InputFileError(f"{folder}: no CT series{' ' + series_uid if series_uid else ''} in this folder")
    if len(records) > 1:
        raise AmbiguousSeriesError(
            f"{folder}: {len(records)} CT series: "
            + "; ".join(r.label() for r in records)
            + "; choose one with its series UID"
        )
    return load_ct(records[0].files, label=f"CT series {records[0].series_uid}").image
