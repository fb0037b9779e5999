"""RESPONSES.csv and COHORT.csv: the batch's own cohort.csv is read; every fault is listed, never guessed."""

from __future__ import annotations

import pytest
from cohort_helpers import cohort_row, write_csv

from dosimetry.batch.tables import write_cohort
from dosimetry.cohort import CohortInputError, analyse_cohort
from dosimetry.cohort.criteria import CRITERIA
from dosimetry.cohort.responses import match_lesions, read_cohort, read_responses
from dosimetry.errors import InputFileError

RECIST = CRITERIA["recist11"]


def _cohort(folder, rows=None):
    rows = rows or [
        cohort_row("A", "liver", "liver", 30.0),
        cohort_row("A", "L1", "tumor", 150.0),
        cohort_row("A", "L2", "tumor", 60.0),
        cohort_row("A", "tumors_all", "tumor", 110.0),
        cohort_row("B", "liver", "liver", 30.0),
        cohort_row("B", "L1", "tumor", 200.0),
    ]
    write_cohort(folder, rows)
    return folder / "cohort.csv"


def _responses(folder, rows, name="responses.csv"):
    return write_csv(folder / name, rows, ["case_id", "roi", "timepoint", "longest_diameter_mm", "response"])


def _r(case, roi, tp, mm, response=""):
    return {"case_id": case, "roi": roi, "timepoint": tp, "longest_diameter_mm": mm, "response": response}


GOOD = [
    _r("A", "L1", "baseline", 40),
    _r("A", "L1", "follow-up", 20),
    _r("A", "L2", "baseline", 30),
    _r("A", "L2", "follow-up", 33),
    _r("B", "L1", "baseline", 50),
    _r("B", "L1", "follow-up", 30),
]


def test_the_cohort_csv_of_dosimetry_batch_is_read_with_its_doses(tmp_path):
    cohort = read_cohort(_cohort(tmp_path))
    row = cohort[("A", "L1")]
    assert (row.role, row.mean_gy, row.d70_gy, row.volume_ml) == ("tumor", 150.0, pytest.approx(105.0), 20.0)
    assert row.mean_bed_gy is None  # no such column in the batch's file


def test_a_good_pair_of_files_is_matched_and_classified(tmp_path):
    result = analyse_cohort(_cohort(tmp_path), _responses(tmp_path, GOOD), criteria="recist11", n_bootstrap=0)
    got = {(x.case_id, x.roi): (x.category, x.mean_gy) for x in result.lesions}
    assert got == {("A", "L1"): ("PR", 150.0), ("A", "L2"): ("SD", 60.0), ("B", "L1"): ("PR", 200.0)}
    # patient A: sum 70 -> 53 mm (-24.3%): SD; B: -40%: PR
    assert {p.case_id: p.category for p in result.patients} == {"A": "SD", "B": "PR"}
    assert result.warnings == ()  # tumors_all is the derived union, not a lesion left out


def test_every_fault_of_responses_is_listed_in_one_line(tmp_path):
    bad = [
        _r("A", "L1", "baseline", 40),
        _r("A", "L1", "follow-up", -3),  # negative size
        _r("A", "L2", "baseline", 30),  # no follow-up row
        _r("B", "L1", "baseline", "big"),  # not a number
        _r("B", "L1", "follow-up", 20),
        _r("B", "L1", "follow-up", 21),  # a second follow-up row
        _r("A", "L3", "week 6", 10),  # unknown time point
        _r("C", "L9", "baseline", 0),
        _r("C", "L9", "follow-up", 4),  # baseline 0: not measurable
        _r("A", "L1", "baseline", 40, response="MR"),  # unknown category
    ]
    with pytest.raises(CohortInputError) as err:
        read_responses(_responses(tmp_path, bad), RECIST)
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(tmp_path / "responses.csv"))
    expected = [
        "A/L1 longest_diameter_mm is negative (-3 mm)",
        "A/L2 has no follow-up row",
        "B/L1 longest_diameter_mm 'big' is not a number",
        "B/L1 has a second follow-up row",
        "A/L3 has timepoint 'week 6', not baseline or follow-up",
        "C/L9 has a baseline longest_diameter_mm of 0",
        "A/L1 response 'MR' is not one of CR, PR, SD, PD",
    ]
    for text in expected:
        assert any(text in p for p in err.value.problems), (text, err.value.problems)
    assert len(err.value.problems) == len(expected) + 1  # A/L1's 'baseline' row appears twice
    assert message.endswith("correct RESPONSES.csv")


def test_lesions_missing_from_cohort_and_non_lesions_are_listed(tmp_path):
    rows = GOOD + [
        _r("Z", "L1", "baseline", 10),
        _r("Z", "L1", "follow-up", 10),
        _r("A", "L7", "baseline", 10),
        _r("A", "L7", "follow-up", 10),
        _r("A", "liver", "baseline", 10),
        _r("A", "liver", "follow-up", 10),
        _r("A", "tumors_all", "baseline", 10),
        _r("A", "tumors_all", "follow-up", 10),
    ]
    path = _cohort(tmp_path)
    with pytest.raises(CohortInputError) as err:
        match_lesions(
            read_responses(_responses(tmp_path, rows), RECIST), read_cohort(path), responses_path="R", cohort_path="C"
        )
    problems = err.value.problems
    assert any("Z/L1: case Z is not in C" in p for p in problems)
    assert any("A/L7: no ROI L7 in C (case A has L1, L2, liver, tumors_all)" in p for p in problems)
    assert any("A/liver is a liver ROI in C, not a lesion" in p for p in problems)
    assert any("A/tumors_all is the derived union of all tumours" in p for p in problems)
    assert len(problems) == 4


def test_lesions_of_cohort_without_responses_are_a_warning_naming_them(tmp_path):
    rows = [r for r in GOOD if r["roi"] != "L2"]
    result = analyse_cohort(_cohort(tmp_path), _responses(tmp_path, rows), n_bootstrap=0)
    assert "A/L2" in result.warnings[0] and "not analysed" in result.warnings[0]
    # both lesions left are responders: no dose-response, and the warning says why
    assert result.warnings[1].startswith("all 2 lesions are responders by RECIST 1.1") and result.metrics == {}


def test_a_given_category_is_used_only_without_measurements(tmp_path):
    rows = [
        _r("A", "L1", "baseline", 40),
        _r("A", "L1", "follow-up", 20, response="SD"),  # measured PR, given SD: the rules win, with a warning
        {"case_id": "A", "roi": "L2", "timepoint": "follow-up", "longest_diameter_mm": "", "response": "PD"},
        _r("B", "L1", "baseline", 50),
        _r("B", "L1", "follow-up", 30),
    ]
    result = analyse_cohort(_cohort(tmp_path), _responses(tmp_path, rows), n_bootstrap=0)
    lesions = {x.roi + x.case_id: x for x in result.lesions}
    assert lesions["L1A"].category == "PR" and any("given category SD differs" in w for w in result.warnings)
    assert lesions["L2A"].category == "PD" and "given in RESPONSES.csv" in lesions["L2A"].rule
    patient_a = next(p for p in result.patients if p.case_id == "A")
    assert patient_a.category == "NE" and "L2" in patient_a.rule


def test_missing_columns_and_files_are_one_line_errors(tmp_path):
    path = write_csv(tmp_path / "r.csv", [{"case_id": "A", "roi": "L1", "timepoint": "baseline", "size": 3}])
    with pytest.raises(InputFileError, match="no column longest_diameter_mm \\(or response\\)"):
        read_responses(path, RECIST)
    with pytest.raises(InputFileError, match="no column mean_gy"):
        read_cohort(write_csv(tmp_path / "c.csv", [{"case_id": "A", "roi": "L1", "role": "tumor"}]))
    with pytest.raises(InputFileError, match="no such file"):
        read_cohort(tmp_path / "absent.csv")


def test_new_lesions_make_the_patient_pd_but_not_its_lesions(tmp_path):
    rows = [dict(r, new_lesions="") for r in GOOD]
    rows[5]["new_lesions"] = "yes"  # B/L1 follow-up: new lesions in patient B
    path = write_csv(
        tmp_path / "r.csv", rows, ["case_id", "roi", "timepoint", "longest_diameter_mm", "response", "new_lesions"]
    )
    result = analyse_cohort(_cohort(tmp_path), path, n_bootstrap=0)
    patients = {p.case_id: p for p in result.patients}
    assert patients["B"].category == "PD" and "new lesions" in patients["B"].rule
    assert patients["A"].category == "SD"
    assert next(x for x in result.lesions if x.case_id == "B").category == "PR"  # the lesion shrank by 40%
    rows[0]["new_lesions"] = "maybe"
    rows[2]["new_lesions"] = "yes"  # at baseline
    bad = write_csv(
        tmp_path / "bad.csv", rows, ["case_id", "roi", "timepoint", "longest_diameter_mm", "response", "new_lesions"]
    )
    with pytest.raises(CohortInputError) as err:
        read_responses(bad, RECIST)
    assert any("new_lesions 'maybe' is not yes or no" in p for p in err.value.problems)
    assert any("A/L2 has new_lesions yes at baseline" in p for p in err.value.problems)


def test_only_target_lesions_make_the_patient_sums_and_too_many_give_a_warning(tmp_path):
    cohort = _cohort(
        tmp_path,
        [cohort_row("A", f"L{k}", "tumor", 100.0 + k) for k in range(1, 4)] + [cohort_row("B", "L1", "tumor", 50.0)],
    )
    rows = [
        _r("A", "L1", "baseline", 40),
        _r("A", "L1", "follow-up", 20),
        _r("A", "L2", "baseline", 40),
        _r("A", "L2", "follow-up", 30),
        _r("A", "L3", "baseline", 40),
        _r("A", "L3", "follow-up", 60),
        _r("B", "L1", "baseline", 40),
        _r("B", "L1", "follow-up", 40),
    ]
    columns = ["case_id", "roi", "timepoint", "longest_diameter_mm", "response", "target"]
    result = analyse_cohort(cohort, write_csv(tmp_path / "r.csv", rows, columns), n_bootstrap=0)
    a = next(p for p in result.patients if p.case_id == "A")
    assert (a.baseline_sum, a.follow_up_sum, a.category) == (120.0, 110.0, "SD")
    assert any("at most 2 target lesions per organ" in w and "A (3)" in w for w in result.warnings)
    for row in rows[4:6]:
        row["target"] = "no"  # A/L3 grew by half but is not a target lesion
    result = analyse_cohort(cohort, write_csv(tmp_path / "r2.csv", rows, columns), n_bootstrap=0)
    a = next(p for p in result.patients if p.case_id == "A")
    assert (a.baseline_sum, a.follow_up_sum, a.category, a.lesions) == (80.0, 50.0, "PR", ("L1", "L2"))
    assert next(x for x in result.lesions if x.roi == "L3").category == "PD"  # still analysed for dose-response
    assert not any("target lesions per organ" in w for w in result.warnings)


@pytest.mark.parametrize(
    "criteria, column, sizes, expected",
    [
        ("mrecist", "viable_diameter_mm", (20.0, 24.0), "PD"),  # +20%, +4 mm: PD without RECIST's 5 mm
        ("who", "bidimensional_product_mm2", (1000.0, 700.0), "SD"),  # -30% is not WHO's -50%
        ("easl", "enhancing_area_mm2", (1000.0, 500.0), "PR"),
    ],
)
def test_each_criterion_reads_its_own_column(tmp_path, criteria, column, sizes, expected):
    rows = [
        {"case_id": "B", "roi": "L1", "timepoint": "baseline", column: sizes[0], "longest_diameter_mm": 50},
        {"case_id": "B", "roi": "L1", "timepoint": "follow-up", column: sizes[1], "longest_diameter_mm": 10},
    ]
    result = analyse_cohort(_cohort(tmp_path), write_csv(tmp_path / "r.csv", rows), criteria=criteria, n_bootstrap=0)
    (lesion,) = result.lesions
    assert (lesion.baseline, lesion.follow_up, lesion.category) == (*sizes, expected)
    assert result.to_dict()["criterion"]["measurement"].endswith(f"({column}, {lesion.unit})")
