"""Radiobiology: BED of a permanent Y-90 implant against hand calculation, EUD against analytic cases."""

import math

import numpy as np
import pytest

from dosimetry.errors import OptionsError
from dosimetry.stats.radiobiology import bed_permanent_implant_gy, eud_exponential_gy, roi_radiobiology

# Hand calculation, Y-90 T_phys = 64.1 h, T_rep = 2.5 h:
#   tumour, alpha/beta 10 Gy:  100 x (1 + 100 x 2.5 / ((2.5 + 64.1) x 10))  = 100 x (1 + 250 / 666)  = 137.537537... Gy
#   liver,  alpha/beta 2.5 Gy: 100 x (1 + 100 x 2.5 / ((2.5 + 64.1) x 2.5)) = 100 x (1 + 250 / 166.5) = 250.150150... Gy
BED_100GY_TUMOUR = 137.5375
BED_100GY_LIVER = 250.1502


def test_bed_of_uniform_100_gy_equals_hand_calculation():
    dose = np.full((4, 5, 6), 100.0)
    tumour = bed_permanent_implant_gy(dose, alpha_beta_gy=10.0, repair_half_time_h=2.5)
    liver = bed_permanent_implant_gy(dose, alpha_beta_gy=2.5, repair_half_time_h=2.5)
    assert tumour.shape == dose.shape
    np.testing.assert_allclose(tumour, BED_100GY_TUMOUR, atol=1e-4)
    np.testing.assert_allclose(liver, BED_100GY_LIVER, atol=1e-4)


def test_roi_radiobiology_of_a_uniform_dose():
    dose = np.full((3, 3, 3), 100.0)
    weights = np.zeros_like(dose)
    weights[1:, 1:, 1:] = 1.0
    weights[0, 0, 0] = 0.5
    r = roi_radiobiology(dose, weights, alpha_beta_gy=10.0, repair_half_time_h=2.5, eud_alpha_per_gy=0.005)
    assert r["bed_mean_gy"] == pytest.approx(BED_100GY_TUMOUR, abs=1e-4)
    assert r["bed_of_mean_gy"] == pytest.approx(BED_100GY_TUMOUR, abs=1e-4)
    assert r["eud_gy"] == pytest.approx(100.0, abs=1e-9)  # a uniform dose is its own EUD
    assert r["eubed_gy"] == pytest.approx(BED_100GY_TUMOUR, abs=1e-4)


def test_bed_limits_and_validation():
    # instantaneous repair (T_rep -> 0): no quadratic term left, BED -> D
    assert float(bed_permanent_implant_gy(80.0, alpha_beta_gy=3.0, repair_half_time_h=1e-9)) == pytest.approx(
        80.0, rel=1e-9
    )
    # BED grows with dose faster than linearly: mean BED of a split dose exceeds BED of the mean
    dose = np.array([50.0, 150.0])
    r = roi_radiobiology(dose, np.ones(2), alpha_beta_gy=2.5, repair_half_time_h=2.5, eud_alpha_per_gy=None)
    assert r["bed_mean_gy"] > r["bed_of_mean_gy"]
    assert r["eud_gy"] is None and r["eubed_gy"] is None
    for bad in (0.0, -1.0, math.nan):
        with pytest.raises(OptionsError, match="alpha/beta"):
            bed_permanent_implant_gy(1.0, alpha_beta_gy=bad, repair_half_time_h=2.5)


def test_eud_two_compartments_analytic():
    # half the volume at 0 Gy, half at D: EUD = -ln(0.5 + 0.5 exp(-alpha D)) / alpha
    alpha, d = 0.01, 100.0
    expected = -math.log(0.5 + 0.5 * math.exp(-alpha * d)) / alpha  # 37.9885 Gy
    assert eud_exponential_gy([0.0, d], alpha_per_gy=alpha) == pytest.approx(expected, rel=1e-12)
    # occupancy weights count as volume: one full voxel at 0 Gy and two half voxels at D = the same halves
    assert eud_exponential_gy([0.0, d, d], [1.0, 0.5, 0.5], alpha_per_gy=alpha) == pytest.approx(expected, rel=1e-12)


def test_eud_bounds_and_no_underflow():
    rng = np.random.default_rng(5)
    dose = rng.uniform(10.0, 400.0, 2000)
    mean = dose.mean()
    eud = eud_exponential_gy(dose, alpha_per_gy=0.01)
    assert dose.min() <= eud <= mean
    # alpha -> 0: EUD -> mean dose (first-order expansion: mean - alpha var / 2)
    assert eud_exponential_gy(dose, alpha_per_gy=1e-7) == pytest.approx(mean, rel=1e-4)
    # a large alpha x dose does not underflow to inf/nan: EUD tends to the minimum dose
    huge = eud_exponential_gy(np.array([1e4, 2e4]), alpha_per_gy=1.0)
    assert math.isfinite(huge) and huge == pytest.approx(1e4 + math.log(2.0), rel=1e-9)
    with pytest.raises(OptionsError):
        eud_exponential_gy(dose, alpha_per_gy=0.0)
