"""Planning from the MAA scan: activity for a target dose from the predictive map, lung limits, LSF from counts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from dosimetry import constants as c
from dosimetry.errors import OptionsError, RoiError
from dosimetry.image import Image
from dosimetry.pipeline import DosimetryOptions, run_dosimetry
from dosimetry.stats.clinical import ClinicalOptions
from dosimetry.stats.lung_shunt import planar_lung_shunt_fraction, spect_lung_shunt
from dosimetry.stats.prescription import Target, prescribe_activity
from helpers import roi_on

K_LDM = c.Y90_LDM_GY_KG_PER_GBQ  # local deposition: D = K A / M for a uniform region
DENSITY = 1.06
SHAPE = (24, 20, 22)
SPACING = 4.0


def _masks():
    liver = np.zeros(SHAPE, bool)
    liver[3:21, 3:17, 3:17] = True
    left, right = liver.copy(), liver.copy()
    left[:, :, 10:] = False
    right[:, :, :10] = False
    lung = np.zeros(SHAPE, bool)
    lung[3:21, 3:17, 18:21] = True
    return liver, left, right, lung


def _predictive(tmp_conc=(1.0, 3.0, 0.2), *, targets=None, metric="mean", lsf=None, lung=True, previous=None):
    """A Tc-99m MAA image: left lobe, right lobe and lung at relative concentrations; LDM, uniform density."""
    liver, left, right, lung_mask = _masks()
    grid = Image(np.zeros(SHAPE, np.float32), (-40.0, -30.0, -20.0), (SPACING,) * 3)
    counts = np.zeros(SHAPE, np.float32)
    counts[left], counts[right], counts[lung_mask] = tmp_conc
    rois = [
        roi_on(grid, liver, "Liver", "liver"),
        roi_on(grid, left, "Left lobe", "perfused"),
        roi_on(grid, right, "Right lobe", "perfused"),
    ]
    if lung:
        rois.append(roi_on(grid, lung_mask, "Lungs", "lung"))
    options = DosimetryOptions(
        emission_nuclide="Tc-99m MAA",
        calibration="relative",
        calibration_roi="Liver",
        administered_activity_gbq=2.0,
        residual_fraction=0.0,
        lung_shunt_fraction=lsf,
        default_density_g_ml=DENSITY,
        clinical=ClinicalOptions(targets=targets, target_metric=metric, previous_lung_dose_gy=previous, device="glass"),
    )
    return run_dosimetry(grid.with_array(counts), rois, options=options), (liver, left, right, lung_mask)


def _mass_kg(mask):
    return mask.sum() * SPACING**3 / 1000 * DENSITY / 1000


def test_uniform_liver_gives_exactly_the_scaled_activity_the_mird_activity():
    result, (liver, *_rest) = _predictive((2.0, 2.0, 0.0), targets=(("Liver", 80.0),), lung=False)
    p = result.stats["planning"]["prescription"]
    mean_gy = result.roi("Liver")["mean_gy"]
    assert mean_gy == pytest.approx(K_LDM * 2.0 / _mass_kg(liver), rel=1e-5)  # the planned 2 GBq, uniform
    # A = A_planned x D_target / D_roi, which for a uniform liver is the MIRD activity 80 M / K
    assert p["total_activity_gbq"] == pytest.approx(2.0 * 80.0 / mean_gy, rel=1e-12)
    assert p["total_activity_gbq"] == pytest.approx(80.0 * _mass_kg(liver) / K_LDM, rel=1e-5)
    assert [v["activity_share"] for v in p["volumes"]] == [1.0]
    # a uniform dose has D70 = mean: the same activity
    d70 = _predictive((2.0, 2.0, 0.0), targets=(("Liver", 80.0),), metric="d70", lung=False)[0]
    assert d70.stats["planning"]["prescription"]["metric_key"] == "D70"
    assert d70.stats["planning"]["prescription"]["total_activity_gbq"] == pytest.approx(
        p["total_activity_gbq"], rel=1e-5
    )


def test_d70_target_scales_the_d70_not_the_mean():
    result, _ = _predictive((1.0, 3.0, 0.0), targets=(("Liver", 100.0),), metric="d70", lung=False)
    liver = result.roi("Liver")
    assert liver["D70"] < liver["mean_gy"]  # the left third is colder
    p = result.stats["planning"]["prescription"]
    assert p["total_activity_gbq"] == pytest.approx(2.0 * 100.0 / liver["D70"], rel=1e-12)


def test_several_perfused_volumes_each_get_the_mird_activity_of_their_own_lobe():
    result, (_liver, left, right, lung) = _predictive(targets=(("Left lobe", 100.0), ("Right lobe", 150.0)))
    p = result.stats["planning"]["prescription"]
    by_roi = {v["roi"]: v for v in p["volumes"]}
    # no typed LSF: the calibration put the planned 2 GBq into the liver (LSF 0) and the MAA lung counts give
    # the shunt, so the map stands for A_eff = 2 / (1 - LSF) GBq administered
    lsf = 0.2 * lung.sum() / (0.2 * lung.sum() + 1.0 * left.sum() + 3.0 * right.sum())
    assert p["calibration_lung_shunt_fraction"] == 0.0
    assert p["effective_activity_gbq"] == pytest.approx(2.0 / (1 - lsf), rel=1e-6)
    # uniform within each lobe (LDM): injection i needs the MIRD activity D_i M_i / (K (1 - LSF)), whatever the
    # MAA split between the lobes
    assert by_roi["Left lobe"]["activity_gbq"] == pytest.approx(100.0 * _mass_kg(left) / K_LDM / (1 - lsf), rel=1e-5)
    assert by_roi["Right lobe"]["activity_gbq"] == pytest.approx(150.0 * _mass_kg(right) / K_LDM / (1 - lsf), 1e-5)
    # the shares are the MAA split: 1 x 7 columns against 3 x 7 columns
    assert by_roi["Left lobe"]["activity_share"] == pytest.approx(0.25, rel=1e-6)
    assert p["total_activity_gbq"] == pytest.approx(sum(v["activity_gbq"] for v in p["volumes"]), rel=1e-12)
    # targets equal to the doses of the map give back the activity the map stands for (here no LSF: planned)
    planned = {n: result.roi(n)["mean_gy"] for n in ("Left lobe", "Right lobe")}
    same = prescribe_activity(result.stats, list(planned.items()), roi_weights=result.roi_weights)
    assert same.total_activity_gbq == pytest.approx(2.0, rel=1e-12) and same.effective_activity_gbq == 2.0


def test_overlapping_volumes_outside_the_liver_unknown_rois_and_y90_runs_are_refused():
    result, (liver, left, right, lung) = _predictive()
    weights = dict(result.roi_weights)
    weights["Right lobe"] = np.clip(
        np.asarray(weights["Right lobe"]) + np.asarray(weights["Left lobe"]), 0, 1
    )  # covers left
    with pytest.raises(RoiError, match="overlap"):
        prescribe_activity(result.stats, [("Left lobe", 100.0), ("Right lobe", 100.0)], roi_weights=weights)
    with pytest.raises(RoiError, match="outside the liver"):
        prescribe_activity(result.stats, [("Left lobe", 100.0), ("Lungs", 10.0)], roi_weights=result.roi_weights)
    with pytest.raises(RoiError, match="'Segment 4' not found"):
        prescribe_activity(result.stats, [("Segment 4", 100.0)])
    with pytest.raises(OptionsError, match="more than once"):
        prescribe_activity(result.stats, [("Liver", 100.0), ("Liver", 90.0)])
    with pytest.raises(OptionsError, match="cGy"):
        Target("Liver", 12000.0)
    y90 = {**result.stats, "emission": {"verdict": "Y-90"}}
    with pytest.raises(OptionsError, match="predictive run"):
        prescribe_activity(y90, [("Liver", 100.0)])
    # the pipeline refuses it before any dose is computed
    grid = Image(np.ones(SHAPE, np.float32), spacing_mm=SPACING)
    with pytest.raises(OptionsError, match="needs a predictive run"):
        run_dosimetry(
            grid,
            [roi_on(grid, liver, "Liver", "liver")],
            options=DosimetryOptions(
                emission_nuclide="Y-90",
                calibration="relative",
                administered_activity_gbq=2.0,
                clinical=ClinicalOptions(targets=(("Liver", 100.0),)),
            ),
        )


def _stats(*, lung_gy_at_planned=10.0, lsf=None):  # lsf: the typed one the calibration used
    return {
        "emission": {"verdict": "Tc-99m predictive"},
        "inputs": {"options": {"administered_activity_gbq": 1.0, "residual_fraction": 0.0, "lung_shunt_fraction": lsf}},
        "rois": [{"name": "Liver", "role": "liver", "volume_ml": 1500.0, "mean_gy": 50.0, "D70": 45.0}],
        "lung": {"roi": "Lungs", "mean_gy": lung_gy_at_planned, "lung_mass_kg": 1.0, "lung_mass_source": "given"},
    }


@pytest.mark.parametrize(
    "target_gy, previous_gy, single, cumulative",
    [
        (150.0, None, False, False),  # 3 GBq: lung 30.0 Gy, at the limit: within
        (151.0, None, True, False),  # 30.2 Gy: above 30
        (150.0, 20.0, False, False),  # cumulative 50.0: at the limit
        (150.0, 20.5, False, True),  # cumulative 50.5
        (100.0, 35.0, False, True),  # 20 Gy now, 55 cumulative
    ],
)
def test_lung_limits_at_and_across_30_and_50_gy(target_gy, previous_gy, single, cumulative):
    p = prescribe_activity(_stats(), [("Liver", target_gy)], previous_lung_dose_gy=previous_gy)
    lung = p.lung
    assert lung.lung_dose_gy == pytest.approx(10.0 * target_gy / 50.0, rel=1e-12)
    assert lung.lung_dose_source == "predictive map"
    assert (lung.exceeds_single, lung.exceeds_cumulative) == (single, cumulative)
    room = min(30.0, 50.0 - (previous_gy or 0.0))
    assert lung.max_activity_gbq == pytest.approx(room / 10.0, rel=1e-12)  # 10 Gy per GBq
    assert p.devices["resin"]["status"] == ("not recommended" if single or cumulative else "within limits")


def test_lung_shunt_estimate_is_used_when_larger_and_resin_is_refused_above_20_percent():
    # LSF 0.25, 1 kg: 49.67 x 2 GBq x 0.25 = 24.835 Gy against the map's 2 x 2 = 4 Gy
    p = prescribe_activity(_stats(lung_gy_at_planned=2.0, lsf=0.25), [("Liver", 100.0)], lung_shunt_fraction=0.25)
    assert p.total_activity_gbq == pytest.approx(2.0, rel=1e-12)
    assert p.lung.lsf_estimate_gy == pytest.approx(49.67 * 2.0 * 0.25, rel=1e-12)
    assert p.lung.lung_dose_source == "lung-shunt estimate" and not p.lung.exceeds_single
    assert p.devices["resin"]["status"] == "not recommended" and "20%" in p.devices["resin"]["reasons"][0]
    assert p.devices["glass"]["status"] == "within limits"
    assert prescribe_activity(_stats(), [("Liver", 100.0)], device="glass").devices.keys() == {"glass"}


def test_planar_geometric_mean_lung_shunt_by_hand():
    # proportional views: GM ratio 1/20 -> LSF 1/21
    assert planar_lung_shunt_fraction(1000, 900, 20000, 18000) == pytest.approx(1 / 21, rel=1e-12)
    # lung GM sqrt(400 x 1600) = 800, liver GM sqrt(10000 x 6400) = 8000 -> 1/11 (the arithmetic mean: 1000/9200)
    assert planar_lung_shunt_fraction(400, 1600, 10000, 6400) == pytest.approx(1 / 11, rel=1e-12)
    with pytest.raises(OptionsError, match="counts >= 0"):
        planar_lung_shunt_fraction(-1, 900, 20000, 18000)
    with pytest.raises(OptionsError, match="both 0"):
        planar_lung_shunt_fraction(0, 0, 0, 0)


def test_spect_lung_shunt_from_the_maa_counts_by_hand_and_which_is_used():
    result, (_liver, left, right, lung) = _predictive((1.0, 3.0, 0.2))
    counts = {"lung": 0.2 * lung.sum(), "liver": 1.0 * left.sum() + 3.0 * right.sum()}
    expected = counts["lung"] / (counts["lung"] + counts["liver"])
    record = result.stats["planning"]["lung_shunt"]
    assert record["image"]["lung_shunt_fraction"] == pytest.approx(expected, rel=1e-6)
    assert record["image"]["lung_roi"] == "Lungs" and record["image"]["liver_rois"] == ["Liver"]
    assert record["image"]["lung_volume_ml"] == pytest.approx(lung.sum() * SPACING**3 / 1000, rel=1e-6)
    assert record["used"] == "image (MAA SPECT counts)" and record["typed"] is None
    typed = _predictive((1.0, 3.0, 0.2), lsf=0.05, targets=(("Liver", 100.0),))[0].stats["planning"]
    assert typed["lung_shunt"]["used"] == "typed (--lung-shunt)" and typed["lung_shunt"]["lung_shunt_fraction"] == 0.05
    assert typed["lung_shunt"]["image"]["lung_shunt_fraction"] == pytest.approx(expected, rel=1e-6)
    assert typed["prescription"]["lung"]["lung_shunt_fraction"] == 0.05
    # no lung ROI: no image value, said so
    assert spect_lung_shunt({"rois": [{"name": "Liver", "role": "liver", "activity_mbq": 1.0}]}) is None


def test_cli_maa_study_end_to_end(tmp_path):
    from test_dicom_end_to_end import assert_fails_cleanly, cli
    from test_emission_policy import _maa_study

    _maa_study(tmp_path / "s")
    out = tmp_path / "out"
    args = ["run", str(tmp_path / "s"), "--calibration", "relative", "--administered-gbq", "2.0"]
    proc = cli(
        [*args, "--residual-fraction", "0", "--lung-shunt", "0.08", "--target", "Liver=90", "--out", str(out), "-q"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((out / "stats.json").read_text())
    p = stats["planning"]["prescription"]
    liver = next(r for r in stats["rois"] if r["name"] == "Liver")
    assert p["total_activity_gbq"] == pytest.approx(2.0 * 90.0 / liver["mean_gy"], rel=1e-9)
    # lung: no lung ROI on this study, so the typed LSF estimate with the conventional 1 kg
    expected_lung = 49.67 * p["total_activity_gbq"] * 0.08 / 1.0
    assert p["lung"]["lung_dose_gy"] == pytest.approx(expected_lung, rel=1e-9)
    assert stats["planning"]["lung_shunt"]["used"] == "typed (--lung-shunt)"
    assert math.isfinite(p["lung"]["max_activity_gbq"])
    bad = cli([*args, "--target", "Segment 4=90", "--out", str(tmp_path / "o2"), "-q"], tmp_path)
    assert_fails_cleanly(bad, tmp_path / "o2", 6, "'Segment 4' not found")


def test_report_shows_the_prescription_and_lung_shunt_traceable_to_stats_json(tmp_path):
    from dosimetry.export.results import write_results
    from test_report import _Cells, _matches, _resolve

    result, _ = _predictive(targets=(("Left lobe", 100.0), ("Right lobe", 150.0)), previous=45.0)
    out = write_results(result, tmp_path / "out")
    stats = json.loads((out / "stats.json").read_text())
    parser = _Cells()
    parser.feed((out / "report.html").read_text(encoding="utf-8"))
    paths = [path for path, _ in parser.cells]
    assert "planning/prescription/volumes/1/activity_gbq" in paths
    assert "planning/lung_shunt/image/lung_shunt_fraction" in paths
    for path, printed in parser.cells:
        assert _matches(printed, _resolve(stats, path)), (path, printed)
    text = " ".join(parser.text)
    assert stats["planning"]["prescription"]["lung"]["exceeds_cumulative"] and "above 50 Gy cumulative" in text


def test_sample_phantom_as_a_maa_scan_gives_its_true_lung_shunt_and_the_scaled_activity():
    from pathlib import Path

    from dosimetry import read_slicer_segmentation

    sample = Path(__file__).resolve().parents[1] / "data" / "samples" / "phantom"
    truth = json.loads((sample / "truth.json").read_text())
    rois, _ = read_slicer_segmentation(sample / "rois.seg.nrrd")
    options = DosimetryOptions(
        emission_nuclide="Tc-99m MAA",
        calibration="relative",
        administered_activity_gbq=2.0,
        residual_fraction=0.0,
        clinical=ClinicalOptions(targets=(("Liver", 80.0),), previous_lung_dose_gy=20.0),
    )
    result = run_dosimetry(sample / "activity_bqml.nii.gz", rois, ct=sample / "ct_hu.nii.gz", options=options)
    planning = result.stats["planning"]
    # lung 97 MBq against liver and tumours 1843 MBq at implant: LSF 0.05 (the voxelised phantom holds it to 1e-6)
    assert planning["lung_shunt"]["image"]["lung_shunt_fraction"] == pytest.approx(truth["lung_shunt_fraction"], 1e-6)
    assert planning["lung_shunt"]["used"] == "image (MAA SPECT counts)"
    p = planning["prescription"]
    # the liver was calibrated to the planned 2 GBq (no typed LSF): the map stands for 2 / (1 - 0.05) GBq
    lsf = planning["lung_shunt"]["lung_shunt_fraction"]
    assert p["total_activity_gbq"] == pytest.approx(2.0 / (1 - lsf) * 80.0 / result.roi("Liver")["mean_gy"], 1e-12)
    lung = p["lung"]
    assert lung["map_lung_gy"] == pytest.approx(
        result.roi("lungs_all")["mean_gy"] * p["total_activity_gbq"] / (2.0 / (1 - lsf)), rel=1e-12
    )
    # the lung-shunt estimate: 49.67 A LSF / M_lung with the lung ROI's CT mass
    assert lung["lsf_estimate_gy"] == pytest.approx(
        49.67 * p["total_activity_gbq"] * lsf / lung["lung_mass_kg"], rel=1e-12
    )
    # ... and agrees with the map's lung dose (uniform lungs, LDM 49.76 against 49.67 Gy kg/GBq) only with A_eff:
    # scaling by the planned 2 GBq instead would leave them 5 % apart
    assert lung["lsf_estimate_gy"] == pytest.approx(lung["map_lung_gy"], rel=0.005)
    assert lung["cumulative_lung_dose_gy"] == pytest.approx(lung["lung_dose_gy"] + 20.0, rel=1e-12)
    assert lung["exceeds_cumulative"] == (lung["cumulative_lung_dose_gy"] > 50.0)
    # the planning models take the same image LSF (no typed value): MIRD by hand, 49.67 A (1 - LSF) / M
    assert planning["inputs"]["lung_shunt_fraction"] == lsf
    assert planning["inputs"]["lung_shunt_source"] == "image (MAA SPECT counts)"
    mird = planning["models"]["mird"]
    assert mird["target_roi"] == "Liver" and mird["target_mass_kg"] == result.roi("Liver")["mass_g"] / 1000
    assert mird["predicted_target_gy"] == pytest.approx(49.67 * 2.0 * (1 - lsf) / mird["target_mass_kg"], rel=1e-12)
