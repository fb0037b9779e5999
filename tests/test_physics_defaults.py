"""Physics defaults that users trip over (issue 9, part 5): assumed values said loudly, the lung mass from
the lung ROI's CT density, threshold sets chosen by indication and device, and the partial-volume check."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from helpers import roi_on, sphere_mask_supersampled  # noqa: E402

from dosimetry import run_dosimetry  # noqa: E402
from dosimetry.cli import main  # noqa: E402
from dosimetry.cli.run import format_summary  # noqa: E402
from dosimetry.stats.clinical import ClinicalOptions  # noqa: E402
from dosimetry.errors import OptionsError  # noqa: E402
from dosimetry.image import Image  # noqa: E402
from dosimetry.stats.partial_volume import equivalent_sphere_diameter_mm  # noqa: E402
from dosimetry.pipeline import DosimetryOptions  # noqa: E402
from dosimetry.report import write_report  # noqa: E402
from dosimetry.report.html import render_report_html  # noqa: E402
from dosimetry.stats.thresholds import NO_INDICATION_NOTE, available_threshold_sets, choose_threshold_sets  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "phantom"
SAMPLE_ARGS = [
    "run",
    "--activity",
    str(SAMPLE / "activity_bqml.nii.gz"),
    "--ct",
    str(SAMPLE / "ct_hu.nii.gz"),
    "--segmentation",
    str(SAMPLE / "rois.seg.nrrd"),
    "--scan-delay-h",
    "20",
    "--activity-units",
    "Bq/mL",
    "--administered-gbq",
    "2.0",
    "--residual-fraction",
    "0.03",
    "--lung-shunt",
    "0.05",
]


# --- a small study: liver with a lung slab above it, on a 4 mm grid -----------------------------------

GRID = Image(np.zeros((30, 30, 30), np.float32), (-60.0, -60.0, -60.0), (4.0, 4.0, 4.0))
LIVER_MASK = sphere_mask_supersampled(GRID, (0.0, 0.0, -20.0), 35.0)
LUNG_MASK = np.zeros(GRID.shape, np.float32)
LUNG_MASK[5:25, 5:25, 22:28] = 1.0  # z from +28 to +52 mm, clear of the liver


def _ct(*, covers_lung: bool = True) -> Image:
    """CT on the grid: air, lung slab -700 HU, liver 40 HU; without the lung, the CT stops at z = +20 mm."""
    hu = np.full(GRID.shape, -1000.0, np.float32)
    hu[LUNG_MASK > 0] = -700.0
    hu[LIVER_MASK > 0.5] = 40.0
    if covers_lung:
        return GRID.with_array(hu)
    return Image(hu[:, :, :20], GRID.origin_mm, GRID.spacing_mm)


def _run(*, ct=None, **option_values):
    # about 2 GBq in all (1.07e7 Bq/mL in 180 mL of liver, 5e5 in 154 mL of lung), as the 2 GBq administered
    # of the tests: the recovered-activity check of absolute calibration holds
    activity = GRID.with_array(LIVER_MASK * 1.07e7 + LUNG_MASK * 5.0e5)
    rois = [roi_on(GRID, LIVER_MASK, "Liver", "liver"), roi_on(GRID, LUNG_MASK, "Lungs", "lung")]
    values = {"activity_units": "Bq/mL", "scan_delay_h": 0.0, **option_values}
    return run_dosimetry(activity, rois, ct=ct, options=DosimetryOptions(**values))


def _assumed(stats, what):
    return [a for a in stats["assumptions"] if a["what"] == what]


# --- residual fraction and the other defaults: an "assumptions" record, the terminal, the report ------


def test_residual_not_given_is_an_assumption_on_the_terminal_above_the_table_and_in_the_report_header(tmp_path):
    result = _run(ct=_ct(), administered_activity_gbq=2.0, lung_shunt_fraction=0.05)
    (entry,) = _assumed(result.stats, "residual fraction")
    # an API run: the fix names the API parameter (issue 14); the command line names its flag
    assert entry["value_used"] == 0.0 and "DosimetryOptions(residual_fraction=...)" in entry["fix"]
    assert "lung-shunt" in entry["why"]
    assert set(entry) >= {"what", "value_used", "why", "fix"}
    assert any("residual fraction not given" in w for w in result.warnings)
    lines = format_summary(result.stats).splitlines()
    table = next(i for i, line in enumerate(lines) if line.startswith("ROI "))
    assumed = [i for i, line in enumerate(lines) if line.startswith("ASSUMED: residual fraction 0 (not given")]
    assert assumed and assumed[0] < table and "set DosimetryOptions(residual_fraction=...)" in lines[assumed[0]]
    html = render_report_html(result)
    box = html.index('id="assumptions"')
    assert box < html.index('id="warnings"') < html.index("<h2>")
    assert "ASSUMED:</strong> residual fraction 0 (not given" in html[box : html.index('id="warnings"')]


def test_residual_given_is_not_assumed_and_without_its_use_not_mentioned():
    given = _run(ct=_ct(), administered_activity_gbq=2.0, lung_shunt_fraction=0.05, residual_fraction=0.02)
    assert not _assumed(given.stats, "residual fraction")
    assert not any("residual" in line for line in format_summary(given.stats).splitlines())
    unused = _run(ct=_ct())  # absolute, no administered activity: the residual is not used
    assert not _assumed(unused.stats, "residual fraction")


def test_relative_calibration_records_residual_and_lung_shunt_assumed_zero():
    result = _run(ct=_ct(), calibration="relative", administered_activity_gbq=2.0)
    assert {a["what"] for a in result.stats["assumptions"]} >= {"residual fraction", "lung shunt fraction"}
    assert "relative calibration" in _assumed(result.stats, "residual fraction")[0]["why"]


def test_units_and_density_defaults_are_assumptions_and_the_hook_carries_others():
    from dosimetry.defaults import assumption

    extra = assumption("emission nuclide", "Y-90", "not in the header", "check the series", unit=None)
    activity = GRID.with_array(LIVER_MASK * 2.0e5)
    result = run_dosimetry(
        activity,
        [roi_on(GRID, LIVER_MASK, "Liver", "liver")],
        options=DosimetryOptions(scan_delay_h=0.0),
        extra_assumptions=[extra],
    )
    whats = [a["what"] for a in result.stats["assumptions"]]
    assert whats[0] == "emission nuclide" and {"activity units", "tissue density"} <= set(whats)
    density = _assumed(result.stats, "tissue density")[0]
    assert (density["value_used"], density["unit"]) == (1.03, "g/mL")
    with_ct = _run(ct=_ct())
    assert not _assumed(with_ct.stats, "tissue density") and not _assumed(with_ct.stats, "activity units")


# --- the lung mass of the lung-shunt estimate ---------------------------------------------------------


def test_lung_roi_with_ct_gives_the_lung_mass_of_the_lsf_estimate():
    a_gbq, residual, lsf = 2.0, 0.03, 0.05
    result = _run(ct=_ct(), administered_activity_gbq=a_gbq, residual_fraction=residual, lung_shunt_fraction=lsf)
    lung, roi = result.stats["lung"], result.roi("Lungs")
    m_roi_kg = roi["mass_g"] / 1000
    assert m_roi_kg < 0.5 * roi["volume_ml"] * 1.03 / 1000  # lung density from the CT, not the default 1.03
    assert m_roi_kg == pytest.approx(roi["volume_ml"] * 0.3101 / 1000, rel=0.01)
    assert lung["lung_mass_kg"] == pytest.approx(m_roi_kg)
    assert lung["lung_mass_source"] == 'lung ROI "Lungs" mass from CT density'
    assert lung["lsf_estimate_gy"] == pytest.approx(49.67 * a_gbq * (1 - residual) * lsf / m_roi_kg, rel=1e-9)
    assert not _assumed(result.stats, "lung mass")
    # the partition model uses the same mass
    assert result.stats["planning"]["models"]["partition"]["lung_mass_kg"] == pytest.approx(m_roi_kg)


def test_given_lung_mass_wins_and_a_disagreement_over_20_percent_is_warned():
    base = _run(ct=_ct(), administered_activity_gbq=2.0, lung_shunt_fraction=0.05, residual_fraction=0.0)
    m_roi_kg = base.roi("Lungs")["mass_g"] / 1000
    far = _run(
        ct=_ct(),
        administered_activity_gbq=2.0,
        lung_shunt_fraction=0.05,
        residual_fraction=0.0,
        lung_mass_kg=1.3 * m_roi_kg,
    )
    assert far.stats["lung"]["lung_mass_source"] == "given"
    assert far.stats["lung"]["lsf_estimate_gy"] == pytest.approx(49.67 * 2.0 * 0.05 / (1.3 * m_roi_kg))
    assert any("--lung-mass-kg" in w and "differs by 30%" in w for w in far.warnings)
    near = _run(
        ct=_ct(),
        administered_activity_gbq=2.0,
        lung_shunt_fraction=0.05,
        residual_fraction=0.0,
        lung_mass_kg=1.1 * m_roi_kg,
    )
    assert not any("--lung-mass-kg" in w for w in near.warnings)


def test_lung_roi_without_ct_falls_back_to_1_kg_and_says_why():
    result = _run(ct=None, administered_activity_gbq=2.0, lung_shunt_fraction=0.05, residual_fraction=0.0)
    lung = result.stats["lung"]
    assert lung["lung_mass_kg"] == 1.0 and lung["lung_mass_source"] == "default 1 kg (conventional)"
    assert lung["lsf_estimate_gy"] == pytest.approx(49.67 * 2.0 * 0.05 / 1.0)
    assert "no CT" in lung["lung_roi_mass_note"]
    (entry,) = _assumed(result.stats, "lung mass")
    assert entry["value_used"] == 1.0 and entry["unit"] == "kg" and "no CT" in entry["why"]
    assert any(line.startswith("ASSUMED: lung mass 1 kg") for line in format_summary(result.stats).splitlines())


def test_lung_roi_outside_the_ct_falls_back_to_1_kg():
    result = _run(
        ct=_ct(covers_lung=False), administered_activity_gbq=2.0, lung_shunt_fraction=0.05, residual_fraction=0.0
    )
    lung = result.stats["lung"]
    assert lung["lung_mass_kg"] == 1.0 and lung["lung_roi_mass_kg"] is None
    assert re.search(r"100\.0% of its volume lies outside the CT", lung["lung_roi_mass_note"])
    assert any("outside the CT" in w and "conventional 1 kg" in w for w in result.warnings)


def test_a_partial_lung_roi_is_used_but_warned():
    """The test slab weighs ~0.74 kg x 0.31: far below a pair of lungs, so the run warns."""
    result = _run(ct=_ct(), administered_activity_gbq=2.0, lung_shunt_fraction=0.05, residual_fraction=0.0)
    assert result.stats["lung"]["lung_mass_kg"] < 0.5
    assert any("far from a pair of whole lungs" in w for w in result.warnings)


# --- threshold sets by indication and device ----------------------------------------------------------


def test_every_bundled_set_declares_indications_and_device():
    for ts in available_threshold_sets().values():
        assert ts.indications and set(ts.indications) <= {"hcc", "crc", "net", "other", "any"}, ts.name
    sets = available_threshold_sets()
    assert sets["lung-ho1997"].indications == ("any",) and sets["lung-ho1997"].device is None
    assert sets["eanm2022-resin"].indications == sets["eanm2022-glass"].indications == ("hcc",)


def test_net_resin_gets_the_net_sets_and_the_lung_limits_only():
    chosen = choose_threshold_sets(None, indication="net", device="resin")
    assert {ts.name for ts in chosen.sets} == {"zuckerman2019", "chansanti2017", "lung-ho1997"}
    assert not chosen.warnings


def test_hcc_glass_gets_eanm_glass_and_the_lung_limits():
    chosen = choose_threshold_sets(None, indication="hcc", device="glass")
    assert {ts.name for ts in chosen.sets} == {"eanm2022-glass", "lung-ho1997"}


def test_without_device_device_specific_sets_are_left_out_with_a_note():
    chosen = choose_threshold_sets(None, indication="hcc", device=None)
    assert {ts.name for ts in chosen.sets} == {"lung-ho1997"}
    assert any("--device" in n and "eanm2022-glass" in n and "eanm2022-resin" in n for n in chosen.notes)


def test_without_indication_no_flags_and_the_note_on_the_terminal():
    result = _run(ct=_ct(), administered_activity_gbq=2.0, lung_shunt_fraction=0.05, residual_fraction=0.0)
    flags = result.stats["flags"]
    assert flags["results"] == [] and flags["sets"] == [] and flags["evaluated"] is False
    assert flags["notes"] == [NO_INDICATION_NOTE]
    assert NO_INDICATION_NOTE in format_summary(result.stats).splitlines()
    assert NO_INDICATION_NOTE in render_report_html(result)


def test_explicit_set_still_works_but_a_mismatch_is_warned():
    clinical = ClinicalOptions(indication="net", device="resin", threshold_sets=("eanm2022-glass",))
    result = _run(
        ct=_ct(), administered_activity_gbq=2.0, lung_shunt_fraction=0.05, residual_fraction=0.0, clinical=clinical
    )
    assert {r["set"] for r in result.stats["flags"]["results"]} == {"eanm2022-glass"}
    assert any("'eanm2022-glass' is for hcc" in w and "--indication net" in w for w in result.warnings)
    assert any("'eanm2022-glass' is for glass microspheres, not --device resin" in w for w in result.warnings)
    matching = _run(
        ct=_ct(), clinical=ClinicalOptions(indication="net", device="resin", threshold_sets=("zuckerman2019",))
    )
    assert not any("threshold set" in w for w in matching.warnings)


def test_indication_is_checked():
    with pytest.raises(OptionsError, match="indication"):
        ClinicalOptions(indication="liver")


def test_cli_net_resin_report_shows_no_hcc_or_glass_threshold(tmp_path, capsys):
    out = tmp_path / "net"
    assert main([*SAMPLE_ARGS, "--indication", "net", "--device", "resin", "--out", str(out)]) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert {s["name"] for s in stats["flags"]["sets"]} == {"zuckerman2019", "chansanti2017", "lung-ho1997"}
    html = (out / "report.html").read_text(encoding="utf-8")
    html = re.sub(r'src="data:image/png;base64,[^"]*"', "", html)
    flags_section = html[html.index('<section id="flags">') : html.index('<section id="inputs">')]
    assert "chansanti2017" in flags_section and "zuckerman2019" in flags_section
    for text in ("eanm2022", "HCC", "Table 2", "Table 3", "205 Gy", "100-120 Gy"):
        assert text not in html, text
    assert "glass" not in flags_section.lower()
    for name in ("eanm2022-glass", "eanm2022-resin"):
        ts = available_threshold_sets()[name]
        assert ts.title not in html and ts.note not in html
        assert not any(rule.meaning in html for rule in ts.rules)


def test_cli_without_indication_prints_the_note(tmp_path, capsys):
    assert main([*SAMPLE_ARGS, "--out", str(tmp_path / "none")]) == 0
    printed = capsys.readouterr().out
    assert NO_INDICATION_NOTE in printed
    stats = json.loads((tmp_path / "none" / "stats.json").read_text())
    assert stats["flags"]["results"] == []


# --- partial volume -----------------------------------------------------------------------------------


def _lesions(resolution_mm=None):
    grid = Image(np.zeros((50, 50, 34), np.float32), (-50.0, -50.0, -50.0), (2.0, 2.0, 3.0))
    liver = sphere_mask_supersampled(grid, (0.0, 0.0, 0.0), 45.0)
    r_small = (3 * 2000 / (4 * np.pi)) ** (1 / 3)  # 2 mL
    r_large = (3 * 30000 / (4 * np.pi)) ** (1 / 3)  # 30 mL
    small = sphere_mask_supersampled(grid, (-30.0, 0.0, 0.0), r_small)
    large = sphere_mask_supersampled(grid, (12.0, 0.0, 0.0), r_large)
    activity = grid.with_array(liver * 1e5 + (small + large) * 1e6)
    rois = [
        roi_on(grid, liver, "Liver", "liver"),
        roi_on(grid, small, "Small", "tumor"),
        roi_on(grid, large, "Large", "tumor"),
    ]
    return run_dosimetry(
        activity,
        rois,
        options=DosimetryOptions(
            activity_units="Bq/mL", scan_delay_h=0.0, clinical=ClinicalOptions(resolution_mm=resolution_mm)
        ),
    )


def test_small_lesion_gets_a_partial_volume_warning_and_a_large_one_does_not():
    result = _lesions()
    small, large = result.roi("Small"), result.roi("Large")
    assert small["volume_ml"] == pytest.approx(2.0, rel=0.03) and large["volume_ml"] == pytest.approx(30.0, rel=0.03)
    pv = small["partial_volume"]
    assert pv["equivalent_diameter_mm"] == pytest.approx((6 * small["volume_ml"] * 1000 / np.pi) ** (1 / 3))
    assert pv["resolution_mm"] == 3.0 and "lower bound" in pv["resolution_source"]  # the largest spacing
    assert pv["ratio"] == pytest.approx(pv["equivalent_diameter_mm"] / 3.0)
    assert pv["warning"] is True and "under 5 mL" in pv["reason"]
    assert large["partial_volume"]["warning"] is False
    pv_warnings = [w for w in result.warnings if "partial-volume" in w]
    assert len(pv_warnings) == 1 and "'Small'" in pv_warnings[0]
    assert "partial_volume" not in result.roi("tumors_all")
    (entry,) = _assumed(result.stats, "image resolution for the partial-volume check")
    # an API run names the API parameter, not the command-line flag (issue 14)
    assert entry["value_used"] == 3.0 and "ClinicalOptions(resolution_mm=...)" in entry["fix"]
    assert "--resolution-mm" not in entry["fix"]


def test_given_resolution_flags_a_lesion_under_3_fwhm():
    result = _lesions(resolution_mm=12.0)  # 3 x 12 = 36 mm < the 30 mL lesion's 38.5 mm: not flagged
    large = result.roi("Large")["partial_volume"]
    assert large["resolution_source"] == "given (FWHM)" and large["warning"] is False
    result = _lesions(resolution_mm=14.0)  # 3 x 14 = 42 mm > 38.5 mm: flagged by the diameter, not the volume
    large = result.roi("Large")["partial_volume"]
    assert large["warning"] is True and large["reason"] == "diameter under 3 x the resolution"
    assert large["ratio"] == pytest.approx(equivalent_sphere_diameter_mm(result.roi("Large")["volume_ml"]) / 14.0)
    assert not _assumed(result.stats, "image resolution for the partial-volume check")


def test_report_shows_the_partial_volume_badge(tmp_path):
    path = write_report(_lesions(), tmp_path / "report.html")
    html = path.read_text(encoding="utf-8")
    lesions = html[html.index('id="lesion-table"') :]
    lesions = lesions[: lesions.index("</table>")]
    small_row = lesions[lesions.index('data-roi="Small"') :]
    assert "partial volume: under 5 mL" in small_row[: small_row.index("</tr>")]
    large_row = lesions[lesions.index('data-roi="Large"') :]
    assert "partial volume" not in large_row[: large_row.index("</tr>")]


def test_resolution_option_on_the_command_line():
    from dosimetry.cli import build_parser
    from dosimetry.cli.clinical_options import clinical_options_from_args

    args = build_parser().parse_args(
        ["run", "--activity", "a.nii", "--out", "o", "--resolution-mm", "7.5", "--indication", "crc"]
    )
    options = clinical_options_from_args(args)
    assert (options.resolution_mm, options.indication) == (7.5, "crc")


def test_user_threshold_files_declare_indications_or_are_warned(tmp_path):
    from dosimetry.stats.thresholds import load_threshold_set

    body = (
        'name = "mine"\nsource = "my protocol"\n{extra}\n[[rules]]\nid = "r"\nroi = "normal_liver"\n'
        'quantity = "mean_gy"\ncomparison = ">"\nthreshold = 40.0\nlevel = "caution"\n'
    )
    bad = tmp_path / "bad.toml"
    bad.write_text(body.format(extra='indications = ["liver"]'))
    with pytest.raises(OptionsError, match="indications"):
        load_threshold_set(bad)
    anyset = tmp_path / "any.toml"
    anyset.write_text(body.format(extra='indications = ["crc"]\ndevice = "any"'))
    loaded = load_threshold_set(anyset)
    assert loaded.indications == ("crc",) and loaded.device is None
    assert not choose_threshold_sets([str(anyset)], indication="crc", device="glass").warnings
    undeclared = tmp_path / "undeclared.toml"
    undeclared.write_text(body.format(extra=""))
    (warning,) = choose_threshold_sets([str(undeclared)], indication="crc", device=None).warnings
    assert "declares no indications" in warning


def test_report_says_why_the_lung_roi_mass_was_not_used():
    result = _run(
        ct=_ct(covers_lung=False), administered_activity_gbq=2.0, lung_shunt_fraction=0.05, residual_fraction=0.0
    )
    table = render_report_html(result).split('id="tn-lung-table"', 1)[1].split("</table>", 1)[0]
    assert "default 1 kg (conventional)" in table and "lies outside the CT" in table
