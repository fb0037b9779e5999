"""PET loader: activity at scan start from realistic headers (decay correction, per-slice slopes, nuclide)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

import dicom_builders as b
from dosimetry.dicom.pet import check_administered_activity, load_pet
from dosimetry.errors import GeometryError, UnitsError
from dosimetry.io.images import read_image, write_nifti

SHAPE = (16, 14, 10)


def _truth():
    return b.phantom_activity(b.symmetric_grid(SHAPE, 4.0))


def _write(tmp_path, truth, **kwargs):
    return b.write_pet_series(tmp_path / "pet", truth, study_uid=b.uid("s"), for_uid=b.uid("f"), **kwargs)


def _assert_same_activity(image, truth, rel=0.005):
    assert image.same_grid(truth)
    assert image.array.sum() == pytest.approx(truth.array.sum(), rel=rel)
    # voxel-wise: quantisation of int16 with the coarsest slope is < 1/32000 x 100 of the maximum
    assert np.max(np.abs(image.array - truth.array)) <= 0.005 * truth.array.max()


@pytest.mark.parametrize("correction", ["START", "ADMIN", "NONE"])
@pytest.mark.parametrize("slope_ratio", [100.0, 0.01])
def test_decay_corrections_and_slopes_match_nifti_twin(tmp_path, correction, slope_ratio):
    truth = _truth()
    twin = read_image(write_nifti(truth, tmp_path / "twin.nii.gz"))
    files = _write(tmp_path, truth, correction=correction, slope_ratio=slope_ratio)
    slopes = [float(pydicom.dcmread(f, stop_before_pixels=True).RescaleSlope) for f in files]
    assert max(slopes) / min(slopes) == pytest.approx(100.0, rel=1e-6)
    pet = load_pet(files)
    _assert_same_activity(pet.image, twin)
    assert pet.units == "Bq/mL"
    assert pet.activity_time == b.SCAN  # AcquisitionTime, not the rewritten SeriesTime
    assert pet.implant_time.time == b.IMPLANT
    assert pet.provenance["decay_correction"] == correction
    assert pet.administered_activity_bq == pytest.approx(2.1e9)
    assert pet.warnings == ()


@pytest.mark.parametrize("correction", ["START", "ADMIN"])
def test_multi_bed_frames_are_referred_to_series_start(tmp_path, correction):
    truth = _truth()
    pet = load_pet(_write(tmp_path, truth, correction=correction, slices_per_bed=4, frame_duration_s=1800))
    _assert_same_activity(pet.image, truth)


@pytest.mark.parametrize("correction", ["START", "ADMIN"])
def test_scanner_set_to_f18_is_undone_with_a_warning(tmp_path, correction):
    truth = _truth()
    pet = load_pet(
        _write(
            tmp_path,
            truth,
            correction=correction,
            header_half_life_s=b.F18_HALF_LIFE_S,
            slices_per_bed=5,
            frame_duration_s=1200,
        )
    )
    _assert_same_activity(pet.image, truth)
    assert any("F-18" in w and "undone" in w for w in pet.warnings)


def test_admin_without_decay_factor_is_recomputed_from_the_implant_time(tmp_path):
    truth = _truth()
    files = _write(tmp_path, truth, correction="ADMIN")
    for f in files:
        ds = pydicom.dcmread(f)
        del ds.DecayFactor
        ds.save_as(f)
    pet = load_pet(files)
    _assert_same_activity(pet.image, truth)
    assert any("no DecayFactor" in w for w in pet.warnings)


@pytest.mark.parametrize(
    "half_life, refused", [("1e-300", True), ("0.001", True), ("abc", False), ("-5", False), ("inf", False)]
)
def test_absurd_header_half_life_without_decay_factor_never_overflows(tmp_path, half_life, refused):
    """ADMIN decay correction recomputed from the header half-life: one that is not a positive number is
    ignored with a warning (Y-90's is used); a tiny one is refused with one message naming the series
    (exp(lambda t) would overflow); never an OverflowError or a traceback."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    files = _write(tmp_path, _truth(), correction="ADMIN")
    tag = Tag("RadionuclideHalfLife")
    data = half_life.encode() + b" " * (len(half_life) % 2)
    for f in files:
        ds = pydicom.dcmread(f)
        del ds.DecayFactor
        ds.RadiopharmaceuticalInformationSequence[0][tag] = RawDataElement(tag, "DS", len(data), data, 0, True, True)
        ds.save_as(f)
    if refused:
        with pytest.raises(UnitsError, match="PET series Q: the scanner's decay correction cannot be recomputed"):
            load_pet(files, label="PET series Q")
    else:
        pet = load_pet(files, label="PET series Q")
        assert any("not a positive number of seconds" in w for w in pet.warnings), pet.warnings
        _assert_same_activity(pet.image, _truth())


def test_decay_correction_that_cannot_be_undone_is_an_error(tmp_path):
    files = _write(tmp_path, _truth(), correction="ADMIN", radiopharmaceutical=False)
    for f in files:
        ds = pydicom.dcmread(f)
        del ds.DecayFactor
        ds.save_as(f)
    with pytest.raises(UnitsError, match="cannot be undone"):
        load_pet(files)


def test_counts_units_need_relative_calibration(tmp_path):
    files = _write(tmp_path, _truth(), units="CNTS")
    with pytest.raises(UnitsError, match="Units is CNTS; expected BQML"):
        load_pet(files)
    assert load_pet(files, calibration="relative").units == "counts"


def test_missing_slice_is_detected(tmp_path):
    with pytest.raises(GeometryError, match="1 slice\\(s\\) missing"):
        load_pet(_write(tmp_path, _truth(), skip_slices=(4,)))


def test_uneven_spacing_is_detected(tmp_path):
    files = _write(tmp_path, _truth())
    ds = pydicom.dcmread(files[3])
    ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + 1.3
    ds.save_as(files[3])
    with pytest.raises(GeometryError, match="uneven slice spacing"):
        load_pet(files)


def test_administered_activity_magnitude_check():
    warnings = []
    assert check_administered_activity("2.1e9", warnings) == pytest.approx(2.1e9)
    assert check_administered_activity("2100", warnings) == pytest.approx(2.1e9)
    assert "MBq" in warnings[-1]
    assert check_administered_activity("2.1e13", warnings) is None
    assert "outside" in warnings[-1]
