"""load_study end to end on DICOM folders: selection, orientations, errors with clear messages."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

import dicom_builders as b
from dosimetry.dicom import AmbiguousSeriesError, format_inventory, inventory, load_study
from dosimetry.errors import GeometryError, InputFileError, UnitsError
from dosimetry.io.images import read_image, write_nifti


def _roi_stats(study):
    out = {}
    for roi in study.rois:
        w = roi.mask.array.astype(float)
        out[roi.name] = (w.sum() * roi.mask.voxel_volume_ml, float((w * study.activity.array).sum() / w.sum()))
    return out


def test_phantom_study_matches_its_nifti_twin(tmp_path):
    truth, uids = b.write_phantom_study(tmp_path / "study", total_dose=2.1e9)
    (tmp_path / "study" / "README.txt").write_text("not DICOM")
    (tmp_path / "study" / "DICOMDIR").write_bytes(b"\x00" * 200)
    twin = read_image(write_nifti(truth, tmp_path / "twin.nii.gz"))
    study = load_study(tmp_path / "study")
    assert study.activity.same_grid(twin)
    assert study.activity.array.sum() == pytest.approx(twin.array.sum(), rel=0.005)
    assert study.activity_units == "Bq/mL"
    assert study.activity_time == b.SCAN and study.implant_time == b.IMPLANT
    assert study.administered_activity_bq == pytest.approx(2.1e9)
    assert {r.name for r in study.rois} == {"Liver", "Tumour 1"}
    assert study.ct is not None and study.ct.array.dtype == np.int16
    assert study.provenance["emission"]["series_uid"] == uids["pet"]
    assert "PHANTOM" not in repr(study.provenance) and "Phantom" not in repr(study.provenance)


def test_orientations_give_the_same_statistics_and_world_positions(tmp_path):
    results = {}
    for orientation in b.ORIENTATIONS:
        b.write_phantom_study(tmp_path / orientation, orientation=orientation, study_key=orientation)
        study = load_study(tmp_path / orientation)
        image = study.activity
        marker = np.unravel_index(np.argmax(image.array), image.shape)
        marker_world = image.index_to_world(marker)
        assert marker_world == pytest.approx(b.MARKER, abs=1e-3)
        # the PET marker lands on the CT marker (1000 HU) through world coordinates
        ct_idx = np.round(study.ct.world_to_index(marker_world)).astype(int)
        assert study.ct.array[tuple(ct_idx)] == 1000.0
        results[orientation] = (image.array.sum(), _roi_stats(study))
    ref_sum, ref_stats = results["HFS"]
    for orientation, (total, stats) in results.items():
        assert total == pytest.approx(ref_sum, rel=1e-4), orientation
        for name, (volume, mean) in ref_stats.items():
            assert stats[name][0] == pytest.approx(volume, rel=1e-3), (orientation, name)
            assert stats[name][1] == pytest.approx(mean, rel=1e-3), (orientation, name)


def test_two_pet_series_without_series_option(tmp_path):
    truth, uids = b.write_phantom_study(tmp_path / "s", with_rtstruct=False)
    other = b.uid("second pet")
    b.write_pet_series(
        tmp_path / "s" / "pet2",
        truth,
        study_uid=uids["study"],
        for_uid=uids["for"],
        series_uid=other,
        description="PET Y90 second recon",
    )
    with pytest.raises(AmbiguousSeriesError) as err:
        load_study(tmp_path / "s")
    message = str(err.value)
    assert uids["pet"] in message and other in message and "--series" in message and "12 images" in message
    assert "\n" not in message and err.value.exit_code == 7
    study = load_study(tmp_path / "s", series_uid=other)
    assert study.provenance["emission"]["series_uid"] == other
    with pytest.raises(InputFileError, match="not a series of this folder"):
        load_study(tmp_path / "s", series_uid="1.2.3.999")


def test_pet_and_rtstruct_on_different_frames_of_reference(tmp_path):
    b.write_phantom_study(tmp_path / "s", with_rtstruct=False)
    b.write_rtstruct(
        tmp_path / "s" / "rs.dcm",
        b.phantom_structures(),
        study_uid=b.uid("study"),
        for_uid="1.2.826.0.1.99",
        referenced_series_uid="1.2.826.0.1.98",
    )
    with pytest.raises(GeometryError, match="Frame of Reference"):
        load_study(tmp_path / "s")


def test_missing_slice(tmp_path):
    b.write_phantom_study(tmp_path / "s", skip_slices=(5,))
    with pytest.raises(GeometryError, match="missing"):
        load_study(tmp_path / "s")


def test_counts_with_absolute_calibration(tmp_path):
    b.write_phantom_study(tmp_path / "s", units="CNTS")
    with pytest.raises(UnitsError, match="Units is CNTS"):
        load_study(tmp_path / "s")
    assert load_study(tmp_path / "s", calibration="relative").activity_units == "counts"


def test_no_radiopharmaceutical_sequence_and_no_implant_time(tmp_path):
    b.write_phantom_study(tmp_path / "s", radiopharmaceutical=False, with_rtstruct=False)
    with pytest.raises(UnitsError, match="--implant-time"):
        load_study(tmp_path / "s")
    study = load_study(tmp_path / "s", implant_time="2024-03-01T16:00")
    assert study.implant_time == b.IMPLANT
    assert study.provenance["implant_time_source"] == "--implant-time"


def test_implant_time_option_overrides_the_header_with_a_warning(tmp_path):
    b.write_phantom_study(tmp_path / "s", with_rtstruct=False)
    study = load_study(tmp_path / "s", implant_time=b.IMPLANT + timedelta(hours=1))
    assert study.implant_time == b.IMPLANT + timedelta(hours=1)
    assert any("differs from the header" in w for w in study.warnings)


def test_scan_past_midnight_takes_the_day_before(tmp_path):
    implant = datetime(2024, 3, 1, 23, 30)
    scan = datetime(2024, 3, 2, 0, 40)
    b.write_phantom_study(
        tmp_path / "s", with_rtstruct=False, with_ct=False, implant=implant, scan=scan, implant_as_datetime=False
    )
    study = load_study(tmp_path / "s")
    assert study.implant_time == implant and study.activity_time == scan
    assert "midnight" in study.provenance["implant_time_source"]


def test_spect_needs_calibration_or_relative(tmp_path):
    counts = b.phantom_activity(b.symmetric_grid((12, 12, 8), 4.8))
    b.write_nm_recon(
        tmp_path / "s" / "nm.dcm", counts.with_array(np.round(counts.array / 100)), study_uid="1.2", for_uid="1.3"
    )
    with pytest.raises(UnitsError, match="calibration factor"):
        load_study(tmp_path / "s")
    assert load_study(tmp_path / "s", calibration="relative").activity_units == "counts"
    assert load_study(tmp_path / "s", calibration_factor_cps_per_mbq=10.0).activity_units == "Bq/mL"


def test_inventory_text(tmp_path):
    _, uids = b.write_phantom_study(tmp_path / "s")
    text = format_inventory(inventory(tmp_path / "s"))
    assert uids["pet"] in text and uids["ct"] in text and "rtstruct" in text and "Y-90" in text
    with pytest.raises(InputFileError, match="no DICOM"):
        inventory(_empty(tmp_path))


def _empty(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "a.txt").write_text("x")
    return folder
