"""Reconstructed SPECT (NM Image storage, tomographic multi-frame) to an Image: Y-90 bremsstrahlung SPECT, or
Tc-99m MAA SPECT for a predictive dose (which nuclide it is, is :mod:`dosimetry.quantify.emission`'s decision).

Geometry comes from the NM Detector Information Sequence: the Image Position (Patient) of the first frame
and the Image Orientation (Patient); frame ``f`` lies at ``IPP + f x SpacingBetweenSlices x n`` with
``n`` = row direction x column direction. A negative Spacing Between Slices means the frames run against
``n``; the frames are then reversed so the image stays right-handed. Slice Thickness is the reconstructed
slice width, not the spacing, and is never used for geometry.

Values are counts (stored x Rescale Slope + Intercept), or Real World Value Mapping values where the file
has one. SPECT is calibrated relatively unless a calibration factor is given (Y-90 only):

    A [Bq/mL] = C / (T x K) x 1e6 / V x lambda T / (1 - exp(-lambda T))

with C the voxel counts, T the acquisition duration (s, frames per rotation x frame duration x rotations),
K the tomographic calibration factor (counts per second per MBq, measured with the same acquisition and
reconstruction), V the voxel volume (mL); the last factor refers the activity to the acquisition start.

References
----------
.. [PS3.3-C.8.4] DICOM PS3.3 C.8.4.8 NM Multi-frame Module (Frame Increment Pointer, Slice Vector),
   C.8.4.9 NM Image Module (Image Type value 3 'RECON TOMO', Actual Frame Duration), C.8.4.11 NM Detector
   Module (Detector Information Sequence: Image Position/Orientation (Patient)), C.8.4.12 NM TOMO
   Acquisition Module (Rotation Information Sequence), C.8.4.15 NM Reconstruction Module (Spacing
   Between Slices, Slice Thickness).
.. [PS3.3-C.7.6.16.2.11] Real World Value Mapping Macro.
.. [Dewaraja2012] Dewaraja YK et al. MIRD Pamphlet No. 23: quantitative SPECT for patient-specific 3-D
   dosimetry in internal radionuclide therapy. J Nucl Med 2012;53:1310-25.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from dosimetry.quantify.checks import check_emission_values
from dosimetry.errors import GeometryError, InputFileError, UnitsError
from dosimetry.image import Image
from dosimetry.dicom.pet import EmissionVolume, check_administered_activity
from dosimetry.dicom.slices import checked_rescale
from dosimetry.dicom.timing import acquisition_start, frame_average_to_start, header_implant_time


def _vector(value, n: int, what: str, name: str) -> np.ndarray:
    try:
        arr = np.asarray([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        arr = np.empty(0)
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise GeometryError(f"{name}: {what} is {value!r}; expected {n} numbers; the NM file lacks its geometry")
    return arr


def acquisition_duration_s(ds) -> float | None:
    """Total acquisition time (s) from the Rotation Information Sequence: frames per rotation x actual
    frame duration, summed over rotations; None when absent."""
    total = 0.0
    for item in ds.get("RotationInformationSequence", []):
        frames = item.get("NumberOfFramesInRotation")
        duration_ms = item.get("ActualFrameDuration")
        if frames in (None, "") or duration_ms in (None, ""):
            return None
        total += float(frames) * float(duration_ms) / 1000.0
    return total or None


def load_spect(
    files,
    *,
    calibration_factor_cps_per_mbq: float | None = None,
    label: str = "SPECT series",
    emission_label: str | None = None,
) -> EmissionVolume:
    """Read a reconstructed NM tomographic series (one multi-frame file).

    Parameters
    ----------
    files : sequence of path
        The file(s) of the series; exactly one NM multi-frame file is expected.
    calibration_factor_cps_per_mbq : float, optional
        Tomographic calibration factor; when given the result is Bq/mL at the acquisition start,
        otherwise counts (relative calibration).
    label : str
        Series label for messages.
    emission_label : str, optional
        What the image is, for messages; default 'Y-90 bremsstrahlung SPECT' (a Tc-99m MAA SPECT is never
        called bremsstrahlung).

    Raises
    ------
    InputFileError
        Not one multi-frame NM file, or not a reconstructed tomographic image.
    GeometryError
        No Detector Information Sequence position/orientation, or no/zero Spacing Between Slices.
    UnitsError
        A calibration factor without an acquisition duration in the header, or a non-positive factor.
    """
    files = list(files)
    if len(files) != 1:
        raise InputFileError(f"{label}: {len(files)} NM files in one series; expected one multi-frame file")
    path = Path(files[0])
    name = path.name
    try:
        ds = pydicom.dcmread(path)
    except Exception as err:
        raise InputFileError(f"{path}: cannot read as DICOM ({type(err).__name__}: {err})") from err
    image_type = [str(v).upper() for v in ds.get("ImageType", [])]
    if not any("RECON" in v for v in image_type):
        raise InputFileError(
            f"{name}: ImageType {'/'.join(image_type)}; expected a reconstructed tomographic NM image "
            "(RECON TOMO); select the reconstructed series"
        )
    warnings: list[str] = []
    detector = ds.get("DetectorInformationSequence")
    source = detector[0] if detector and "ImagePositionPatient" in detector[0] else None
    if source is None:
        if "ImagePositionPatient" not in ds:
            raise GeometryError(
                f"{name}: no ImagePositionPatient in DetectorInformationSequence or at top level; expected "
                "NM reconstruction geometry; re-export the reconstruction with its geometry"
            )
        source = ds
        warnings.append(f"{label}: geometry read from top-level ImagePositionPatient (no DetectorInformationSequence)")
    position = _vector(source.get("ImagePositionPatient"), 3, "ImagePositionPatient", name)
    orientation = _vector(
        source.get("ImageOrientationPatient", ds.get("ImageOrientationPatient")), 6, "ImageOrientationPatient", name
    )
    pixel_spacing = _vector(ds.get("PixelSpacing"), 2, "PixelSpacing", name)
    sbs = ds.get("SpacingBetweenSlices")
    if sbs in (None, "") or float(sbs) == 0.0:
        raise GeometryError(
            f"{name}: SpacingBetweenSlices is {sbs!r}; expected the distance between frames (SliceThickness "
            f"{ds.get('SliceThickness')!r} is the slice width, not the spacing); fix the header"
        )
    spacing_between_slices_mm = float(sbs)

    counts = ds.pixel_array.astype(np.float64)
    n_frames = int(ds.get("NumberOfFrames", 1))
    if counts.ndim == 2:
        counts = counts[np.newaxis]
    if counts.shape[0] != n_frames:
        raise InputFileError(f"{name}: NumberOfFrames {n_frames} but {counts.shape[0]} frames of pixel data")
    rwvm = ds.get("RealWorldValueMappingSequence")
    value_source = "counts (stored x RescaleSlope + RescaleIntercept)"
    if rwvm and calibration_factor_cps_per_mbq is None:
        item = rwvm[0]
        values = counts * float(item.get("RealWorldValueSlope", 1.0)) + float(item.get("RealWorldValueIntercept", 0.0))
        codes = item.get("MeasurementUnitsCodeSequence")
        unit = str(codes[0].get("CodeValue", "")) if codes else ""
        value_source = f"RealWorldValueMapping ({unit or 'no unit'})"
        warnings.append(
            f"{label}: SPECT values taken from Real World Value Mapping ({unit or 'no unit'}) and treated as a "
            "relative scale ("
            + (
                f"{emission_label}: a predictive run"
                if emission_label
                else "Y-90 bremsstrahlung SPECT needs a calibration factor for absolute activity"
            )
            + ")"
        )
    else:
        slope, intercept = checked_rescale(
            ds.get("RescaleSlope"), ds.get("RescaleIntercept"), source=f"{label}: {name}"
        )
        values = counts * slope + intercept

    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    array = values.transpose(2, 1, 0)  # frames [f, row, col] -> [col, row, f]
    origin = position
    if spacing_between_slices_mm < 0:
        array = array[:, :, ::-1]
        origin = position + (n_frames - 1) * spacing_between_slices_mm * normal
    direction = np.column_stack([row_dir, col_dir, normal])
    spacing = (pixel_spacing[1], pixel_spacing[0], abs(spacing_between_slices_mm))
    image = Image(np.ascontiguousarray(array), origin, spacing, direction)
    check_emission_values(image, source=label)

    scan = acquisition_start([ds])
    implant = header_implant_time(ds, scan.time if scan else None)
    units = "counts"
    duration_s = acquisition_duration_s(ds)
    if calibration_factor_cps_per_mbq is not None:
        if not calibration_factor_cps_per_mbq > 0:
            raise UnitsError(
                f"calibration factor must be positive counts/s/MBq, got {calibration_factor_cps_per_mbq!r}"
            )
        if duration_s is None:
            raise UnitsError(
                f"{name}: no RotationInformationSequence frame count and duration; expected the acquisition "
                "time to turn counts into activity; use relative calibration"
            )
        scale = 1e6 / (duration_s * calibration_factor_cps_per_mbq * image.voxel_volume_ml)
        scale *= frame_average_to_start(duration_s)
        image = image.with_array(image.array * scale)
        units = "Bq/mL"
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    administered = check_administered_activity(seq[0].get("RadionuclideTotalDose") if seq else None, warnings)
    provenance = {
        "modality": "NM",
        "sop_class_uid": str(ds.get("SOPClassUID", "")),
        "series_uid": str(ds.get("SeriesInstanceUID", "")),
        "series_description": str(ds.get("SeriesDescription", "")),
        "n_files": 1,
        "n_frames": n_frames,
        "spacing_between_slices_mm": spacing_between_slices_mm,
        "slice_thickness_mm": float(ds.SliceThickness) if ds.get("SliceThickness") not in (None, "") else None,
        "values": value_source,
        "acquisition_duration_s": duration_s,
        "calibration_factor_cps_per_mbq": calibration_factor_cps_per_mbq,
        "scan_time_source": scan.source if scan else None,
        "implant_time_source": implant.source if implant else None,
    }
    return EmissionVolume(
        image=image.with_array(image.array.astype(np.float32)),
        units=units,
        activity_time=scan.time if scan else None,
        implant_time=implant,
        administered_activity_bq=administered,
        warnings=tuple(warnings),
        provenance=provenance,
    )
