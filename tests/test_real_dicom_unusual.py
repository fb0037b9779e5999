"""Valid but unusual DICOM, as seen on real public files, must not sink a run (issue 9, part 4).

Each study is built on disk (tests/dicom_builders.py, then edited with pydicom where a real file differs
from the builders' clean headers) and run end to end through the CLI: exit 0, the core outputs written,
the reason of every change or skipped export in stats.json, and dciodvfy without errors on every DICOM
export that was written.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

import dicom_builders as b
from dosimetry.cli import main
from dosimetry.dicom import timing
from dosimetry.dicom.slices import SLICE_POSITION_REL_TOL
from dosimetry.export.vr import conformed_header, fit_value
from dosimetry.io.images import read_image, write_nifti
from dosimetry.libwarnings import library_warnings
from test_export_rtdose import assert_dciodvfy_accepts

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "samples" / "phantom_dicom"
CORE_OUTPUTS = ("dose.nii.gz", "stats.json", "stats.csv", "dvh.csv", "report.html")
RELATIVE = ["--calibration", "relative", "--administered-gbq", "2"]


@pytest.fixture(scope="module", autouse=True)
def need_dciodvfy():
    if shutil.which("dciodvfy") is None and os.environ.get("Y90_ALLOW_NO_DCIODVFY") != "1":
        pytest.fail("dciodvfy not found: install dicom3tools, or set Y90_ALLOW_NO_DCIODVFY=1")


def _edit(folder: Path, change) -> None:
    """Apply ``change`` to every file; the values set may break their VR on purpose (pydicom's warning is
    expected here, in the test's own writing)."""
    for path in sorted(Path(folder).rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            change(ds)
            ds.save_as(path)


def _added_roi(tmp_path: Path, study_folder: Path, calibration: str = "relative") -> Path:
    """A small NIfTI ROI on the emission grid (it makes the run write a SEG)."""
    from dosimetry.dicom import load_study

    grid = load_study(study_folder, calibration=calibration).activity
    mask = grid.with_array(np.zeros(grid.shape, np.uint8))
    mask.array[8:12, 7:10, 4:7] = 1
    path = tmp_path / "added.nii.gz"
    write_nifti(mask, path)
    return path


def _run(study: Path, out: Path, *extra: str) -> int:
    return main(["run", str(study), "--out", str(out), "-q", *extra])


def _dciodvfy_errors(path: Path) -> list[str]:
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    output = run.stdout + run.stderr
    errors = [line for line in output.splitlines() if line.startswith("Error")]
    warns = [
        line
        for line in output.splitlines()
        if line.startswith("Warning")
        and "99Y90DOSIMETRY" not in line  # the declared private coding scheme
        and "needed to build DICOMDIR" not in line
    ]  # a type 2 attribute left empty, as the IOD allows
    return errors + warns


def _check_outputs(out: Path, tmp_path: Path, *, dicom: tuple[str, ...]) -> dict:
    """Core outputs present, the DICOM exports ``dicom`` written (and no other) and valid; stats.json."""
    for name in CORE_OUTPUTS:
        assert (out / name).is_file(), name
    assert sorted(p.name for p in out.glob("*.dcm")) == sorted(dicom)
    if shutil.which("dciodvfy"):
        for name in dicom:
            if name == "rtdose.dcm":
                assert_dciodvfy_accepts(out / name, tmp_path)
            else:
                assert not _dciodvfy_errors(out / name), name
    return json.loads((out / "stats.json").read_text())


# --- missing type 2 attributes, values too long for their VR ------------------------------------------------
def test_pet_without_patient_sex_birth_date_and_study_id(tmp_path):
    b.write_phantom_study(tmp_path / "s", study_key="nosex")

    def strip(ds):
        for keyword in ("PatientSex", "PatientBirthDate", "StudyID", "AccessionNumber", "ReferringPhysicianName"):
            if keyword in ds:
                del ds[keyword]

    _edit(tmp_path / "s", strip)
    roi = _added_roi(tmp_path, tmp_path / "s")
    assert _run(tmp_path / "s", tmp_path / "out", "--roi", f"perfused:added={roi}") == 0
    _check_outputs(tmp_path / "out", tmp_path, dicom=("rtdose.dcm", "seg.dcm", "sr.dcm"))
    for name in ("rtdose.dcm", "seg.dcm", "sr.dcm"):  # type 2: present and empty (PS3.3 C.7.1.1, C.7.2.1)
        ds = pydicom.dcmread(tmp_path / "out" / name, stop_before_pixels=True)
        for keyword in ("PatientSex", "PatientBirthDate", "StudyID", "AccessionNumber", "ReferringPhysicianName"):
            assert keyword in ds and ds[keyword].value in ("", None), (name, keyword)


def test_values_longer_than_their_vr_are_fitted_in_every_export(tmp_path):
    b.write_phantom_study(tmp_path / "s", study_key="longid")
    study_id = "STUDY-0123456789-XY"  # 19 characters, SH allows 16
    description = "Y-90 post-treatment PET/CT" * 3  # 78 characters, LO allows 64

    def lengthen(ds):
        ds.StudyID = study_id + "Z"  # 20
        ds.StudyDescription = description
        ds.PatientSex = "male"

    _edit(tmp_path / "s", lengthen)
    roi = _added_roi(tmp_path, tmp_path / "s")
    assert _run(tmp_path / "s", tmp_path / "out", "--roi", f"perfused:added={roi}") == 0
    stats = _check_outputs(tmp_path / "out", tmp_path, dicom=("rtdose.dcm", "seg.dcm", "sr.dcm"))
    notes = [w for w in stats["warnings"] if w.startswith("DICOM exports:")]
    assert any("StudyID (SH) 20 characters" in w and "truncated" in w for w in notes), notes
    assert any("StudyDescription (LO) 78 characters" in w for w in notes), notes
    assert any("PatientSex" in w for w in notes), notes
    assert not any("male" in w for w in stats["warnings"])  # patient values never appear in messages
    for name in ("rtdose.dcm", "seg.dcm", "sr.dcm"):
        ds = pydicom.dcmread(tmp_path / "out" / name, stop_before_pixels=True)
        assert ds.StudyID == (study_id + "Z")[:16] and len(ds.StudyDescription) <= 64, name
        assert ds.PatientSex == "M", name


def test_fit_value_follows_the_vr_of_each_keyword():
    assert fit_value("StudyID", "A" * 20)[0] == "A" * 16
    assert fit_value("AccessionNumber", "B" * 17)[0] == "B" * 16
    assert fit_value("StudyDescription", "C" * 70)[0] == "C" * 64
    assert fit_value("StudyDate", "00010101")[0] is None and fit_value("StudyDate", "20240230")[0] is None
    assert fit_value("StudyDate", "2024.03.01")[0] == "20240301"
    assert fit_value("StudyTime", "12:30:05")[0] == "123005" and fit_value("StudyTime", "99")[0] is None
    assert fit_value("PatientAge", "45")[0] is None and fit_value("PatientAge", "045Y") == ("045Y", None)
    assert len(fit_value("PatientWeight", "70.123456789012345")[0]) <= 16
    assert fit_value("PatientSex", "f")[0] == "F" and fit_value("PatientSex", "unknown")[0] is None
    assert all(len(group) <= 64 for group in str(fit_value("ReferringPhysicianName", "D" * 80)[0]).split("="))
    assert fit_value("StudyID", "1") == ("1", None)


@pytest.mark.filterwarnings("ignore:The value length:UserWarning")  # the over-long value set below
def test_conformed_header_leaves_the_source_untouched():
    ds = pydicom.Dataset()
    ds.SOPInstanceUID, ds.StudyID = "1.2.3", "X" * 20
    view, notes = conformed_header(ds)
    assert view.StudyID == "X" * 16 and ds.StudyID == "X" * 20 and len(notes) == 1
    assert view.PatientSex == "" and "PatientSex" not in ds


# --- multi-frame NM source, NM without Frame of Reference -------------------------------------------------
def _nm_counts():
    counts = b.phantom_activity(b.symmetric_grid((20, 18, 12), 4.0))
    return counts.with_array(np.round(counts.array / 100.0))


def test_multi_frame_nm_source_gets_its_seg_on_the_ct(tmp_path):
    _, uids = b.write_phantom_study(tmp_path / "s", study_key="nmseg")
    shutil.rmtree(tmp_path / "s" / "pet")
    b.write_nm_recon(tmp_path / "s" / "nm.dcm", _nm_counts(), study_uid=uids["study"], for_uid=uids["for"])
    roi = _added_roi(tmp_path, tmp_path / "s")
    assert _run(tmp_path / "s", tmp_path / "out", *RELATIVE, "--roi", f"perfused:added={roi}") == 0
    stats = _check_outputs(tmp_path / "out", tmp_path, dicom=("rtdose.dcm", "seg.dcm", "sr.dcm"))
    assert any("drawn on the CT series instead" in w for w in stats["warnings"]), stats["warnings"]
    seg = pydicom.dcmread(tmp_path / "out" / "seg.dcm", stop_before_pixels=True)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == uids["ct"]


def test_nm_without_frame_of_reference_skips_rt_dose_only(tmp_path):
    path = b.write_nm_recon(tmp_path / "s" / "nm.dcm", _nm_counts(), study_uid=b.uid("nofor"), for_uid="1.2.3")
    ds = pydicom.dcmread(path)
    del ds.FrameOfReferenceUID
    ds.save_as(path)
    roi = _added_roi(tmp_path, tmp_path / "s")
    assert _run(tmp_path / "s", tmp_path / "out", *RELATIVE, "--roi", f"liver:liver={roi}") == 0
    stats = _check_outputs(tmp_path / "out", tmp_path, dicom=("sr.dcm",))
    assert any(
        w.startswith("rtdose.dcm not written:") and "FrameOfReferenceUID" in w and "no CT" in w
        for w in stats["warnings"]
    ), stats["warnings"]
    assert any(w.startswith("seg.dcm not written:") for w in stats["warnings"]), stats["warnings"]
    assert stats["rois"] and stats["rois"][0]["mean_gy"] > 0


def test_an_unexpected_export_failure_is_a_warning_that_calls_itself_a_bug(tmp_path, monkeypatch, caplog):
    from dosimetry.export import sr as export_sr
    from dosimetry.export import study as export_study

    def broken(*args, **kwargs):
        raise TypeError("simulated bug")

    # (the exports import the SR builder when they write the SR: highdicom stays out of an RT Dose-only import)
    monkeypatch.setattr(export_sr, "build_measurement_report", broken)
    b.write_phantom_study(tmp_path / "s", study_key="bug")
    with caplog.at_level(logging.DEBUG, logger="dosimetry"):
        assert _run(tmp_path / "s", tmp_path / "out") == 0
    stats = _check_outputs(tmp_path / "out", tmp_path, dicom=("rtdose.dcm",))
    assert any(w.startswith("sr.dcm not written: unexpected TypeError") and "a bug" in w for w in stats["warnings"])
    assert any(r.exc_info and "simulated bug" in str(r.exc_info[1]) for r in caplog.records)  # the traceback
    from dosimetry.pipeline import run_dicom_study

    result = run_dicom_study(tmp_path / "s")
    with pytest.raises(TypeError, match="simulated bug"):  # strict: bugs are raised, not hidden
        export_study.write_dicom_outputs(result, tmp_path / "strict", strict=True)


# --- multi-bed PET with slice-step jitter at the bed junctions ---------------------------------------------
STEP_MM = 3.27


def _multi_bed(tmp_path, jitter_mm: float):
    """24 slices of 3.27 mm in 3 beds of 8; each bed junction adds ``jitter_mm`` to the gap."""
    shift = [jitter_mm * (k // 8) for k in range(24)]
    b.write_phantom_study(
        tmp_path / "s",
        study_key=f"bed{jitter_mm}",
        pet_shape=(20, 18, 24),
        pet_spacing_mm=STEP_MM,
        slices_per_bed=8,
        slice_shift_mm=shift,
    )
    return shift


def test_multi_bed_pet_with_junction_jitter_loads_on_the_mean_step(tmp_path):
    shift = _multi_bed(tmp_path, 0.08)
    assert _run(tmp_path / "s", tmp_path / "out") == 0
    stats = _check_outputs(tmp_path / "out", tmp_path, dicom=("rtdose.dcm", "sr.dcm"))
    dose = read_image(tmp_path / "out" / "dose.nii.gz")
    first = pydicom.dcmread(tmp_path / "s" / "pet" / "pet_000.dcm", stop_before_pixels=True)
    mean_step = STEP_MM + (shift[-1] - shift[0]) / 23
    assert dose.spacing_mm[2] == pytest.approx(mean_step, abs=1e-4)
    assert np.allclose(dose.origin_mm, np.asarray(first.ImagePositionPatient, float), atol=1e-3)
    # every slice lies where the grid puts it, within the stated tolerance
    for k in range(24):
        ds = pydicom.dcmread(tmp_path / "s" / "pet" / f"pet_{k:03d}.dcm", stop_before_pixels=True)
        error = np.linalg.norm(dose.index_to_world((0, 0, k)) - np.asarray(ds.ImagePositionPatient, float))
        assert error <= SLICE_POSITION_REL_TOL * STEP_MM
    notes = [w for w in stats["warnings"] if "deviate from a regular grid" in w]
    assert len(notes) == 1 and "nothing was resampled" in notes[0], stats["warnings"]
    assert "0.04" in notes[0] or "0.05" in notes[0]  # max deviation 0.049 mm, stated


def test_multi_bed_pet_beyond_the_tolerance_is_refused_with_the_numbers(tmp_path, capsys):
    _multi_bed(tmp_path, 0.4)
    assert _run(tmp_path / "s", tmp_path / "out") == 4
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "regular grid" in err and "tolerance" in err and "mm" in err
    assert not (tmp_path / "out").exists()


# --- anonymised dates -----------------------------------------------------------------------------------------
def _anonymise(ds):
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        if keyword in ds:
            setattr(ds, keyword, "00010101")


def test_anonymised_dates_do_not_stop_a_relative_run(tmp_path):
    b.write_phantom_study(tmp_path / "s", study_key="anon")
    _edit(tmp_path / "s", _anonymise)
    assert _run(tmp_path / "s", tmp_path / "out", *RELATIVE) == 0
    stats = _check_outputs(tmp_path / "out", tmp_path, dicom=("rtdose.dcm", "sr.dcm"))
    assert any("unusable date/time" in w and "AcquisitionDate '00010101'" in w for w in stats["warnings"])
    sr = pydicom.dcmread(tmp_path / "out" / "sr.dcm", stop_before_pixels=True)
    assert sr.StudyDate == ""  # not a DA value any validator accepts: written empty (type 2)


@pytest.mark.parametrize("value", ["19000101", "", "2024-13-45", "notadate"])
def test_placeholder_or_malformed_scan_dates_do_not_stop_a_relative_run(tmp_path, value):
    b.write_phantom_study(tmp_path / "s", study_key=f"anon{value}")

    def change(ds):
        if "AcquisitionDate" in ds:
            ds.AcquisitionDate = value
            ds.SeriesDate = value
        if "RadiopharmaceuticalInformationSequence" in ds:  # the implant on another (shifted) day
            ds.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartDateTime = "20240305160000"

    _edit(tmp_path / "s", change)
    assert _run(tmp_path / "s", tmp_path / "out", *RELATIVE) == 0
    _check_outputs(tmp_path / "out", tmp_path, dicom=("rtdose.dcm", "sr.dcm"))


def test_shifted_dates_with_the_scan_before_the_implant_only_warn_in_a_relative_run(tmp_path):
    b.write_phantom_study(tmp_path / "s", study_key="shifted")

    def change(ds):
        if "RadiopharmaceuticalInformationSequence" in ds:
            ds.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartDateTime = "20240401160000"

    _edit(tmp_path / "s", change)
    assert _run(tmp_path / "s", tmp_path / "out", *RELATIVE) == 0
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert any("starts before the implant" in w and "not used" in w for w in stats["warnings"])
    assert _run(tmp_path / "s", tmp_path / "abs") == 5  # absolute calibration needs them: refused


def test_anonymised_dates_refuse_an_absolute_run_in_one_line(tmp_path, capsys):
    b.write_phantom_study(tmp_path / "s", study_key="anonabs")
    _edit(tmp_path / "s", _anonymise)
    assert _run(tmp_path / "s", tmp_path / "out") == 5
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "AcquisitionDate '00010101'" in err and "--implant-time" in err and "relative" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.filterwarnings("ignore:Invalid value for VR:UserWarning")  # the malformed time set below
def test_unusable_time_notes_name_each_attribute():
    ds = pydicom.Dataset()
    ds.AcquisitionDate, ds.AcquisitionTime, ds.SeriesDate = "00010101", "25x", "20240301"
    (note,) = timing.unusable_time_notes(ds, label="PET")
    assert "AcquisitionDate '00010101'" in note and "AcquisitionTime '25x'" in note and "SeriesDate" not in note
    ds.AcquisitionDate, ds.AcquisitionTime = "20240301", "120000"
    assert timing.unusable_time_notes(ds, label="PET") == []


# --- library warnings -----------------------------------------------------------------------------------------
def test_library_warnings_become_our_warnings_or_are_dropped_when_harmless():
    notes: list[str] = []
    with library_warnings(notes, during="reading"):
        warnings.warn("The value length (20) exceeds the maximum length of 16 allowed for VR SH.", UserWarning)
        warnings.warn("Something the user\n  must know", UserWarning)
        logging.getLogger("pydicom").warning("a pydicom log record")
    assert notes == ["reading: Something the user must know", "reading: a pydicom log record"]


def test_dosimetry_run_prints_no_library_warning(tmp_path):
    """On the sample and on a header with values that break their VR, stderr holds no library output."""
    shutil.copytree(SAMPLE, tmp_path / "s")

    def break_vrs(ds):
        ds.StudyID = "S" * 20
        ds.StudyDescription = "D" * 70
        ds.PatientSex = "male"

    _edit(tmp_path / "s", break_vrs)
    for study in (SAMPLE, tmp_path / "s"):
        out = tmp_path / f"out_{study.name}"
        run = subprocess.run(
            [
                sys.executable,
                "-W",
                "default",
                "-m",
                "dosimetry",
                "run",
                str(study),
                "--residual-fraction",
                "0.03",
                "--lung-shunt",
                "0.05",
                "--out",
                str(out),
                "-q",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
        assert run.returncode == 0, run.stderr
        for word in ("Warning:", "UserWarning", "WARNING", "pydicom", "highdicom", "site-packages"):
            assert word not in run.stderr, run.stderr
        assert (out / "rtdose.dcm").is_file() and (out / "sr.dcm").is_file()


def test_an_anonymised_implant_date_needs_implant_time_only_for_an_absolute_run(tmp_path, capsys):
    b.write_phantom_study(tmp_path / "s", study_key="anonimplant")

    def change(ds):
        if "RadiopharmaceuticalInformationSequence" in ds:
            ds.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartDateTime = "00010101160000"
            del ds.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartTime
            ds.StudyDate = "00010101"

    _edit(tmp_path / "s", change)
    assert _run(tmp_path / "s", tmp_path / "out") == 5
    err = capsys.readouterr().err
    assert "RadiopharmaceuticalStartDateTime '00010101160000'" in err and "--implant-time" in err
    assert _run(tmp_path / "s", tmp_path / "abs", "--implant-time", b.IMPLANT.isoformat()) == 0
    stats = _check_outputs(tmp_path / "abs", tmp_path, dicom=("rtdose.dcm", "sr.dcm"))
    assert stats["inputs"]["dicom"]["implant_time_source"] == "--implant-time"
    assert any("unusable date/time" in w for w in stats["warnings"])
    reference = tmp_path / "ref"
    b.write_phantom_study(reference / "s", study_key="anonimplant")
    assert _run(reference / "s", reference / "out") == 0
    same = json.loads((reference / "out" / "stats.json").read_text())
    assert stats["rois"][0]["mean_gy"] == pytest.approx(same["rois"][0]["mean_gy"], rel=1e-9)
