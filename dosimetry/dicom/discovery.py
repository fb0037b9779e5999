"""Find the DICOM series in a folder, describe them, and choose the ones a Y-90 dosimetry needs.

:func:`inventory` scans a folder recursively (any file names; DICOMDIR files and non-DICOM files are
skipped) and returns one :class:`SeriesRecord` per series; :func:`format_inventory` prints them for
``dosimetry inspect``; :func:`select_series` picks the Y-90 emission series, the CT on its Frame of
Reference and the RTSTRUCT or SEG drawn on them, and raises :class:`AmbiguousSeriesError` listing the
candidates when the choice is not clear.

References
----------
.. [PS3.4-B.5] DICOM PS3.4 annex B.5, standard SOP classes (the UIDs in :data:`SOP_CLASS_KINDS`).
.. [PS3.3-C.7.4.1] DICOM PS3.3 section C.7.4.1, Frame of Reference Module: images with one Frame of
   Reference UID share one patient coordinate system.
"""

from __future__ import annotations

import enum
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from dosimetry.quantify.emission import UNKNOWN, Y90, decide, evidence_from_header
from dosimetry.errors import InputFileError, OptionsError
from dosimetry.dicom.reading import read_header
from dosimetry.dicom.slices import functional_group, with_converted_attributes


class Kind(str, enum.Enum):
    """What a series is for this package; the value is printed by ``dosimetry inspect``."""

    EMISSION = "emission"
    CT = "ct"
    RTSTRUCT = "rtstruct"
    SEG = "seg"
    RTDOSE = "rtdose"
    OTHER = "other"


SOP_CLASS_KINDS: dict[str, Kind] = {
    "1.2.840.10008.5.1.4.1.1.128": Kind.EMISSION,  # PET Image Storage
    "1.2.840.10008.5.1.4.1.1.130": Kind.EMISSION,  # Enhanced PET Image Storage
    "1.2.840.10008.5.1.4.1.1.128.1": Kind.EMISSION,  # Legacy Converted Enhanced PET Image Storage
    "1.2.840.10008.5.1.4.1.1.20": Kind.EMISSION,  # NM Image Storage
    "1.2.840.10008.5.1.4.1.1.2": Kind.CT,  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1": Kind.CT,  # Enhanced CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.2": Kind.CT,  # Legacy Converted Enhanced CT Image Storage
    "1.2.840.10008.5.1.4.1.1.481.3": Kind.RTSTRUCT,  # RT Structure Set Storage
    "1.2.840.10008.5.1.4.1.1.66.4": Kind.SEG,  # Segmentation Storage
    "1.2.840.10008.5.1.4.1.1.481.2": Kind.RTDOSE,  # RT Dose Storage
}
"""SOP Class UID -> kind [PS3.4-B.5]."""

ENHANCED_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.130",
        "1.2.840.10008.5.1.4.1.1.128.1",
        "1.2.840.10008.5.1.4.1.1.2.1",
        "1.2.840.10008.5.1.4.1.1.2.2",
    }
)
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"


class AmbiguousSeriesError(OptionsError):
    """More than one series fits a role; the message lists them and the option that selects one."""


@dataclass(frozen=True)
class SeriesRecord:
    """What a folder holds of one series (no patient names, IDs or birth dates).

    ``n_images`` counts frames (a multi-frame file counts its NumberOfFrames). ``date`` is the series
    (else acquisition, else study) date as ``YYYY-MM-DD``. ``nuclide`` is what the header of an emission
    series says (:func:`dosimetry.quantify.emission.decide`: radionuclide and radiopharmaceutical names win over the
    half-life; 'unknown' when its evidence conflicts), None when it says nothing.
    """

    study_uid: str
    series_uid: str
    modality: str
    kind: Kind
    sop_class_uid: str
    description: str
    date: str
    n_files: int
    n_images: int
    frame_of_reference_uid: str
    files: tuple[Path, ...] = field(repr=False)
    referenced_for_uids: tuple[str, ...] = ()
    referenced_series_uids: tuple[str, ...] = ()
    image_type: tuple[str, ...] = ()
    nuclide: str | None = None
    half_life_s: float | None = None
    units: str = ""
    attenuation_corrected: bool | None = None
    scatter_corrected: bool | None = None
    study_date: str = ""
    """The Study Date as ``YYYY-MM-DD`` ('' when absent or not a date)."""
    headers: tuple = field(default=(), repr=False, compare=False)
    """The files' :class:`~dosimetry.dicom.reading.Header` records (pixel data deferred) when the inventory
    kept them (``keep_headers``), for the loaders; else empty."""

    @property
    def enhanced(self) -> bool:
        return self.sop_class_uid in ENHANCED_SOP_CLASSES

    def label(self) -> str:
        """One-line description used in messages: UID, description, date, images."""
        desc = self.description or "(no description)"
        nuclide = f" {self.nuclide}" if self.nuclide else ""
        return f"{self.series_uid} {self.modality}{nuclide} '{desc}' {self.date or 'no date'} {self.n_images} images"


def _iter_files(folder: Path):
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            yield Path(root) / name


_HEADER_ERRORS = (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError, AttributeError)


def _read_header(path: Path, keep: bool):
    """``(dataset, Header or None)`` of ``path``, or None when it is not DICOM or unreadable. With ``keep``, the
    :class:`~.reading.Header` (pixel data deferred) for the loader to complete; a file whose whole dataset
    cannot be parsed that way is still listed from its header up to the pixel data (the loader then reports
    it), as without ``keep``."""
    if keep:
        try:
            header = read_header(path)
            return header.dataset, header
        except _HEADER_ERRORS:
            pass
    try:
        return pydicom.dcmread(path, stop_before_pixels=True), None
    except _HEADER_ERRORS:
        return None


def _format_date(value) -> str:
    text = str(value or "").strip()
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) >= 8 and text[:8].isdigit() else ""


def _references(ds) -> tuple[set[str], set[str]]:
    """Frames of Reference and series an RTSTRUCT or SEG says it was drawn on."""
    fors: set[str] = set()
    series: set[str] = set()
    for item in ds.get("ReferencedFrameOfReferenceSequence", []):
        if item.get("FrameOfReferenceUID"):
            fors.add(str(item.FrameOfReferenceUID))
        for study in item.get("RTReferencedStudySequence", []):
            for ser in study.get("RTReferencedSeriesSequence", []):
                if ser.get("SeriesInstanceUID"):
                    series.add(str(ser.SeriesInstanceUID))
    for roi in ds.get("StructureSetROISequence", []):
        if roi.get("ReferencedFrameOfReferenceUID"):
            fors.add(str(roi.ReferencedFrameOfReferenceUID))
    for item in ds.get("ReferencedSeriesSequence", []):
        if item.get("SeriesInstanceUID"):
            series.add(str(item.SeriesInstanceUID))
    if ds.get("FrameOfReferenceUID") and ds.get("Modality") == "SEG":
        fors.add(str(ds.FrameOfReferenceUID))
    return fors, series


def _nuclide(ds) -> tuple[str | None, float | None]:
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    if not seq:
        return None, None
    half_life = seq[0].get("RadionuclideHalfLife")
    try:
        half_life_s = float(half_life) if half_life not in (None, "") else None
    except (TypeError, ValueError):
        half_life_s = None
    decision = decide(evidence_from_header(ds))
    if decision.header_nuclide is None and decision.nuclide != UNKNOWN:
        return None, half_life_s  # the header names no nuclide
    return decision.header_nuclide or UNKNOWN, half_life_s


def inventory(folder: str | os.PathLike, *, keep_headers: bool = False) -> list[SeriesRecord]:
    """Every DICOM series under ``folder`` (recursively), sorted by study, kind and date.

    With ``keep_headers``, each record keeps the headers it was made from (:attr:`SeriesRecord.headers`, pixel
    data deferred: :mod:`dosimetry.dicom.reading`), so that loading the series reads each file once; only for
    a study about to be loaded (a folder of many studies would keep every header).

    Raises
    ------
    InputFileError
        ``folder`` is not a directory, or holds no DICOM file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"{folder}: not a directory; give the folder that holds the DICOM files")
    groups: dict[str, list] = defaultdict(list)
    for path in _iter_files(folder):
        read = _read_header(path, keep_headers)
        if read is None:
            continue
        ds, header = read
        meta_class = str(getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID", ""))
        if meta_class == MEDIA_STORAGE_DIRECTORY or "DirectoryRecordSequence" in ds:
            continue
        if not ds.get("SeriesInstanceUID") or not ds.get("SOPClassUID"):
            continue
        groups[str(ds.SeriesInstanceUID)].append((path, ds, header))
    if not groups:
        raise InputFileError(f"{folder}: no DICOM image or structure file found; check the folder")
    records = [
        _record(series_uid, [(path, ds) for path, ds, _ in items], tuple(h for _, _, h in items if h is not None))
        for series_uid, items in groups.items()
    ]
    order = {kind: n for n, kind in enumerate(Kind)}
    records.sort(key=lambda r: (r.study_uid, order[r.kind], r.date, r.series_uid))
    return records


def _record(series_uid: str, items: list, headers: tuple = ()) -> SeriesRecord:
    ds = items[0][1]
    sop = str(ds.SOPClassUID)
    kind = SOP_CLASS_KINDS.get(sop, Kind.OTHER)
    image_type = tuple(str(v).upper() for v in (ds.get("ImageType") or []))
    if kind is Kind.CT and "LOCALIZER" in image_type:
        kind = Kind.OTHER
    if kind is Kind.EMISSION and ds.get("Modality") == "NM" and not any("RECON" in v for v in image_type):
        kind = Kind.OTHER  # projections, planar or whole-body images: not a reconstructed volume
    fors: set[str] = set()
    series_refs: set[str] = set()
    for _, item in items:
        f, s = _references(item)
        fors |= f
        series_refs |= s
    # a Legacy Converted Enhanced image keeps the classic PET Units, Corrected Image and isotope among its
    # unassigned converted attributes; an Enhanced PET states its units in Real World Value Mapping and its
    # attenuation correction in Attenuation Corrected (0018,9759)
    header = with_converted_attributes(ds) if kind is Kind.EMISSION else ds
    nuclide, half_life_s = _nuclide(header) if kind is Kind.EMISSION else (None, None)
    corrected = tuple(str(v).upper() for v in (header.get("CorrectedImage") or []))
    attenuation = ("ATTN" in corrected) if corrected else None
    flag = str(header.get("AttenuationCorrected", "") or "").strip().upper()
    if flag in ("YES", "NO"):
        attenuation = flag == "YES"
    units = str(header.get("Units", "") or "")
    if not units and kind is Kind.EMISSION:
        rwvm = functional_group(ds, 0, "RealWorldValueMappingSequence")
        codes = rwvm.get("MeasurementUnitsCodeSequence") if rwvm is not None else None
        units = str(codes[0].get("CodeValue", "")) if codes else ""
    n_images = sum(int(item.get("NumberOfFrames") or 1) for _, item in items)
    date = _format_date(ds.get("SeriesDate") or ds.get("AcquisitionDate") or ds.get("StudyDate"))
    return SeriesRecord(
        study_uid=str(ds.get("StudyInstanceUID", "")),
        series_uid=series_uid,
        modality=str(ds.get("Modality", "")),
        kind=kind,
        sop_class_uid=sop,
        description=str(ds.get("SeriesDescription", "")).strip(),
        date=date,
        study_date=_format_date(ds.get("StudyDate")),
        n_files=len(items),
        n_images=n_images,
        frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "")),
        files=tuple(sorted(path for path, _ in items)),
        referenced_for_uids=tuple(sorted(fors)),
        referenced_series_uids=tuple(sorted(series_refs)),
        image_type=image_type,
        nuclide=nuclide,
        half_life_s=half_life_s,
        units=units,
        attenuation_corrected=attenuation,
        scatter_corrected=("SCAT" in corrected) if corrected else None,
        headers=headers,
    )


def format_inventory(records: list[SeriesRecord]) -> str:
    """A plain-text table of the series, grouped by study, for ``dosimetry inspect``."""
    lines: list[str] = []
    header = f"  {'kind':<9} {'mod':<8} {'date':<10} {'images':>6}  {'description':<32} {'nuclide':<7} series UID"
    study = None
    for rec in records:
        if rec.study_uid != study:
            study = rec.study_uid
            lines.append(f"study {study}")
            lines.append(header)
        desc = (rec.description or "-")[:32]
        extra = ""
        if rec.kind is Kind.EMISSION and rec.units:
            extra += f" units={rec.units}"
        if rec.attenuation_corrected is False:
            extra += " (no attenuation correction)"
        if rec.frame_of_reference_uid:
            extra += f" FoR={rec.frame_of_reference_uid}"
        elif rec.referenced_for_uids:
            extra += f" on FoR={','.join(rec.referenced_for_uids)}"
        lines.append(
            f"  {rec.kind.value:<9} {rec.modality:<8} {rec.date or '-':<10} {rec.n_images:>6}  {desc:<32} "
            f"{rec.nuclide or '-':<7} {rec.series_uid}{extra}"
        )
    return "\n".join(lines)


# --- selection ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Selection:
    """The series chosen for one dosimetry, with notes on how (for the run record)."""

    emission: SeriesRecord
    ct: SeriesRecord | None
    structures: SeriesRecord | None
    notes: tuple[str, ...] = ()


def _ambiguous(what: str, candidates: list[SeriesRecord]) -> AmbiguousSeriesError:
    listing = " | ".join(rec.label() for rec in candidates)
    return AmbiguousSeriesError(f"{len(candidates)} candidate {what} series: {listing}; choose one with --series UID")


def _choose(what: str, candidates: list[SeriesRecord], wanted: set[str]) -> SeriesRecord | None:
    chosen = [rec for rec in candidates if rec.series_uid in wanted]
    if len(chosen) == 1:
        return chosen[0]
    if len(chosen) > 1:
        raise _ambiguous(what, chosen)
    if len(candidates) > 1:
        raise _ambiguous(what, candidates)
    return candidates[0] if candidates else None


def select_series(records: list[SeriesRecord], *, series_uids=()) -> Selection:
    """Choose the emission series, its CT and its RTSTRUCT/SEG.

    Parameters
    ----------
    records : list of SeriesRecord
        From :func:`inventory`.
    series_uids : str or sequence of str
        Series Instance UIDs chosen by the user (``--series``); each selects the series of its kind.

    Notes
    -----
    Emission candidates are PET and reconstructed NM series; those whose header names Y-90 are preferred
    (the notes name the others and their nuclide), and non-attenuation-corrected PET is dropped when a
    corrected one exists. Whether the chosen series may be computed is :mod:`dosimetry.quantify.emission`'s verdict. The CT must share the
    emission Frame of Reference. The RTSTRUCT/SEG must reference that Frame of Reference (or the
    emission or CT series).

    Raises
    ------
    InputFileError
        No emission series, or a ``--series`` UID that is not in the folder.
    AmbiguousSeriesError
        Several candidates for one role and no ``--series`` among them.
    GeometryError
        The only RTSTRUCT/SEG lies on another Frame of Reference than the emission image.
    """
    from dosimetry.errors import GeometryError

    wanted = {series_uids} if isinstance(series_uids, str) else set(series_uids or ())
    known = {rec.series_uid for rec in records}
    unknown = sorted(wanted - known)
    if unknown:
        raise InputFileError(
            f"--series {unknown[0]} is not a series of this folder; run 'dosimetry inspect' to list the series"
        )
    notes: list[str] = []
    emission = [rec for rec in records if rec.kind is Kind.EMISSION]
    if not emission:
        raise InputFileError(
            "no PET or reconstructed SPECT (NM RECON TOMO) series found; expected a Y-90 emission image "
            "in the folder; run 'dosimetry inspect' to list what it holds"
        )
    picked = [rec for rec in emission if rec.series_uid in wanted]
    if not picked:
        y90 = [rec for rec in emission if rec.nuclide == Y90]
        if y90 and len(y90) < len(emission):
            ignored = [
                f"{rec.series_uid} ({rec.nuclide or 'nuclide not stated'})" for rec in emission if rec not in y90
            ]
            notes.append(
                f"ignored {len(ignored)} emission series not labelled Y-90: {', '.join(ignored)} "
                "(choose one with --series)"
            )
            emission = y90
        corrected = [rec for rec in emission if rec.attenuation_corrected is not False]
        if corrected and len(corrected) < len(emission):
            notes.append(f"ignored {len(emission) - len(corrected)} series without attenuation correction")
            emission = corrected
    emission_rec = _choose("emission (PET/SPECT)", emission, wanted)
    assert emission_rec is not None
    for_uid = emission_rec.frame_of_reference_uid
    cts = [rec for rec in records if rec.kind is Kind.CT and for_uid and rec.frame_of_reference_uid == for_uid]
    if len(cts) > 1 and not (wanted & {rec.series_uid for rec in cts}):
        same_study = [rec for rec in cts if rec.study_uid == emission_rec.study_uid]
        cts = same_study or cts
    ct_rec = _choose("CT on the emission Frame of Reference", cts, wanted)
    if ct_rec is None:
        others = [rec for rec in records if rec.kind is Kind.CT]
        notes.append(
            "no CT on the emission Frame of Reference"
            + (f" ({len(others)} CT series on other frames ignored)" if others else "")
        )
    structures = [rec for rec in records if rec.kind in (Kind.RTSTRUCT, Kind.SEG)]
    linked_series = {emission_rec.series_uid} | ({ct_rec.series_uid} if ct_rec else set())
    matching = [
        rec
        for rec in structures
        if (for_uid and for_uid in rec.referenced_for_uids) or (linked_series & set(rec.referenced_series_uids))
    ]
    structure_rec = _choose("RTSTRUCT/SEG", matching, wanted)
    if structure_rec is None and structures:
        chosen = [rec for rec in structures if rec.series_uid in wanted]
        offending = chosen[0] if chosen else structures[0]
        raise GeometryError(
            f"{offending.modality} series {offending.series_uid} lies on Frame of Reference "
            f"{','.join(offending.referenced_for_uids) or '(none)'} but the emission image on {for_uid}; "
            "expected one shared Frame of Reference; register the structures to the PET/SPECT first, or "
            "remove them from the folder and give ROI masks instead"
        )
    return Selection(emission_rec, ct_rec, structure_rec, tuple(notes))
