"""CT loader: HU, geometry, gantry tilt; real CT headers shipped with pydicom."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

import dicom_builders as b
from dosimetry.dicom import inventory
from dosimetry.dicom.ct import load_ct
from dosimetry.dicom.discovery import Kind
from dosimetry.dicom.seg import seg_to_rois
from dosimetry.errors import GeometryError
from dosimetry.roi import Role


def _ct(orientation="HFS"):
    return b.phantom_ct(b.symmetric_grid((32, 28, 24), 3.0, b.ORIENTATIONS[orientation]))


@pytest.mark.parametrize("orientation", ["HFS", "FFS", "HFP"])
def test_ct_in_hu_with_world_geometry(tmp_path, orientation):
    hu = _ct(orientation)
    ct = load_ct(b.write_ct_series(tmp_path, hu, study_uid="1.2", for_uid="1.3"))
    assert ct.image.array.dtype == np.int16  # integer HU kept exactly, in half the memory of float32
    world = ct.image.index_to_world(np.argwhere(ct.image.array == 60.0))
    assert np.all(np.sum((world / b.LIVER_RADII) ** 2, axis=1) <= 1 + 1e-9)
    assert ct.image.array.sum() == pytest.approx(hu.array.sum())
    assert ct.image.array.min() == -1000.0


def test_gantry_tilt_is_resampled_onto_world_positions(tmp_path):
    hu = b.phantom_ct(b.symmetric_grid((30, 30, 14), 2.0))
    files = b.write_ct_series(tmp_path, hu, study_uid="1.2", for_uid="1.3", tilt_step_mm=0.6)
    with pytest.raises(GeometryError, match="gantry tilt of 16.7"):
        load_ct(files, tilt="refuse")
    ct = load_ct(files)
    assert any("gantry tilt" in w for w in ct.warnings)
    image = ct.image
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in image.shape], indexing="ij"), -1).reshape(-1, 3)
    world = image.index_to_world(idx)
    # the slice k of the tilted stack holds the phantom shifted by k x 0.6 mm along y
    k = np.round((world[:, 2] - hu.origin_mm[2]) / 2.0)
    source = world - np.column_stack([np.zeros_like(k), k * 0.6, np.zeros_like(k)])
    truth = np.where(
        np.sum((source / b.LIVER_RADII) ** 2, axis=1) <= 1,
        60.0,
        np.where(np.all(np.abs(source) <= [40, 35, 30], axis=1), 0.0, -1000.0),
    )
    inside = np.all(np.abs(source) <= [28, 28, 12], axis=1)  # away from the stack ends
    agree = np.abs(image.array.reshape(-1)[inside] - truth[inside]) < 1.0
    assert agree.mean() > 0.9


# --- real files shipped with pydicom ---------------------------------------------------------------------------
def test_real_ct_small_single_slice():
    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    ct = load_ct([path])
    assert ct.image.shape == (128, 128, 1)
    assert ct.image.origin_mm == pytest.approx([float(v) for v in ds.ImagePositionPatient])
    assert ct.image.spacing_mm[:2] == pytest.approx([float(ds.PixelSpacing[1]), float(ds.PixelSpacing[0])])
    assert ct.image.spacing_mm[2] == pytest.approx(float(ds.SliceThickness))
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert np.array_equal(ct.image.array[:, :, 0], hu.T.astype(np.float32))


def _dicomdir_tests() -> Path:
    return Path(get_testdata_file("DICOMDIR")).parent / "77654033"


def test_real_ct_series_sorted_by_position(tmp_path):
    folder = Path(get_testdata_file("DICOMDIR")).parent / "98892001" / "CT5N"
    files = sorted(folder.iterdir())
    ct = load_ct(files)
    z = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in files]
    assert ct.image.shape[2] == len(files)
    assert ct.image.spacing_mm[2] == pytest.approx(2.5, abs=1e-3)
    assert ct.image.origin_mm[2] == pytest.approx(min(z))


def test_real_ct_series_with_gap_is_refused():
    folder = _dicomdir_tests() / "CT2"
    with pytest.raises(GeometryError, match="missing|uneven"):
        load_ct(sorted(folder.iterdir()))


def test_real_localizer_pair_is_refused():
    folder = Path(get_testdata_file("DICOMDIR")).parent / "98892001" / "CT2N"
    with pytest.raises(GeometryError, match="different ImageOrientationPatient"):
        load_ct(sorted(folder.iterdir()))


def test_inventory_of_a_real_dicomdir_folder(tmp_path):
    source = Path(get_testdata_file("DICOMDIR")).parent
    shutil.copytree(source, tmp_path / "dd")
    (tmp_path / "dd" / "notes.txt").write_text("not DICOM")
    records = inventory(tmp_path / "dd")
    ct = [r for r in records if r.kind is Kind.CT]
    assert {r.n_images for r in ct} >= {4, 5}
    assert all(r.files for r in records)


def test_real_seg_file_via_highdicom():
    rois, warnings = seg_to_rois(get_testdata_file("liver_1frame.dcm"))
    assert [(r.name, r.role) for r in rois] == [("Liver", Role.LIVER)]
    assert rois[0].mask.shape[0] * rois[0].mask.shape[1] * rois[0].mask.shape[2] == 512 * 512
    assert 0 < rois[0].mask.array.sum() < 512 * 512


def test_ct_with_a_fractional_rescale_stays_float(tmp_path):
    """Integer HU are kept as int16; a rescale that gives fractions (slope 0.5) keeps float32, values exact."""
    import pydicom

    hu = _ct()
    files = b.write_ct_series(tmp_path, hu, study_uid="1.2", for_uid="1.3")
    as_int = load_ct(files).image.array
    for path in files:
        ds = pydicom.dcmread(path)
        ds.RescaleSlope = 0.5
        ds.save_as(path)
    halved = load_ct(files).image.array
    assert as_int.dtype == np.int16 and halved.dtype == np.float32
    assert np.array_equal(halved, ((as_int.astype(np.float64) + 1024) * 0.5 - 1024).astype(np.float32))
