"""DVH metrics and ROI statistics against exact values on constructed dose distributions."""

import numpy as np
import pytest

from dosimetry.image import Image
from dosimetry.pipeline import DosimetryOptions, run_dosimetry
from dosimetry.stats.roi_stats import STAT_KEYS, SortedDose, dvh_table, roi_statistics
from helpers import roi_on


def ramp_stats(n=1000):
    dose = np.arange(1, n + 1, dtype=float)  # 1..1000 Gy, one voxel each
    ones = np.ones(n)
    return roi_statistics(dose, ones, ones, ones, 1.0)


def test_dose_volume_metrics_on_a_ramp():
    stats, _ = ramp_stats()
    # hottest x % of 1000 unit voxels = the x*10 voxels with dose >= 1000 - 10x + 1
    for x in (2, 50, 70, 90, 98):
        assert stats[f"D{x}"] == pytest.approx(1000 - 10 * x + 1)
    for v in (20, 40, 70, 100, 120, 150, 200):
        assert stats[f"V{v}"] == pytest.approx(100.0 * (1000 - v + 1) / 1000)
    assert stats["mean_gy"] == pytest.approx(500.5)
    assert stats["min_gy"] == 1 and stats["max_gy"] == 1000
    assert stats["median_gy"] == stats["D50"]
    assert stats["std_gy"] == pytest.approx(np.std(np.arange(1, 1001)))
    assert set(STAT_KEYS) <= set(stats)


def test_fractional_weights_and_mass_weighted_mean():
    dose = np.array([10.0, 20.0, 30.0])
    weights = np.array([1.0, 0.5, 0.25])
    density = np.array([1.0, 1.0, 0.25])
    stats, _ = roi_statistics(dose, np.zeros(3), density, weights, 2.0)
    assert stats["volume_ml"] == pytest.approx(2.0 * 1.75)
    assert stats["mass_g"] == pytest.approx(2.0 * (1 + 0.5 + 0.0625))
    assert stats["mean_gy"] == pytest.approx((10 + 10 + 30 * 0.0625) / 1.5625)
    assert stats["voxel_mean_gy"] == pytest.approx((10 + 10 + 7.5) / 1.75)
    # V25 = the 0.25-weight voxel at 30 Gy out of 1.75
    assert stats["V20"] == pytest.approx(100 * 0.75 / 1.75)


def test_cumulative_dvh_is_monotone_and_starts_at_100():
    rng = np.random.default_rng(3)
    dose = rng.gamma(3, 20, 5000)
    s = SortedDose.from_weights(dose, np.ones_like(dose))
    axis, curves = dvh_table({"a": s})
    curve = curves["a"]
    assert curve[0] == pytest.approx(100.0)
    assert np.all(np.diff(curve) <= 1e-12)
    assert curve[-1] == 0.0
    i = np.searchsorted(axis, 60.0)
    assert curve[i] == pytest.approx(100 * np.mean(dose >= axis[i]))


def test_tumour_to_normal_and_normal_liver_subtraction():
    image = Image(np.zeros((20, 20, 20), np.float32), spacing_mm=4.0)
    liver = np.zeros(image.shape, bool)
    liver[2:18, 2:18, 2:18] = True
    tumour = np.zeros(image.shape, bool)
    tumour[5:9, 5:9, 5:9] = True
    activity = np.where(liver, 1e5, 0.0)
    activity[tumour] = 5e5
    result = run_dosimetry(
        image.with_array(activity.astype(np.float32)),
        [roi_on(image, liver, "liver", "liver"), roi_on(image, tumour, "T1", "tumor")],
        options=DosimetryOptions(scan_delay_h=0, activity_units="Bq/mL"),
    )
    tn = result.stats["tumor_to_normal"]
    assert tn["dose_ratio"] == pytest.approx(5.0, rel=1e-5)
    assert tn["activity_ratio"] == pytest.approx(5.0, rel=1e-9)
    normal = result.roi("normal_liver")
    assert normal["volume_ml"] == pytest.approx((liver.sum() - tumour.sum()) * 0.064)
    assert normal["std_gy"] == pytest.approx(0.0, abs=1e-4)


def test_perfused_normal_liver_and_single_tumour():
    image = Image(np.zeros((20, 20, 20), np.float32), spacing_mm=4.0)
    liver = np.zeros(image.shape, bool)
    liver[2:18, 2:18, 2:18] = True
    perfused = np.zeros(image.shape, bool)
    perfused[2:10, 2:18, 2:18] = True  # the right lobe
    tumour = np.zeros(image.shape, bool)
    tumour[4:7, 4:7, 4:7] = True
    activity = np.where(perfused, 2e5, 0.0) + np.where(liver & ~perfused, 1e4, 0.0)
    activity[tumour] = 8e5
    result = run_dosimetry(
        image.with_array(activity.astype(np.float32)),
        [
            roi_on(image, liver, "liver", "liver"),
            roi_on(image, perfused, "right lobe", "perfused"),
            roi_on(image, tumour, "T1", "tumor"),
        ],
        options=DosimetryOptions(scan_delay_h=0, activity_units="Bq/mL"),
    )
    pn = result.roi("perfused_normal_liver")
    assert pn["volume_ml"] == pytest.approx((perfused.sum() - tumour.sum()) * 0.064)
    assert pn["std_gy"] == pytest.approx(0.0, abs=1e-4)
    names = [e["name"] for e in result.stats["rois"]]
    assert "tumors_all" not in names and result.stats["tumor_to_normal"]["tumor"] == "T1"
    assert result.roi("normal_liver")["mean_gy"] < pn["mean_gy"]
