"""The emission nuclide decides what may be computed (issue 9, part 1).

Y-90 images give a Y-90 dose; Tc-99m MAA images give a *predictive* dose at the planned Y-90 activity,
labelled so in every output; any other nuclide is refused (exit 5) unless ``--emission-nuclide Y-90`` says
the scan is Y-90; no header activity of another nuclide is taken as Y-90 activity; an absolutely calibrated
image must hold about the delivered activity (``activity_check.recovered_fraction``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.sr._concepts_dict import concepts

import dicom_builders as b
from dosimetry.cli import main
from dosimetry.quantify.emission import (
    HO166,
    RADIONUCLIDE_CODES,
    RADIOPHARMACEUTICAL_CODES,
    TC99M,
    UNKNOWN,
    Y90,
    Evidence,
    Verdict,
    decide,
    evidence_from_header,
    nuclides_in_text,
    parse_nuclide,
)
from dosimetry.errors import OptionsError, UnitsError
from dosimetry.io.images import write_nifti
from dosimetry.pipeline import DosimetryOptions, run_dicom_study, run_dosimetry
from test_dicom_end_to_end import assert_fails_cleanly, cli
from test_real_dicom_unusual import _check_outputs

Y90_CODE = ("14691008", "SCT", "^90^Yttrium")
TC_CODE = ("72454006", "SCT", "^99m^Technetium")
MAA_CODE = ("85693008", "SCT", "Technetium Tc^99m^ aggregated albumin")
LU_CODE = ("447553000", "SCT", "^177^Lutetium")
F18_HALF_LIFE_S = 6586.2
TC99M_HALF_LIFE_S = 21624.0


def header(*items):
    """A minimal header with one Radiopharmaceutical Information Sequence item per dict."""
    ds = pydicom.Dataset()
    seq = []
    for fields in items:
        item = pydicom.Dataset()
        for key, value in fields.items():
            if key.endswith("CodeSequence"):
                code = pydicom.Dataset()
                code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value
                setattr(item, key, pydicom.Sequence([code]))
            else:
                setattr(item, key, value)
        seq.append(item)
    ds.RadiopharmaceuticalInformationSequence = pydicom.Sequence(seq)
    return ds


# --- the code tables are DICOM's (checked against pydicom's copy of PS3.16) -------------------------------
def _sct_meanings():
    return {code: meaning for entry in concepts["SCT"].values() for code, (meaning, _cids) in entry.items()}


@pytest.mark.parametrize("table", ["radionuclide", "radiopharmaceutical"])
def test_snomed_codes_name_what_dicom_says(table):
    meanings = _sct_meanings()
    codes = RADIONUCLIDE_CODES if table == "radionuclide" else RADIOPHARMACEUTICAL_CODES
    checked = 0
    for (scheme, value), entry in codes.items():
        if scheme != "SCT" or value not in meanings:
            continue
        nuclide = entry if isinstance(entry, str) else entry[0]
        found, _ = nuclides_in_text(meanings[value])
        assert found == (nuclide,), (value, meanings[value], nuclide)
        checked += 1
    assert checked >= 5
    assert RADIONUCLIDE_CODES[("SCT", "14691008")] == Y90  # ^90^Yttrium, not Y-86 (10738001)
    assert RADIONUCLIDE_CODES[("SCT", "10738001")] == "Y-86"


# --- the decision (a pure function of the evidence) ------------------------------------------------------
def test_y90_named_by_its_code():
    decision = decide(evidence_from_header(header({"RadionuclideCodeSequence": Y90_CODE})))
    assert decision.verdict is Verdict.Y90 and decision.header_nuclide == Y90 and decision.header_activity_is_y90
    assert decision.record()["evidence"][0]["nuclide"] == Y90 and not decision.warnings


def test_y90_wins_over_a_scanner_set_to_f18():
    """The scanner's half-life (and positron fraction) set to F-18 while the header names Y-90 (as real
    Y-90 PET often is): Y-90, with the conflict recorded and warned."""
    evidence = evidence_from_header(
        header(
            {
                "Radiopharmaceutical": "Y-90 SIR-Spheres",
                "RadionuclideHalfLife": f"{F18_HALF_LIFE_S}",
                "RadionuclidePositronFraction": "0.9686",
            }
        )
    )
    decision = decide(evidence)
    assert decision.verdict is Verdict.Y90
    assert len(decision.conflicts) == 2 and all("F-18" in c and "Y-90 is taken" in c for c in decision.conflicts)
    assert decision.warnings == decision.conflicts


@pytest.mark.parametrize(
    "fields",
    [
        {"Radiopharmaceutical": "Tc99m MAA"},
        {"Radiopharmaceutical": "^99m^Tc-macroaggregated albumin"},
        {"RadiopharmaceuticalCodeSequence": MAA_CODE},
        {"RadionuclideCodeSequence": TC_CODE, "Radiopharmaceutical": "MAA"},
        {"Radiopharmaceutical": "MAA"},
    ],
)
def test_tc99m_maa_is_a_predictive_run(fields):
    decision = decide(evidence_from_header(header(fields)))
    assert decision.verdict is Verdict.TC99M_PREDICTIVE and decision.nuclide == TC99M and decision.agent == "MAA"
    assert decision.label == "predictive dose from Tc-99m MAA" and not decision.header_activity_is_y90
    assert not decision.warnings


def test_tc99m_without_agent_is_taken_as_maa_with_a_warning_and_another_agent_is_refused():
    bare = decide(evidence_from_header(header({"RadionuclideCodeSequence": TC_CODE})))
    assert bare.verdict is Verdict.TC99M_PREDICTIVE and "not MAA" in bare.warnings[0]
    mibi = decide(evidence_from_header(header({"Radiopharmaceutical": "Tc-99m sestamibi"})))
    assert mibi.verdict is Verdict.REFUSED and "sestamibi" in mibi.reason and "--emission-nuclide Tc-99m" in mibi.reason


@pytest.mark.parametrize(
    "fields, nuclide",
    [
        ({"RadionuclideCodeSequence": LU_CODE, "Radiopharmaceutical": "Lu-177 DOTATATE"}, "Lu-177"),
        ({"Radiopharmaceutical": "I-131 sodium iodide"}, "I-131"),
        ({"Radiopharmaceutical": "Ga68 DOTATOC"}, "Ga-68"),
        ({"Radiopharmaceutical": "FDG"}, "F-18"),
        ({"Radiopharmaceutical": "Fluorodeoxyglucose F^18^"}, "F-18"),
        ({"RadionuclideHalfLife": f"{F18_HALF_LIFE_S}"}, "F-18"),
        ({"RadionuclideHalfLife": "123.4"}, UNKNOWN),
    ],
)
def test_other_nuclides_are_refused_naming_the_nuclide_and_the_evidence(fields, nuclide):
    decision = decide(evidence_from_header(header(fields)))
    assert decision.verdict is Verdict.REFUSED and decision.nuclide == nuclide
    assert (nuclide if nuclide != UNKNOWN else "unknown nuclide") in decision.reason
    assert "--emission-nuclide Y-90" in decision.reason
    with pytest.raises(UnitsError, match="PET series X"):
        decision.require_computable("PET series X")
    assert UnitsError.exit_code == 5


def test_ho166_is_refused_for_now_with_its_own_reason():
    decision = decide(evidence_from_header(header({"Radiopharmaceutical": "QuiremSpheres"})))
    assert decision.verdict is Verdict.REFUSED and decision.nuclide == HO166
    assert "not supported yet" in decision.reason


def test_the_user_overrides_the_header_and_the_record_says_so():
    evidence = evidence_from_header(header({"RadionuclideCodeSequence": LU_CODE}))
    decision = decide(evidence, override="y90")
    assert decision.verdict is Verdict.Y90 and decision.source == "--emission-nuclide" and decision.override == Y90
    assert decision.header_nuclide == "Lu-177" and not decision.header_activity_is_y90
    assert any("overrides" in w and "Lu-177" in w for w in decision.warnings)
    record = decision.record()
    assert (
        record["override"] == Y90 and record["header_nuclide"] == "Lu-177" and record["source"] == "--emission-nuclide"
    )


def test_no_evidence_assumes_y90_loudly_and_conflicting_names_are_refused():
    assumed = decide(())
    assert assumed.verdict is Verdict.Y90 and assumed.source == "assumed (not stated)"
    assert "Y-90 assumed" in assumed.warnings[0]
    both = decide(
        evidence_from_header(
            header({"Radiopharmaceutical": "Y-90 microspheres"}, {"Radiopharmaceutical": "Lu-177 DOTATATE"})
        )
    )
    assert both.verdict is Verdict.REFUSED and "several nuclides" in both.reason and "--emission-nuclide" in both.reason


@pytest.mark.parametrize(
    "text, nuclide",
    [
        ("Y-90", Y90),
        ("y90", Y90),
        ("90Y", Y90),
        ("Yttrium-90", Y90),
        ("Tc-99m", TC99M),
        ("Tc-99m MAA", TC99M),
        ("99mTc", TC99M),
        ("Lu-177", "Lu-177"),
        ("ho166", HO166),
    ],
)
def test_parse_nuclide(text, nuclide):
    assert parse_nuclide(text) == nuclide


@pytest.mark.parametrize("text", ["", "yttrium", "Y-90 and Lu-177", "banana"])
def test_parse_nuclide_refuses_what_names_no_single_nuclide(text):
    with pytest.raises(OptionsError, match="--emission-nuclide"):
        parse_nuclide(text)


def test_evidence_describes_itself():
    item = Evidence("Radiopharmaceutical", "'Y-90'", Y90)
    assert item.names and item.describe() == "Radiopharmaceutical 'Y-90' = Y-90"
    assert not Evidence("RadionuclideHalfLife", "230760 s", Y90, "half-life").names


# --- DICOM studies end to end ----------------------------------------------------------------------------
def _lu177_study(folder, **kwargs):
    """A phantom PET/CT study whose PET header says Lu-177 (a SPECT stored as PT, or a Y-90 scan acquired
    under a Lu-177 protocol)."""
    truth, uids = b.write_phantom_study(folder, **kwargs)
    for path in sorted((Path(folder) / "pet").glob("*.dcm")):
        ds = pydicom.dcmread(path)
        item = ds.RadiopharmaceuticalInformationSequence[0]
        item.Radiopharmaceutical = "Lu-177 DOTATATE"
        item.RadionuclideHalfLife = "574300"
        item.RadionuclideCodeSequence[0].CodeValue = "447553000"
        item.RadionuclideCodeSequence[0].CodingSchemeDesignator = "SCT"
        item.RadionuclideCodeSequence[0].CodeMeaning = "^177^Lutetium"
        item.RadionuclideTotalDose = "7.4e9"
        ds.save_as(path)
    return truth, uids


def test_cli_refuses_a_lu177_study_naming_the_nuclide_and_the_fix(tmp_path):
    _lu177_study(tmp_path / "s")
    out = tmp_path / "out"
    proc = cli(["run", str(tmp_path / "s"), "--out", str(out)], tmp_path)
    assert_fails_cleanly(proc, out, UnitsError.exit_code, "Lu-177")
    assert "--emission-nuclide Y-90" in proc.stderr and "PET series" in proc.stderr


def test_emission_nuclide_y90_overrides_a_lu177_header_and_its_activity_is_not_used(tmp_path):
    truth, _ = _lu177_study(tmp_path / "s")
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "s"), "--emission-nuclide", "Y-90", "--out", str(out), "-q"]) == 0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["emission"]["verdict"] == "Y-90" and stats["emission"]["override"] == Y90
    assert stats["emission"]["header_nuclide"] == "Lu-177" and stats["emission"]["source"] == "--emission-nuclide"
    # the Lu-177 RadionuclideTotalDose (7.4 GBq) is never the Y-90 administered activity
    assert stats["inputs"]["dicom"]["header_total_dose_bq_not_used"] == pytest.approx(7.4e9)
    assert stats["activity_check"]["applies"] is False
    assert any("not taken as the Y-90 administered activity" in w for w in stats["warnings"])
    assert any("overrides" in w for w in stats["warnings"])


def _maa_study(folder, *, total_dose="1.5e8"):
    """A Tc-99m MAA SPECT/CT: NM multi-frame (counts) with CT and RTSTRUCT, the header naming Tc-99m MAA with
    its own (Tc-99m) Radionuclide Total Dose of 150 MBq."""
    folder = Path(folder)
    _, uids = b.write_phantom_study(folder, study_key="maa")
    shutil.rmtree(folder / "pet")
    counts = b.phantom_activity(b.symmetric_grid((20, 18, 12), 4.0))
    b.write_nm_recon(
        folder / "nm.dcm",
        counts.with_array(np.round(counts.array / 100.0)),
        study_uid=uids["study"],
        for_uid=uids["for"],
        description="MAA SPECT",
        radiopharmaceutical="Tc99m MAA",
        radionuclide_code=TC_CODE,
        radiopharmaceutical_code=MAA_CODE,
        half_life_s=TC99M_HALF_LIFE_S,
        total_dose=total_dose,
    )
    return uids


def test_maa_spect_gives_a_predictive_dose_at_the_planned_y90_activity_labelled_everywhere(tmp_path):
    _maa_study(tmp_path / "s")
    out = tmp_path / "out"
    proc = cli(
        [
            "run",
            str(tmp_path / "s"),
            "--calibration",
            "relative",
            "--administered-gbq",
            "2.0",
            "--residual-fraction",
            "0",
            "--out",
            str(out),
            "-q",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["emission"]["verdict"] == "Tc-99m predictive" and stats["emission"]["nuclide"] == TC99M
    assert stats["emission"]["label"] == "predictive dose from Tc-99m MAA"
    # the dose is the planned 2 GBq of Y-90 on the MAA distribution, not the 150 MBq of Tc-99m in the header
    calibration = stats["inputs"]["activity"]
    assert calibration["calibration_roi"] == "Liver" and calibration["target_activity_gbq"] == 2.0
    liver = next(roi for roi in stats["rois"] if roi["name"] == "Liver")
    assert liver["activity_mbq"] == pytest.approx(2000.0, rel=1e-4)
    assert stats["inputs"]["dicom"]["header_total_dose_bq_not_used"] == pytest.approx(1.5e8)
    report = (out / "report.html").read_text()
    assert "predictive dose from Tc-99m MAA" in report
    for path in out.iterdir():
        if path.suffix in (".json", ".csv", ".html"):
            assert "bremsstrahlung" not in path.read_text().lower(), path.name
    rtdose = pydicom.dcmread(out / "rtdose.dcm", stop_before_pixels=True)
    assert rtdose.SeriesDescription == "Y-90 predictive dose from Tc-99m MAA"
    assert "predictive" in rtdose.DoseComment
    sr = pydicom.dcmread(out / "sr.dcm", stop_before_pixels=True)
    assert sr.SeriesDescription.startswith("Y-90 predictive dose from Tc-99m MAA")
    procedure = sr.ContentSequence  # TID 1500: Procedure reported names the predictive dosimetry
    meanings = [item.ConceptCodeSequence[0].CodeMeaning for item in procedure if "ConceptCodeSequence" in item]
    assert any(m.startswith("Predictive Y-90") for m in meanings), meanings
    _check_outputs(out, tmp_path, dicom=("rtdose.dcm", "sr.dcm"))  # dciodvfy: no error (no SEG: no added ROI)


def test_maa_spect_refuses_absolute_calibration_naming_tc99m(tmp_path):
    _maa_study(tmp_path / "s")
    out = tmp_path / "out"
    for extra in ([], ["--spect-cps-per-mbq", "10"]):
        proc = cli(["run", str(tmp_path / "s"), *extra, "--out", str(out)], tmp_path)
        assert_fails_cleanly(proc, out, UnitsError.exit_code, "Tc-99m")
        assert "--calibration relative" in proc.stderr


def test_maa_spect_needs_the_planned_activity_and_never_takes_the_header_dose(tmp_path):
    _maa_study(tmp_path / "s")
    out = tmp_path / "out"
    proc = cli(["run", str(tmp_path / "s"), "--calibration", "relative", "--out", str(out)], tmp_path)
    assert_fails_cleanly(proc, out, UnitsError.exit_code, "--administered-gbq")


def test_a_y90_pet_is_preferred_over_an_maa_spect_in_the_same_folder(tmp_path):
    uids = _maa_study(tmp_path / "s")
    truth = b.phantom_activity(b.symmetric_grid((20, 18, 12), 4.0))
    b.write_pet_series(
        tmp_path / "s" / "pet",
        truth,
        study_uid=uids["study"],
        for_uid=uids["for"],
        series_uid=b.uid("maa", "y90pet"),
        total_dose=None,
    )
    result = run_dicom_study(tmp_path / "s")
    assert result.stats["emission"]["verdict"] == "Y-90"
    assert any("not labelled Y-90" in w and "Tc-99m" in w and "--series" in w for w in result.stats["warnings"])


# --- the recovered fraction of absolute calibration -----------------------------------------------------
SAMPLE_DICOM = Path(__file__).resolve().parents[1] / "data" / "samples" / "phantom_dicom"


def test_recovered_fraction_of_the_sample_from_its_header_activity():
    result = run_dicom_study(SAMPLE_DICOM)
    check = result.stats["activity_check"]
    assert check["applies"] is True and check["administered_activity_source"] == "DICOM RadionuclideTotalDose"
    image_gbq = result.activity_bq.array.sum() / 1e9
    assert check["recovered_fraction"] == pytest.approx(image_gbq / 2.0, rel=1e-9)
    assert 0.7 <= check["recovered_fraction"] <= 1.3


def _phantom_administered_gbq(folder, factor: float) -> float:
    """A Y-90 PET study; returns ``factor`` x the activity its image holds at implant (GBq). The phantom
    holds about 1 MBq, below what a header RadionuclideTotalDose may be, so the activity is given."""
    b.write_phantom_study(folder, study_key=f"rf{factor}")
    return float(run_dicom_study(folder).activity_bq.array.sum()) / 1e9 * factor


def test_recovered_fraction_is_reported_for_absolute_calibration(tmp_path):
    administered = _phantom_administered_gbq(tmp_path / "s", 1.0 / 0.9)
    result = run_dicom_study(
        tmp_path / "s", options=DosimetryOptions(residual_fraction=0.1, administered_activity_gbq=administered)
    )
    check = result.stats["activity_check"]
    assert check["applies"] is True and check["recovered_fraction"] == pytest.approx(1.0, rel=1e-6)
    assert check["residual_source"] == "given" and check["administered_activity_source"] == "given"
    assert not any("recovered fraction" in w for w in result.stats["warnings"])


def test_recovered_fraction_outside_07_13_warns_with_the_numbers(tmp_path):
    administered = _phantom_administered_gbq(tmp_path / "s", 1.0 / 0.6)
    result = run_dicom_study(
        tmp_path / "s", options=DosimetryOptions(residual_fraction=0.0, administered_activity_gbq=administered)
    )
    assert result.stats["activity_check"]["recovered_fraction"] == pytest.approx(0.6, rel=1e-6)
    assert any(w.startswith("recovered fraction 0.6 outside 0.7-1.3") for w in result.stats["warnings"])


@pytest.mark.parametrize("factor", [1000.0, 3.5, 1 / 5])
def test_recovered_fraction_beyond_a_factor_3_is_refused_unless_relative(tmp_path, factor):
    administered = _phantom_administered_gbq(tmp_path / "s", factor)
    out = tmp_path / "out"
    args = ["run", str(tmp_path / "s"), "--residual-fraction", "0", "--administered-gbq", f"{administered:.8g}"]
    proc = cli([*args, "--out", str(out)], tmp_path)
    assert_fails_cleanly(proc, out, UnitsError.exit_code, "beyond a factor 3")
    for words in ("units", "branching fraction", "--calibration relative"):
        assert words in proc.stderr
    proc = cli([*args, "--calibration", "relative", "--out", str(out), "-q"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "stats.json").read_text())["activity_check"]["applies"] is False


def test_recovered_fraction_residual_not_given_is_stated(tmp_path):
    administered = _phantom_administered_gbq(tmp_path / "s", 1.0)
    result = run_dicom_study(tmp_path / "s", options=DosimetryOptions(administered_activity_gbq=administered))
    assert result.stats["activity_check"]["residual_source"] == "not given: 0 used"
    assert any(
        "residual fraction not given: 0 used for the recovered-activity check" in w for w in result.stats["warnings"]
    )


# --- image files carry no nuclide: --emission-nuclide, else Y-90 assumed (stated) --------------------------
def _nifti_case(tmp_path):
    study = b.write_phantom_study(tmp_path / "s", study_key="nifti")[0]
    from dosimetry.dicom import load_study

    rois = load_study(tmp_path / "s").rois
    return write_nifti(study, tmp_path / "pet.nii.gz"), rois


def test_image_file_assumes_y90_and_says_so(tmp_path):
    path, rois = _nifti_case(tmp_path)
    result = run_dosimetry(
        path,
        rois,
        options=DosimetryOptions(activity_units="Bq/mL", calibration="relative", administered_activity_gbq=1.0),
    )
    assert result.stats["emission"]["source"] == "assumed (not stated)" and result.stats["emission"]["nuclide"] == Y90
    assert any("Y-90 assumed" in w for w in result.stats["warnings"])


def test_image_file_of_another_stated_nuclide_is_refused_and_tc99m_is_predictive(tmp_path):
    path, rois = _nifti_case(tmp_path)
    with pytest.raises(UnitsError, match="Lu-177"):
        run_dosimetry(
            path,
            rois,
            options=DosimetryOptions(
                emission_nuclide="Lu-177", activity_units="Bq/mL", calibration="relative", administered_activity_gbq=1.0
            ),
        )
    with pytest.raises(UnitsError, match="Tc-99m MAA"):
        run_dosimetry(
            path, rois, options=DosimetryOptions(emission_nuclide="Tc-99m", activity_units="Bq/mL", scan_delay_h=20.0)
        )
    result = run_dosimetry(
        path,
        rois,
        options=DosimetryOptions(emission_nuclide="Tc-99m MAA", calibration="relative", administered_activity_gbq=2.0),
    )
    assert result.stats["emission"]["verdict"] == "Tc-99m predictive"
    assert result.roi("Liver")["activity_mbq"] == pytest.approx(2000.0, rel=1e-4)
