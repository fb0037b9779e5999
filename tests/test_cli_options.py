"""Issue 9, part 3 (command line and ROIs): option ranges (one line, exit 7), the same ranges in the API,
Ctrl-C, --segment-role ignore for Slicer segments, role inference from real-world names, ROIs partly outside
the activity image."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dosimetry.cli import main
from dosimetry.stats.clinical import ClinicalOptions
from dosimetry.errors import EXIT_CODES, GeometryError, OptionsError
from dosimetry.image import Image
from dosimetry.pipeline import DosimetryOptions, run_dosimetry
from dosimetry.geometry.resample import check_roi_inside, volume_outside_grid
from dosimetry.roi import Role, infer_role
from dosimetry.io.roi_files import read_slicer_segmentation
from helpers import roi_on

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "phantom"
BASE = [
    "run",
    "--activity",
    str(SAMPLE / "activity_bqml.nii.gz"),
    "--ct",
    str(SAMPLE / "ct_hu.nii.gz"),
    "--roi",
    f"liver={SAMPLE / 'rois' / 'liver.nii.gz'}",
    "--scan-delay-h",
    "20",
    "--activity-units",
    "Bq/mL",
]

BAD_VALUES = [
    ("--residual-fraction", "1.0"),
    ("--residual-fraction", "3"),
    ("--residual-fraction", "-0.1"),
    ("--lung-shunt", "nan"),
    ("--administered-gbq", "0"),
    ("--administered-gbq", "2000"),
    ("--administered-gbq", "inf"),
    ("--scan-delay-h", "1200"),
    ("--scan-delay-h", "-1"),
    ("--density-g-ml", "0"),
    ("--density-g-ml", "3.5"),
    ("--density-g-ml", "abc"),
    ("--lung-mass-kg", "6"),
    ("--height-cm", "20"),
    ("--weight-kg", "1"),
    ("--alpha-beta-tumor-gy", "0"),
    ("--repair-half-time-h", "nan"),
    ("--previous-lung-dose-gy", "-5"),
    ("--eud-alpha-per-gy", "-1"),
    ("--implant-time", "yesterday"),
]


def _replace_option(argv, option, value):
    argv = list(argv)
    if option in argv:
        argv[argv.index(option) + 1] = value
    else:
        argv += [option, value]
    return argv


@pytest.mark.parametrize("option,value", BAD_VALUES)
def test_out_of_range_option_is_one_line_exit_7_and_nothing_written(tmp_path, capsys, option, value):
    out = tmp_path / "out"
    code = main(_replace_option(BASE, option, value) + ["--out", str(out)])
    err = capsys.readouterr().err
    assert code == 7, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and option in lines[0], err
    assert "usage:" not in err and "Traceback" not in err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_usage_errors_stay_exit_2_in_one_line(capsys):
    assert main(BASE + ["--bogus-option", "--out", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--help" in err[0]


@pytest.mark.parametrize(
    "field,value",
    [
        ("residual_fraction", 1.0),
        ("lung_shunt_fraction", float("nan")),
        ("administered_activity_gbq", 25.0),
        ("scan_delay_h", 721.0),
        ("default_density_g_ml", 0.0),
        ("lung_mass_kg", 5.5),
    ],
)
def test_api_options_check_the_same_ranges(field, value):
    with pytest.raises(OptionsError, match=field):
        DosimetryOptions(**{field: value})


def test_api_clinical_options_are_checked():
    with pytest.raises(OptionsError):
        DosimetryOptions(clinical=ClinicalOptions(alpha_beta_tumor_gy=-1.0))


def test_values_inside_the_ranges_are_accepted():
    DosimetryOptions(
        residual_fraction=0.0,
        lung_shunt_fraction=0.99,
        administered_activity_gbq=19.9,
        scan_delay_h=720.0,
        default_density_g_ml=3.0,
        lung_mass_kg=5.0,
    )


def test_every_exit_code_is_documented_in_help(capsys):
    with pytest.raises(SystemExit):
        from dosimetry.cli import build_parser

        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for code in (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 130, 143):
        assert code in EXIT_CODES
        assert f"{code} " in out, code


def test_importing_the_cli_imports_no_heavy_library():
    code = (
        "import sys, dosimetry.cli; heavy = [m for m in ('numpy', 'SimpleITK', 'matplotlib', 'numba') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


@pytest.mark.parametrize(
    "signum,code,message",
    [
        (signal.SIGINT, 130, "error: interrupted; no output was written"),
        (signal.SIGTERM, 143, "error: terminated (SIGTERM); no output was written"),
    ],
)
def test_ctrl_c_at_any_moment_gives_one_line_and_exit_130(tmp_path, signum, code, message):
    """SIGINT (or SIGTERM) at several moments of a run (importing the API, loading, computing, writing):
    each outcome is either a completed run (exit 0) or exit 130 (143) with exactly one line on stderr and
    no output folder. The delays count from the moment main() is called (the child says 'ready' on stdout
    first): before it, Python itself and ``import dosimetry.cli`` (about 0.05 s) run with Python's default
    handling. No timing is asserted: every delay must give one of the two outcomes."""
    outcomes = []
    for i, delay_s in enumerate((0.01, 0.05, 0.3, 0.8, 1.5, 3.0)):
        out = tmp_path / f"out{i}"
        argv = [
            sys.executable,
            "-c",
            "import sys; from dosimetry.cli import main; print('ready', flush=True); sys.exit(main())",
            *BASE,
            "--out",
            str(out),
            "-q",
        ]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay_s)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
        outcomes.append(proc.returncode)
        if proc.returncode == code:
            lines = err.strip().splitlines()
            assert lines == [message], err
            assert not out.exists()
            assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".out{i}")]
        else:
            assert proc.returncode == 0, err
            assert (out / "stats.json").exists()
    assert code in outcomes


@pytest.mark.parametrize(
    "name,role",
    [
        ("Liver", Role.LIVER),
        ("Liver_total", Role.LIVER),
        ("liver+tumour", Role.LIVER),
        ("whole liver normal", Role.OTHER),
        ("normal liver", Role.OTHER),
        ("liver normal", Role.OTHER),
        ("non-tumoral liver", Role.OTHER),
        ("healthy liver", Role.OTHER),
        ("Liver-Vessels", Role.OTHER),
        ("portal vein", Role.OTHER),
        ("Lungs", Role.LUNG),
        ("Lung L", Role.LUNG),
        ("Lung_R", Role.LUNG),
        ("TUMOR_1", Role.TUMOR),
        ("Lesion 2", Role.TUMOR),
        ("Met3", Role.TUMOR),
        ("HCC", Role.TUMOR),
        ("perfused segment 4", Role.PERFUSED),
    ],
)
def test_role_inference_from_real_world_names(name, role):
    assert infer_role(name) is role


def test_slicer_segment_can_be_ignored_and_unknown_names_are_refused(tmp_path, capsys):
    seg = SAMPLE / "rois.seg.nrrd"
    rois, _ = read_slicer_segmentation(seg)
    names = [r.name for r in rois]
    ignored = names[-1]
    kept, _ = read_slicer_segmentation(seg, role_overrides={ignored: "ignore"})
    assert [r.name for r in kept] == names[:-1]
    argv = [
        "run",
        "--activity",
        str(SAMPLE / "activity_bqml.nii.gz"),
        "--segmentation",
        str(seg),
        "--scan-delay-h",
        "20",
        "--activity-units",
        "Bq/mL",
        "-q",
    ]
    assert main(argv + ["--segment-role", f"{ignored}=ignore", "--out", str(tmp_path / "a")]) == 0
    assert main(argv + ["--segment-role", "No such segment=tumor", "--out", str(tmp_path / "b")]) == 7
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such segment" in err[0].lower()
    assert not (tmp_path / "b").exists()


def _grid():
    return Image(np.full((20, 20, 20), 1e4), spacing_mm=(4.0, 4.0, 4.0), origin_mm=(0.0, 0.0, 0.0))


def _box_mask(x_from_mm, x_to_mm, spacing_mm=2.0):
    """A box mask on its own finer grid, x from x_from_mm to x_to_mm, y and z from 20 to 60 mm."""
    n = int(round((x_to_mm - x_from_mm) / spacing_mm))
    m = int(round(40 / spacing_mm))
    return Image(
        np.ones((n, m, m), np.float32),
        spacing_mm=spacing_mm,
        origin_mm=(x_from_mm + spacing_mm / 2 - 0.0, 20 + spacing_mm / 2, 20 + spacing_mm / 2),
    )


def test_volume_outside_is_measured_in_world_coordinates():
    grid = _grid()  # voxel faces from -2 to 78 mm along x
    mask = _box_mask(38.0, 118.0)  # 80 mm long, 40 mm of it beyond x = 78
    volume_ml, outside_ml = volume_outside_grid(mask, grid)
    assert volume_ml == pytest.approx(80 * 40 * 40 / 1000, rel=1e-6)
    assert outside_ml == pytest.approx(40 * 40 * 40 / 1000, rel=0.02)


def test_roi_ten_percent_outside_warns_and_twenty_five_percent_refuses():
    grid = _grid()
    record, warning = check_roi_inside("T", _box_mask(-10.0, 70.0), grid)  # 8 of 80 mm beyond x = -2: 10%
    assert record["outside_image_percent"] == pytest.approx(10.0, abs=2.0) and "outside" in warning
    with pytest.raises(GeometryError, match="allow-roi-outside"):
        check_roi_inside("T", _box_mask(-22.0, 58.0), grid)  # 20 of 80 mm: 25%
    record, warning = check_roi_inside("T", _box_mask(-22.0, 58.0), grid, allow_outside=True)
    assert record["outside_image_percent"] == pytest.approx(25.0, abs=2.0) and warning


def test_pipeline_refuses_a_tumour_mostly_outside_unless_allowed():
    grid = _grid()
    liver = roi_on(grid, np.ones(grid.shape), "liver", "liver")
    tumour_mask = _box_mask(60.0, 140.0)  # 62 of 80 mm beyond the image
    from dosimetry.roi import Roi

    tumour = Roi("T1", Role.TUMOR, tumour_mask)
    options = DosimetryOptions(activity_units="Bq/mL", scan_delay_h=0)
    with pytest.raises(GeometryError, match="T1"):
        run_dosimetry(grid, [liver, tumour], options=options)
    result = run_dosimetry(
        grid, [liver, tumour], options=DosimetryOptions(activity_units="Bq/mL", scan_delay_h=0, allow_roi_outside=True)
    )
    entry = result.roi("T1")
    assert entry["outside_image_percent"] == pytest.approx(77.5, abs=3.0)
    assert any("T1" in w and "outside" in w for w in result.warnings)
