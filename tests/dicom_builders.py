"""Builders of small, realistic DICOM test series (PET, CT, NM, RTSTRUCT) written with pydicom.

The phantom is defined in world (LPS) coordinates, so every orientation variant samples the same
points: a liver ellipsoid, a hot tumour sphere and one very hot marker voxel. Grids are symmetric about
the world origin, so flipping an axis only changes the index order.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

from dosimetry.constants import Y90_HALF_LIFE_S
from dosimetry.image import Image

PET_SOP = "1.2.840.10008.5.1.4.1.1.128"
CT_SOP = "1.2.840.10008.5.1.4.1.1.2"
NM_SOP = "1.2.840.10008.5.1.4.1.1.20"
RTSTRUCT_SOP = "1.2.840.10008.5.1.4.1.1.481.3"

F18_HALF_LIFE_S = 6586.2
IMPLANT = datetime(2024, 3, 1, 16, 0, 0)
SCAN = IMPLANT + timedelta(hours=20)

LIVER_CENTRE = np.array([0.0, 0.0, 0.0])
LIVER_RADII = np.array([30.0, 26.0, 18.0])
TUMOUR_CENTRE = np.array([10.0, -6.0, 4.0])
TUMOUR_RADIUS = 9.0
MARKER = np.array([-22.0, 18.0, -10.0])
LIVER_BQML, TUMOUR_BQML, MARKER_BQML = 1.0e4, 6.0e4, 4.0e5

ORIENTATIONS = {
    "HFS": np.column_stack([[1, 0, 0], [0, 1, 0], [0, 0, 1]]).astype(float),
    "FFS": np.column_stack([[-1, 0, 0], [0, 1, 0], [0, 0, -1]]).astype(float),
    "HFP": np.column_stack([[-1, 0, 0], [0, -1, 0], [0, 0, 1]]).astype(float),
}
"""Direction columns (row, column, slice normal) of head-first supine, feet-first supine, head-first prone."""


def uid(*parts) -> str:
    """A deterministic UID under the 2.25 (UUID-derived) root."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()
    return "2.25." + str(int(digest[:30], 16))


def symmetric_grid(shape, spacing_mm, direction=None) -> Image:
    """An image of zeros whose voxel centres are symmetric about the world origin."""
    direction = np.eye(3) if direction is None else np.asarray(direction, float)
    shape = np.asarray(shape)
    spacing = np.broadcast_to(np.asarray(spacing_mm, float), (3,))
    origin = -direction @ (spacing * (shape - 1) / 2.0)
    return Image(np.zeros(tuple(shape)), origin, spacing, direction)


def phantom_activity(grid: Image) -> Image:
    """Activity concentration (Bq/mL) of the analytic phantom sampled at the voxel centres of ``grid``."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij"), axis=-1)
    world = grid.index_to_world(idx)
    values = np.zeros(grid.shape)
    values[np.sum(((world - LIVER_CENTRE) / LIVER_RADII) ** 2, axis=-1) <= 1] = LIVER_BQML
    values[np.linalg.norm(world - TUMOUR_CENTRE, axis=-1) <= TUMOUR_RADIUS] = TUMOUR_BQML
    values[np.all(np.abs(world - MARKER) < grid.spacing_mm.min() / 2, axis=-1)] = MARKER_BQML
    return grid.with_array(values)


def phantom_ct(grid: Image) -> Image:
    """HU of the phantom: water body (0 HU, box 80 x 70 x 60 mm) in air, liver 60 HU, 1000 HU at the marker."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij"), axis=-1)
    world = grid.index_to_world(idx)
    hu = np.full(grid.shape, -1000.0)
    hu[np.all(np.abs(world) <= [40, 35, 30], axis=-1)] = 0.0
    hu[np.sum(((world - LIVER_CENTRE) / LIVER_RADII) ** 2, axis=-1) <= 1] = 60.0
    hu[np.all(np.abs(world - MARKER) <= 2.0, axis=-1)] = 1000.0  # the PET marker, seen on CT as bone
    return grid.with_array(hu)


# --- datasets ------------------------------------------------------------------------------------------------
def _dt(value: datetime) -> tuple[str, str]:
    return value.strftime("%Y%m%d"), value.strftime("%H%M%S.%f")


def base_dataset(
    sop_class: str, sop_uid: str, modality: str, study_uid: str, series_uid: str, *, when: datetime = SCAN
) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.Modality = modality
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.PatientName = "Phantom^Test"
    ds.PatientID = "PHANTOM"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyDate, ds.StudyTime = _dt(when)
    ds.SeriesDate, ds.SeriesTime = _dt(when)
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.Manufacturer = "test builders"
    return ds


def _image_pixels(ds: Dataset, plane: np.ndarray, *, signed: bool = True) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = plane.shape[-2], plane.shape[-1]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = plane.astype(np.int16 if signed else np.uint16).tobytes()


def _plane_geometry(ds: Dataset, image: Image, k: int) -> None:
    ds.ImagePositionPatient = [round(float(v), 4) for v in image.index_to_world((0, 0, k))]
    ds.ImageOrientationPatient = [
        round(float(v), 6) for v in np.concatenate([image.direction[:, 0], image.direction[:, 1]])
    ]
    ds.PixelSpacing = [float(image.spacing_mm[1]), float(image.spacing_mm[0])]
    ds.SliceThickness = float(image.spacing_mm[2])


def write_ct_series(
    folder,
    hu: Image,
    *,
    study_uid: str,
    for_uid: str,
    series_uid: str | None = None,
    tilt_step_mm: float = 0.0,
    description: str = "CT abdomen",
) -> list[Path]:
    """One file per slice; ``tilt_step_mm`` shifts each slice along the column direction (gantry tilt)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or uid(study_uid, "ct", description)
    paths = []
    for k in range(hu.shape[2]):
        sop_uid = uid(series_uid, k)
        ds = base_dataset(CT_SOP, sop_uid, "CT", study_uid, series_uid)
        ds.FrameOfReferenceUID = for_uid
        ds.SeriesDescription = description
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber = k + 1
        _plane_geometry(ds, hu, k)
        if tilt_step_mm:
            ds.ImagePositionPatient = [
                round(float(v), 4) for v in hu.index_to_world((0, 0, k)) + k * tilt_step_mm * hu.direction[:, 1]
            ]
            ds.GantryDetectorTilt = math.degrees(math.atan2(tilt_step_mm, hu.spacing_mm[2]))
        ds.RescaleIntercept = -1024.0
        ds.RescaleSlope = 1.0
        ds.RescaleType = "HU"
        ds.AcquisitionDate, ds.AcquisitionTime = _dt(SCAN - timedelta(minutes=5))
        _image_pixels(ds, np.round(hu.array[:, :, k].T + 1024.0))
        path = folder / f"ct_{k:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def pet_stored_values(
    activity_bqml: np.ndarray,
    frame_start_s: float,
    duration_s: float,
    *,
    correction: str,
    header_half_life_s: float,
    implant_to_scan_s: float,
) -> tuple[np.ndarray, float | None]:
    """Pixel values a scanner writes for a frame, and its Decay Factor.

    ``activity_bqml`` is the truth at the series start; the frame starts ``frame_start_s`` later. The
    scanner measures the mean over the frame and scales it by DF (PS3.3 C.8.9.4.1.9).
    """
    lam = math.log(2) / Y90_HALF_LIFE_S
    mean = activity_bqml * math.exp(-lam * frame_start_s) * (-math.expm1(-lam * duration_s)) / (lam * duration_s)
    if correction == "NONE":
        return mean, None
    lam_s = math.log(2) / header_half_life_s
    in_frame = lam_s * duration_s / -math.expm1(-lam_s * duration_s)
    since = frame_start_s if correction == "START" else implant_to_scan_s + frame_start_s
    df = math.exp(lam_s * since) * in_frame
    return mean * df, df


def write_pet_series(
    folder,
    activity: Image,
    *,
    study_uid: str,
    for_uid: str,
    series_uid: str | None = None,
    description: str = "PET Y90 AC",
    correction: str = "START",
    slope_ratio: float = 100.0,
    header_half_life_s: float = Y90_HALF_LIFE_S,
    units: str = "BQML",
    implant: datetime | None = IMPLANT,
    scan: datetime = SCAN,
    implant_as_datetime: bool = True,
    radiopharmaceutical: bool = True,
    total_dose: float | None = 2.1e9,
    frame_duration_s: float = 900.0,
    slices_per_bed: int | None = None,
    skip_slices=(),
    series_time: datetime | None = None,
    slice_shift_mm=None,
) -> list[Path]:
    """A classic PET series: one file per slice, int16 with per-slice RescaleSlope (ratio ``slope_ratio``
    between the last and first), Decay Correction ``correction`` with DecayFactor, AcquisitionTime per bed,
    a SeriesTime rewritten to ``series_time`` (default 2 h after the scan, as post-processing does);
    ``slice_shift_mm[k]`` moves slice ``k`` along the slice axis (bed-junction jitter)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or uid(study_uid, "pet", description, correction)
    n = activity.shape[2]
    slices_per_bed = slices_per_bed or n
    implant_to_scan_s = (scan - implant).total_seconds() if implant else 72000.0
    planes, factors, starts = [], [], []
    for k in range(n):
        bed = k // slices_per_bed
        start_s = bed * frame_duration_s
        values, df = pet_stored_values(
            activity.array[:, :, k].T,
            start_s,
            frame_duration_s,
            correction=correction,
            header_half_life_s=header_half_life_s,
            implant_to_scan_s=implant_to_scan_s,
        )
        planes.append(values)
        factors.append(df)
        starts.append(scan + timedelta(seconds=start_s))
    vmax = max(float(np.max(np.abs(p))) for p in planes) or 1.0
    base = vmax / 32000.0 / min(1.0, slope_ratio)
    paths = []
    for k in range(n):
        if k in skip_slices:
            continue
        slope = base * slope_ratio ** (k / max(n - 1, 1))
        sop_uid = uid(series_uid, k)
        ds = base_dataset(PET_SOP, sop_uid, "PT", study_uid, series_uid, when=scan)
        ds.SeriesDate, ds.SeriesTime = _dt(series_time or scan + timedelta(hours=2))
        ds.FrameOfReferenceUID = for_uid
        ds.SeriesDescription = description
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.InstanceNumber = k + 1
        _plane_geometry(ds, activity, k)
        if slice_shift_mm is not None:
            ds.ImagePositionPatient = [
                round(float(v), 4)
                for v in activity.index_to_world((0, 0, k)) + float(slice_shift_mm[k]) * activity.direction[:, 2]
            ]
        ds.Units = units
        ds.CountsSource = "EMISSION"
        ds.SeriesType = ["WHOLE BODY", "IMAGE"]
        ds.CorrectedImage = ["DECY", "ATTN", "SCAT", "DTIM"] if correction != "NONE" else ["ATTN", "SCAT", "DTIM"]
        ds.DecayCorrection = correction
        ds.NumberOfSlices = n
        ds.AcquisitionDate, ds.AcquisitionTime = _dt(starts[k])
        ds.ActualFrameDuration = int(frame_duration_s * 1000)
        ds.FrameReferenceTime = 1000.0 * (starts[k] - scan).total_seconds() + 500.0 * frame_duration_s
        if factors[k] is not None:
            ds.DecayFactor = f"{factors[k]:.10g}"[:16]
        ds.RescaleSlope = f"{slope:.10g}"[:16]
        ds.RescaleIntercept = 0
        if radiopharmaceutical:
            item = Dataset()
            item.Radiopharmaceutical = "Y-90 microspheres"
            item.RadionuclideHalfLife = f"{header_half_life_s:g}"
            if total_dose is not None:
                item.RadionuclideTotalDose = f"{total_dose:g}"
            if implant is not None:
                if implant_as_datetime:
                    item.RadiopharmaceuticalStartDateTime = implant.strftime("%Y%m%d%H%M%S.00")
                item.RadiopharmaceuticalStartTime = implant.strftime("%H%M%S")
            code = Dataset()
            code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "C-162F9", "SRT", "^90^Yttrium"
            item.RadionuclideCodeSequence = Sequence([code])
            ds.RadiopharmaceuticalInformationSequence = Sequence([item])
        stored = np.round(planes[k] / float(ds.RescaleSlope))
        _image_pixels(ds, np.clip(stored, -32768, 32767))
        path = folder / f"pet_{k:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_nm_recon(
    path,
    counts: Image,
    *,
    study_uid: str,
    for_uid: str,
    series_uid: str | None = None,
    negative_spacing: bool = False,
    slice_thickness_mm: float = 9.9,
    frames_per_rotation: int = 64,
    frame_duration_ms: int = 20000,
    description: str = "Y90 brems SPECT recon",
    radiopharmaceutical: str | None = None,
    radionuclide_code: tuple[str, str, str] | None = None,
    radiopharmaceutical_code: tuple[str, str, str] | None = None,
    half_life_s: float | None = None,
    total_dose: str | None = "2.1e9",
) -> Path:
    """A reconstructed NM multi-frame; with ``negative_spacing`` the frames run against the normal.

    By default the header names no nuclide (as many bremsstrahlung SPECTs); ``radiopharmaceutical`` (text),
    ``radionuclide_code`` and ``radiopharmaceutical_code`` ((value, scheme, meaning)) and ``half_life_s``
    fill the Radiopharmaceutical Information Sequence, e.g. for a Tc-99m MAA SPECT."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or uid(study_uid, "nm", negative_spacing)
    ds = base_dataset(NM_SOP, uid(series_uid, 0), "NM", study_uid, series_uid)
    ds.FrameOfReferenceUID = for_uid
    ds.SeriesDescription = description
    ds.ImageType = ["ORIGINAL", "PRIMARY", "RECON TOMO", "EMISSION"]
    n = counts.shape[2]
    order = list(range(n))[::-1] if negative_spacing else list(range(n))
    frames = np.stack([counts.array[:, :, k].T for k in order])
    first = counts.index_to_world((0, 0, order[0]))
    det = Dataset()
    det.ImagePositionPatient = [round(float(v), 4) for v in first]
    det.ImageOrientationPatient = [float(v) for v in np.concatenate([counts.direction[:, 0], counts.direction[:, 1]])]
    ds.DetectorInformationSequence = Sequence([det])
    rot = Dataset()
    rot.NumberOfFramesInRotation = frames_per_rotation
    rot.ActualFrameDuration = frame_duration_ms
    ds.RotationInformationSequence = Sequence([rot])
    ds.NumberOfFrames = n
    ds.FrameIncrementPointer = 0x00540080
    ds.SliceVector = list(range(1, n + 1))
    ds.NumberOfSlices = n
    ds.PixelSpacing = [float(counts.spacing_mm[1]), float(counts.spacing_mm[0])]
    dz = float(counts.spacing_mm[2])
    ds.SpacingBetweenSlices = -dz if negative_spacing else dz
    ds.SliceThickness = slice_thickness_mm
    ds.AcquisitionDate, ds.AcquisitionTime = _dt(SCAN)
    item = Dataset()
    item.RadiopharmaceuticalStartDateTime = IMPLANT.strftime("%Y%m%d%H%M%S")
    if total_dose is not None:
        item.RadionuclideTotalDose = total_dose
    if radiopharmaceutical is not None:
        item.Radiopharmaceutical = radiopharmaceutical
    if half_life_s is not None:
        item.RadionuclideHalfLife = f"{half_life_s:g}"
    if radionuclide_code is not None:
        item.RadionuclideCodeSequence = Sequence([_code(*radionuclide_code)])
    if radiopharmaceutical_code is not None:
        item.RadiopharmaceuticalCodeSequence = Sequence([_code(*radiopharmaceutical_code)])
    ds.RadiopharmaceuticalInformationSequence = Sequence([item])
    _image_pixels(ds, np.round(frames), signed=False)
    ds.save_as(path, enforce_file_format=True)
    return path


# --- RTSTRUCT ---------------------------------------------------------------------------------------------
def circle(centre, radius, n_points=96) -> np.ndarray:
    """A closed axial polygon (n, 3) whose area equals that of the circle (radius scaled)."""
    angles = np.linspace(0, 2 * np.pi, n_points, endpoint=False)
    area_ratio = n_points / (2 * np.pi) * np.sin(2 * np.pi / n_points)
    r = radius / math.sqrt(area_ratio)
    return np.column_stack(
        [centre[0] + r * np.cos(angles), centre[1] + r * np.sin(angles), np.full(n_points, float(centre[2]))]
    )


def sphere_contours(centre, radius, plane_spacing_mm, n_points=96) -> list[np.ndarray]:
    """Axial contours of a sphere on the planes ``centre_z + m x spacing`` (as on CT slices)."""
    out = []
    m_max = math.floor(radius / plane_spacing_mm)
    for m in range(-m_max, m_max + 1):
        dz = m * plane_spacing_mm
        r2 = radius**2 - dz**2
        if r2 > 1e-9:
            out.append(circle((centre[0], centre[1], centre[2] + dz), math.sqrt(r2), n_points))
    return out


def ellipsoid_contours(centre, radii, plane_spacing_mm, n_points=96) -> list[np.ndarray]:
    out = []
    for c in sphere_contours((0, 0, 0), radii[2], plane_spacing_mm, n_points):
        z = c[0, 2]
        scale = math.sqrt(max(1 - (z / radii[2]) ** 2, 0))
        pts = c.copy()
        pts[:, 0] *= radii[0] / radii[2] if scale else 0
        pts[:, 1] *= radii[1] / radii[2] if scale else 0
        out.append(pts + np.asarray(centre))
    return out


def write_rtstruct(
    path,
    structures,
    *,
    study_uid: str,
    for_uid: str,
    referenced_series_uid: str,
    series_uid: str | None = None,
    roi_for_uid: str | None = None,
) -> Path:
    """An RT Structure Set; ``structures`` is a list of (name, list of (n, 3) contours)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or uid(study_uid, "rtstruct", for_uid)
    ds = base_dataset(RTSTRUCT_SOP, uid(series_uid, 0), "RTSTRUCT", study_uid, series_uid)
    ds.SeriesDescription = "ROIs"
    ds.StructureSetLabel = "ROIs"
    ds.StructureSetDate, ds.StructureSetTime = _dt(SCAN)
    ref_for = Dataset()
    ref_for.FrameOfReferenceUID = for_uid
    ser = Dataset()
    ser.SeriesInstanceUID = referenced_series_uid
    ser.ContourImageSequence = Sequence([])
    st = Dataset()
    st.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    st.ReferencedSOPInstanceUID = study_uid
    st.RTReferencedSeriesSequence = Sequence([ser])
    ref_for.RTReferencedStudySequence = Sequence([st])
    ds.ReferencedFrameOfReferenceSequence = Sequence([ref_for])
    rois, contours_seq, observations = [], [], []
    for number, (name, contours) in enumerate(structures, start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = roi_for_uid or for_uid
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = "MANUAL"
        rois.append(roi)
        rc = Dataset()
        rc.ReferencedROINumber = number
        rc.ROIDisplayColor = [255, 0, 0]
        items = []
        for c in contours:
            item = Dataset()
            item.ContourGeometricType = "CLOSED_PLANAR"
            item.NumberOfContourPoints = len(c)
            item.ContourData = [f"{v:.4f}" for v in np.asarray(c).ravel()]
            items.append(item)
        rc.ContourSequence = Sequence(items)
        contours_seq.append(rc)
        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = "ORGAN"
        obs.ROIInterpreter = ""
        observations.append(obs)
    ds.StructureSetROISequence = Sequence(rois)
    ds.ROIContourSequence = Sequence(contours_seq)
    ds.RTROIObservationsSequence = Sequence(observations)
    ds.save_as(path, enforce_file_format=True)
    return path


def phantom_structures(plane_spacing_mm: float = 2.0):
    """Liver ellipsoid and tumour sphere contours of the phantom."""
    return [
        ("Liver", ellipsoid_contours(LIVER_CENTRE, LIVER_RADII, plane_spacing_mm)),
        ("Tumour 1", sphere_contours(TUMOUR_CENTRE, TUMOUR_RADIUS, plane_spacing_mm)),
    ]


def write_phantom_study(
    folder,
    *,
    orientation: str = "HFS",
    correction: str = "START",
    with_ct: bool = True,
    with_rtstruct: bool = True,
    pet_shape=(20, 18, 12),
    pet_spacing_mm=4.0,
    ct_shape=(44, 38, 32),
    ct_spacing_mm=2.0,
    study_key: str = "study",
    **pet_kwargs,
):
    """A PET/CT study folder of the phantom; returns (truth activity Image, dict of UIDs).

    The PET has no RadionuclideTotalDose unless ``total_dose`` (Bq) is given: the phantom holds about 1 MBq,
    and a header activity of GBq would fail the recovered-activity check of absolute calibration."""
    folder = Path(folder)
    pet_kwargs.setdefault("total_dose", None)
    study_uid = uid(study_key)
    for_uid = uid(study_key, "for")
    direction = ORIENTATIONS[orientation]
    truth = phantom_activity(symmetric_grid(pet_shape, pet_spacing_mm, direction))
    pet_uid = uid(study_key, "pet", orientation, correction)
    write_pet_series(
        folder / "pet",
        truth,
        study_uid=study_uid,
        for_uid=for_uid,
        series_uid=pet_uid,
        correction=correction,
        **pet_kwargs,
    )
    uids = {"study": study_uid, "for": for_uid, "pet": pet_uid}
    if with_ct:
        ct_uid = uid(study_key, "ct", orientation)
        ct = phantom_ct(symmetric_grid(ct_shape, ct_spacing_mm, direction))
        write_ct_series(folder / "ct", ct, study_uid=study_uid, for_uid=for_uid, series_uid=ct_uid)
        uids["ct"] = ct_uid
    if with_rtstruct:
        write_rtstruct(
            folder / "rtstruct.dcm",
            phantom_structures(),
            study_uid=study_uid,
            for_uid=for_uid,
            referenced_series_uid=uids.get("ct", pet_uid),
        )
    return truth, uids


# --- Enhanced and Legacy Converted Enhanced images ------------------------------------------------------------
ENHANCED_PET_SOP = "1.2.840.10008.5.1.4.1.1.130"
LEGACY_PET_SOP = "1.2.840.10008.5.1.4.1.1.128.1"
LEGACY_CT_SOP = "1.2.840.10008.5.1.4.1.1.2.2"

BQML_UCUM = ("Bq/ml", "UCUM", "Becquerels/milliliter")
SUVBW_UCUM = ("{SUVbw}g/ml", "UCUM", "Standardized Uptake Value body weight")
COUNTS_UCUM = ("{counts}", "UCUM", "Counts")


def write_legacy_converted(files, path, *, series_uid: str | None = None, series_number: int = 100) -> Path:
    """Convert a classic single-frame PET or CT series into one Legacy Converted Enhanced PET/CT file
    with highdicom (PS3.3 A.70/A.72); classic attributes with no place in the IOD go to the Unassigned
    Shared/Per-Frame Converted Attributes."""
    import highdicom as hd
    import pydicom

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets = [pydicom.dcmread(f) for f in files]
    modality = str(datasets[0].Modality)
    cls = {"PT": hd.legacy.LegacyConvertedEnhancedPETImage, "CT": hd.legacy.LegacyConvertedEnhancedCTImage}[modality]
    series_uid = series_uid or uid(datasets[0].SeriesInstanceUID, "legacy converted")
    image = cls(
        datasets,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=uid(series_uid, 0),
        instance_number=1,
    )
    image.save_as(path, enforce_file_format=True)
    return path


def _code(value, scheme, meaning) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _rwvm_item(slope: float, units, first: int = -32768, last: int = 32767) -> Dataset:
    item = Dataset()
    item.add_new(0x00409216, "SS", first)  # Real World Value First Value Mapped (signed stored values)
    item.add_new(0x00409211, "SS", last)  # Real World Value Last Value Mapped
    item.RealWorldValueIntercept = 0.0
    item.RealWorldValueSlope = float(slope)
    item.LUTExplanation = units[2]
    item.LUTLabel = units[0][:16]
    item.MeasurementUnitsCodeSequence = Sequence([_code(*units)])
    return item


def write_enhanced_pet(
    path,
    activity: Image,
    *,
    study_uid: str,
    for_uid: str,
    series_uid: str | None = None,
    description: str = "PET Y90 AC enhanced",
    decay_reference: datetime | None = IMPLANT,
    slope_ratio: float = 100.0,
    header_half_life_s: float = Y90_HALF_LIFE_S,
    units=BQML_UCUM,
    value_mapping: str = "both",
    implant: datetime = IMPLANT,
    scan: datetime = SCAN,
    total_dose: float | None = 2.1e9,
    frame_duration_s: float = 900.0,
    slices_per_bed: int | None = None,
    reverse: bool = False,
    skip_frames=(),
    decay_factors: bool = True,
) -> Path:
    """An Enhanced PET Image (PS3.3 A.56) of ``activity`` (Bq/mL at ``scan``): one multi-frame file.

    Frames are slices (``reverse`` stores them from the last slice to the first; ``skip_frames`` leaves
    slice indices out). Beds of ``slices_per_bed`` slices start ``frame_duration_s`` apart (Frame Content:
    Frame Acquisition DateTime, Frame Reference DateTime, Frame Acquisition Duration in ms). With
    ``decay_reference`` the values are decay corrected to that date-time (Decay Corrected YES, Decay
    Correction DateTime, per-frame Decay Factor in PET Frame Correction Factors unless ``decay_factors`` is
    False); with None they are the frame means (Decay Corrected NO). Stored int16 values use per-frame
    slopes ``slope_ratio`` apart. ``value_mapping``: 'both' puts the slope in the Pixel Value
    Transformation and in one Real World Value Mapping item in ``units``; 'rwvm' leaves the Pixel Value
    Transformation at identity and gives two Real World Value Mapping items, SUVbw first, then ``units``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or uid(study_uid, "enhanced pet", description, decay_reference)
    n = activity.shape[2]
    slices_per_bed = slices_per_bed or n
    order = [k for k in (range(n - 1, -1, -1) if reverse else range(n)) if k not in skip_frames]
    corrected = decay_reference is not None
    ref_offset_s = (scan - decay_reference).total_seconds() if corrected else 0.0
    lam = math.log(2) / Y90_HALF_LIFE_S
    values, factors, starts = {}, {}, {}
    for k in range(n):
        start_s = (k // slices_per_bed) * frame_duration_s
        v, df = pet_stored_values(
            activity.array[:, :, k].T,
            start_s,
            frame_duration_s,
            correction="ADMIN" if corrected else "NONE",
            header_half_life_s=header_half_life_s,
            implant_to_scan_s=ref_offset_s,
        )
        values[k], factors[k], starts[k] = v, df, scan + timedelta(seconds=start_s)
    vmax = max(float(np.max(np.abs(v))) for v in values.values()) or 1.0
    base = vmax / 32000.0 / min(1.0, slope_ratio)
    slopes = {k: base * slope_ratio ** (k / max(n - 1, 1)) for k in range(n)}

    ds = base_dataset(ENHANCED_PET_SOP, uid(series_uid, 0), "PT", study_uid, series_uid, when=scan)
    ds.SeriesDate, ds.SeriesTime = _dt(scan + timedelta(hours=2))
    ds.SeriesNumber = 7
    ds.InstanceNumber = 1
    ds.ContentDate, ds.ContentTime = _dt(scan + timedelta(hours=1))
    ds.FrameOfReferenceUID = for_uid
    ds.PositionReferenceIndicator = ""
    ds.SeriesDescription = description
    # Enhanced PET Image and Corrections modules
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.PixelPresentation = "MONOCHROME"
    ds.VolumetricProperties = "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    ds.AcquisitionNumber = 1
    ds.AcquisitionDateTime = scan.strftime("%Y%m%d%H%M%S.%f")
    ds.AcquisitionDuration = (max(starts.values()) - scan).total_seconds() + frame_duration_s
    ds.CountsSource = "EMISSION"
    ds.DecayCorrected = "YES" if corrected else "NO"
    if corrected:
        ds.DecayCorrectionDateTime = decay_reference.strftime("%Y%m%d%H%M%S.%f")
    for keyword in (
        "AttenuationCorrected",
        "ScatterCorrected",
        "DeadTimeCorrected",
        "RandomsCorrected",
        "SensitivityCalibrated",
        "DetectorNormalizationCorrection",
    ):
        setattr(ds, keyword, "YES")
    for keyword in (
        "GantryMotionCorrected",
        "PatientMotionCorrected",
        "CountLossNormalizationCorrected",
        "NonUniformRadialSamplingCorrected",
    ):
        setattr(ds, keyword, "NO")
    ds.RandomsCorrectionMethod = "DLYD"
    ds.AttenuationCorrectionSource = "CT"
    ds.ScatterCorrectionMethod = "model based"
    ds.ContentQualification = "RESEARCH"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    # Enhanced PET Acquisition module (the parts that are plain values)
    ds.AcquisitionStartCondition = "MANU"
    ds.AcquisitionTerminationCondition = "TIME"
    ds.TypeOfDetectorMotion = "STATIONARY"
    ds.DetectorGeometry = "CYLINDRICAL_RING"
    ds.CollimatorType = "NONE"
    ds.TableMotion = "STEP" if slices_per_bed < n else "STATIC"
    ds.TimeOfFlightInformationUsed = "TRUE"
    # Enhanced PET Isotope module
    item = Dataset()
    item.RadiopharmaceuticalAgentNumber = 1
    item.RadionuclideCodeSequence = Sequence([_code("C-162F9", "SRT", "^90^Yttrium")])
    item.AdministrationRouteCodeSequence = Sequence([_code("58100008", "SCT", "Intra-arterial route")])
    item.RadiopharmaceuticalStartDateTime = implant.strftime("%Y%m%d%H%M%S.%f")
    item.RadionuclideTotalDose = f"{total_dose:g}" if total_dose is not None else ""
    item.RadionuclideHalfLife = f"{header_half_life_s:g}"
    item.RadionuclidePositronFraction = 3.186e-5
    item.RadiopharmaceuticalCodeSequence = Sequence([_code("Y90MS", "99TEST", "Y-90 microspheres")])
    ds.RadiopharmaceuticalInformationSequence = Sequence([item])
    # Multi-frame Dimension module: one stack ordered by Image Position (Patient)
    dim_org_uid = uid(series_uid, "dimension organization")
    org = Dataset()
    org.DimensionOrganizationUID = dim_org_uid
    ds.DimensionOrganizationSequence = Sequence([org])
    ds.DimensionOrganizationType = "3D"
    dim = Dataset()
    dim.DimensionOrganizationUID = dim_org_uid
    dim.DimensionIndexPointer = 0x00200032
    dim.FunctionalGroupPointer = 0x00209113
    dim.DimensionDescriptionLabel = "Image Position"
    ds.DimensionIndexSequence = Sequence([dim])

    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [float(activity.spacing_mm[1]), float(activity.spacing_mm[0])]
    measures.SliceThickness = float(activity.spacing_mm[2])
    shared.PixelMeasuresSequence = Sequence([measures])
    orientation = Dataset()
    orientation.ImageOrientationPatient = [
        round(float(v), 6) for v in np.concatenate([activity.direction[:, 0], activity.direction[:, 1]])
    ]
    shared.PlaneOrientationSequence = Sequence([orientation])
    frame_type = Dataset()
    frame_type.FrameType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    frame_type.PixelPresentation = "MONOCHROME"
    frame_type.VolumetricProperties = "VOLUME"
    frame_type.VolumeBasedCalculationTechnique = "NONE"
    shared.PETFrameTypeSequence = Sequence([frame_type])
    anatomy = Dataset()
    anatomy.FrameLaterality = "U"
    anatomy.AnatomicRegionSequence = Sequence([_code("10200004", "SCT", "Liver")])
    shared.FrameAnatomySequence = Sequence([anatomy])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])

    per_frame, planes = [], []
    for index, k in enumerate(order):
        group = Dataset()
        content = Dataset()
        start = starts[k]
        content.FrameAcquisitionDateTime = start.strftime("%Y%m%d%H%M%S.%f")
        # the time at which the activity equals the frame mean (classic Frame Reference Time definition)
        ref_s = math.log(lam * frame_duration_s / -math.expm1(-lam * frame_duration_s)) / lam
        content.FrameReferenceDateTime = (start + timedelta(seconds=ref_s)).strftime("%Y%m%d%H%M%S.%f")
        content.FrameAcquisitionDuration = frame_duration_s * 1000.0
        content.StackID = "1"
        content.InStackPositionNumber = index + 1
        content.DimensionIndexValues = [index + 1]
        group.FrameContentSequence = Sequence([content])
        position = Dataset()
        position.ImagePositionPatient = [round(float(v), 4) for v in activity.index_to_world((0, 0, k))]
        group.PlanePositionSequence = Sequence([position])
        transform = Dataset()
        transform.RescaleIntercept = 0
        transform.RescaleSlope = 1 if value_mapping == "rwvm" else f"{slopes[k]:.10g}"[:16]
        transform.RescaleType = "US"
        group.PixelValueTransformationSequence = Sequence([transform])
        slope = float(f"{slopes[k]:.10g}"[:16])
        items = [_rwvm_item(slope, units)]
        if value_mapping == "rwvm":
            items.insert(0, _rwvm_item(slope * 70000.0 / 2.1e9, SUVBW_UCUM))
        group.RealWorldValueMappingSequence = Sequence(items)
        corrections = Dataset()
        corrections.PrimaryPromptsCountsAccumulated = 1000000
        corrections.SliceSensitivityFactor = 1.0
        corrections.ScatterFractionFactor = 0.3
        corrections.DeadTimeFactor = 1.01
        if corrected and decay_factors:
            corrections.DecayFactor = f"{factors[k]:.10g}"[:16]
        group.PETFrameCorrectionFactorsSequence = Sequence([corrections])
        per_frame.append(group)
        planes.append(np.clip(np.round(values[k] / slope), -32768, 32767))
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.NumberOfFrames = len(order)
    _image_pixels(ds, np.stack(planes))
    ds.save_as(path, enforce_file_format=True)
    return path
