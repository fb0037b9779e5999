"""The dose map as a DICOM RT Dose object, in the study and Frame of Reference of the CT (or PET) it belongs to.

The RT Dose instance is one multi-frame grid (PS3.3 A.18, C.8.8.3): frames are the ``k`` planes of the
dose :class:`~dosimetry.image.Image`, rows and columns its ``j`` and ``i`` axes, so the voxel centres keep
exactly their world (LPS) positions and the orientation of the grid is kept as it is (oblique grids stay
oblique; nothing is resampled).

References
----------
.. [PS3.3-A.18] DICOM PS3.3 A.18 RT Dose IOD (modules: Patient, General Study, RT Series, Frame of
   Reference, General Equipment, General Image, Image Plane, Image Pixel, Multi-frame, RT Dose, SOP Common).
.. [PS3.3-C.8.8.3] DICOM PS3.3 C.8.8.3 RT Dose Module; C.8.8.3.2 Grid Frame Offset Vector; C.8.8.3.4
   RT Dose attribute specialisations (unsigned pixels for PHYSICAL dose).
.. [PS3.3-C.7.6.2] DICOM PS3.3 C.7.6.2 Image Plane Module (Image Orientation/Position (Patient), Pixel
   Spacing).
"""

from __future__ import annotations

import itertools
import logging
import os
import uuid
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

from dosimetry._version import __version__
from dosimetry.errors import GeometryError, InputFileError, OutputError, UnitsError
from dosimetry.image import Image
from dosimetry.layout import slowest_axis_slabs
from dosimetry.export.vr import TYPE2_PATIENT_STUDY

log = logging.getLogger("dosimetry")

RT_DOSE_STORAGE = "1.2.840.10008.5.1.4.1.1.481.2"
"""SOP Class UID of RT Dose Storage (PS3.4 B.5)."""

MANUFACTURER = "y90-dosimetry"
"""General Equipment Manufacturer written into every exported instance."""

DOSE_SUMMATION_TYPE = "ADMINISTRATION"
"""Dose Summation Type (3004,000A) written for radioembolization doses: an implementation-specific term.

PS3.3 C.8.8.3 lists, as Defined Terms, PLAN, MULTI_PLAN, PLAN_OVERVIEW, FRACTION, BEAM, BRACHY,
FRACTION_SESSION, BEAM_SESSION, BRACHY_SESSION, CONTROL_POINT and RECORD. None describes a Y-90
radioembolization, and each brings a reference we cannot give:

* PLAN ... CONTROL_POINT describe dose calculated from an RT Plan (or its fraction groups, beams,
  brachy application setups or control points) and require the Referenced RT Plan Sequence
  (300C,0002). A radioembolization has no RT Plan.
* RECORD is "dose calculated for an RT Beams Treatment Record" and requires the Referenced Treatment
  Record Sequence (3008,0030); no treatment record object exists for a microsphere administration.
  (dciodvfy reports exactly this error for RECORD without it.)
* PLAN_OVERVIEW refers to the parameters of a plan overview, again a planning object.

Defined Terms, unlike Enumerated Values, may be extended by an implementation when no standard term
applies (see the definition of Defined Terms in PS3.3 and PS3.5), so the dose of one radioembolization,
computed after the fact from the imaged microsphere distribution, is labelled ``ADMINISTRATION``: "absorbed dose delivered by one
administration of radioactive microspheres or a radiopharmaceutical, without an RT Plan". Validators
report an unrecognised defined term as a warning, not an error (dciodvfy does).
"""

UINT32_MAX = 2**32 - 1
_FILL_FRACTION = 0.999999
"""Fraction of the 32-bit range used by the largest dose (the rest absorbs the DS rounding of the scale)."""

_PATIENT_KEYWORDS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "OtherPatientIDsSequence",
    "PatientAge",
    "PatientWeight",
    "PatientSize",
    "PatientIdentityRemoved",
    "DeidentificationMethod",
    "DeidentificationMethodCodeSequence",
)
_STUDY_KEYWORDS = (
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
)


# --- helpers shared by the DICOM exports -----------------------------------------------------------
_UID_SOURCE: ContextVar = ContextVar("dosimetry_export_uid_source", default=None)


def new_uid() -> str:
    """A new globally unique UID: ``2.25.`` and a random (version 4) UUID's integer, PS3.5 B.2 (pydicom's
    ``generate_uid(prefix=None)``; the RT Dose thus needs no highdicom).

    Inside :func:`deterministic_uids` the UIDs are derived from its seed instead (same seed, same UIDs).
    """
    source = _UID_SOURCE.get()
    if source is not None:
        return source()
    return str(generate_uid(prefix=None))


def uid_from_seed(name: str) -> str:
    """A UID derived from ``name``: ``2.25.`` and the integer of the name-based (SHA-1) UUID of ``name``
    (RFC 4122 version 5 in the OID namespace), the UUID form of PS3.5 B.2. Same name, same UID."""
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, name).int}"


@contextmanager
def deterministic_uids(seed: str):
    """Within the block, :func:`new_uid` returns UIDs derived from ``seed`` and a counter.

    The n-th UID of the block is :func:`uid_from_seed` ``(f"{seed}:{n}")``: the same seed and the same
    sequence of exports give the same Series and SOP Instance UIDs, so a file made again from the same
    inputs is recognised by a PACS as the same instance. ``seed`` must identify the inputs and the software
    version (e.g. their hashes).
    """
    if not seed:
        raise ValueError("deterministic_uids needs a non-empty seed")
    counter = itertools.count(1)
    token = _UID_SOURCE.set(lambda: uid_from_seed(f"{seed}:{next(counter)}"))
    try:
        yield
    finally:
        _UID_SOURCE.reset(token)


def copy_patient_study_frame(reference: Dataset, target: Dataset, *, frame_of_reference: bool = True) -> None:
    """Copy the Patient, General Study and (optionally) Frame of Reference attributes of ``reference``.

    Type 2 attributes absent from the reference are written empty (PS3.3 C.7.1.1, C.7.2.1, C.7.4.1).

    Raises
    ------
    GeometryError
        The reference has no StudyInstanceUID, or no FrameOfReferenceUID when one is needed.
    """
    if "StudyInstanceUID" not in reference or not str(reference.StudyInstanceUID):
        raise GeometryError(
            "the reference DICOM header has no StudyInstanceUID; give the header of the study's CT or PET series"
        )
    if frame_of_reference and ("FrameOfReferenceUID" not in reference or not str(reference.FrameOfReferenceUID)):
        raise GeometryError(
            "the reference DICOM header has no FrameOfReferenceUID; give the header of the CT or "
            "PET series the dose was computed on"
        )
    if "SpecificCharacterSet" in reference:
        target.SpecificCharacterSet = reference.SpecificCharacterSet
    for keyword in _PATIENT_KEYWORDS + _STUDY_KEYWORDS:
        if keyword in reference:
            target[keyword] = reference[keyword]
    for keyword in TYPE2_PATIENT_STUDY:
        if keyword not in target:
            setattr(target, keyword, "")
    if frame_of_reference:
        target.FrameOfReferenceUID = reference.FrameOfReferenceUID
        target.PositionReferenceIndicator = reference.get("PositionReferenceIndicator", "")


def save_dataset_atomically(dataset: Dataset, path: str | os.PathLike) -> Path:
    """Write ``dataset`` as a DICOM file (with file meta) to a temporary name, then rename it to ``path``.

    Raises
    ------
    OutputError
        The file cannot be written.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        dataset.save_as(tmp, enforce_file_format=True)
        os.replace(tmp, path)
    except OSError as err:
        try:  # (the folder may not be one: then this fails too, and the first error is the one to report)
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise OutputError(f"cannot write {path}: {err.strerror or err}") from err
    return path


def _file_meta(sop_class_uid: str, sop_instance_uid: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = f"Y90DOSI_{__version__}"[:16]
    return meta


def _ds_value(value: float) -> str:
    return format_number_as_ds(float(value))


# --- geometry -------------------------------------------------------------------------------------
def _frame_geometry(dose: Image) -> tuple[bool, np.ndarray, np.ndarray]:
    """Whether the k axis must be reversed to follow the slice normal, first-frame position, offsets (mm)."""
    row_dir, col_dir, k_dir = dose.direction[:, 0], dose.direction[:, 1], dose.direction[:, 2]
    normal = np.cross(row_dir, col_dir)
    reverse = float(np.dot(k_dir, normal)) < 0.0
    nk = dose.shape[2]
    first_k = nk - 1 if reverse else 0
    first_position = dose.index_to_world([0.0, 0.0, float(first_k)])
    offsets = np.arange(nk, dtype=float) * float(dose.spacing_mm[2])
    return reverse, first_position, offsets


_SLAB_VOXELS = 2_000_000


def _dose_counts(dose_gy: np.ndarray) -> tuple[np.ndarray, str, int]:
    """Unsigned 32-bit counts, the DoseGridScaling string (Gy per count) and the number of clipped voxels."""
    dose_gy = np.asarray(dose_gy)
    # slab by slab (float64 as before, the same values): no full-size float64 temporaries
    slabs = list(slowest_axis_slabs(dose_gy, _SLAB_VOXELS))
    negative, top = 0, 0.0
    for part in slabs:
        values = dose_gy[part].astype(np.float64)
        negative += int(np.count_nonzero(values < 0))
        top = max(top, float(np.maximum(values, 0.0).max(initial=0.0)))
    scaling = _ds_value(top / (_FILL_FRACTION * UINT32_MAX)) if top > 0 else "1"
    counts = np.empty_like(dose_gy, dtype=np.uint32)  # the dose's memory order, as the float64 copy had
    for part in slabs:
        values = np.maximum(dose_gy[part].astype(np.float64), 0.0)
        counts[part] = np.clip(np.rint(values / float(scaling)), 0, UINT32_MAX)
    return counts, scaling, negative


# --- writing --------------------------------------------------------------------------------------
def write_rt_dose(
    dose_gy: Image,
    reference: Dataset,
    path: str | os.PathLike,
    *,
    series_description: str = "Y-90 absorbed dose",
    series_number: int = 900,
    instance_number: int = 1,
    dose_comment: str | None = None,
    tissue_heterogeneity_correction: str | None = None,
    content_datetime: datetime | None = None,
) -> Path:
    """Write an absorbed-dose map as a DICOM RT Dose instance in the study of ``reference``.

    Parameters
    ----------
    dose_gy : Image
        Absorbed dose (Gy) on any regular grid, in the patient coordinates (LPS, mm) of ``reference``.
    reference : pydicom.dataset.Dataset
        Header of one image of the study's CT (or PET) series: Patient, General Study and Frame of
        Reference attributes are copied from it, so viewers overlay the dose on that series.
    path : path
        Output file; written to a temporary name first and renamed when complete.
    series_description : str
        Series Description (0008,103E) of the new RT Dose series.
    series_number, instance_number : int
        Series Number (0020,0011) and Instance Number (0020,0013).
    dose_comment : str, optional
        Dose Comment (3004,0006); a note on negative voxels set to 0 is appended when there are any.
    tissue_heterogeneity_correction : str, optional
        Tissue Heterogeneity Correction (3004,0014): ``IMAGE`` when densities came from the CT,
        ``WATER`` for a uniform density; omitted when None.
    content_datetime : datetime, optional
        Content and instance creation date/time; now when omitted.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    GeometryError
        ``reference`` lacks a StudyInstanceUID or FrameOfReferenceUID.
    UnitsError
        The dose map holds NaN or infinite values.
    OutputError
        The file cannot be written.

    Notes
    -----
    * New Series and SOP Instance UIDs are generated (2.25 UUID-derived UIDs, PS3.5 B.2).
    * Geometry (PS3.3 C.7.6.2, C.8.8.3.2): Image Orientation (Patient) holds the first two direction
      columns of the image (i = along a row, j = down a column), Pixel Spacing is (spacing_j,
      spacing_i). Frames are ordered along the slice normal ``row x column``: when the image's k axis
      points the other way (a left-handed index frame), the frames are written in reverse order, so
      that the Grid Frame Offset Vector is relative to the first frame, starts at 0 and increases.
    * Pixels are 32-bit unsigned integers (PS3.3 C.8.8.3.4: unsigned for PHYSICAL dose);
      Dose Grid Scaling is chosen so that the largest dose uses 99.9999 % of the range, a quantisation
      step of about max / 4.3e9. Negative doses (noise of the emission image) cannot be stored as
      PHYSICAL dose and are written as 0; the Dose Comment and the log say how many.
    * Dose Summation Type is :data:`DOSE_SUMMATION_TYPE` (see its note for why).
    * dicom3tools' dciodvfy (2022 Debian build) aborts on 32-bit pixel data (an assertion in its pixel
      reader); the tests validate the same header with 16-bit pixels then (see tests/test_export_rtdose.py).
    """
    array = np.asarray(dose_gy.array)
    if not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise UnitsError(
            f"the dose map has {bad} NaN or infinite voxels; RT Dose cannot store them: "
            "fix the activity image (or set those voxels to 0) before exporting"
        )
    counts, scaling, negative = _dose_counts(array)
    reverse, first_position, offsets = _frame_geometry(dose_gy)
    frames = counts.transpose(2, 1, 0)  # (k, j, i) = (frame, row, column)
    if reverse:
        frames = frames[::-1]
    frames = np.ascontiguousarray(frames, dtype="<u4")

    when = content_datetime or datetime.now()
    date, time = when.strftime("%Y%m%d"), when.strftime("%H%M%S.%f")
    sop_instance_uid = new_uid()
    ds = Dataset()
    copy_patient_study_frame(reference, ds)
    # RT Series (C.8.8.1), General Equipment (C.7.5.1)
    ds.Modality = "RTDOSE"
    ds.SeriesInstanceUID = new_uid()
    ds.SeriesNumber = int(series_number)
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.SeriesDescription = series_description
    ds.OperatorsName = ""
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MANUFACTURER
    ds.SoftwareVersions = __version__
    # General Image (C.7.6.1), Image Plane (C.7.6.2)
    ds.InstanceNumber = int(instance_number)
    ds.ContentDate, ds.ContentTime = date, time
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.ImagePositionPatient = [_ds_value(v) for v in first_position]
    ds.ImageOrientationPatient = [
        _ds_value(v) for v in np.concatenate([dose_gy.direction[:, 0], dose_gy.direction[:, 1]])
    ]
    ds.PixelSpacing = [_ds_value(dose_gy.spacing_mm[1]), _ds_value(dose_gy.spacing_mm[0])]
    ds.SliceThickness = _ds_value(dose_gy.spacing_mm[2])
    # Image Pixel (C.7.6.3) as specialised by the RT Dose module (C.8.8.3.4)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(dose_gy.shape[1]), int(dose_gy.shape[0])
    ds.BitsAllocated = 32
    ds.BitsStored = 32
    ds.HighBit = 31
    ds.PixelRepresentation = 0
    # Multi-frame (C.7.6.6)
    ds.NumberOfFrames = int(dose_gy.shape[2])
    ds.FrameIncrementPointer = Tag("GridFrameOffsetVector")
    # RT Dose (C.8.8.3)
    ds.DoseUnits = "GY"
    ds.DoseType = "PHYSICAL"
    ds.DoseSummationType = DOSE_SUMMATION_TYPE
    ds.GridFrameOffsetVector = [_ds_value(v) for v in offsets]
    ds.DoseGridScaling = scaling
    comment = dose_comment or ""
    if negative:
        note = f"{negative} negative voxels set to 0"
        comment = f"{comment}; {note}" if comment else note
        log.warning("RT Dose export: %s (PHYSICAL dose is stored unsigned)", note)
    if comment:
        ds.DoseComment = comment[:64]  # VR LO: 64 characters at most (PS3.5 6.2)
    if tissue_heterogeneity_correction:
        ds.TissueHeterogeneityCorrection = tissue_heterogeneity_correction
    ds.PixelData = frames.tobytes()
    ds["PixelData"].VR = "OW"
    # SOP Common (C.12.1)
    ds.SOPClassUID = RT_DOSE_STORAGE
    ds.SOPInstanceUID = sop_instance_uid
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.file_meta = _file_meta(RT_DOSE_STORAGE, sop_instance_uid)
    return save_dataset_atomically(ds, path)


# --- reading --------------------------------------------------------------------------------------
def read_rt_dose(path: str | os.PathLike) -> Image:
    """Read a grid-based RT Dose file as an :class:`Image` of absorbed dose in Gy (float32).

    Handles both forms of the Grid Frame Offset Vector (PS3.3 C.8.8.3.2: relative to the first frame
    when its first value is 0, else absolute positions along the normal of an axial grid) and frames
    stored against the slice normal (decreasing offsets).

    Raises
    ------
    InputFileError
        Not readable, not an RT Dose, or without pixel data.
    UnitsError
        Dose Units is not GY (e.g. RELATIVE).
    GeometryError
        Frames are not evenly spaced.
    """
    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except Exception as err:  # pydicom raises many types for unreadable files
        raise InputFileError(f"{path}: cannot read as DICOM ({type(err).__name__}: {err})") from err
    if str(ds.get("SOPClassUID", "")) != RT_DOSE_STORAGE or "PixelData" not in ds:
        raise InputFileError(
            f"{path}: not a grid-based RT Dose (SOP Class {ds.get('SOPClassUID', 'missing')}); "
            "give an RT Dose file with a dose grid"
        )
    units = str(ds.get("DoseUnits", "")).upper()
    if units != "GY":
        raise UnitsError(f"{path}: Dose Units is {units or 'missing'!r}, not GY; only absolute doses can be read")
    frames = np.asarray(ds.pixel_array, dtype=np.float64)
    if frames.ndim == 2:
        frames = frames[np.newaxis]
    frames = frames * float(ds.get("DoseGridScaling", 1.0))
    orientation = np.asarray(ds.ImageOrientationPatient, dtype=float)
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    position = np.asarray(ds.ImagePositionPatient, dtype=float)
    row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
    n_frames = frames.shape[0]
    if n_frames > 1:
        offsets = np.asarray(ds.GridFrameOffsetVector, dtype=float)
        if offsets.size != n_frames:
            raise GeometryError(f"{path}: Grid Frame Offset Vector has {offsets.size} values for {n_frames} frames")
        steps = np.diff(offsets - offsets[0])
        step = float(np.mean(steps))
        if step == 0 or np.max(np.abs(steps - step)) > 1e-3 * max(abs(step), 1.0):
            raise GeometryError(
                f"{path}: dose frames are not evenly spaced (steps {np.unique(np.round(steps, 4))} "
                "mm); resample the dose to a regular grid"
            )
    else:
        step = float(ds.get("SliceThickness", 0) or 1.0)
    k_dir = normal if step > 0 else -normal
    array = frames.transpose(2, 1, 0).astype(np.float32)  # (frame, row, column) -> (i, j, k)
    return Image(array, position, (col_spacing, row_spacing, abs(step)), np.column_stack([row_dir, col_dir, k_dir]))
