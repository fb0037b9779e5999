"""The command line: a run on the sample, bad inputs with one-line errors, exit codes, no partial outputs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dosimetry.cli import main
from dosimetry.errors import GeometryError, InputFileError, OptionsError, OutputError, RoiError, UnitsError
from dosimetry.image import Image
from dosimetry.io.images import write_nifti

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "phantom"
BASE = [
    "run",
    "--activity",
    str(SAMPLE / "activity_bqml.nii.gz"),
    "--ct",
    str(SAMPLE / "ct_hu.nii.gz"),
    "--roi",
    f"liver={SAMPLE / 'rois' / 'liver.nii.gz'}",
    "--roi",
    f"tumor:T1={SAMPLE / 'rois' / 'tumor_T1.nii.gz'}",
    "--scan-delay-h",
    "20",
    "--activity-units",
    "Bq/mL",
]


def test_run_writes_all_outputs_with_the_schema(tmp_path, capsys):
    out = tmp_path / "res"
    args = [
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
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        ".y90-dosimetry-output.json",
        "dose.nii.gz",
        "dvh.csv",
        "report.html",
        "stats.csv",
        "stats.json",
    ]
    stats = json.loads((out / "stats.json").read_text())
    for key in ("schema_version", "method", "constants", "inputs", "rois", "tumor_to_normal", "lung", "warnings"):
        assert key in stats
    assert stats["method"] == "ldm"
    keys = {
        "name",
        "role",
        "volume_ml",
        "mass_g",
        "activity_mbq",
        "mean_gy",
        "std_gy",
        "min_gy",
        "max_gy",
        "median_gy",
        "D2",
        "D50",
        "D70",
        "D90",
        "D98",
        "V20",
        "V40",
        "V70",
        "V100",
        "V120",
        "V150",
        "V200",
    }
    for roi in stats["rois"]:
        assert keys <= set(roi)
    assert {"dose_ratio", "activity_ratio"} <= set(stats["tumor_to_normal"])
    assert {"voxel_mean_gy", "lsf_estimate_gy"} <= set(stats["lung"])
    assert stats["constants"]["Y90_LDM_GY_KG_PER_GBQ"]["source"]
    csv_lines = (out / "stats.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(stats["rois"])
    dvh_header = (out / "dvh.csv").read_text().splitlines()[0].split(",")
    assert dvh_header[0] == "dose_gy" and len(dvh_header) == 1 + len(stats["rois"])
    printed = capsys.readouterr().out
    assert "results:" in printed and "Tumor 3" in printed


def run_cli_subprocess(args, cwd):
    return subprocess.run([sys.executable, "-m", "dosimetry.cli", *args], capture_output=True, text=True, cwd=cwd)


def assert_clean_failure(proc, out: Path, expected_code: int, words: str):
    assert proc.returncode == expected_code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert words.lower() in lines[0].lower()
    assert not out.exists()
    assert not any(p.name.startswith(f".{out.name}") for p in out.parent.iterdir()), "partial output left behind"


def test_missing_file(tmp_path):
    out = tmp_path / "out"
    args = BASE[:] + ["--roi", f"tumor:T9={tmp_path / 'nope.nii.gz'}", "--out", str(out)]
    assert_clean_failure(run_cli_subprocess(args, tmp_path), out, InputFileError.exit_code, "nope.nii.gz: no such file")


def test_roi_that_does_not_overlap(tmp_path):
    far = Image(np.ones((4, 4, 4), np.uint8), (5000.0, 0.0, 0.0), (2.0, 2.0, 2.0))
    write_nifti(far, tmp_path / "far.nii.gz")
    out = tmp_path / "out"
    args = BASE[:] + ["--roi", f"tumor:far={tmp_path / 'far.nii.gz'}", "--out", str(out)]
    assert_clean_failure(run_cli_subprocess(args, tmp_path), out, GeometryError.exit_code, "does not overlap")


def test_unknown_role(tmp_path):
    out = tmp_path / "out"
    args = BASE[:] + ["--roi", f"spleen={SAMPLE / 'rois' / 'lung.nii.gz'}", "--out", str(out)]
    assert_clean_failure(run_cli_subprocess(args, tmp_path), out, RoiError.exit_code, "unknown ROI role 'spleen'")


def test_uncalibrated_units_with_absolute_calibration(tmp_path):
    out = tmp_path / "out"
    args = [a if a != "Bq/mL" else "counts" for a in BASE] + ["--out", str(out)]
    assert_clean_failure(run_cli_subprocess(args, tmp_path), out, UnitsError.exit_code, "relative")


def test_relative_without_administered_activity(tmp_path):
    out = tmp_path / "out"
    args = BASE[:] + ["--calibration", "relative", "--out", str(out)]
    assert_clean_failure(run_cli_subprocess(args, tmp_path), out, OptionsError.exit_code, "--administered-gbq")


def test_existing_output_is_not_touched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    proc = run_cli_subprocess(BASE + ["--out", str(out)], tmp_path)
    assert proc.returncode == OptionsError.exit_code and "--overwrite" in proc.stderr
    assert (out / "keep.txt").read_text() == "mine"
    assert main(BASE + ["--out", str(out), "--overwrite", "-q"]) == OutputError.exit_code  # not our folder
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    out.rmdir()
    assert main(BASE + ["--out", str(out), "-q"]) == 0
    (out / "extra.txt").write_text("from an earlier run")
    assert main(BASE + ["--out", str(out), "--overwrite", "-q"]) == 0
    assert not (out / "extra.txt").exists() and (out / "stats.json").is_file()
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())


def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    """A crash half-way through writing (here: the DVH writer) removes the temporary folder."""
    import dosimetry.export.results as outputs

    def boom(*args, **kwargs):
        raise OutputError("disk full (simulated)")

    monkeypatch.setattr(outputs, "write_dvh_csv", boom)
    out = tmp_path / "out"
    assert main(BASE + ["--out", str(out), "-q"]) == OutputError.exit_code
    assert list(tmp_path.iterdir()) == []


def test_usage_error_and_version():
    assert main(["run"]) == 2
    assert main(["--version"]) == 0
    with pytest.raises(SystemExit):
        raise SystemExit(main(["--help"]))


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / ("dosimetry.exe" if os.name == "nt" else "dosimetry")
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and "dosimetry" in proc.stdout


def test_pdf_report_option(tmp_path):
    out = tmp_path / "out"
    assert main(BASE + ["--out", str(out), "--pdf", "-q"]) == 0
    pdf = (out / "report.pdf").read_bytes()
    assert pdf[:5] == b"%PDF-" and len(pdf) > 50_000
