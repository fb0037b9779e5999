"""Dose-response statistics: hand-computed ROC points, the AUC as the Mann-Whitney U statistic, a planted
threshold and a planted logistic D50 recovered from synthetic cohorts (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest
from cohort_helpers import synthetic_cohort
from scipy.stats import mannwhitneyu

from dosimetry.cohort import analyse_cohort
from dosimetry.cohort.dose_response import analyse_metric
from dosimetry.errors import OptionsError

# non-responders at 10, 20, 40 Gy; responders at 30, 50 Gy
DOSE = [10.0, 20.0, 30.0, 40.0, 50.0]
RESP = [False, False, True, False, True]
GROUPS = ["a", "b", "c", "d", "e"]


def test_hand_computed_youden_threshold_and_extremes():
    m = analyse_metric(DOSE, RESP, GROUPS, metric="mean_gy", label="mean", n_bootstrap=0)
    # >=50: sens 1/2 spec 1 (J 0.5); >=40: 1/2, 2/3; >=30: 1, 2/3 (J 0.667); >=20: 1, 1/3; >=10: 1, 0
    assert m.threshold_observed_gy == 30.0
    assert m.threshold_gy == 25.0  # midpoint of 30 Gy and the next lower dose, 20 Gy
    assert (m.sensitivity, m.specificity) == (1.0, pytest.approx(2 / 3))
    assert m.youden_j == pytest.approx(2 / 3)
    # AUC: of the 6 (responder, non-responder) pairs, 5 have the responder higher
    assert m.auc == pytest.approx(5 / 6)
    assert (m.no_response_below_gy, m.n_below) == (30.0, 2)  # nobody below 30 Gy responded: 10 and 20
    assert (m.all_response_above_gy, m.n_above) == (40.0, 1)  # everybody above 40 Gy responded: 50
    assert m.logistic.d50_gy is not None  # 40 Gy non-responder above the 30 Gy responder: groups overlap


def test_auc_is_the_mann_whitney_u_statistic_and_d50_is_where_the_fit_crosses_one_half():
    rng = np.random.default_rng(5)
    dose = rng.lognormal(5, 0.5, 80)
    resp = rng.random(80) < 1 / (1 + np.exp(-(dose - 150) / 30))
    m = analyse_metric(dose, resp, np.arange(80).astype(str), metric="mean_gy", label="mean", n_bootstrap=0)
    u = mannwhitneyu(dose[resp], dose[~resp]).statistic
    assert m.auc == pytest.approx(u / (resp.sum() * (~resp).sum()), rel=1e-12)
    assert float(m.logistic.probability(m.logistic.d50_gy)) == pytest.approx(0.5)
    assert m.mann_whitney_p == pytest.approx(mannwhitneyu(dose[resp], dose[~resp]).pvalue)


def test_separated_groups_give_no_logistic_fit_and_say_why():
    m = analyse_metric([10, 20, 30, 40], [False, False, True, True], list("abcd"), metric="m", label="m", n_bootstrap=0)
    assert m.auc == 1.0 and m.threshold_gy == 25.0 and (m.sensitivity, m.specificity) == (1.0, 1.0)
    assert m.logistic.intercept is None and "do not overlap" in m.logistic.reason
    assert m.no_response_below_gy == 30.0 and m.all_response_above_gy == 20.0


def test_one_class_and_bad_bootstrap_options_are_refused():
    with pytest.raises(OptionsError, match="all 3 lesions are responders"):
        analyse_metric([1, 2, 3], [True] * 3, list("abc"), metric="m", label="m")
    with pytest.raises(OptionsError, match="at least 100"):
        analyse_metric(DOSE, RESP, GROUPS, metric="m", label="m", n_bootstrap=10)
    with pytest.raises(OptionsError, match="patient, lesion"):
        analyse_metric(DOSE, RESP, GROUPS, metric="m", label="m", bootstrap_unit="voxel")


def test_planted_threshold_is_recovered(tmp_path):
    cohort, responses, truth = synthetic_cohort(tmp_path, n_patients=60, threshold_gy=120.0, flip=0.08, seed=3)
    result = analyse_cohort(cohort, responses, criteria="recist11", n_bootstrap=300, seed=7)
    m = result.metrics["mean_gy"]
    assert m.n_lesions == len(truth)
    assert abs(m.threshold_gy - 120.0) <= 12.0, m.threshold_gy
    lo, hi = m.threshold_ci95_gy
    assert lo <= 120.0 <= hi + 1e-9
    assert m.auc > 0.8 and m.auc_ci95[0] < m.auc < m.auc_ci95[1]
    assert m.bootstrap["unit"] == "patient" and m.bootstrap["used"] > 250
    # the classification matches the planted outcome, lesion by lesion
    planted = {d: r for d, r in truth}
    assert all(planted[x.mean_gy] == x.responder for x in result.lesions)


def test_planted_step_without_noise_is_found_exactly(tmp_path):
    cohort, responses, truth = synthetic_cohort(tmp_path, n_patients=30, threshold_gy=120.0, flip=0.0, seed=4)
    m = analyse_cohort(cohort, responses, n_bootstrap=0).metrics["mean_gy"]
    lowest_responder = min(d for d, r in truth if r)
    highest_non_responder = max(d for d, r in truth if not r)
    assert m.threshold_observed_gy == lowest_responder == m.no_response_below_gy
    assert highest_non_responder == m.all_response_above_gy < 120.0 <= lowest_responder
    assert m.threshold_gy == pytest.approx((lowest_responder + highest_non_responder) / 2)
    assert abs(m.threshold_gy - 120.0) < 5.0 and m.auc == 1.0
    assert m.logistic.d50_gy is None


def test_planted_logistic_d50_is_recovered(tmp_path):
    cohort, responses, _ = synthetic_cohort(tmp_path, n_patients=150, d50_gy=150.0, slope_per_gy=0.04, seed=11)
    m = analyse_cohort(cohort, responses, n_bootstrap=0).metrics["mean_gy"]
    lo, hi = m.logistic.d50_ci95_gy
    assert lo < 150.0 < hi and abs(m.logistic.d50_gy - 150.0) < 20.0
    assert m.logistic.slope_ci95[0] < 0.04 < m.logistic.slope_ci95[1]


def test_bootstrap_repeats_with_its_seed(tmp_path):
    cohort, responses, _ = synthetic_cohort(tmp_path, n_patients=25, flip=0.15, seed=9)
    a = analyse_cohort(cohort, responses, n_bootstrap=200, seed=1).metrics["mean_gy"]
    b = analyse_cohort(cohort, responses, n_bootstrap=200, seed=1).metrics["mean_gy"]
    c = analyse_cohort(cohort, responses, n_bootstrap=200, seed=2).metrics["mean_gy"]
    assert a.auc_ci95 == b.auc_ci95 and a.threshold_ci95_gy == b.threshold_ci95_gy
    assert a.auc_ci95 != c.auc_ci95


def test_d70_and_bed_of_the_mean_dose(tmp_path):
    from dosimetry.stats.radiobiology import bed_permanent_implant_gy

    cohort, responses, _ = synthetic_cohort(tmp_path, n_patients=25, flip=0.15, seed=9)
    result = analyse_cohort(cohort, responses, n_bootstrap=0)
    mean, d70, bed = (result.metrics[k] for k in ("mean_gy", "D70", "bed_of_mean_gy"))
    assert np.allclose(d70.dose_gy, 0.7 * mean.dose_gy, atol=0.01)
    # BED of the mean dose (Dale 1985; alpha/beta 10 Gy, repair 2.5 h): same ranking, so the same AUC
    assert bed.auc == pytest.approx(mean.auc)
    upper = mean.threshold_observed_gy
    lower = max(d for d in mean.dose_gy if d < upper)
    expected = bed_permanent_implant_gy([lower, upper], alpha_beta_gy=10.0, repair_half_time_h=2.5)
    assert bed.threshold_observed_gy == pytest.approx(float(expected[1]))
    assert bed.threshold_gy == pytest.approx(float(expected.mean()))
    assert any("BED of each lesion's mean dose" in n for n in result.notes)


def test_a_bootstrap_of_few_patients_carries_a_caution(tmp_path):
    cohort, responses, _ = synthetic_cohort(tmp_path, n_patients=8, flip=0.2, seed=21)
    result = analyse_cohort(cohort, responses, n_bootstrap=100)
    assert result.metrics["mean_gy"].bootstrap["caution"].startswith("only 8 patients to resample")
    assert any(w.startswith("bootstrap: only 8 patients") for w in result.warnings)
