"""Response criteria on hand-made lesions, at and across every boundary (issue 14).

RECIST 1.1 (Eisenhauer 2009): PR at a 30% decrease of the sum of longest diameters; PD at a 20% increase
that is also at least 5 mm; CR at disappearance. mRECIST (Lencioni & Llovet 2010): the same on the viable
tumour diameter, PD without the 5 mm condition. WHO (Miller 1981) and EASL (Bruix 2001): PR at a 50%
decrease of the sum of products (enhancing area for EASL), PD at a 25% increase of one or more lesions.
"""

from __future__ import annotations

import pytest

from dosimetry.cohort.criteria import CRITERIA, classify_lesion, classify_patient, criterion, is_responder
from dosimetry.errors import OptionsError

RECIST, MRECIST, WHO, EASL = (CRITERIA[k] for k in ("recist11", "mrecist", "who", "easl"))


@pytest.mark.parametrize(
    "baseline, follow_up, expected",
    [
        (100.0, 70.0, "PR"),  # exactly -30%
        (100.0, 70.1, "SD"),  # -29.9%
        (33.0, 23.1, "PR"),  # -30% whose floating-point quotient is -0.29999999999999993
        (100.0, 69.9, "PR"),
        (25.0, 30.0, "PD"),  # exactly +20% and exactly +5 mm
        (24.5, 29.4, "SD"),  # exactly +20% but +4.9 mm
        (50.0, 59.9, "SD"),  # +19.8% (+9.9 mm)
        (50.0, 60.0, "PD"),  # +20%, +10 mm
        (30.0, 35.9, "SD"),  # +5.9 mm but +19.7%
        (20.0, 24.0, "SD"),  # +20% but +4 mm
        (10.0, 0.0, "CR"),  # disappearance
        (10.0, 0.1, "PR"),  # -99%: not gone, not CR
        (40.0, 40.0, "SD"),
    ],
)
def test_recist11_lesion_boundaries(baseline, follow_up, expected):
    found = classify_lesion(RECIST, baseline, follow_up)
    assert found.category == expected, found.rule
    assert found.change_percent == pytest.approx(100 * (follow_up - baseline) / baseline)
    assert found.rule.startswith("RECIST 1.1:") and found.rule.endswith(expected)


def test_recist11_rule_names_the_5_mm_condition_that_decided():
    found = classify_lesion(RECIST, 24.5, 29.4)
    assert "4.9 mm < 5 mm" in found.rule and "not PD" in found.rule
    assert "5 mm >= 5 mm" in classify_lesion(RECIST, 25.0, 30.0).rule


@pytest.mark.parametrize(
    "baseline, follow_up, expected",
    [
        (100.0, 70.0, "PR"),
        (100.0, 70.1, "SD"),
        (20.0, 24.0, "PD"),  # +20% with only +4 mm: PD in mRECIST (no 5 mm rule), SD in RECIST 1.1
        (100.0, 119.9, "SD"),
        (100.0, 120.0, "PD"),
        (35.0, 0.0, "CR"),  # no arterial enhancement left
    ],
)
def test_mrecist_lesion_boundaries(baseline, follow_up, expected):
    assert classify_lesion(MRECIST, baseline, follow_up).category == expected


@pytest.mark.parametrize("crit", [WHO, EASL], ids=["who", "easl"])
@pytest.mark.parametrize(
    "baseline, follow_up, expected",
    [
        (1000.0, 500.0, "PR"),  # exactly -50%
        (1000.0, 501.0, "SD"),  # -49.9%
        (1000.0, 700.0, "SD"),  # -30% is PR in RECIST, not here
        (1000.0, 1250.0, "PD"),  # exactly +25%
        (1000.0, 1249.0, "SD"),  # +24.9%
        (1000.0, 1200.0, "SD"),  # +20% is PD in RECIST with >= 5 mm, not here
        (1000.0, 0.0, "CR"),
        (3.3, 1.65, "PR"),  # rounding at exactly -50%
    ],
)
def test_who_and_easl_lesion_boundaries(crit, baseline, follow_up, expected):
    assert classify_lesion(crit, baseline, follow_up).category == expected


def test_recist11_patient_uses_the_sum_of_target_lesions():
    # one lesion -33% (PR on its own) but the sum only -20%: the patient is SD
    patient = classify_patient(RECIST, {"a": (30.0, 20.0), "b": (20.0, 20.0)})
    assert classify_lesion(RECIST, 30.0, 20.0).category == "PR"
    assert patient.category == "SD" and patient.change_percent == pytest.approx(-20.0)
    assert "sum of longest diameters 50 mm -> 40 mm" in patient.rule
    # sum exactly -30%
    assert classify_patient(RECIST, {"a": (60.0, 40.0), "b": (40.0, 30.0)}).category == "PR"
    # sum +24%, +12 mm: PD although lesion a is unchanged
    assert classify_patient(RECIST, {"a": (40.0, 40.0), "b": (10.0, 22.0)}).category == "PD"
    # sum exactly +20% but +4.9 mm: SD
    patient = classify_patient(RECIST, {"a": (12.0, 14.4), "b": (12.5, 15.0)})
    assert patient.category == "SD" and "< 5 mm" in patient.rule
    # CR needs every target lesion gone
    assert classify_patient(RECIST, {"a": (12.0, 0.0), "b": (12.5, 0.0)}).category == "CR"
    assert classify_patient(RECIST, {"a": (12.0, 0.0), "b": (12.5, 1.0)}).category == "PR"


@pytest.mark.parametrize("crit", [WHO, EASL], ids=["who", "easl"])
def test_who_and_easl_patient_pd_when_one_lesion_grows_by_a_quarter(crit):
    # sum of products -66% (PR by the sum) but lesion b +25%: PD, and the rule names b
    patient = classify_patient(crit, {"a": (2000.0, 500.0), "b": (200.0, 250.0)})
    assert patient.category == "PD" and "b +25.0%" in patient.rule
    # b +24.5%: the sum decides, PR
    assert classify_patient(crit, {"a": (2000.0, 500.0), "b": (200.0, 249.0)}).category == "PR"
    # sum exactly -50%
    assert classify_patient(crit, {"a": (1000.0, 400.0), "b": (1000.0, 600.0)}).category == "PR"
    # both +24%: no lesion reaches +25%, SD
    assert classify_patient(crit, {"a": (1000.0, 1240.0), "b": (1000.0, 1240.0)}).category == "SD"


@pytest.mark.parametrize("bad", [(-1.0, 10.0), (10.0, -0.5), (float("nan"), 1.0), (0.0, 5.0)])
def test_impossible_measurements_are_refused(bad):
    with pytest.raises(ValueError):
        classify_lesion(RECIST, *bad)


def test_criterion_names_and_responders():
    assert criterion("RECIST 1.1") is RECIST and criterion("mRECIST") is MRECIST
    with pytest.raises(OptionsError, match="recist11, mrecist, who, easl"):
        criterion("choi")
    assert [is_responder(c) for c in ("CR", "PR", "SD", "PD")] == [True, True, False, False]
