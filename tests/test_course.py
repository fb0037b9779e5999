"""Treatment course (issue 15): a Lu-177 PRRT history before the Y-90 run of the sample study, BED by hand.

The sample DICOM study is run once (``dosimetry run``); the PRRT history is then given as a course CSV of
stated normal-liver / tumour means (four cycles of Lu-177) and one Lu-177 dose map on the sample's grid,
and ``dosimetry accumulate --course`` adds the Y-90 run. BED values are checked against the
decaying-source formula written out here with its own decay and repair constants:

    BED = D + G D^2 / (alpha/beta),   G = lambda / (lambda + mu),  lambda = ln2 / T_eff,  mu = ln2 / T_rep
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from dosimetry.cli import main
from dosimetry.course import Treatment, radiobiology_parameters, treatment_bed_of_mean_gy
from dosimetry.errors import OptionsError
from dosimetry.io.images import read_image, write_nifti

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "phantom_dicom"
TEFF_H = 70.0  # Lu-177 effective half-life of the PRRT history (h), given as the user would
AB_LIVER, AB_TUMOR, TREP_H = 2.5, 10.0, 2.5  # the cited defaults (Strigari 2010; Cremonesi 2014)
MAP_GY = 4.0  # the uniform Lu-177 dose map


def hand_bed(dose_gy: float, *, alpha_beta_gy: float, half_life_h: float, repair_h: float = TREP_H) -> float:
    lam, mu = math.log(2) / half_life_h, math.log(2) / repair_h
    g = lam / (lam + mu)
    return dose_gy + g * dose_gy**2 / alpha_beta_gy


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def y90_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("y90") / "run"
    args = ["run", str(SAMPLE), "--residual-fraction", "0.03", "--lung-shunt", "0.05", "--out", str(out), "-q"]
    assert main(args) == 0
    return out


@pytest.fixture
def prrt_history(y90_run, tmp_path):
    """Four Lu-177 cycles with stated means, then a Lu-177 dose map on the sample's grid (uniform 4 Gy)."""
    dose = read_image(y90_run / "dose.nii.gz")
    write_nifti(dose.with_array(np.full(dose.shape, MAP_GY, np.float32)), tmp_path / "lu177_dose.nii.gz")
    rows = [
        "# Lu-177 DOTATATE, 4 x 7.4 GBq; then a fifth treatment with its dose map",
        "label,nuclide,date,dose_map,normal_liver_gy,tumor_gy,lung_gy,effective_half_life_h,half_life_source,cycles",
    ]
    for n, (day, liver, tumour) in enumerate(
        [("2025-01-09", 3.0, 30.0), ("2025-03-06", 2.8, 26.0), ("2025-05-01", 3.2, 24.0), ("2025-06-26", 2.6, 20.0)],
        start=1,
    ):
        rows.append(f"prrt_{n},Lu-177,{day},,{liver},{tumour},0.4,{TEFF_H},post-therapy SPECT/CT,")
    rows.append(f"prrt_map,lu177,2025-09-01,lu177_dose.nii.gz,,,,{TEFF_H},,")
    (tmp_path / "course.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_prrt_history_then_y90_end_to_end(y90_run, prrt_history, tmp_path):
    before = {"run": digest(y90_run), "history": digest(prrt_history), "sample": digest(SAMPLE)}
    out = tmp_path.parent / f"{tmp_path.name}_out"  # outside the folder of the inputs
    code = main(
        [
            "accumulate",
            "--current",
            str(y90_run),
            "--course",
            str(prrt_history / "course.csv"),
            "--current-date",
            "2026-01-15",
            "--out",
            str(out),
            "-q",
        ]
    )
    assert code == 0
    # inputs never written into
    assert {"run": digest(y90_run), "history": digest(prrt_history), "sample": digest(SAMPLE)} == before

    record = json.loads((out / "accumulate.json").read_text())
    course = record["course"]
    by_label = {t["label"]: t for t in course["treatments"]}
    assert list(by_label) == ["prrt_1", "prrt_2", "prrt_3", "prrt_4", "prrt_map", "current"]

    # one stated-mean treatment by hand: Lu-177, T_eff 70 h
    p1 = by_label["prrt_1"]
    assert p1["nuclide"] == "Lu-177" and p1["source"] == "stated mean" and p1["half_life_h"] == TEFF_H
    assert p1["half_life_source"] == "post-therapy SPECT/CT"
    liver = p1["regions"]["normal_liver"]
    assert liver["bed_kind"] == "BED of the stated mean"
    assert liver["bed_gy"] == pytest.approx(hand_bed(3.0, alpha_beta_gy=AB_LIVER, half_life_h=TEFF_H), rel=1e-12)
    assert p1["regions"]["tumor"]["bed_gy"] == pytest.approx(
        hand_bed(30.0, alpha_beta_gy=AB_TUMOR, half_life_h=TEFF_H), rel=1e-12
    )
    assert p1["regions"]["lung"]["bed_gy"] is None  # no lung alpha/beta: no default

    # the uniform dose map: every voxel 4 Gy, so the mean of voxel BED is the BED of 4 Gy
    pmap = by_label["prrt_map"]
    assert pmap["source"] == "dose map" and pmap["regions"]["normal_liver"]["bed_kind"] == "mean of voxel BED"
    assert pmap["regions"]["normal_liver"]["mean_gy"] == pytest.approx(MAP_GY, rel=1e-6)
    assert pmap["regions"]["normal_liver"]["bed_gy"] == pytest.approx(
        hand_bed(MAP_GY, alpha_beta_gy=AB_LIVER, half_life_h=TEFF_H), rel=1e-6
    )

    # the current Y-90 map: physical decay; the same mean as the accumulation's, and a mean voxel BED that agrees
    # with the run's own radiobiology section (volume- instead of mass-weighted: equal to ~0.5% in the liver)
    current = by_label["current"]
    assert current["half_life_h"] == 64.1 and current["dose_rate_model"] == "physical decay"
    rois = {e["name"]: e for e in record["rois"]}
    assert current["regions"]["normal_liver"]["mean_gy"] == pytest.approx(
        rois["normal_liver"]["current_mean_gy"], rel=1e-9
    )
    run_stats = json.loads((y90_run / "stats.json").read_text())
    run_bed = {e["name"]: e for e in run_stats["radiobiology"]["rois"]}
    assert current["regions"]["normal_liver"]["bed_gy"] == pytest.approx(
        run_bed["normal_liver"]["bed_mean_gy"], rel=5e-3
    )
    assert current["regions"]["tumor"]["bed_gy"] == pytest.approx(run_bed["tumors_all"]["bed_mean_gy"], rel=5e-3)
    # BED is convex: the mean of voxel BED of the non-uniform Y-90 dose exceeds the BED of its mean
    y90_mean = current["regions"]["normal_liver"]["mean_gy"]
    assert current["regions"]["normal_liver"]["bed_gy"] > hand_bed(y90_mean, alpha_beta_gy=AB_LIVER, half_life_h=64.1)

    # the sums: complete repair between treatments
    stated = [3.0, 2.8, 3.2, 2.6]
    expected_dose = sum(stated) + MAP_GY + y90_mean
    expected_bed = (
        sum(hand_bed(d, alpha_beta_gy=AB_LIVER, half_life_h=TEFF_H) for d in stated)
        + hand_bed(MAP_GY, alpha_beta_gy=AB_LIVER, half_life_h=TEFF_H)
        + current["regions"]["normal_liver"]["bed_gy"]
    )
    total = course["cumulative"]["normal_liver"]
    assert total["dose_gy"] == pytest.approx(expected_dose, rel=1e-6)
    assert total["bed_gy"] == pytest.approx(expected_bed, rel=1e-6)
    assert total["bed_kind"] == "sum of mean voxel BED and BED of stated means"
    tumour_bed = (
        sum(hand_bed(d, alpha_beta_gy=AB_TUMOR, half_life_h=TEFF_H) for d in (30.0, 26.0, 24.0, 20.0))
        + hand_bed(MAP_GY, alpha_beta_gy=AB_TUMOR, half_life_h=TEFF_H)
        + current["regions"]["tumor"]["bed_gy"]
    )
    assert course["cumulative"]["tumor"]["bed_gy"] == pytest.approx(tumour_bed, rel=1e-6)
    lung = course["cumulative"]["lung"]
    assert lung["dose_gy"] == pytest.approx(4 * 0.4 + MAP_GY + current["regions"]["lung"]["mean_gy"], rel=1e-6)
    assert lung["bed_gy"] is None

    # parameters with their sources; notes say what a BED of a mean is
    assert "Strigari" in course["parameters"]["normal_liver"]["alpha_beta_source"]
    assert "Cremonesi" in course["parameters"]["tumor"]["alpha_beta_source"]
    assert course["parameters"]["lung"]["alpha_beta_gy"] is None
    assert any("not the mean BED" in n for n in course["notes"])

    # the physical cumulative map holds the dose map only (4 Gy everywhere on top of the Y-90 dose)
    total_map = read_image(out / "cumulative_dose.nii.gz").array
    single = read_image(y90_run / "dose.nii.gz").array
    assert np.allclose(total_map, single + MAP_GY, atol=1e-4)

    # course.csv and the report section carry the same numbers
    lines = (out / "course.csv").read_text().splitlines()
    assert lines[0].startswith("label,nuclide,date,source,cycles") and lines[-1].startswith("cumulative,")
    assert f"{total['bed_gy']:.6g}" in lines[-1]
    page = (out / "course.html").read_text()
    assert "Treatment course" in page
    assert f'data-json="course/cumulative/normal_liver/bed_gy">{total["bed_gy"]:.1f}<' in page
    # ... and the accumulate report carries the same section through its extra-section hook
    report = (out / "accumulate.html").read_text()
    assert "Treatment course" in report
    assert f'data-json="course/cumulative/normal_liver/bed_gy">{total["bed_gy"]:.1f}<' in report


def test_cycles_equal_separate_rows(y90_run, tmp_path):
    """One row of 4 cycles (total 12 Gy) gives the BED of four rows of 3 Gy: N BED(D/N)."""
    four = Treatment(
        "Lu-177", date="2025-01-09", mean_gy={"normal_liver": 12.0}, effective_half_life_h=TEFF_H, cycles=4
    )
    tissue = radiobiology_parameters().tissue("normal_liver")
    one = hand_bed(3.0, alpha_beta_gy=AB_LIVER, half_life_h=TEFF_H)
    assert treatment_bed_of_mean_gy(four, 12.0, tissue) == pytest.approx(4 * one, rel=1e-12)
    # and it is less than one 12 Gy treatment
    assert treatment_bed_of_mean_gy(four, 12.0, tissue) < hand_bed(12.0, alpha_beta_gy=AB_LIVER, half_life_h=TEFF_H)


def _course_run(y90_run, tmp_path, rows: list[str], *extra: str) -> int:
    csv_path = tmp_path / "course.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    code = main(["accumulate", "--current", str(y90_run), "--course", str(csv_path), "--out", str(out), "-q", *extra])
    assert not out.exists()
    return code


HEADER = "label,nuclide,date,dose_map,normal_liver_gy,tumor_gy,effective_half_life_h"


@pytest.mark.parametrize(
    ("row", "code", "words"),
    [
        ("p,Lu-177,2025-01-09,,3.0,30,", 7, "effective half-life"),  # Lu-177 without T_eff
        ("p,I-131,2025-01-09,,3.0,30,", 7, "not supported"),  # unknown nuclide
        ("p,Lu-177,2025-01-09,,,30,70", 7, "normal-liver"),  # a stated mean without the normal liver
        ("p,Y-90,2025-01-09,,3.0,30,70", 7, "permanent implant"),  # Y-90 with an effective half-life
        ("p,Lu-177,2025-01-09,,3.0,30,400", 7, "physical half-life"),  # T_eff over 6.647 d (days typed as hours?)
        ("p,Lu-177,09/01/2025,,3.0,30,70", 7, "YYYY-MM-DD"),  # not an ISO date
        ("p,Lu-177,2025-01-09,missing.nii.gz,,,70", 3, "does not exist"),  # a dose map that is not there
        ("p,Lu-177,2025-01-09,,three,30,70", 3, "not a number"),
        ("p,Lu-177,2025-01-09,,3.0,30,70,1", 3, "more values than columns"),  # a shifted row
    ],
)
def test_bad_course_rows_are_refused(y90_run, tmp_path, capsys, row, code, words):
    assert _course_run(y90_run, tmp_path, [HEADER, row]) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err and "row 1" in err


def test_bad_course_file_and_options(y90_run, tmp_path, capsys):
    assert _course_run(y90_run, tmp_path, ["label,nuclide,date,teff", "p,Lu-177,2025-01-09,70"]) == 3
    assert "unknown column" in capsys.readouterr().err
    zero_cycles = [f"{HEADER},cycles", "p,Lu-177,2025-01-09,,12.0,30,70,0"]
    assert _course_run(y90_run, tmp_path, zero_cycles) == 7
    assert "cycles" in capsys.readouterr().err
    ok = [HEADER, "p,Lu-177,2025-01-09,,3.0,30,70"]
    assert _course_run(y90_run, tmp_path, ok, "--alpha-beta-lung-gy", "3") == 7  # lung needs its repair half-time
    assert "both" in capsys.readouterr().err
    assert _course_run(y90_run, tmp_path, ok, "--alpha-beta-liver-gy", "250") == 7  # a range slip
    assert _course_run(y90_run, tmp_path, ok, "--current-date", "15.01.2026") == 7
    missing = main(
        ["accumulate", "--current", str(y90_run), "--course", str(tmp_path / "no.csv"), "--out", str(tmp_path / "o")]
    )
    assert missing == 3


def test_user_parameters_recorded_with_their_source(y90_run, tmp_path):
    rows = [
        f"{HEADER},effective_half_life_tumor_h",
        "p1,Lu-177,2025-01-09,,3.0,30,70,95",
        "p2,Lu-177,2025-01-12,,3.0,30,70,",
    ]
    csv_path = tmp_path / "course.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    args = ["accumulate", "--current", str(y90_run), "--course", str(csv_path), "--out", str(out), "-q"]
    args += ["--alpha-beta-liver-gy", "3", "--alpha-beta-lung-gy", "3", "--repair-half-time-lung-h", "1.5"]
    assert main([*args, "--radiobiology-source", "Site protocol 2026"]) == 0
    course = json.loads((out / "accumulate.json").read_text())["course"]
    liver = course["parameters"]["normal_liver"]
    assert liver["alpha_beta_gy"] == 3.0 and liver["alpha_beta_source"] == "Site protocol 2026"
    assert "Strigari" in liver["repair_half_time_source"]  # not given: the cited default
    p1 = course["treatments"][0]["regions"]
    assert p1["normal_liver"]["bed_gy"] == pytest.approx(hand_bed(3.0, alpha_beta_gy=3.0, half_life_h=70.0))
    # the tumour's own effective half-life (95 h) for p1; p2 has none: the treatment's 70 h
    assert p1["tumor"]["half_life_h"] == 95.0
    assert p1["tumor"]["bed_gy"] == pytest.approx(hand_bed(30.0, alpha_beta_gy=AB_TUMOR, half_life_h=95.0))
    p2 = course["treatments"][1]["regions"]
    assert p2["tumor"]["bed_gy"] == pytest.approx(hand_bed(30.0, alpha_beta_gy=AB_TUMOR, half_life_h=70.0))
    assert "tumour 95.0 h" in (out / "course.html").read_text()
    # two cycles 3 days apart: 49% of the first still to be delivered, said in the notes
    assert any("p2 was given 3 d after p1" in n and "overlap" in n for n in course["notes"])
    # no lung value for the stated treatments: the cumulative lung dose is not computed, and says why
    assert course["cumulative"]["lung"]["dose_gy"] is None
    assert course["cumulative"]["lung"]["missing"] == ["p1", "p2"]


def test_treatment_api_refusals():
    with pytest.raises(OptionsError, match="not supported"):
        Treatment("Ho-166", mean_gy={"normal_liver": 1.0})
    with pytest.raises(OptionsError, match="effective half-life"):
        Treatment("Lu-177", mean_gy={"normal_liver": 1.0})
    with pytest.raises(OptionsError, match="at least the normal-liver"):
        Treatment("Lu-177", mean_gy={"tumor": 10.0}, effective_half_life_h=60.0)
    with pytest.raises(OptionsError, match="unknown region"):
        Treatment("Lu-177", mean_gy={"normal_liver": 1.0, "kidney": 5.0}, effective_half_life_h=60.0)
    with pytest.raises(OptionsError, match="neither"):
        Treatment("Y-90")
    with pytest.raises(OptionsError, match="negative"):
        Treatment("Y-90", mean_gy={"normal_liver": -1.0})
    with pytest.raises(OptionsError, match="cycles"):
        Treatment("Lu-177", mean_gy={"normal_liver": 1.0}, effective_half_life_h=60.0, cycles=0)
    assert Treatment("177Lu", mean_gy={"normal_liver": 1.0}, effective_half_life_h=60.0).nuclide == "Lu-177"
    with pytest.raises(OptionsError, match="permanent implant"):
        Treatment("Y-90", mean_gy={"normal_liver": 1.0}, region_half_lives_h={"tumor": 50.0})
    with pytest.raises(OptionsError, match="tumor effective half-life 200 h"):
        Treatment(
            "Lu-177", mean_gy={"normal_liver": 1.0}, effective_half_life_h=60.0, region_half_lives_h={"tumor": 200}
        )
    with pytest.raises(OptionsError, match="unknown region"):
        Treatment("Lu-177", mean_gy={"normal_liver": 1.0}, effective_half_life_h=60.0, region_half_lives_h={"gut": 50})


def test_docstring_examples_run():
    import doctest

    import dosimetry.course

    result = doctest.testmod(dosimetry.course)
    assert result.attempted > 0 and result.failed == 0


def test_course_dose_map_registered_through_its_ct(y90_run, prrt_history, tmp_path):
    """A dose map row with its CT (the sample's DICOM CT folder) is registered to the current CT as --previous is."""
    rows = [
        "label,nuclide,date,dose_map,ct,effective_half_life_h",
        f"prrt_map,Lu-177,2025-09-01,lu177_dose.nii.gz,{SAMPLE / 'CT'},60",
    ]
    (prrt_history / "course_ct.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    args = ["accumulate", "--current", str(y90_run), "--course", str(prrt_history / "course_ct.csv"), "--out", str(out)]
    assert main([*args, "-q"]) == 0
    record = json.loads((out / "accumulate.json").read_text())
    aligned = {t["label"]: t for t in record["treatments"]}["prrt_map"]
    assert aligned["alignment"] == "rigid registration of CTs" and aligned["registration"]["ncc"] > 0.99
    assert record["inputs"]["course"]["treatments"][0]["ct"] == str(SAMPLE / "CT")
    liver = {t["label"]: t for t in record["course"]["treatments"]}["prrt_map"]["regions"]["normal_liver"]
    assert liver["bed_gy"] == pytest.approx(hand_bed(MAP_GY, alpha_beta_gy=AB_LIVER, half_life_h=60.0), rel=1e-4)
    assert (out / "prrt_map_on_current.nii.gz").is_file()


def test_previous_y90_map_with_radiobiology_options_only(y90_run, tmp_path):
    """--previous maps (Y-90 retreatment) get the course too when a radiobiology option is given."""
    out = tmp_path / "out"
    dose = str(y90_run / "dose.nii.gz")
    args = ["accumulate", "--current", str(y90_run), "--previous", dose, "--out", str(out), "-q"]
    assert main([*args, "--alpha-beta-tumor-gy", "8", "--radiobiology-source", "test value"]) == 0
    course = json.loads((out / "accumulate.json").read_text())["course"]
    previous, current = course["treatments"]
    assert previous["label"] == "previous_1" and previous["nuclide"] == "Y-90" and previous["half_life_h"] == 64.1
    # the same map twice: the same BED twice, and the cumulative BED is their sum (not the BED of the summed dose)
    assert previous["regions"]["tumor"]["bed_gy"] == pytest.approx(current["regions"]["tumor"]["bed_gy"], rel=1e-6)
    assert course["cumulative"]["tumor"]["bed_gy"] == pytest.approx(2 * current["regions"]["tumor"]["bed_gy"], rel=1e-6)
    assert course["cumulative"]["tumor"]["bed_kind"] == "mean of voxel BED"
    assert course["parameters"]["tumor"]["alpha_beta_gy"] == 8.0
    assert any("previous_1" in n and "taken as Y-90" in n for n in course["notes"])
