"""Planning models: MIRD single compartment, BSA (resin) and partition model, by hand and on the sample study."""

import math

import pytest

from dosimetry.errors import OptionsError
from dosimetry.stats.planning import (
    bsa_activity_gbq,
    bsa_du_bois_m2,
    mird_activity_gbq,
    mird_dose_gy,
    partition_doses_gy,
    partition_max_activity_gbq,
    planning_section,
    resin_lsf_factor,
)

K = 49.67  # Gy kg/GBq, the published constant of these models


def test_mird_single_compartment_by_hand():
    # 3 GBq, 10 % shunt, 2 % residual into 1.8 kg: 49.67 x 3 x 0.98 x 0.9 / 1.8 = 73.0149 Gy
    assert mird_dose_gy(3.0, 1.8, lung_shunt_fraction=0.1, residual_fraction=0.02) == pytest.approx(73.0149, abs=1e-4)
    # prescription and prediction are inverse (without residual)
    a = mird_activity_gbq(120.0, 1.5, lung_shunt_fraction=0.05)
    assert a == pytest.approx(120.0 * 1.5 / (K * 0.95), rel=1e-12)
    assert mird_dose_gy(a, 1.5, lung_shunt_fraction=0.05) == pytest.approx(120.0, rel=1e-12)


def test_bsa_method_by_hand():
    # Du Bois, 170 cm, 70 kg: 0.007184 x 70^0.425 x 170^0.725 = 1.8097 m2
    bsa = bsa_du_bois_m2(170.0, 70.0)
    assert bsa == pytest.approx(0.007184 * 70**0.425 * 170**0.725, rel=1e-12)
    assert bsa == pytest.approx(1.8097, abs=1e-4)
    # A = (BSA - 0.2) + V_T / (V_T + V_N); 200 mL tumour in 1800 mL liver
    assert bsa_activity_gbq(bsa, 200.0, 1600.0) == pytest.approx(bsa - 0.2 + 0.1111111, abs=1e-6)
    assert bsa_activity_gbq(bsa, 200.0, 1600.0, perfused_fraction=0.5) == pytest.approx((bsa - 0.2 + 1 / 9) / 2)
    assert [resin_lsf_factor(f) for f in (0.0, 0.099, 0.10, 0.149, 0.15, 0.199, 0.20, 0.3)] == [
        1.0,
        1.0,
        0.8,
        0.8,
        0.6,
        0.6,
        None,
        None,
    ]
    with pytest.raises(OptionsError, match="height"):
        bsa_du_bois_m2(0.0, 70.0)


def test_partition_model_by_hand():
    # A = 2 GBq, LSF 0.1, T:N 5, M_T 0.2 kg, M_N 1.2 kg, M_L 0.8 kg
    # liver 1.8 GBq; A_N = 1.8 x 1.2 / (5 x 0.2 + 1.2) = 0.981818 GBq -> D_N = 49.67 x 0.981818 / 1.2 = 40.6391 Gy
    # D_T = 5 D_N = 203.1955 Gy; A_L = 0.2 GBq -> D_L = 49.67 x 0.2 / 0.8 = 12.4175 Gy
    d = partition_doses_gy(
        2.0, lung_shunt_fraction=0.1, tn_ratio=5.0, tumour_mass_kg=0.2, normal_mass_kg=1.2, lung_mass_kg=0.8
    )
    assert d["normal_liver_gy"] == pytest.approx(40.6391, abs=1e-4)
    assert d["tumor_gy"] == pytest.approx(203.1955, abs=1e-4)
    assert d["lung_gy"] == pytest.approx(12.4175, abs=1e-4)
    assert d["tumor_gbq"] + d["normal_liver_gbq"] + d["lung_gbq"] == pytest.approx(2.0, rel=1e-12)
    # maximum activity: normal liver 70 Gy -> 2 x 70 / 40.6391 = 3.4450 GBq; lung 30 Gy -> 2 x 30 / 12.4175 = 4.8319
    a_max, by = partition_max_activity_gbq(
        lung_shunt_fraction=0.1, tn_ratio=5.0, tumour_mass_kg=0.2, normal_mass_kg=1.2, lung_mass_kg=0.8
    )
    assert by == "normal liver" and a_max == pytest.approx(2 * 70 / 40.6391, rel=1e-5)
    a_max, by = partition_max_activity_gbq(
        lung_shunt_fraction=0.3, tn_ratio=5.0, tumour_mass_kg=0.2, normal_mass_kg=1.2, lung_mass_kg=0.8
    )
    assert by == "lung" and a_max == pytest.approx(30 * 0.8 / (K * 0.3), rel=1e-9)


def _stats(**options):
    base = {"administered_activity_gbq": 2.0, "residual_fraction": 0.0, "lung_shunt_fraction": 0.1, "lung_mass_kg": 0.8}
    base.update(options)
    rois = [
        {"name": "Liver", "role": "liver", "volume_ml": 1400.0, "mass_g": 1400.0, "mean_gy": 60.0},
        {"name": "T1", "role": "tumor", "volume_ml": 200.0, "mass_g": 200.0, "mean_gy": 210.0},
        {
            "name": "normal_liver",
            "role": "normal_liver",
            "volume_ml": 1200.0,
            "mass_g": 1200.0,
            "mean_gy": 41.0,
            "derived": "liver minus all tumours",
        },
    ]
    return {
        "inputs": {"options": base},
        "rois": rois,
        "tumor_to_normal": {"activity_ratio": 5.0, "dose_ratio": 5.1},
        "lung": {"roi": "Lungs", "mean_gy": 11.0, "lsf_estimate_gy": 12.4},
    }


def test_planning_section_reports_predicted_next_to_delivered():
    pl = planning_section(_stats())
    part = pl["models"]["partition"]
    assert part["status"] == "computed" and part["tn_source"].startswith("measured")
    rows = {(r["model"], r["roi"]): r for r in pl["comparison"]}
    assert rows[("partition", "T1")]["predicted_gy"] == pytest.approx(203.1955, abs=1e-4)
    assert rows[("partition", "T1")]["delivered_gy"] == 210.0
    assert rows[("partition", "Lungs")]["delivered_gy"] == 11.0
    assert rows[("mird", "Liver")]["predicted_gy"] == pytest.approx(K * 2.0 * 0.9 / 1.4, rel=1e-12)
    assert rows[("mird", "Liver")]["predicted_over_delivered"] == pytest.approx(K * 2.0 * 0.9 / 1.4 / 60.0)
    # the pre-treatment T:N wins over the measured one when given
    assert planning_section(_stats(), planning_tn_ratio=3.0)["models"]["partition"]["tn_ratio"] == 3.0


def test_bsa_needs_height_and_weight_never_guessed():
    pl = planning_section(_stats())
    bsa = pl["models"]["bsa"]
    assert bsa["status"].startswith("not computable") and "height" in bsa["status"]
    assert bsa["prescribed_activity_gbq"] is None and bsa["bsa_m2"] is None
    assert planning_section(_stats(), height_cm=170.0)["models"]["bsa"]["prescribed_activity_gbq"] is None
    bsa = planning_section(_stats(), height_cm=170.0, weight_kg=70.0)["models"]["bsa"]
    # LSF 0.1 -> factor 0.8; V_T / V_total = 200 / 1400
    expected = (bsa_du_bois_m2(170.0, 70.0) - 0.2 + 200.0 / 1400.0) * 0.8
    assert bsa["status"] == "computed" and bsa["prescribed_activity_gbq"] == pytest.approx(expected, rel=1e-12)
    assert bsa["administered_over_prescribed"] == pytest.approx(2.0 / expected)


def test_models_say_why_they_cannot_be_computed():
    pl = planning_section(_stats(administered_activity_gbq=None))
    assert "administered activity" in pl["models"]["mird"]["status"]
    assert "administered activity" in pl["models"]["partition"]["status"]
    assert pl["comparison"] == []
    assert math.isclose(
        planning_section(_stats(), mird_target_gy=120.0)["models"]["mird"]["prescribed_activity_gbq"],
        120.0 * 1.4 / (K * 0.9),
    )


def test_command_line_clinical_options():
    import argparse

    from dosimetry.cli.clinical_options import add_clinical_arguments, clinical_options_from_args
    from dosimetry.stats.clinical import ClinicalOptions

    parser = argparse.ArgumentParser()
    add_clinical_arguments(parser)
    options = clinical_options_from_args(parser.parse_args([]))
    assert options == ClinicalOptions() and options.height_cm is None and options.weight_kg is None
    options = clinical_options_from_args(
        parser.parse_args(
            [
                "--height-cm",
                "172",
                "--weight-kg",
                "70",
                "--device",
                "resin",
                "--threshold-set",
                "lung-ho1997",
                "--eud-alpha-per-gy",
                "0.004",
                "--planning-tn",
                "3.5",
            ]
        )
    )
    assert (options.height_cm, options.weight_kg, options.device) == (172.0, 70.0, "resin")
    assert options.threshold_sets == ("lung-ho1997",) and options.eud_alpha_per_gy == 0.004
    with pytest.raises(OptionsError, match="centimetres"):
        clinical_options_from_args(parser.parse_args(["--height-cm", "1.72", "--weight-kg", "70"]))
    with pytest.raises(OptionsError, match="unknown threshold set"):
        ClinicalOptions(threshold_sets=("nope",))
