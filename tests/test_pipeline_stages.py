"""The pipeline's named stages: run by hand they equal run_dosimetry; one quantified study, several methods;
every stage is timed in stats['timings_s'] (keys only: tests never assert timings)."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import dosimetry
from dosimetry.image import Image
from dosimetry.export.results import write_results
from dosimetry.pipeline import (
    DosimetryOptions,
    LoadedStudy,
    QuantifiedStudy,
    RoiOccupancy,
    StudyDose,
    compute_statistics,
    compute_study_dose,
    load_inputs,
    quantify_activity,
    resample_rois,
    run_dosimetry,
)
from dosimetry.progress import reporting
from dosimetry.geometry.resample import occupancy_on_grid
from dosimetry.image import nonzero_box
from helpers import roi_on

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "phantom"
STAGES = {"load", "resample ROIs", "quantify", "density", "dose", "statistics"}
OUTPUTS = {"output dose.nii.gz", "output stats.csv", "output dvh.csv", "output report.html", "output stats.json"}


def _without_timings(stats: dict) -> dict:
    return {k: v for k, v in stats.items() if k != "timings_s"}


def _same_result(a, b) -> None:
    assert np.array_equal(a.dose_gy.array, b.dose_gy.array)
    assert np.array_equal(a.activity_bq.array, b.activity_bq.array)
    assert np.array_equal(a.density_g_ml.array, b.density_g_ml.array)
    assert json.dumps(_without_timings(a.stats), sort_keys=True, default=str) == json.dumps(
        _without_timings(b.stats), sort_keys=True, default=str
    )
    assert np.array_equal(a.dvh_dose_gy, b.dvh_dose_gy)
    assert a.dvh_volume_percent.keys() == b.dvh_volume_percent.keys()
    for name in a.dvh_volume_percent:
        assert np.array_equal(a.dvh_volume_percent[name], b.dvh_volume_percent[name])
        assert np.array_equal(a.roi_weights[name], b.roi_weights[name])


def test_stages_by_hand_equal_run_dosimetry(phantom_sample):
    activity, ct, rois, options = phantom_sample
    whole = run_dosimetry(activity, rois, ct=ct, options=options)
    study = load_inputs(activity, rois, ct=ct, options=options)
    assert isinstance(study, LoadedStudy) and study.activity is activity and study.ct is ct
    occupancy = resample_rois(study)
    assert isinstance(occupancy, RoiOccupancy) and set(occupancy.weights) == {r.name for r in rois}
    quantified = quantify_activity(study, occupancy)
    assert isinstance(quantified, QuantifiedStudy)
    dose = compute_study_dose(quantified)
    assert isinstance(dose, StudyDose) and dose.method == "ldm"
    _same_result(compute_statistics(quantified, dose), whole)


def test_one_quantified_study_dosed_by_two_methods(phantom_sample):
    activity, ct, rois, options = phantom_sample
    study = load_inputs(activity, rois, ct=ct, options=options)
    quantified = quantify_activity(study, resample_rois(study))
    by_method = {m: compute_statistics(quantified, compute_study_dose(quantified, method=m)) for m in ("ldm", "kernel")}
    for method, result in by_method.items():
        _same_result(result, run_dosimetry(activity, rois, ct=ct, options=replace(options, method=method)))
        assert result.stats["method"] == method
    # the methods differ (the kernel spreads the dose), and the shared stages were not changed by dosing
    assert not np.array_equal(by_method["ldm"].dose_gy.array, by_method["kernel"].dose_gy.array)
    assert by_method["ldm"].activity_bq is by_method["kernel"].activity_bq


def test_timings_name_every_stage_and_output(phantom_sample, tmp_path):
    activity, ct, rois, options = phantom_sample
    result = run_dosimetry(activity, rois, ct=ct, options=options)
    assert set(result.stats["timings_s"]) == STAGES
    write_results(result, tmp_path / "run")
    written = json.loads((tmp_path / "run" / "stats.json").read_text())["timings_s"]
    assert set(written) == STAGES | OUTPUTS
    assert all(isinstance(v, float) and v >= 0 for v in written.values())


def test_dicom_run_times_its_loading_and_exports(tmp_path):
    result = dosimetry.run_dicom_study(
        SAMPLE.parent / "phantom_dicom", options=DosimetryOptions(residual_fraction=0.03, lung_shunt_fraction=0.05)
    )
    assert set(result.stats["timings_s"]) == STAGES
    write_results(result, tmp_path / "run")
    written = json.loads((tmp_path / "run" / "stats.json").read_text())["timings_s"]
    assert set(written) == STAGES | OUTPUTS | {"output DICOM"}


def test_stages_are_reported_in_order(phantom_sample):
    activity, ct, rois, options = phantom_sample
    events = []

    class Recorder:
        def start(self, name, total):
            events.append(("start", name))

        def advance(self, name, steps):
            events.append(("advance", name))

        def finish(self, name, seconds):
            events.append(("finish", name))

    with reporting(Recorder()):
        run_dosimetry(activity, rois, ct=ct, options=options)
    started = [name for kind, name in events if kind == "start"]
    assert started == ["load", "resample ROIs", "quantify", "density", "dose", "statistics"]
    assert ("advance", "resample ROIs") in events and ("advance", "statistics") in events


def test_stage_functions_are_public_api():
    for name in (
        "load_inputs",
        "resample_rois",
        "quantify_activity",
        "compute_study_dose",
        "compute_statistics",
        "run_stages",
        "LoadedStudy",
        "RoiOccupancy",
        "QuantifiedStudy",
        "StudyDose",
    ):
        assert name in dosimetry.__all__
        assert getattr(dosimetry, name) is not None


def test_nonzero_box_from_projections():
    values = np.zeros((7, 8, 9), np.uint8)
    assert nonzero_box(values) is None
    values[2, 5, 1] = 1
    values[4, 3, 6] = 1
    lower, upper = nonzero_box(values)
    assert lower.tolist() == [2, 3, 1] and upper.tolist() == [5, 6, 7]


@pytest.mark.parametrize("fractional", [False, True])
def test_occupancy_of_a_mask_cropped_to_its_box_equals_the_full_mask(fractional):
    """Cropping a mask before resampling (the fast path) changes nothing: the same mask embedded in a much
    larger zero volume gives the same occupancy."""
    rng = np.random.default_rng(4)
    target = Image(np.zeros((20, 18, 16)), (-19.0, -17.0, -15.0), (2.0, 2.0, 2.0))
    small = (rng.random((30, 28, 24)) > 0.5).astype(np.float32)
    if fractional:
        small *= rng.random(small.shape).astype(np.float32)
    big = np.zeros((70, 60, 50), np.float32)
    big[20:50, 15:43, 13:37] = small
    spacing = np.array([0.7, 0.8, 0.9])
    big_mask = Image(big, (-24.5, -22.0, -20.0), spacing)
    small_mask = big_mask.crop((20, 15, 13), (50, 43, 37))
    assert np.array_equal(occupancy_on_grid(big_mask, target).array, occupancy_on_grid(small_mask, target).array)
    occupancy = occupancy_on_grid(big_mask, target).array
    assert occupancy.dtype == np.float32 and occupancy.max() > 0
    # the volume is kept
    assert occupancy.sum() * target.voxel_volume_ml == pytest.approx(big.sum() * big_mask.voxel_volume_ml, rel=0.05)


def test_stages_do_not_write_into_inputs(phantom_sample):
    activity, ct, rois, options = phantom_sample
    before = [activity.array.copy(), ct.array.copy(), *(r.mask.array.copy() for r in rois)]
    study = load_inputs(activity, rois, ct=ct, options=options)
    quantified = quantify_activity(study, resample_rois(study))
    compute_statistics(quantified, compute_study_dose(quantified, method="kernel"))
    after = [activity.array, ct.array, *(r.mask.array for r in rois)]
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_roi_helper_masks_work_through_the_stages():
    grid = Image(np.zeros((12, 12, 12)), (0, 0, 0), (4.0, 4.0, 4.0))
    activity = grid.with_array(np.full(grid.shape, 1.0e5))
    liver = roi_on(grid, np.ones(grid.shape), "liver", "liver")
    study = load_inputs(activity, [liver], options=DosimetryOptions(scan_delay_h=0, activity_units="Bq/mL"))
    quantified = quantify_activity(study, resample_rois(study))
    result = compute_statistics(quantified, compute_study_dose(quantified))
    assert result.roi("liver")["volume_ml"] == pytest.approx(12**3 * 0.064)
