"""Local deposition against the analytic MIRD result, decay correction and relative calibration."""

import math

import numpy as np
import pytest

from dosimetry import constants as c
from dosimetry.quantify.decay import decay_factor_to_implant
from dosimetry.errors import UnitsError
from dosimetry.image import Image
from dosimetry.pipeline import DosimetryOptions, run_dosimetry
from helpers import oblique_direction, roi_on


def test_ldm_constant_derived_from_icrp107():
    # 0.93290 MeV x 1.602176634e-13 J/MeV x (64.1 h x 3600 / ln 2) s x 1e9 Bq/GBq = 49.76 Gy kg/GBq
    expected = 0.93290 * 1.602176634e-13 * 64.1 * 3600 / math.log(2) * 1e9
    assert c.Y90_LDM_GY_KG_PER_GBQ == pytest.approx(expected, rel=1e-12)
    assert round(c.Y90_LDM_GY_KG_PER_GBQ, 2) == 49.76
    assert abs(c.Y90_LDM_GY_KG_PER_GBQ / c.Y90_LDM_CONVENTIONAL_GY_KG_PER_GBQ - 1) < 0.01
    for name, entry in c.constants_record().items():
        assert entry["source"] and entry["unit"], name


def test_decay_factor_one_half_life():
    assert decay_factor_to_implant(64.1 * 3600) == pytest.approx(2.0, rel=1e-12)
    with pytest.raises(UnitsError, match="BEFORE"):
        decay_factor_to_implant(-3600)


@pytest.mark.parametrize("density", [1.03, 1.06, 0.3])
def test_uniform_block_mean_dose_equals_mird_formula(density):
    """Uniform activity A in a block of mass M: D = 49.76 Gy kg/GBq x A / M (within 0.1%)."""
    shape = (30, 24, 20)
    image = Image(np.zeros(shape, np.float32), (-50.0, 20.0, 7.0), (3.0, 3.5, 4.0), oblique_direction())
    conc_bqml = 2.5e5
    block = np.zeros(shape, bool)
    block[5:25, 4:20, 3:17] = True
    activity = image.with_array(np.where(block, conc_bqml, 0.0).astype(np.float32))
    ct_hu = None
    opts = DosimetryOptions(scan_delay_h=0.0, activity_units="Bq/mL", default_density_g_ml=density)
    result = run_dosimetry(activity, [roi_on(image, block, "block", "other")], ct=ct_hu, options=opts)
    volume_ml = block.sum() * image.voxel_volume_ml
    a_gbq = conc_bqml * volume_ml / 1e9
    m_kg = density * volume_ml / 1000
    expected_gy = 49.76 * a_gbq / m_kg
    entry = result.roi("block")
    assert entry["mean_gy"] == pytest.approx(expected_gy, rel=1e-3)
    assert entry["mass_g"] == pytest.approx(m_kg * 1000, rel=1e-6)
    assert entry["activity_mbq"] == pytest.approx(a_gbq * 1000, rel=1e-6)
    assert entry["std_gy"] == pytest.approx(0.0, abs=1e-3 * expected_gy)


def test_scan_delay_decay_corrects_back_to_implant():
    image = Image(np.full((6, 6, 6), 1e5, np.float32), spacing_mm=4.0)
    roi = roi_on(image, np.ones(image.shape), "all", "other")
    d0 = run_dosimetry(image, [roi], options=DosimetryOptions(scan_delay_h=0, activity_units="Bq/mL")).roi("all")
    d1 = run_dosimetry(image, [roi], options=DosimetryOptions(scan_delay_h=20, activity_units="Bq/mL")).roi("all")
    assert d1["mean_gy"] / d0["mean_gy"] == pytest.approx(
        math.exp(math.log(2) * 20 / 64.1), rel=1e-6
    )  # dose maps are float32


def test_absolute_without_timing_is_refused():
    image = Image(np.ones((4, 4, 4), np.float32))
    with pytest.raises(UnitsError, match="scan-delay-h"):
        run_dosimetry(image, [roi_on(image, np.ones((4, 4, 4)), "a", "liver")], options=DosimetryOptions())


@pytest.mark.parametrize("units", ["counts", "Bq/mL"])
def test_relative_calibration_puts_delivered_activity_in_liver(units):
    """Activity inside the calibration ROI = A x (1 - residual) x (1 - LSF), within 0.1%."""
    rng = np.random.default_rng(7)
    image = Image(
        rng.gamma(2.0, 50.0, (24, 20, 16)).astype(np.float32), (5, 5, 5), (4.0, 4.0, 4.0), oblique_direction()
    )
    liver = np.zeros(image.shape, np.float32)
    liver[4:18, 3:15, 2:12] = 1
    liver[4, 3:15, 2:12] = 0.4  # a fractional edge
    lung = np.zeros(image.shape, np.float32)
    lung[19:23, 3:15, 2:12] = 1
    opts = DosimetryOptions(
        calibration="relative",
        activity_units=units,
        administered_activity_gbq=2.4,
        residual_fraction=0.04,
        lung_shunt_fraction=0.08,
    )
    result = run_dosimetry(
        image, [roi_on(image, liver, "liver", "liver"), roi_on(image, lung, "lung", "lung")], options=opts
    )
    expected_mbq = 2.4e3 * (1 - 0.04) * (1 - 0.08)
    assert result.roi("liver")["activity_mbq"] == pytest.approx(expected_mbq, rel=1e-3)
    assert float(np.sum(result.activity_bq.array * liver)) / 1e6 == pytest.approx(expected_mbq, rel=1e-3)
    # the lung-shunt estimate: 49.67 x A x (1 - residual) x LSF / 1 kg
    assert result.stats["lung"]["lsf_estimate_gy"] == pytest.approx(49.67 * 2.4 * 0.96 * 0.08, rel=1e-9)
    assert any("lung mass not given" in w for w in result.warnings)


def test_scan_and_implant_date_times_equal_the_delay():
    from datetime import datetime

    image = Image(np.full((5, 5, 5), 3e4, np.float32), spacing_mm=4.0)
    roi = roi_on(image, np.ones(image.shape), "all", "other")
    by_delay = run_dosimetry(image, [roi], options=DosimetryOptions(scan_delay_h=26.5, activity_units="kBq/mL"))
    by_times = run_dosimetry(
        image,
        [roi],
        options=DosimetryOptions(
            scan_time=datetime(2026, 3, 3, 0, 45), implant_time=datetime(2026, 3, 1, 22, 15), activity_units="kBq/mL"
        ),
    )
    assert by_times.roi("all")["mean_gy"] == pytest.approx(by_delay.roi("all")["mean_gy"], rel=1e-9)
    # kBq/mL is 1000 x Bq/mL
    in_bq = run_dosimetry(image, [roi], options=DosimetryOptions(scan_delay_h=26.5, activity_units="Bq/mL"))
    assert by_delay.roi("all")["mean_gy"] == pytest.approx(1000 * in_bq.roi("all")["mean_gy"], rel=1e-6)


def test_ldm_is_the_same_in_any_memory_order(monkeypatch):
    """LDM works in slabs along the slowest axis (contiguous in C or Fortran order): same dose either way."""
    import dosimetry.dose.ldm as ldm_module
    from dosimetry.dose.ldm import ldm_dose

    monkeypatch.setattr(ldm_module, "_SLAB_VOXELS", 100)  # many slabs
    rng = np.random.default_rng(4)
    activity = rng.random((11, 9, 7)) * 1e6
    density = rng.random((11, 9, 7)) + 0.5
    density[3, 4, 5] = 0.0  # zero density: zero dose
    doses = [
        ldm_dose(
            Image(np.asarray(activity, order=o), (0, 0, 0), (2, 2, 2)),
            Image(np.asarray(density, order=o), (0, 0, 0), (2, 2, 2)),
        ).array
        for o in ("C", "F")
    ]
    assert np.array_equal(doses[0], doses[1])
    assert doses[0][3, 4, 5] == 0 and np.all(
        np.delete(doses[0].ravel(), np.ravel_multi_index((3, 4, 5), (11, 9, 7))) > 0
    )
