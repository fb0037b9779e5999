"""Threshold sets: the bundled files are valid and cited, and rules flag the right ROIs with their numbers."""

import pytest

from dosimetry.errors import InputFileError, OptionsError
from dosimetry.thresholds import available_threshold_sets, evaluate_thresholds, load_threshold_set, select_threshold_sets


def _stats(tumour_doses=(250.0, 150.0, 50.0), normal_gy=45.0, lsf_estimate_gy=31.0, perfused=False):
    rois = [{"name": "Liver", "role": "liver", "mean_gy": 60.0}]
    rois += [{"name": f"T{i + 1}", "role": "tumor", "mean_gy": d, "D70": d * 0.9} for i, d in enumerate(tumour_doses)]
    rois.append({"name": "tumors_all", "role": "tumor", "mean_gy": 180.0, "derived": "union"})
    rois.append({"name": "normal_liver", "role": "normal_liver", "mean_gy": normal_gy, "derived": "liver - tumours"})
    if perfused:
        rois.append({"name": "perfused_normal_liver", "role": "normal_liver", "mean_gy": 130.0, "derived": "p"})
    return {"rois": rois, "lung": {"roi": "Lungs", "mean_gy": 20.0, "voxel_mean_gy": 21.0,
                                   "lsf_estimate_gy": lsf_estimate_gy}}


def test_bundled_sets_are_cited_and_valid():
    sets = available_threshold_sets()
    assert {"chansanti2017", "zuckerman2019", "eanm2022-resin", "eanm2022-glass", "lung-ho1997"} <= set(sets)
    for ts in sets.values():
        assert ts.source and ts.rules and ts.population
    chansanti = {r.id: r for r in sets["chansanti2017"].rules}
    assert (chansanti["response"].threshold, chansanti["response"].comparison) == (191.3, ">=")
    assert (chansanti["no_response"].threshold, chansanti["no_response"].comparison) == (72.8, "<")
    assert {r.threshold for r in sets["zuckerman2019"].rules} == {25.4, 59.1}
    assert {r.threshold for r in sets["lung-ho1997"].rules} == {30.0, 50.0}


def test_per_lesion_response_flags_carry_value_threshold_and_source():
    flags = evaluate_thresholds(_stats(), [available_threshold_sets()["chansanti2017"]])
    by = {(r["rule"], r["roi"]): r for r in flags["results"]}
    assert by[("response", "T1")]["flag"] == "favourable" and by[("response", "T1")]["value"] == 250.0
    assert by[("response", "T2")]["status"] == "not met" and by[("no_response", "T2")]["status"] == "not met"
    assert by[("no_response", "T3")]["flag"] == "alert" and by[("no_response", "T3")]["threshold"] == 72.8
    assert ("response", "tumors_all") not in by          # per lesion: derived union not included
    assert "Chansanti" in flags["sets"][0]["source"]
    assert flags["counts"]["alert"] == 1 and flags["counts"]["favourable"] == 1


def test_threshold_equality_follows_the_comparison():
    at = evaluate_thresholds(_stats(tumour_doses=(191.3, 72.8)), [available_threshold_sets()["chansanti2017"]])
    by = {(r["rule"], r["roi"]): r["status"] for r in at["results"]}
    assert by[("response", "T1")] == "met"          # >= 191.3
    assert by[("no_response", "T2")] == "not met"   # < 72.8


def test_lung_limits_and_cumulative_needs_previous_dose():
    lung = [available_threshold_sets()["lung-ho1997"]]
    res = {r["rule"]: r for r in evaluate_thresholds(_stats(lsf_estimate_gy=31.0), lung)["results"]}
    assert res["single_treatment"]["flag"] == "alert"
    assert res["cumulative"]["status"] == "not evaluated" and "previous" in res["cumulative"]["note"]
    res = {r["rule"]: r for r in evaluate_thresholds(_stats(lsf_estimate_gy=25.0), lung,
                                                     previous_lung_dose_gy=26.0)["results"]}
    assert res["single_treatment"]["status"] == "not met"
    assert res["cumulative"]["value"] == pytest.approx(51.0) and res["cumulative"]["flag"] == "alert"
    res = {r["rule"]: r for r in evaluate_thresholds(_stats(lsf_estimate_gy=None), lung)["results"]}
    assert res["single_treatment"]["status"] == "not evaluated"


def test_glass_limit_uses_perfused_normal_liver_with_fallback():
    glass = [available_threshold_sets()["eanm2022-glass"]]
    res = {r["rule"]: r for r in evaluate_thresholds(_stats(perfused=True), glass)["results"]}
    assert res["perfused_normal_liver_limit"]["roi"] == "perfused_normal_liver"
    assert res["perfused_normal_liver_limit"]["flag"] == "alert"
    res = {r["rule"]: r for r in evaluate_thresholds(_stats(), glass)["results"]}
    assert res["perfused_normal_liver_limit"]["roi"] == "normal_liver" and "used" in res["perfused_normal_liver_limit"]["note"]


def test_selection_by_device_name_and_file(tmp_path):
    assert {s.device for s in select_threshold_sets(None, device="resin")} <= {None, "resin"}
    assert "eanm2022-glass" not in {s.name for s in select_threshold_sets(None, device="resin")}
    with pytest.raises(OptionsError, match="unknown threshold set"):
        select_threshold_sets(["nope"])
    custom = tmp_path / "mine.toml"
    custom.write_text('name = "mine"\nsource = "local protocol 2024"\npopulation = "HCC"\n'
                      '[[rules]]\nid = "d70"\nroi = "each_tumor"\nquantity = "D70"\ncomparison = "<"\n'
                      'threshold = 100\nlevel = "caution"\nmeaning = "D70 below 100 Gy"\n')
    (mine,) = select_threshold_sets([str(custom)])
    res = evaluate_thresholds(_stats(), [mine])["results"]
    assert [r["roi"] for r in res if r["flag"] == "caution"] == ["T3"]      # D70 = 45 Gy
    bad = tmp_path / "bad.toml"
    bad.write_text(custom.read_text().replace('comparison = "<"', 'comparison = "=<"'))
    with pytest.raises(OptionsError, match="comparison"):
        load_threshold_set(bad)
    with pytest.raises(InputFileError):
        load_threshold_set(tmp_path / "missing.toml")
