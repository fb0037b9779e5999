"""The sample DICOM study in data/samples/phantom_dicom loads as its NIfTI twin in data/samples/phantom."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dosimetry.dicom import load_study
from dosimetry.imageio import read_image

ROOT = Path(__file__).resolve().parents[1] / "data" / "samples"
DICOM, NIFTI = ROOT / "phantom_dicom", ROOT / "phantom"

pytestmark = pytest.mark.skipif(
    not (DICOM / "PET").is_dir() or not (NIFTI / "activity_bqml.nii.gz").is_file(),
    reason="sample DICOM study not generated (run scripts/make_sample_dicom.py)",
)


def test_sample_dicom_study_equals_its_nifti_twin():
    study = load_study(DICOM)
    activity = read_image(NIFTI / "activity_bqml.nii.gz")
    assert study.activity.same_grid(activity)
    assert study.activity.array.sum() == pytest.approx(float(activity.array.sum()), rel=0.005)
    assert np.max(np.abs(study.activity.array - activity.array)) <= 1e-3 * float(activity.array.max())
    assert (study.activity_time - study.implant_time).total_seconds() == pytest.approx(20 * 3600)
    assert study.administered_activity_bq == pytest.approx(2.0e9)
    assert study.warnings == ()
    for roi in study.rois:
        mask = read_image(NIFTI / "rois" / f"{roi.name}.nii.gz")
        assert np.array_equal(roi.mask.array, mask.array.astype(np.float32)), roi.name
    ct = read_image(NIFTI / "ct_hu.nii.gz")
    assert study.ct.same_grid(ct) and np.array_equal(study.ct.array, ct.array.astype(np.float32))
