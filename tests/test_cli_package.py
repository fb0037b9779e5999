"""The command line as a package (issue 10): light parser, -v/-q on both sides of the subcommand, progress
on stderr, library warnings caught by every subcommand, notes of --roi masks in stats.json."""

from __future__ import annotations

import io
import json
import re
import shutil
import os
import subprocess
import sys
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from dosimetry import progress
from dosimetry.cli import build_parser, main
from dosimetry.cli.choices import ACTIVITY_UNITS, METHODS
from dosimetry.cli.progress_display import LiveReporter, PlainReporter, progress_display

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "samples" / "phantom"
SAMPLE_DICOM = ROOT / "data" / "samples" / "phantom_dicom"
BASE = [
    "--activity",
    str(SAMPLE / "activity_bqml.nii.gz"),
    "--roi",
    f"liver={SAMPLE / 'rois' / 'liver.nii.gz'}",
    "--scan-delay-h",
    "20",
    "--activity-units",
    "Bq/mL",
]
HEAVY = (
    "numpy",
    "scipy",
    "SimpleITK",
    "nibabel",
    "numba",
    "matplotlib",
    "highdicom",
    "pydicom",
    "rich",
    "sklearn",
    "statsmodels",
)


# --- the package and its parser ------------------------------------------------------------------------------
def test_building_the_parser_and_its_help_imports_no_heavy_library():
    code = (
        "import contextlib, io, sys, dosimetry.cli\n"
        "parser = dosimetry.cli.build_parser()\n"
        "for argv in (['--help'], ['run', '--help'], ['inspect', '--help'], ['accumulate', '--help'], ['cohort', '--help'], ['compare', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "        assert dosimetry.cli.main(argv) == 0\n"
        "    assert 'usage: dosimetry' in out.getvalue()\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_an_ldm_run_on_nifti_masks_of_the_activity_grid_imports_neither_simpleitk_nor_numba(tmp_path):
    """Libraries are imported where used (issue 10): SimpleITK (116 MiB resident) only to resample between
    grids or read NRRD/MetaImage, numba (90 MiB) only for the kernel methods, matplotlib for the report."""
    activity = np.zeros((12, 12, 10), np.float32)
    activity[3:9, 3:9, 3:7] = 1e5
    liver = np.zeros(activity.shape, np.uint8)
    liver[2:10, 2:10, 2:8] = 1
    for name, values in (("a", activity), ("liver", liver)):
        nib.save(nib.Nifti1Image(values, np.diag([4.0, 4.0, 4.0, 1.0])), str(tmp_path / f"{name}.nii.gz"))
    code = (
        "import sys\n"
        "from dosimetry.pipeline import DosimetryOptions, run_dosimetry\n"
        "from dosimetry.io.roi_files import read_mask_roi\n"
        f"roi = read_mask_roi({str(tmp_path / 'liver.nii.gz')!r}, 'liver')\n"
        f"run_dosimetry({str(tmp_path / 'a.nii.gz')!r}, [roi], options=DosimetryOptions(scan_delay_h=0.0, "
        "activity_units='Bq/mL', residual_fraction=0.0, lung_shunt_fraction=0.0))\n"
        "print(','.join(m for m in ('SimpleITK', 'numba', 'matplotlib', 'highdicom') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_the_kernel_method_with_cached_s_values_and_the_fft_path_imports_no_numba(tmp_path):
    """numba (~0.17 s to import) lives only in the modules of compiled loops (issue 10): the first kernel run
    computes the S values of its spacing (numba), the second takes them from the disk cache and convolves by
    FFT without importing it; the dose is the same."""
    activity = np.zeros((40, 40, 36), np.float32)
    activity[10:30, 12:28, 8:26] = 1e5
    nib.save(nib.Nifti1Image(activity, np.diag([4.1, 4.1, 3.9, 1.0])), str(tmp_path / "a.nii.gz"))
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from dosimetry.dose import compute_dose\n"
        "from dosimetry.dose.convolution import choose_path\n"
        "from dosimetry.dose.kernels import voxel_s_values\n"
        "from dosimetry.io.images import read_image\n"
        f"a = read_image({str(tmp_path / 'a.nii.gz')!r})\n"
        "density = a.with_array(np.full(a.shape, 1.03, np.float32))\n"
        "dose = compute_dose(a, density, method='kernel')\n"
        f"np.save({str(tmp_path / 'dose')!r} + str(len(sys.argv)), dose.array)\n"
        "print(choose_path(a.shape, voxel_s_values(a.spacing_mm, 1.03)), 'numba' in sys.modules)\n"
    )
    env = {**os.environ, "Y90_DOSIMETRY_CACHE": str(tmp_path / "cache")}
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["fft", "True"]  # S values computed: numba imported
    second = subprocess.run([sys.executable, "-c", code, "again"], capture_output=True, text=True, env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.split() == ["fft", "False"]
    np.testing.assert_array_equal(np.load(tmp_path / "dose1.npy"), np.load(tmp_path / "dose2.npy"))


@pytest.mark.parametrize(
    "module",
    [
        "dosimetry.cli.accumulate",
        "dosimetry.cli.cohort",
        "dosimetry.cli.compare",
        "dosimetry.cli.run",
        "dosimetry.cli.inspect",
        "dosimetry.cli.parser",
        "dosimetry.cli",
    ],
)
def test_every_cli_module_imports_first_without_a_cycle(module):
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_choices_of_the_parser_are_the_apis():
    from dosimetry.dose import METHODS as API_METHODS
    from dosimetry.quantify.activity import UNITS

    assert METHODS == tuple(API_METHODS)
    assert ACTIVITY_UNITS == tuple(UNITS)


@pytest.mark.parametrize("module", ["dosimetry", "dosimetry.cli"])
def test_python_dash_m(module):
    result = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("dosimetry "), result.stderr


@pytest.mark.parametrize(
    "argv,verbose,quiet",
    [
        (["-v", "run"], 1, False),
        (["run", "-v"], 1, False),
        (["-v", "run", "-v"], 2, False),
        (["run", "-vv"], 2, False),
        (["-q", "run"], 0, True),
        (["run", "--quiet"], 0, True),
        (["run"], 0, False),
        (["inspect", "-v"], 1, False),
        (["accumulate", "-q"], 0, True),
    ],
)
def test_verbosity_before_and_after_the_subcommand(argv, verbose, quiet):
    from dosimetry.cli.common import merge_verbosity

    extra = {
        "run": ["--out", "o"],
        "inspect": ["DIR"],
        "accumulate": ["--current", "c", "--previous", "p", "--out", "o"],
    }[argv[1] if argv[0].startswith("-") else argv[0]]
    args = merge_verbosity(build_parser().parse_args(argv + extra))
    assert (args.verbose, args.quiet) == (verbose, quiet)


def test_quiet_and_verbose_together_are_refused(capsys):
    assert main(["-q", "run", "-v", *BASE, "--out", "x"]) == 7
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: -q and -v")


def test_help_documents_sigterm_and_verbosity_placement(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"143\s+terminated \(SIGTERM\)", out)
    assert "before or after the subcommand" in out


# --- progress on stderr ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("placement", ["before", "after"])
def test_verbose_prints_one_line_per_stage_start_and_end_when_stderr_is_no_terminal(tmp_path, capsys, placement):
    argv = ["-v", "run", *BASE] if placement == "before" else ["run", *BASE, "-v"]
    assert main(argv + ["--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err.splitlines()
    stages = [line for line in err if line.startswith("dosimetry: ")]
    for name in ("start-up", "read ROIs", "write results"):
        assert f"dosimetry: {name} ..." in stages, err
        assert any(re.fullmatch(rf"dosimetry: {name} \d+\.\d s", line) for line in stages), err


def test_no_progress_lines_without_verbose_or_with_quiet(tmp_path, capsys):
    assert main(["run", *BASE, "--out", str(tmp_path / "a")]) == 0
    assert "dosimetry: " not in capsys.readouterr().err
    assert main(["run", *BASE, "-q", "--out", str(tmp_path / "b")]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_plain_reporter_indents_nested_stages_and_says_where_a_stage_stopped():
    stream = io.StringIO()
    with progress.reporting(PlainReporter(stream)):
        with progress.stage("dose"):
            with progress.stage("ray tracing", total=3):
                for _ in range(3):
                    progress.advance()
        with pytest.raises(KeyboardInterrupt), progress.stage("ray tracing", total=10):
            progress.advance(4)
            raise KeyboardInterrupt
    lines = stream.getvalue().splitlines()
    assert lines[0] == "dosimetry: dose ..." and lines[1] == "dosimetry:   ray tracing ..."
    assert re.fullmatch(r"dosimetry:   ray tracing \d+\.\d s", lines[2])
    assert re.fullmatch(r"dosimetry: dose \d+\.\d s", lines[3])
    assert re.fullmatch(r"dosimetry: ray tracing stopped after \d+\.\d s at 4 of 10", lines[5])


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_live_display_on_a_terminal_shows_bars_spinners_and_times():
    stream = FakeTerminal()
    with progress_display(quiet=False, verbose=0, stream=stream) as reporter:
        assert isinstance(reporter, LiveReporter)
        with progress.stage("load"):
            pass
        with progress.stage("dose", total=4):
            for _ in range(4):
                progress.advance()
    text = stream.getvalue()
    assert "\x1b[" in text  # drawn for a terminal
    assert "load" in text and "dose" in text and "4/4" in text and "✓" in text


def test_no_display_when_quiet_even_on_a_terminal_and_none_off_a_terminal_without_verbose():
    for kwargs, stream in (
        ({"quiet": True, "verbose": 0}, FakeTerminal()),
        ({"quiet": False, "verbose": 0}, io.StringIO()),
    ):
        with progress_display(stream=stream, **kwargs) as reporter:
            assert reporter is None
            with progress.stage("dose", total=1):
                progress.advance()
        assert stream.getvalue() == ""


# --- library warnings and notes --------------------------------------------------------------------------------
def _break_series_descriptions(folder: Path) -> None:
    """Values that pydicom warns about when the inventory reads them (LO over 64 characters)."""
    for path in sorted(folder.rglob("*.dcm")):
        ds = pydicom.dcmread(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ds.SeriesDescription = "D" * 70
            ds.save_as(path)


LIBRARY_WORDS = ("Warning:", "UserWarning", "WARNING", "pydicom", "highdicom", "site-packages")


def test_inspect_prints_no_library_warning(tmp_path):
    study = tmp_path / "s"
    shutil.copytree(SAMPLE_DICOM, study)
    _break_series_descriptions(study)
    run = subprocess.run(
        [sys.executable, "-W", "default", "-m", "dosimetry", "inspect", str(study)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert "emission" in run.stdout
    for word in LIBRARY_WORDS:
        assert word not in run.stderr, run.stderr


def test_inspect_turns_a_meaningful_library_warning_into_one_line(tmp_path, capsys, monkeypatch):
    import dosimetry.dicom

    def inventory_that_warns(folder):
        warnings.warn("Something the user\n must know", UserWarning)
        return []

    monkeypatch.setattr(dosimetry.dicom, "inventory", inventory_that_warns)
    assert main(["inspect", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "warning: reading the DICOM folder: Something the user must know" in captured.out.splitlines()
    assert captured.err == ""


def test_accumulate_prints_no_library_warning(tmp_path):
    study = tmp_path / "s"
    shutil.copytree(SAMPLE_DICOM, study)
    assert (
        main(
            [
                "run",
                str(SAMPLE_DICOM),
                "--residual-fraction",
                "0.03",
                "--lung-shunt",
                "0.05",
                "--out",
                str(tmp_path / "run"),
                "-q",
            ]
        )
        == 0
    )
    _break_series_descriptions(study)
    out = tmp_path / "acc"
    run = subprocess.run(
        [
            sys.executable,
            "-W",
            "default",
            "-m",
            "dosimetry",
            "accumulate",
            "--current",
            str(tmp_path / "run"),
            "--ct",
            str(study),
            "--previous",
            f"{tmp_path / 'run' / 'rtdose.dcm'}:{study}",
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
    for word in LIBRARY_WORDS:
        assert word not in run.stderr, run.stderr
    assert (out / "accumulate.json").is_file()


def test_notes_of_roi_masks_go_into_stats_json(tmp_path, capsys):
    liver = nib.load(SAMPLE / "rois" / "liver.nii.gz")
    four_d = tmp_path / "liver_4d.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(liver.dataobj)[..., None], liver.affine), four_d)
    out = tmp_path / "out"
    argv = [
        "run",
        "--activity",
        str(SAMPLE / "activity_bqml.nii.gz"),
        "--roi",
        f"liver={four_d}",
        "--scan-delay-h",
        "20",
        "--activity-units",
        "Bq/mL",
        "--out",
        str(out),
        "-q",
    ]
    assert main(argv) == 0
    assert capsys.readouterr().err == ""  # a note, not a log line
    stats = json.loads((out / "stats.json").read_text())
    assert any(str(four_d) in w and "read as 3-D" in w for w in stats["warnings"]), stats["warnings"]
