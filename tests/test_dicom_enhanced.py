"""Enhanced PET, Legacy Converted Enhanced PET/CT: the same activity, geometry and times as the classic twin.

Legacy Converted Enhanced images are made from classic series by highdicom; the Enhanced PET image is
written by hand (tests/dicom_builders.write_enhanced_pet, PS3.3 A.56).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pydicom
import pytest

import dicom_builders as b
from dosimetry.dicom import inventory, load_study
from dosimetry.dicom.ct import load_ct
from dosimetry.dicom.discovery import Kind
from dosimetry.dicom.pet import load_pet
from dosimetry.errors import GeometryError, UnitsError

SHAPE = (16, 14, 10)


def _truth(orientation="HFS"):
    return b.phantom_activity(b.symmetric_grid(SHAPE, 4.0, b.ORIENTATIONS[orientation]))


def _assert_same_activity(image, reference, rel=0.005):
    assert image.same_grid(reference)
    assert image.array.sum() == pytest.approx(reference.array.sum(), rel=rel)
    assert np.max(np.abs(image.array - reference.array)) <= 0.005 * reference.array.max()


def _marker_world(image):
    return image.index_to_world(np.unravel_index(np.argmax(image.array), image.shape))


def _classic(tmp_path, truth, **kwargs):
    """The classic twin: single-frame files, START correction, per-slice slopes 100x apart."""
    files = b.write_pet_series(tmp_path / "classic", truth, study_uid=b.uid("s"), for_uid=b.uid("f"), **kwargs)
    return load_pet(files)


def _enhanced(tmp_path, truth, name="enhanced.dcm", **kwargs):
    return b.write_enhanced_pet(tmp_path / name, truth, study_uid=b.uid("s"), for_uid=b.uid("f"), **kwargs)


# --- Legacy Converted Enhanced (highdicom) -----------------------------------------------------------------
@pytest.mark.parametrize("correction, slices_per_bed", [("START", None), ("ADMIN", 4)])
def test_legacy_converted_study_matches_the_classic_study(tmp_path, correction, slices_per_bed):
    truth, uids = b.write_phantom_study(
        tmp_path / "classic", correction=correction, with_rtstruct=False, pet_shape=SHAPE, slices_per_bed=slices_per_bed
    )
    pet_lce = b.write_legacy_converted(
        sorted((tmp_path / "classic" / "pet").glob("*.dcm")), tmp_path / "lce" / "pet.dcm"
    )
    b.write_legacy_converted(sorted((tmp_path / "classic" / "ct").glob("*.dcm")), tmp_path / "lce" / "ct.dcm")
    ds = pydicom.dcmread(pet_lce, stop_before_pixels=True)
    assert ds.SOPClassUID == b.LEGACY_PET_SOP and "Units" not in ds and "DecayCorrection" not in ds
    per_frame_df = (
        "DecayFactor"
        in ds.PerFrameFunctionalGroupsSequence[0].get(
            "UnassignedPerFrameConvertedAttributesSequence", [pydicom.Dataset()]
        )[0]
    )
    assert per_frame_df == (slices_per_bed is not None)  # one factor per bed: per-frame, else shared

    classic = load_study(tmp_path / "classic")
    lce = load_study(tmp_path / "lce")
    _assert_same_activity(lce.activity, classic.activity)
    _assert_same_activity(lce.activity, truth)
    assert _marker_world(lce.activity) == pytest.approx(b.MARKER, abs=1e-3)
    assert _marker_world(lce.activity) == pytest.approx(_marker_world(classic.activity), abs=1e-6)
    assert lce.activity_units == classic.activity_units == "Bq/mL"
    assert lce.activity_time == classic.activity_time == b.SCAN
    assert lce.implant_time == classic.implant_time == b.IMPLANT
    assert lce.provenance["implant_time_source"] == "RadiopharmaceuticalStartDateTime"
    assert lce.administered_activity_bq == pytest.approx(classic.administered_activity_bq)
    emission = lce.provenance["emission"]
    assert emission["sop_class_uid"] == b.LEGACY_PET_SOP
    assert emission["decay_correction"] == correction and emission["decay_factors_from_header"]
    assert emission["units_header"] == "BQML" and emission["header_nuclide"] == "Y-90"
    assert emission["rescale_slope_range"][1] / emission["rescale_slope_range"][0] == pytest.approx(100, rel=1e-6)
    assert not any("DecayFactor" in w or "Units" in w for w in lce.warnings)
    # CT through its Legacy Converted twin: same HU on the same grid
    assert lce.provenance["ct"]["series_uid"] != classic.provenance["ct"]["series_uid"]
    assert lce.ct.same_grid(classic.ct) and np.array_equal(lce.ct.array, classic.ct.array)
    # the inventory reads the converted attributes too
    record = next(r for r in inventory(tmp_path / "lce") if r.kind is Kind.EMISSION)
    assert (record.units, record.nuclide, record.attenuation_corrected) == ("BQML", "Y-90", True)


@pytest.mark.parametrize("orientation", ["FFS", "HFP"])
def test_legacy_converted_ct_has_the_hu_and_geometry_of_the_classic_series(tmp_path, orientation):
    hu = b.phantom_ct(b.symmetric_grid((24, 20, 16), 3.0, b.ORIENTATIONS[orientation]))
    files = b.write_ct_series(tmp_path / "ct", hu, study_uid="1.2", for_uid="1.3")
    path = b.write_legacy_converted(files, tmp_path / "lce_ct.dcm")
    assert pydicom.dcmread(path, stop_before_pixels=True).SOPClassUID == b.LEGACY_CT_SOP
    classic, lce = load_ct(files), load_ct([path])
    assert lce.image.same_grid(classic.image) and lce.image.same_grid(hu)
    assert np.array_equal(lce.image.array, classic.image.array)
    assert lce.image.array.dtype == classic.image.array.dtype == np.int16  # integer HU, kept exactly
    marker = np.argwhere(lce.image.array == 1000.0)
    assert np.all(np.abs(lce.image.index_to_world(marker) - b.MARKER) <= 2.0 + 1e-6)
    assert lce.provenance["n_frames"] == hu.shape[2]


def test_legacy_converted_single_slice_ct_takes_the_thickness_from_pixel_measures(tmp_path):
    hu = b.phantom_ct(b.symmetric_grid((24, 20, 1), 3.0))
    files = b.write_ct_series(tmp_path / "ct", hu, study_uid="1.2", for_uid="1.3")
    ct = load_ct([b.write_legacy_converted(files, tmp_path / "lce_ct.dcm")])
    assert ct.image.spacing_mm[2] == pytest.approx(3.0)


# --- Enhanced PET written by hand ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "reference",
    [b.IMPLANT, b.SCAN + timedelta(hours=3, minutes=7), None],
    ids=["corrected-to-implant", "corrected-to-other-time", "not-corrected"],
)
def test_enhanced_pet_matches_the_classic_twin(tmp_path, reference):
    truth = _truth()
    classic = _classic(tmp_path, truth, slices_per_bed=4, frame_duration_s=1200)
    pet = load_pet([_enhanced(tmp_path, truth, decay_reference=reference, slices_per_bed=4, frame_duration_s=1200)])
    _assert_same_activity(pet.image, classic.image)
    _assert_same_activity(pet.image, truth)
    assert _marker_world(pet.image) == pytest.approx(b.MARKER, abs=1e-3)
    assert pet.units == "Bq/mL"
    assert pet.activity_time == classic.activity_time == b.SCAN
    assert pet.implant_time.time == classic.implant_time.time == b.IMPLANT
    assert pet.administered_activity_bq == pytest.approx(2.1e9)
    assert pet.provenance["decay_correction"] == ("NONE" if reference is None else "DATETIME")
    assert pet.provenance["decay_factors_from_header"] == (reference is not None)
    assert pet.provenance["sop_class_uid"] == b.ENHANCED_PET_SOP
    assert pet.provenance["value_mapping"] == "RealWorldValueMapping"
    assert pet.warnings == ()


@pytest.mark.parametrize("orientation", ["HFS", "FFS"])
def test_enhanced_pet_frames_in_reverse_slice_order(tmp_path, orientation):
    truth = _truth(orientation)
    path = _enhanced(tmp_path, truth, reverse=True, slices_per_bed=3)
    positions = [
        float(g.PlanePositionSequence[0].ImagePositionPatient[2])
        for g in pydicom.dcmread(path, stop_before_pixels=True).PerFrameFunctionalGroupsSequence
    ]
    normal_z = b.ORIENTATIONS[orientation][2, 2]
    assert np.all(np.diff(positions) * normal_z < 0)  # stored against the slice normal
    pet = load_pet([path])
    _assert_same_activity(pet.image, truth)
    assert _marker_world(pet.image) == pytest.approx(b.MARKER, abs=1e-3)


def test_enhanced_pet_scale_from_the_bqml_real_world_value_mapping(tmp_path):
    """Pixel Value Transformation at identity, an SUVbw mapping first: the Bq/ml mapping gives the scale."""
    truth = _truth()
    pet = load_pet([_enhanced(tmp_path, truth, value_mapping="rwvm")])
    _assert_same_activity(pet.image, truth)
    assert pet.provenance["rescale_slope_range"][0] > 1.0


def test_enhanced_pet_without_decay_factors_is_recomputed_from_the_correction_datetime(tmp_path):
    truth = _truth()
    pet = load_pet([_enhanced(tmp_path, truth, decay_factors=False, slices_per_bed=3)])
    _assert_same_activity(pet.image, truth)
    assert any("no DecayFactor" in w for w in pet.warnings)
    assert pet.provenance["decay_reference_time"] == b.IMPLANT.isoformat()


def test_enhanced_pet_that_does_not_state_its_decay_correction(tmp_path):
    truth = _truth()
    path = _enhanced(tmp_path, truth, slices_per_bed=3)
    ds = pydicom.dcmread(path)
    del ds.DecayCorrected
    ds.save_as(path)
    pet = load_pet([path])  # Decay Factors present: divided out, with a warning
    _assert_same_activity(pet.image, truth)
    assert any("does not say whether" in w for w in pet.warnings)
    for group in ds.PerFrameFunctionalGroupsSequence:
        del group.PETFrameCorrectionFactorsSequence[0].DecayFactor
    ds.save_as(path)
    with pytest.raises(UnitsError, match="neither Decay Corrected"):
        load_pet([path])


def test_enhanced_pet_missing_frame_is_detected(tmp_path):
    with pytest.raises(GeometryError, match="1 slice\\(s\\) missing"):
        load_pet([_enhanced(tmp_path, _truth(), skip_frames=(4,))])


def test_enhanced_pet_with_fewer_frame_descriptions_than_frames(tmp_path):
    path = _enhanced(tmp_path, _truth())
    ds = pydicom.dcmread(path)
    del ds.PerFrameFunctionalGroupsSequence[3]
    ds.save_as(path)
    with pytest.raises(GeometryError, match="missing"):
        load_pet([path])


@pytest.mark.parametrize("units, term", [(b.COUNTS_UCUM, "CNTS"), (b.SUVBW_UCUM, "{SUVBW}G/ML")])
def test_enhanced_pet_units_other_than_bqml_need_relative_calibration(tmp_path, units, term):
    path = _enhanced(tmp_path, _truth(), units=units)
    with pytest.raises(UnitsError, match=f"Units is {term}; expected BQML"):
        load_pet([path])
    assert load_pet([path], calibration="relative").units == "counts"


def test_enhanced_pet_study_with_classic_ct(tmp_path):
    truth = _truth()
    _enhanced(tmp_path / "study", truth, name="pet/enhanced.dcm")
    ct = b.phantom_ct(b.symmetric_grid((34, 30, 22), 2.0))
    b.write_ct_series(tmp_path / "study" / "ct", ct, study_uid=b.uid("s"), for_uid=b.uid("f"))
    record = next(r for r in inventory(tmp_path / "study") if r.kind is Kind.EMISSION)
    assert (record.units, record.nuclide, record.attenuation_corrected, record.n_images) == (
        "Bq/ml",
        "Y-90",
        True,
        SHAPE[2],
    )
    study = load_study(tmp_path / "study")
    _assert_same_activity(study.activity, truth)
    assert study.activity_time == b.SCAN and study.implant_time == b.IMPLANT
    assert study.ct is not None
    ct_idx = np.round(study.ct.world_to_index(_marker_world(study.activity))).astype(int)
    assert study.ct.array[tuple(ct_idx)] == 1000.0
