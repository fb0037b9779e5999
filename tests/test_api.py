"""The Python API: one call from images in memory, no files, no global state between runs."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import dosimetry
from dosimetry.io.images import read_image
from dosimetry.pipeline import DosimetryOptions, DosimetryResult, run_dosimetry
from dosimetry.io.roi_files import read_slicer_segmentation

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "phantom"


def test_in_memory_run_returns_dose_stats_and_dvh():
    activity = read_image(SAMPLE / "activity_bqml.nii.gz")
    ct = read_image(SAMPLE / "ct_hu.nii.gz")
    rois, _ = read_slicer_segmentation(SAMPLE / "rois.seg.nrrd")
    result = run_dosimetry(activity, rois, ct=ct, options=DosimetryOptions(scan_delay_h=20, activity_units="Bq/mL"))
    assert isinstance(result, DosimetryResult)
    assert result.dose_gy.same_grid(activity) and result.dose_gy.array.dtype == np.float32
    assert set(result.dvh_volume_percent) == {e["name"] for e in result.stats["rois"]}
    assert result.stats["inputs"]["activity"]["file"] is None  # nothing read from disk by the pipeline
    assert dosimetry.run_dosimetry is run_dosimetry


def test_parallel_runs_give_the_same_results_as_sequential_ones():
    """Studies with different options run side by side without leaking state into each other."""
    activity = read_image(SAMPLE / "activity_bqml.nii.gz")
    rois, _ = read_slicer_segmentation(SAMPLE / "rois.seg.nrrd")
    option_sets = [
        DosimetryOptions(scan_delay_h=h, activity_units="Bq/mL", default_density_g_ml=rho)
        for h, rho in ((0, 1.03), (20, 1.06), (48, 1.0), (5, 1.03))
    ]
    sequential = [run_dosimetry(activity, rois, options=o).roi("Tumor 2")["mean_gy"] for o in option_sets]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(
            pool.map(lambda o: run_dosimetry(activity, rois, options=o).roi("Tumor 2")["mean_gy"], option_sets)
        )
    assert parallel == sequential
    assert len(set(sequential)) == 4
    # the inputs were not modified
    assert np.array_equal(activity.array, read_image(SAMPLE / "activity_bqml.nii.gz").array)


def test_result_roi_lookup_names_the_choices():
    activity = read_image(SAMPLE / "activity_bqml.nii.gz")
    rois, _ = read_slicer_segmentation(SAMPLE / "rois.seg.nrrd")
    result = run_dosimetry(activity, rois, options=DosimetryOptions(scan_delay_h=20, activity_units="Bq/mL"))
    with pytest.raises(KeyError, match="Tumor 1"):
        result.roi("tumour one")
