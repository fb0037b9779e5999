"""NM multi-frame SPECT: geometry from the Detector Information Sequence, signed slice spacing, calibration."""

from __future__ import annotations

import math

import numpy as np
import pydicom
import pytest

import dicom_builders as b
from dosimetry.dicom.spect import load_spect
from dosimetry.errors import GeometryError, InputFileError

SHAPE = (16, 14, 10)


def _counts():
    truth = b.phantom_activity(b.symmetric_grid(SHAPE, 4.8))
    return truth.with_array(np.round(truth.array / 100.0))


@pytest.mark.parametrize("orientation", ["HFS", "FFS"])
def test_negative_spacing_between_slices_loads_in_the_right_order(tmp_path, orientation):
    counts = b.phantom_activity(b.symmetric_grid(SHAPE, 4.8, b.ORIENTATIONS[orientation]))
    counts = counts.with_array(np.round(counts.array / 100.0))
    pos = load_spect([b.write_nm_recon(tmp_path / "pos.dcm", counts, study_uid="1.2", for_uid="1.3")])
    neg = load_spect(
        [b.write_nm_recon(tmp_path / "neg.dcm", counts, study_uid="1.2", for_uid="1.3", negative_spacing=True)]
    )
    hottest = counts.index_to_world(np.unravel_index(np.argmax(counts.array), counts.shape))
    for spect in (pos, neg):
        assert spect.units == "counts"
        assert spect.image.spacing_mm[2] == pytest.approx(4.8)  # SpacingBetweenSlices, not SliceThickness 9.9
        assert np.linalg.det(spect.image.direction) == pytest.approx(1.0)
        marker = np.unravel_index(np.argmax(spect.image.array), spect.image.shape)
        assert spect.image.index_to_world(marker) == pytest.approx(hottest, abs=1e-3)
        # every voxel value sits at the same world position as in the written image
        assert spect.image.array.sum() == pytest.approx(counts.array.sum())
    assert np.array_equal(pos.image.array, neg.image.array)
    assert neg.provenance["spacing_between_slices_mm"] == pytest.approx(-4.8)


def test_calibration_factor_gives_bq_per_ml(tmp_path):
    counts = _counts()
    path = b.write_nm_recon(
        tmp_path / "nm.dcm", counts, study_uid="1.2", for_uid="1.3", frames_per_rotation=64, frame_duration_ms=20000
    )
    spect = load_spect([path], calibration_factor_cps_per_mbq=12.0)
    duration_s = 64 * 20.0
    lam = math.log(2) / b.Y90_HALF_LIFE_S
    expected = (
        counts.array
        / duration_s
        / 12.0
        * 1e6
        / counts.voxel_volume_ml
        * lam
        * duration_s
        / -math.expm1(-lam * duration_s)
    )
    assert spect.units == "Bq/mL"
    assert np.allclose(spect.image.array, expected, rtol=1e-5)
    assert spect.activity_time == b.SCAN and spect.implant_time.time == b.IMPLANT


def test_missing_spacing_between_slices_is_an_error(tmp_path):
    path = b.write_nm_recon(tmp_path / "nm.dcm", _counts(), study_uid="1.2", for_uid="1.3")
    ds = pydicom.dcmread(path)
    del ds.SpacingBetweenSlices
    ds.save_as(path)
    with pytest.raises(GeometryError, match="SliceThickness .* is the slice width, not the spacing"):
        load_spect([path])


def test_projections_are_not_a_volume(tmp_path):
    path = b.write_nm_recon(tmp_path / "nm.dcm", _counts(), study_uid="1.2", for_uid="1.3")
    ds = pydicom.dcmread(path)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "TOMO", "EMISSION"]
    ds.save_as(path)
    with pytest.raises(InputFileError, match="RECON TOMO"):
        load_spect([path])
