"""DICOM studies through the whole pipeline and the command line: doses equal the NIfTI twin's, the
orientation does not matter, the dose map lands on the CT, bad studies fail cleanly with no output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import dicom_builders as b
from dosimetry.cli import main
from dosimetry.dicom import load_study
from dosimetry.errors import GeometryError, OptionsError, UnitsError
from dosimetry.pipeline import DosimetryOptions, run_dicom_study, run_dosimetry

SAMPLE_DICOM = Path(__file__).resolve().parents[1] / "data" / "samples" / "phantom_dicom"
SAMPLE_NIFTI = Path(__file__).resolve().parents[1] / "data" / "samples" / "phantom"


@pytest.mark.parametrize("correction", ["START", "ADMIN", "NONE"])
@pytest.mark.parametrize("slope_ratio", [100.0, 0.01])
def test_roi_doses_equal_the_nifti_twin(tmp_path, correction, slope_ratio):
    truth, _ = b.write_phantom_study(tmp_path / "s", correction=correction, slope_ratio=slope_ratio)
    study = load_study(tmp_path / "s")
    dicom = run_dicom_study(tmp_path / "s")
    twin = run_dosimetry(
        truth,
        study.rois,
        ct=study.ct,
        options=DosimetryOptions(activity_units="Bq/mL", scan_time=b.SCAN, implant_time=b.IMPLANT),
    )
    assert dicom.activity_bq.array.sum() == pytest.approx(twin.activity_bq.array.sum(), rel=0.005)
    for name in ("Liver", "Tumour 1", "normal_liver"):
        assert dicom.roi(name)["mean_gy"] == pytest.approx(twin.roi(name)["mean_gy"], rel=0.005), name
        assert dicom.roi(name)["D70"] == pytest.approx(twin.roi(name)["D70"], rel=0.01), name
    assert dicom.stats["inputs"]["dicom"]["emission"]["decay_correction"] == correction


def test_orientations_give_the_same_dose_and_the_dose_lands_on_the_ct(tmp_path):
    means = {}
    for orientation in b.ORIENTATIONS:
        b.write_phantom_study(tmp_path / orientation, orientation=orientation, study_key=orientation)
        out = tmp_path / f"out_{orientation}"
        assert main(["run", str(tmp_path / orientation), "--out", str(out), "-q"]) == 0
        stats = json.loads((out / "stats.json").read_text())
        means[orientation] = {e["name"]: (e["mean_gy"], e["volume_ml"], e["D90"]) for e in stats["rois"]}
        # the hottest dose voxel (the marker) is where the CT shows the 1000 HU marker, in world coordinates
        dose = nib.load(str(out / "dose.nii.gz"))
        ijk = np.unravel_index(np.argmax(np.asarray(dose.dataobj)), dose.shape)
        ras = dose.affine @ np.r_[ijk, 1]
        lps = np.array([-ras[0], -ras[1], ras[2]])
        assert lps == pytest.approx(b.MARKER, abs=1e-3)
        study = load_study(tmp_path / orientation)
        ct_ijk = np.round(study.ct.world_to_index(lps)).astype(int)
        assert study.ct.array[tuple(ct_ijk)] == 1000.0
    for orientation, values in means.items():
        for name, (mean, volume, d90) in means["HFS"].items():
            assert values[name][0] == pytest.approx(mean, rel=1e-3), (orientation, name)
            assert values[name][1] == pytest.approx(volume, rel=1e-3), (orientation, name)
            assert values[name][2] == pytest.approx(d90, rel=1e-3), (orientation, name)


def test_sample_dicom_study_equals_the_nifti_sample():
    truth = json.loads((SAMPLE_NIFTI / "truth.json").read_text())
    result = run_dicom_study(SAMPLE_DICOM)
    for name, key in (("tumor_T1", "T1"), ("tumor_T2", "T2"), ("tumor_T3", "T3"), ("normal_liver", "normal_liver")):
        assert result.roi(name)["mean_gy"] == pytest.approx(truth["compartments"][key]["mean_dose_ldm_gy"], rel=0.01)
    assert result.stats["tumor_to_normal"]["dose_ratio"] == pytest.approx(
        truth["tumor_to_normal"]["dose_ratio"], rel=0.02
    )
    assert result.stats["inputs"]["administered_activity_source"] == "DICOM RadionuclideTotalDose"


def cli(args, cwd):
    return subprocess.run([sys.executable, "-m", "dosimetry", *args], capture_output=True, text=True, cwd=cwd)


def assert_fails_cleanly(proc, out: Path, code: int, words: str):
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    assert words.lower() in lines[0].lower(), lines[0]
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))


def test_cli_two_pet_series_without_series(tmp_path):
    truth, uids = b.write_phantom_study(tmp_path / "s")
    b.write_pet_series(
        tmp_path / "s" / "pet2",
        truth,
        study_uid=uids["study"],
        for_uid=uids["for"],
        series_uid=b.uid("second"),
        description="PET Y90 second recon",
    )
    out = tmp_path / "out"
    assert_fails_cleanly(
        cli(["run", str(tmp_path / "s"), "--out", str(out)], tmp_path), out, OptionsError.exit_code, "--series"
    )
    proc = cli(["run", str(tmp_path / "s"), "--series", uids["pet"], "--out", str(out), "-q"], tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_cli_rtstruct_on_another_frame_of_reference(tmp_path):
    b.write_phantom_study(tmp_path / "s", with_rtstruct=False)
    b.write_rtstruct(
        tmp_path / "s" / "rs.dcm",
        b.phantom_structures(),
        study_uid=b.uid("study"),
        for_uid="1.2.826.0.1.99",
        referenced_series_uid="1.2.826.0.1.98",
    )
    out = tmp_path / "out"
    assert_fails_cleanly(
        cli(["run", str(tmp_path / "s"), "--out", str(out)], tmp_path),
        out,
        GeometryError.exit_code,
        "Frame of Reference",
    )


def test_cli_missing_slice(tmp_path):
    b.write_phantom_study(tmp_path / "s", skip_slices=(5,))
    out = tmp_path / "out"
    assert_fails_cleanly(
        cli(["run", str(tmp_path / "s"), "--out", str(out)], tmp_path), out, GeometryError.exit_code, "missing"
    )


def test_cli_counts_with_absolute_calibration(tmp_path):
    b.write_phantom_study(tmp_path / "s", units="CNTS", total_dose=2.1e9)
    out = tmp_path / "out"
    assert_fails_cleanly(
        cli(["run", str(tmp_path / "s"), "--out", str(out)], tmp_path), out, UnitsError.exit_code, "CNTS"
    )
    # relative calibration accepts counts, with the administered activity from the header
    proc = cli(["run", str(tmp_path / "s"), "--calibration", "relative", "--out", str(out), "-q"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["roi" + "s"][0]["name"] in ("Liver", "Tumour 1")
    liver = next(e for e in stats["rois"] if e["name"] == "Liver")
    assert liver["activity_mbq"] == pytest.approx(2.1e3, rel=1e-3)


def test_cli_no_implant_time(tmp_path):
    b.write_phantom_study(tmp_path / "s", radiopharmaceutical=False, with_rtstruct=False)
    out = tmp_path / "out"
    assert_fails_cleanly(
        cli(["run", str(tmp_path / "s"), "--roi", "liver=nothing.nii.gz", "--out", str(out)], tmp_path),
        out,
        3,
        "nothing.nii.gz",
    )
    b.write_rtstruct(
        tmp_path / "s" / "rs.dcm",
        b.phantom_structures(),
        study_uid=b.uid("study"),
        for_uid=b.uid("study", "for"),
        referenced_series_uid=b.uid("study", "ct"),
    )
    assert_fails_cleanly(
        cli(["run", str(tmp_path / "s"), "--out", str(out)], tmp_path), out, UnitsError.exit_code, "--implant-time"
    )
    proc = cli(["run", str(tmp_path / "s"), "--implant-time", b.IMPLANT.isoformat(), "--out", str(out), "-q"], tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_cli_inspect_lists_the_series(tmp_path):
    proc = cli(["inspect", str(SAMPLE_DICOM)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "BQML" in proc.stdout and "RTSTRUCT" in proc.stdout and "74" in proc.stdout
    proc = cli(["inspect", str(tmp_path / "absent")], tmp_path)
    assert proc.returncode == 3 and proc.stderr.startswith("error: ")


def test_dicom_run_writes_rt_dose_seg_and_sr_that_read_back(tmp_path):
    """A DICOM run also writes RT Dose (on the CT's study and frame), SEG of the added NIfTI ROI and SR."""
    import highdicom as hd
    import pydicom

    from dosimetry.export import read_measurement_report, read_rt_dose
    from dosimetry.io.images import read_image, write_nifti

    _, uids = b.write_phantom_study(tmp_path / "s", orientation="FFS", study_key="export")
    study = load_study(tmp_path / "s")
    extra = study.activity.with_array(np.zeros(study.activity.shape, np.uint8))
    extra.array[8:12, 7:10, 4:7] = 1
    write_nifti(extra, tmp_path / "extra.nii.gz")
    out = tmp_path / "out"
    assert (
        main(
            [
                "run",
                str(tmp_path / "s"),
                "--roi",
                f"perfused:segment 8={tmp_path / 'extra.nii.gz'}",
                "--out",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    nifti = read_image(out / "dose.nii.gz")
    rtdose = read_rt_dose(out / "rtdose.dcm")
    # same values on the same world positions
    for ijk in [(0, 0, 0), (9, 8, 5), (19, 17, 11)]:
        world = nifti.index_to_world(ijk)
        other = tuple(int(v) for v in np.round(rtdose.world_to_index(world)))
        assert rtdose.array[other] == pytest.approx(nifti.array[ijk], rel=1e-3, abs=1e-3 * float(nifti.array.max()))
    assert rtdose.array.sum() == pytest.approx(nifti.array.sum(), rel=1e-3)
    header = pydicom.dcmread(out / "rtdose.dcm", stop_before_pixels=True)
    assert header.StudyInstanceUID == uids["study"] and header.FrameOfReferenceUID == uids["for"]
    assert header.DoseUnits == "GY" and header.DoseType == "PHYSICAL"
    # the SR carries the numbers of stats.json
    stats = json.loads((out / "stats.json").read_text())
    numbers = read_measurement_report(out / "sr.dcm")
    for entry in stats["rois"]:
        assert numbers[entry["name"]]["mean_gy"] == pytest.approx(entry["mean_gy"], rel=1e-6)
        assert numbers[entry["name"]]["volume_ml"] == pytest.approx(entry["volume_ml"], rel=1e-6)
    # the SEG holds the added ROI only, voxel for voxel on the PET grid
    seg = hd.seg.segread(out / "seg.dcm")
    assert [s.SegmentLabel for s in seg.SegmentSequence] == ["segment 8"]
    assert seg.StudyInstanceUID == uids["study"]
    volume = seg.get_volume(combine_segments=False)
    mask = np.asarray(volume.array)[..., 0]
    assert int(mask.sum()) == int(extra.array.sum())
