"""Threshold sets: the bundled files are valid and cited, and rules flag the right ROIs with their numbers."""

import re
import tomllib
from importlib import resources

import pytest

from dosimetry.errors import InputFileError, OptionsError
from dosimetry.stats.thresholds import (
    available_threshold_sets,
    evaluate_thresholds,
    load_threshold_set,
    select_threshold_sets,
)


def _stats(tumour_doses=(250.0, 150.0, 50.0), normal_gy=45.0, lsf_estimate_gy=31.0, perfused=False):
    rois = [{"name": "Liver", "role": "liver", "mean_gy": 60.0}]
    rois += [{"name": f"T{i + 1}", "role": "tumor", "mean_gy": d, "D70": d * 0.9} for i, d in enumerate(tumour_doses)]
    rois.append({"name": "tumors_all", "role": "tumor", "mean_gy": 180.0, "derived": "union"})
    rois.append({"name": "normal_liver", "role": "normal_liver", "mean_gy": normal_gy, "derived": "liver - tumours"})
    if perfused:
        rois.append({"name": "perfused_normal_liver", "role": "normal_liver", "mean_gy": 130.0, "derived": "p"})
    return {
        "rois": rois,
        "lung": {"roi": "Lungs", "mean_gy": 20.0, "voxel_mean_gy": 21.0, "lsf_estimate_gy": lsf_estimate_gy},
    }


# The record: every bundled rule, with the number, comparison, ROI and quantity its documented source gives
# (see source_location / source_quote in the set's TOML) and whether that was verified against the source text.
# A set whose number differs from this record, or a rule missing from it, fails.
EANM_T2 = "EANM 2022 (Weber et al., doi:10.1007/s00259-021-05600-z) Table 2, glass, HCC"
EANM_T3 = "EANM 2022 (Weber et al., doi:10.1007/s00259-021-05600-z) Table 3, resin, HCC"
RECORD = {
    # (set, rule): (threshold, comparison, roi selectors, quantity, verified, where)
    ("eanm2022-resin", "tumour_target"): (
        100.0,
        "<",
        ("all_tumors",),
        "mean_gy",
        True,
        EANM_T3 + ", tumour >= 100-120",
    ),
    ("eanm2022-resin", "tumour_target_upper"): (
        120.0,
        "<",
        ("all_tumors",),
        "mean_gy",
        True,
        EANM_T3 + ", tumour >= 100-120",
    ),
    ("eanm2022-resin", "normal_liver_limit"): (
        40.0,
        ">=",
        ("perfused_normal_liver", "normal_liver"),
        "mean_gy",
        True,
        EANM_T3 + ", normal perfused liver < 40",
    ),
    ("eanm2022-resin", "normal_liver_limit_compromised"): (
        30.0,
        ">=",
        ("perfused_normal_liver", "normal_liver"),
        "mean_gy",
        True,
        EANM_T3 + ", bilobar, pretreated/compromised < 30",
    ),
    ("eanm2022-glass", "tumour_target"): (205.0, "<", ("all_tumors",), "mean_gy", True, EANM_T2 + ", tumour >= 205"),
    ("eanm2022-glass", "tumour_target_intensified"): (
        250.0,
        "<",
        ("all_tumors",),
        "mean_gy",
        True,
        EANM_T2 + ", tumour >= 250-300",
    ),
    ("eanm2022-glass", "perfused_normal_liver_limit"): (
        120.0,
        ">=",
        ("perfused_normal_liver",),
        "mean_gy",
        True,
        EANM_T2 + ", unilobar, normal perfused liver < 120 if HR < 30%",
    ),
    ("eanm2022-glass", "whole_normal_liver_limit"): (
        75.0,
        ">=",
        ("normal_liver",),
        "mean_gy",
        True,
        EANM_T2 + ", whole normal liver < 75",
    ),
    ("eanm2022-glass", "whole_normal_liver_limit_high_bilirubin"): (
        50.0,
        ">=",
        ("normal_liver",),
        "mean_gy",
        True,
        EANM_T2 + ", whole normal liver 50 (bilirubin > 1.1)",
    ),
    ("eanm2022-glass", "whole_normal_liver_limit_normal_bilirubin"): (
        90.0,
        ">=",
        ("normal_liver",),
        "mean_gy",
        True,
        EANM_T2 + ", whole normal liver 90 (bilirubin < 1.1)",
    ),
    ("zuckerman2019", "above_no_toxicity_group_mean"): (
        25.4,
        ">",
        ("normal_liver",),
        "mean_gy",
        True,
        "Zuckerman 2019 abstract, no-toxicity group mean 25.4",
    ),
    ("zuckerman2019", "toxicity_group_mean"): (
        59.1,
        ">=",
        ("normal_liver",),
        "mean_gy",
        False,
        "Zuckerman 2019 abstract, cut off before the toxicity-group value",
    ),
    ("chansanti2017", "response"): (
        191.3,
        ">=",
        ("each_tumor",),
        "mean_gy",
        False,
        "Chansanti 2017: text not available",
    ),
    ("chansanti2017", "no_response"): (
        72.8,
        "<",
        ("each_tumor",),
        "mean_gy",
        False,
        "Chansanti 2017: text not available",
    ),
    ("lung-ho1997", "single_treatment"): (
        30.0,
        ">",
        ("lung",),
        "lsf_estimate_gy",
        False,
        "Ho 1997 not read; secondary sources only",
    ),
    ("lung-ho1997", "cumulative"): (
        50.0,
        ">",
        ("lung",),
        "cumulative_lsf_estimate_gy",
        False,
        "Ho 1997 not read; secondary sources only",
    ),
}
SOURCE_FIELDS = ("source_value", "source_location", "source_population", "source_quantity", "source_quote")
DOI = re.compile(r"\b10\.\d{4,9}/\S+")
JOURNAL_REF = re.compile(r"\b(19|20)\d\d;\s*\d+(\(\d+\))?:\s*\d+")  # e.g. 2022;49(5):1682 or 1997;24:293


def _raw_sets():
    folder = resources.files("dosimetry.stats").joinpath("threshold_sets")
    return {e.name: tomllib.loads(e.read_text(encoding="utf-8")) for e in folder.iterdir() if e.name.endswith(".toml")}


def test_bundled_sets_are_cited_and_valid():
    sets = available_threshold_sets()
    assert {"chansanti2017", "zuckerman2019", "eanm2022-resin", "eanm2022-glass", "lung-ho1997"} <= set(sets)
    for ts in sets.values():
        assert ts.source and ts.rules and ts.population
        assert DOI.search(ts.source) or JOURNAL_REF.search(ts.source), f"{ts.name}: no DOI or journal reference"
    for name in ("eanm2022-resin", "eanm2022-glass"):
        assert "Weber M" in sets[name].source and "10.1007/s00259-021-05600-z" in sets[name].source
    assert "10.21037/jgo.2018.10.05" in sets["zuckerman2019"].source and "Zuckerman DA" in sets["zuckerman2019"].source
    for raw in _raw_sets().values():
        if "doi" in raw:
            assert DOI.fullmatch(raw["doi"]) and raw["doi"] in raw["source"]


def test_every_number_is_the_documented_source_value():
    sets = available_threshold_sets()
    bundled = {(ts.name, r.id): r for ts in sets.values() for r in ts.rules}
    assert set(bundled) == set(RECORD), "a rule was added or removed without updating the record"
    for key, (threshold, comparison, roi, quantity, _verified, where) in RECORD.items():
        rule = bundled[key]
        assert (rule.threshold, rule.comparison, rule.roi, rule.quantity) == (threshold, comparison, roi, quantity), (
            f"{key} differs from its source ({where})"
        )


def test_every_rule_carries_its_verification_record():
    raw_rules = {(raw["name"], r["id"]): (raw, r) for raw in _raw_sets().values() for r in raw["rules"]}
    assert set(raw_rules) == set(RECORD)
    for key, (raw, rule) in raw_rules.items():
        verified = RECORD[key][4]
        assert rule.get("verified") is verified, f"{key}: verified should be {verified}"
        for field in SOURCE_FIELDS:
            assert str(rule.get(field, "")).strip(), f"{key}: {field} missing"
        number = f"{rule['threshold']:g}"
        if verified:
            assert number in rule["source_value"], f"{key}: {number} is not the value its source gives"
            assert "unverified" not in rule["meaning"].lower()
        else:  # what reports show (meaning, set note) must say so: the verification keys do not reach them
            assert "unverified" in rule["meaning"].lower(), f"{key}: unverified value not marked in its meaning"
            assert "verified" in raw["note"].lower()


def test_eanm_sets_encode_the_roi_the_guideline_names():
    sets = available_threshold_sets()
    resin = {r.id: r for r in sets["eanm2022-resin"].rules}
    glass = {r.id: r for r in sets["eanm2022-glass"].rules}
    # resin Table 3: the < 40 Gy is to the normal PERFUSED liver (whole normal liver only as the whole-liver fallback)
    assert resin["normal_liver_limit"].roi[0] == "perfused_normal_liver"
    # glass Table 2: < 120 Gy is to the normal perfused liver only; the whole normal liver has its own 50/75/90 Gy
    assert glass["perfused_normal_liver_limit"].roi == ("perfused_normal_liver",)
    assert {r.threshold for r in glass.values() if r.roi == ("normal_liver",)} == {50.0, 75.0, 90.0}
    assert (sets["eanm2022-resin"].device, sets["eanm2022-glass"].device) == ("resin", "glass")
    assert sets["eanm2022-resin"].population == sets["eanm2022-glass"].population == "HCC"


def test_per_lesion_response_flags_carry_value_threshold_and_source():
    flags = evaluate_thresholds(_stats(), [available_threshold_sets()["chansanti2017"]])
    by = {(r["rule"], r["roi"]): r for r in flags["results"]}
    assert by[("response", "T1")]["flag"] == "favourable" and by[("response", "T1")]["value"] == 250.0
    assert by[("response", "T2")]["status"] == "not met" and by[("no_response", "T2")]["status"] == "not met"
    assert by[("no_response", "T3")]["flag"] == "alert" and by[("no_response", "T3")]["threshold"] == 72.8
    assert ("response", "tumors_all") not in by  # per lesion: derived union not included
    assert "Chansanti" in flags["sets"][0]["source"]
    assert flags["counts"]["alert"] == 1 and flags["counts"]["favourable"] == 1


def test_threshold_equality_follows_the_comparison():
    at = evaluate_thresholds(_stats(tumour_doses=(191.3, 72.8)), [available_threshold_sets()["chansanti2017"]])
    by = {(r["rule"], r["roi"]): r["status"] for r in at["results"]}
    assert by[("response", "T1")] == "met"  # >= 191.3
    assert by[("no_response", "T2")] == "not met"  # < 72.8


def test_lung_limits_and_cumulative_needs_previous_dose():
    lung = [available_threshold_sets()["lung-ho1997"]]
    res = {r["rule"]: r for r in evaluate_thresholds(_stats(lsf_estimate_gy=31.0), lung)["results"]}
    assert res["single_treatment"]["flag"] == "alert"
    assert res["cumulative"]["status"] == "not evaluated" and "previous" in res["cumulative"]["note"]
    res = {
        r["rule"]: r
        for r in evaluate_thresholds(_stats(lsf_estimate_gy=25.0), lung, previous_lung_dose_gy=26.0)["results"]
    }
    assert res["single_treatment"]["status"] == "not met"
    assert res["cumulative"]["value"] == pytest.approx(51.0) and res["cumulative"]["flag"] == "alert"
    res = {r["rule"]: r for r in evaluate_thresholds(_stats(lsf_estimate_gy=None), lung)["results"]}
    assert res["single_treatment"]["status"] == "not evaluated"


def test_glass_perfused_limit_needs_a_perfused_roi_and_whole_liver_limits_use_normal_liver():
    glass = [available_threshold_sets()["eanm2022-glass"]]
    res = {r["rule"]: r for r in evaluate_thresholds(_stats(perfused=True), glass)["results"]}
    assert res["perfused_normal_liver_limit"]["roi"] == "perfused_normal_liver"
    assert res["perfused_normal_liver_limit"]["flag"] == "alert"  # 130 Gy >= 120
    res = {r["rule"]: r for r in evaluate_thresholds(_stats(), glass)["results"]}
    assert res["perfused_normal_liver_limit"]["status"] == "not evaluated"  # no fallback to the whole liver
    assert {res[k]["roi"] for k in res if k.startswith("whole_normal")} == {"normal_liver"}
    assert [k for k in res if k.startswith("whole_normal") and res[k]["flag"]] == []  # 45 Gy < 50
    res = {r["rule"]: r["flag"] for r in evaluate_thresholds(_stats(normal_gy=80.0), glass)["results"]}
    assert (
        res["whole_normal_liver_limit_high_bilirubin"],
        res["whole_normal_liver_limit"],
        res["whole_normal_liver_limit_normal_bilirubin"],
    ) == ("caution", "caution", None)


def test_resin_normal_liver_limits_use_perfused_normal_liver_with_whole_liver_fallback():
    resin = [available_threshold_sets()["eanm2022-resin"]]
    res = {r["rule"]: r for r in evaluate_thresholds(_stats(perfused=True), resin)["results"]}
    assert res["normal_liver_limit"]["roi"] == "perfused_normal_liver" and res["normal_liver_limit"]["flag"] == "alert"
    res = {r["rule"]: r for r in evaluate_thresholds(_stats(normal_gy=35.0), resin)["results"]}
    assert res["normal_liver_limit"]["roi"] == "normal_liver" and "used" in res["normal_liver_limit"]["note"]
    assert res["normal_liver_limit"]["status"] == "not met"
    assert res["normal_liver_limit_compromised"]["flag"] == "caution"  # 35 Gy >= 30
    assert res["tumour_target"]["status"] == "not met" and res["tumour_target_upper"]["status"] == "not met"


def test_selection_by_device_name_and_file(tmp_path):
    assert {s.device for s in select_threshold_sets(None, device="resin")} <= {None, "resin"}
    assert "eanm2022-glass" not in {s.name for s in select_threshold_sets(None, device="resin")}
    with pytest.raises(OptionsError, match="unknown threshold set"):
        select_threshold_sets(["nope"])
    custom = tmp_path / "mine.toml"
    custom.write_text(
        'name = "mine"\nsource = "local protocol 2024"\npopulation = "HCC"\n'
        '[[rules]]\nid = "d70"\nroi = "each_tumor"\nquantity = "D70"\ncomparison = "<"\n'
        'threshold = 100\nlevel = "caution"\nmeaning = "D70 below 100 Gy"\n'
    )
    (mine,) = select_threshold_sets([str(custom)])
    res = evaluate_thresholds(_stats(), [mine])["results"]
    assert [r["roi"] for r in res if r["flag"] == "caution"] == ["T3"]  # D70 = 45 Gy
    bad = tmp_path / "bad.toml"
    bad.write_text(custom.read_text().replace('comparison = "<"', 'comparison = "=<"'))
    with pytest.raises(OptionsError, match="comparison"):
        load_threshold_set(bad)
    with pytest.raises(InputFileError):
        load_threshold_set(tmp_path / "missing.toml")
