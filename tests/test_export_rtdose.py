"""RT Dose export: round trip through pydicom, SimpleITK and our reader, world positions, and dciodvfy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

from dosimetry.errors import GeometryError, UnitsError
from dosimetry.export import DOSE_SUMMATION_TYPE, read_rt_dose, write_rt_dose
from dosimetry.image import Image
from dosimetry.io.images import from_sitk
from helpers import oblique_direction, rotation, world_grid

CT_SOP = "1.2.840.10008.5.1.4.1.1.2"


def build_ct_series(
    folder: Path,
    *,
    shape=(24, 20, 8),
    spacing_mm=(2.0, 2.5, 3.0),
    direction=None,
    origin_mm=(-20.0, -30.0, -10.0),
    hu=None,
) -> list[Dataset]:
    """A small single-frame CT series written with pydicom (one file per slice) and returned as datasets.

    ``shape`` is (columns, rows, slices) = our (i, j, k); the slice normal is the third direction column,
    which must be right-handed (row x column). ``hu`` (same shape) gives the pixel values in HU.
    """
    folder.mkdir(parents=True, exist_ok=True)
    direction = np.eye(3) if direction is None else np.asarray(direction, float)
    assert np.allclose(np.cross(direction[:, 0], direction[:, 1]), direction[:, 2])
    grid = Image(np.zeros(shape, np.int16), origin_mm, spacing_mm, direction)
    if hu is None:
        centre = grid.index_to_world((np.asarray(shape) - 1) / 2.0)
        xyz = world_grid(grid)
        hu = np.where(np.linalg.norm(xyz - centre, axis=-1) < 18.0, 60.0, -1000.0)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    datasets = []
    for k in range(shape[2]):
        ds = Dataset()
        sop = generate_uid()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CT_SOP
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.SOPClassUID, ds.SOPInstanceUID = CT_SOP, sop
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Phantom^Test", "PHANTOM-01", "19600101", "O"
        ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime = study, "20240301", "120000"
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "ACC1", ""
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.Modality = series, 2, "CT"
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame, ""
        ds.Manufacturer = "test"
        ds.InstanceNumber = k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.ImagePositionPatient = [float(v) for v in grid.index_to_world([0.0, 0.0, float(k)])]
        ds.ImageOrientationPatient = [float(v) for v in np.concatenate([direction[:, 0], direction[:, 1]])]
        ds.PixelSpacing = [float(spacing_mm[1]), float(spacing_mm[0])]
        ds.SliceThickness = float(spacing_mm[2])
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = shape[1], shape[0]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.KVP = 120
        stored = (np.asarray(hu)[:, :, k].T + 1024).astype(np.int16)
        ds.PixelData = np.ascontiguousarray(stored).tobytes()
        ds.save_as(folder / f"ct_{k:03d}.dcm", enforce_file_format=True)
        datasets.append(pydicom.dcmread(folder / f"ct_{k:03d}.dcm"))
    return datasets


def asymmetric_dose(direction) -> Image:
    """An oblique dose grid with an off-centre hot spot, a gradient and a cold corner (max about 300 Gy)."""
    grid = Image(np.zeros((20, 14, 9), np.float32), (-12.0, 7.5, -30.0), (2.5, 3.0, 4.0), direction)
    xyz = world_grid(grid)
    hot = np.array([4.0, 10.0, -18.0])
    dose = 280.0 * np.exp(-np.sum((xyz - hot) ** 2, axis=-1) / (2 * 9.0**2)) + 0.4 * (xyz[..., 0] + 40.0)
    dose[:4, :3, :2] = 0.0
    return grid.with_array(dose.astype(np.float32))


def _dciodvfy(path: Path) -> tuple[list[str], str, bool]:
    """Error lines, the whole output, and whether dciodvfy aborted on 32-bit pixels (its known assertion)."""
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    output = run.stdout + run.stderr
    aborted = run.returncode < 0 or "bitsallocated <= bytesinword" in output
    return [line for line in output.splitlines() if line.startswith("Error")], output, aborted


def _with_16_bit_pixels(path: Path, out: Path) -> Path:
    """The same RT Dose with 16-bit pixels (also valid, C.8.8.3.4): everything else is validated as written."""
    ds = pydicom.dcmread(path)
    counts = ds.pixel_array
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelData = (counts >> 16).astype("<u2").tobytes()
    ds.DoseGridScaling = format_number_as_ds(float(ds.DoseGridScaling) * 65536)
    ds.save_as(out, enforce_file_format=True)
    return out


def assert_dciodvfy_accepts(path: Path, tmp_path: Path) -> None:
    """No 'Error' lines from dciodvfy; the Debian 2022 build aborts on any 32-bit pixel data (an assertion in
    its OW reader), and then the header is validated on a 16-bit copy."""
    errors, output, aborted = _dciodvfy(path)
    if aborted:
        errors, output, aborted = _dciodvfy(_with_16_bit_pixels(path, tmp_path / "dose16.dcm"))
        assert not aborted, output
    assert "RTDose" in output, output
    assert not errors, output


DIRECTIONS = {
    "axial": np.eye(3),
    "oblique_right_handed": rotation("z", 25) @ rotation("x", -20) @ rotation("y", 10),
    "oblique_left_handed": oblique_direction(),  # k axis opposite to row x column: frames written reversed
}


@pytest.mark.parametrize("name", sorted(DIRECTIONS))
def test_rt_dose_round_trip(tmp_path, name):
    reference = build_ct_series(tmp_path / "ct", shape=(6, 5, 3))[0]
    dose = asymmetric_dose(DIRECTIONS[name])
    path = write_rt_dose(
        dose, reference, tmp_path / "dose.dcm", series_description="test dose", tissue_heterogeneity_correction="IMAGE"
    )
    assert not list(tmp_path.glob(".*partial*"))

    # the header: study, frame of reference, units, scaling
    ds = pydicom.dcmread(path)
    assert ds.Modality == "RTDOSE" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.481.2"
    for keyword in ("PatientID", "PatientName", "StudyInstanceUID", "FrameOfReferenceUID"):
        assert ds[keyword].value == reference[keyword].value
    assert ds.SeriesInstanceUID != reference.SeriesInstanceUID
    assert (ds.DoseUnits, ds.DoseType, ds.DoseSummationType) == ("GY", "PHYSICAL", DOSE_SUMMATION_TYPE)
    assert (ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation) == (32, 32, 0)
    offsets = np.asarray(ds.GridFrameOffsetVector, float)
    assert offsets[0] == 0 and np.all(np.diff(offsets) > 0)
    counts = ds.pixel_array
    assert counts.dtype == np.uint32 and counts.max() > 0.99 * (2**32 - 1)
    assert float(ds.DoseGridScaling) * counts.max() == pytest.approx(float(dose.array.max()), rel=1e-6)
    normal = np.cross(
        np.asarray(ds.ImageOrientationPatient[:3], float), np.asarray(ds.ImageOrientationPatient[3:], float)
    )
    assert abs(np.dot(normal, dose.direction[:, 2])) == pytest.approx(1.0)

    # our reader: same values at the same world positions (the k order may be reversed)
    back = read_rt_dose(path)
    ijk = back.world_to_index(world_grid(dose))
    assert np.allclose(ijk, np.round(ijk), atol=1e-4)
    ijk = np.round(ijk).astype(int)
    sampled = back.array[ijk[..., 0], ijk[..., 1], ijk[..., 2]]
    np.testing.assert_allclose(sampled, dose.array, rtol=1e-3, atol=1e-6 * float(dose.array.max()))

    # SimpleITK (GDCM) reads the same geometry and values: world positions of its indices agree with ours.
    # It returns the stored 32-bit counts; Dose Grid Scaling (3004,000E) is read from its metadata.
    itk = sitk.ReadImage(str(path))
    scaling = float(itk.GetMetaData("3004|000e"))
    from_itk = from_sitk(itk)
    assert from_itk.same_grid(back, tol_mm=1e-3)
    for index in [(0, 0, 0), (19, 0, 0), (0, 13, 0), (0, 0, 8), (19, 13, 8), (7, 3, 5)]:
        assert np.allclose(itk.TransformIndexToPhysicalPoint(index), from_itk.index_to_world(index), atol=1e-3)
        assert np.allclose(itk.TransformIndexToPhysicalPoint(index), back.index_to_world(index), atol=1e-3)
    itk_values = from_itk.array[ijk[..., 0], ijk[..., 1], ijk[..., 2]] * scaling
    np.testing.assert_allclose(itk_values, dose.array, rtol=1e-3, atol=1e-6 * float(dose.array.max()))

    if shutil.which("dciodvfy"):
        assert_dciodvfy_accepts(path, tmp_path)


def test_negative_and_non_finite_doses(tmp_path):
    reference = build_ct_series(tmp_path / "ct", shape=(4, 4, 2))[0]
    dose = asymmetric_dose(np.eye(3))
    noisy = dose.array.copy()
    noisy[0, 0, 0] = -3.0
    path = write_rt_dose(dose.with_array(noisy), reference, tmp_path / "dose.dcm")
    ds = pydicom.dcmread(path)
    assert "1 negative voxels set to 0" in ds.DoseComment and len(ds.DoseComment) <= 64
    assert read_rt_dose(path).array.min() == 0.0
    noisy[1, 1, 1] = np.nan
    with pytest.raises(UnitsError):
        write_rt_dose(dose.with_array(noisy), reference, tmp_path / "bad.dcm")
    assert not (tmp_path / "bad.dcm").exists()
    del reference.FrameOfReferenceUID
    with pytest.raises(GeometryError, match="FrameOfReferenceUID"):
        write_rt_dose(dose, reference, tmp_path / "bad.dcm")
