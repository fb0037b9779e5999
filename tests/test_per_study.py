"""Issue 14, per study: hepatic tumour burden, recovery-curve partial-volume correction, the notebook
results object, and warnings that name API parameters in the API and flags on the command line."""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from helpers import roi_on  # noqa: E402

from dosimetry.batch import tables  # noqa: E402
from dosimetry.cli import main  # noqa: E402
from dosimetry.stats.clinical import ClinicalOptions  # noqa: E402
from dosimetry.constants import TUMOR_BURDEN_CAUTION_PERCENT, TUMOR_BURDEN_EXCLUSION_PERCENT  # noqa: E402
from dosimetry.errors import InputFileError  # noqa: E402
from dosimetry.image import Image  # noqa: E402
from dosimetry.io.images import write_nifti  # noqa: E402
from dosimetry.option_names import command_line_vocabulary  # noqa: E402
from dosimetry.stats.partial_volume import partial_volume_check  # noqa: E402
from dosimetry.pipeline import DosimetryOptions, run_dosimetry  # noqa: E402
from dosimetry.stats.recovery import BUNDLED_CURVES, RecoveryCurve, read_recovery_curve, recovery_curve  # noqa: E402
from dosimetry.stats.results_table import LESION_COLUMNS, PV_COLUMNS, roi_columns  # noqa: E402
from dosimetry.stats.tumor_burden import tumor_burden_section  # noqa: E402

# 4 mm voxels: 0.064 mL each; the liver is a 10 x 10 x 10 box = 64 mL
GRID = Image(np.zeros((14, 12, 12), np.float32), (0.0, 0.0, 0.0), (4.0, 4.0, 4.0))
VOXEL_ML = 0.064


def _box(*slices) -> np.ndarray:
    mask = np.zeros(GRID.shape, np.float32)
    mask[slices] = 1.0
    return mask


LIVER = _box(slice(0, 10), slice(0, 10), slice(0, 10))
LESION_A = _box(slice(0, 4), slice(0, 10), slice(0, 10))  # 400 voxels
LESION_B = _box(slice(3, 6), slice(0, 10), slice(0, 10))  # 300 voxels, 100 shared with A
LESION_C = _box(slice(9, 12), slice(0, 2), slice(0, 2))  # 12 voxels, 4 inside the liver


def _study(*, clinical: ClinicalOptions | None = None):
    activity = GRID.with_array(LIVER * 1e5 + (LESION_A + LESION_B + LESION_C) * 1e6)
    rois = [
        roi_on(GRID, LIVER, "Liver", "liver"),
        roi_on(GRID, LESION_A, "A", "tumor"),
        roi_on(GRID, LESION_B, "B", "tumor"),
        roi_on(GRID, LESION_C, "C", "tumor"),
    ]
    options = DosimetryOptions(activity_units="Bq/mL", scan_delay_h=0.0, clinical=clinical or ClinicalOptions())
    return run_dosimetry(activity, rois, options=options)


# --- hepatic tumour burden -------------------------------------------------------------------------------


def test_burden_of_a_constructed_study_against_hand_computed_volumes():
    burden = _study().stats["tumor_burden"]
    # union inside the liver: A (x 0..3) + B (x 3..5) overlap at x = 3 -> x 0..5 = 600 voxels, + C's 4 inside
    assert burden["tumor_volume_ml"] == pytest.approx(604 * VOXEL_ML)
    assert burden["liver_volume_ml"] == pytest.approx(1000 * VOXEL_ML)
    assert burden["tumor_outside_liver_ml"] == pytest.approx(8 * VOXEL_ML)
    assert burden["burden_percent"] == pytest.approx(60.4)
    assert burden["exceeds"] == [TUMOR_BURDEN_CAUTION_PERCENT]
    assert burden["liver_rois"] == ["Liver"] and burden["tumor_rois"] == ["A", "B", "C"]
    assert all(limit["source"] for limit in burden["limits"])


def _weights(tumor_voxels: int) -> dict:
    liver = np.zeros(2000, np.float32)
    liver[:1000] = 1.0
    tumor = np.zeros(2000, np.float32)
    tumor[:tumor_voxels] = 1.0
    return {"Liver": liver, "T": tumor}


ROIS = [{"name": "Liver", "role": "liver"}, {"name": "T", "role": "tumor"}]


@pytest.mark.parametrize(
    ("tumor_voxels", "exceeds"),
    [
        (499, []),
        (500, []),  # exactly 50%: not over 50%
        (501, [50.0]),
        (700, [50.0]),  # exactly 70%: not over 70%
        (701, [50.0, 70.0]),
        (1000, [50.0, 70.0]),
    ],
)
def test_burden_warnings_at_and_across_50_and_70_percent(tumor_voxels, exceeds):
    section, warnings = tumor_burden_section(ROIS, _weights(tumor_voxels), voxel_volume_ml=0.1)
    assert section["burden_percent"] == pytest.approx(tumor_voxels / 10.0)
    assert section["exceeds"] == exceeds
    assert len(warnings) == (1 if exceeds else 0)
    if exceeds:
        assert f"over {exceeds[-1]:g}%" in warnings[0] and "Salem" in warnings[0]
        if exceeds[-1] == TUMOR_BURDEN_EXCLUSION_PERCENT:
            assert "contraindication to radioembolization unless" in warnings[0]


def test_burden_not_computed_without_liver_or_tumour_names_the_parameter():
    section, warnings = tumor_burden_section(ROIS[1:], _weights(10), voxel_volume_ml=0.1)
    assert section["burden_percent"] is None and not warnings
    assert "no liver ROI" in section["note"] and "Roi of role 'liver'" in section["note"]
    with command_line_vocabulary():
        section, _ = tumor_burden_section(ROIS[:1], _weights(10), voxel_volume_ml=0.1)
    assert "no tumour ROI" in section["note"] and "--roi tumor:NAME=PATH" in section["note"]


# --- recovery curve ----------------------------------------------------------------------------------------


def _analytic_curve(tmp_path) -> Path:
    # RC(V) = 0.4 + 0.2 log10(V / mL) on 1..100 mL: straight in log V, so interpolation is exact
    path = tmp_path / "rc.csv"
    path.write_text(
        "# site phantom\nvolume_ml,recovery_coefficient\n100,0.8\n1,0.4\n10,0.6\n", encoding="utf-8"
    )  # rows out of order on purpose
    return path


def _rc(volume_ml: float) -> float:
    return 0.4 + 0.2 * math.log10(volume_ml)


def test_pvc_of_each_lesion_against_an_analytic_curve(tmp_path):
    curve_path = _analytic_curve(tmp_path)
    result = _study(clinical=ClinicalOptions(recovery_curve=curve_path, resolution_mm=8.0))
    for name, voxels in (("A", 400), ("B", 300)):
        entry = result.roi(name)
        assert entry["volume_ml"] == pytest.approx(voxels * VOXEL_ML)
        rc = _rc(entry["volume_ml"])
        assert entry["partial_volume"]["recovery_coefficient"] == pytest.approx(rc, rel=1e-12)
        assert entry["partial_volume"]["recovery_clamped"] is False
        assert entry["mean_gy_pvc"] == pytest.approx(entry["mean_gy"] / rc, rel=1e-12)
        assert entry["mean_gy_pvc"] > entry["mean_gy"]  # mean_gy itself is kept
    small = result.roi("C")  # 0.768 mL, under the smallest sphere: clamped to RC(1 mL) = 0.4
    assert small["partial_volume"]["recovery_coefficient"] == 0.4 and small["partial_volume"]["recovery_clamped"]
    assert small["mean_gy_pvc"] == pytest.approx(small["mean_gy"] / 0.4)
    assert any("'C'" in w and "extrapolation" in w for w in result.warnings)
    assert "mean_gy_pvc" not in result.roi("tumors_all") and "mean_gy_pvc" not in result.roi("Liver")
    record = result.stats["partial_volume_correction"]
    assert record["curve"]["file"] == "rc.csv"
    assert record["curve"]["sha256"] == __import__("hashlib").sha256(curve_path.read_bytes()).hexdigest()
    assert record["curve"]["points"] == [[1.0, 0.4], [10.0, 0.6], [100.0, 0.8]]
    assert "log(volume)" in record["method"] and "clamp" in record["extrapolation"]


def test_pvc_clamps_above_the_largest_sphere():
    curve = RecoveryCurve((1.0, 10.0), (0.5, 0.7))
    stats = {"rois": [{"name": "big", "role": "tumor", "volume_ml": 50.0, "mean_gy": 140.0}]}
    warnings, _ = partial_volume_check(stats, resolution_mm=None, spacing_mm=None, recovery_curve=curve)
    entry = stats["rois"][0]
    assert entry["mean_gy_pvc"] == pytest.approx(200.0) and entry["partial_volume"]["recovery_clamped"] is True
    assert len(warnings) == 1 and "'big'" in warnings[0]


def test_no_curve_no_pvc():
    result = _study()
    assert "partial_volume_correction" not in result.stats
    assert all("mean_gy_pvc" not in e for e in result.stats["rois"])


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("volume,rc\n1,0.5\n2,0.6\n", "header"),
        ("volume_ml,recovery_coefficient\n1,0.5\n", "at least 2"),
        ("volume_ml,recovery_coefficient\n-1,0.5\n2,0.6\n", "must be > 0"),
        ("volume_ml,recovery_coefficient\n1,0.5\n1,0.6\n", "same volume"),
        ("volume_ml,recovery_coefficient\n1,0.5\n2,60\n", "outside 0..2"),
        ("volume_ml,recovery_coefficient\n1,0.5\n2,abc\n", "not two numbers"),
    ],
)
def test_bad_recovery_curve_files_fail_with_one_line_naming_the_file(tmp_path, text, words):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputFileError) as err:
        ClinicalOptions(recovery_curve=path)
    message = str(err.value)
    assert words in message and str(path) in message and "\n" not in message


def test_missing_recovery_curve_file(tmp_path):
    with pytest.raises(InputFileError, match="nope.csv"):
        read_recovery_curve(tmp_path / "nope.csv")


def test_example_curve_holds_the_published_values():
    curve = recovery_curve("darienzo2017-endpoints")
    # D'Arienzo et al., EJNMMI Res 2017;7:94, Fig. 1: RC 0.2 (0.52 mL sphere) to 0.86 (26.52 mL sphere)
    assert curve.volumes_ml == (0.52, 26.52) and curve.coefficients == (0.20, 0.86)
    midpoint, clamped = curve.coefficient(math.sqrt(0.52 * 26.52))  # halfway in log volume
    assert midpoint == pytest.approx(0.53) and not clamped
    readme = (Path(__file__).resolve().parents[1] / "kernels" / "README.md").read_text()
    assert "y90_pet_recovery_darienzo2017_endpoints.csv" in readme and "10.1186/s13550-017-0341-9" in readme


@pytest.mark.parametrize("name", sorted(BUNDLED_CURVES))
def test_every_bundled_curve_is_cited_monotone_documented_and_says_measure_your_own(name):
    from dosimetry.io.data_files import data_path

    path = data_path(BUNDLED_CURVES[name])
    header = " ".join(line.lstrip("# ") for line in path.read_text().splitlines() if line.startswith("#"))
    assert re.search(r"doi:10\.\d{4,}/\S+", header), f"{path.name}: cite the source's DOI in the # header"
    assert "measure" in header and "own" in header, f"{path.name}: the header must say to measure your own"
    curve = recovery_curve(name)
    steps = np.diff(curve.coefficients)
    assert (steps >= 0).all(), f"{path.name}: recovery coefficients must not fall as the sphere grows"
    repo = Path(__file__).resolve().parents[1]
    kernels_readme = (repo / "kernels" / "README.md").read_text()
    assert path.name in kernels_readme and f"`{name}`" in kernels_readme
    for text in (
        kernels_readme,
        (repo / "README.md").read_text(),
        (repo / "docs" / "per_study_example.py").read_text(),
    ):
        assert "measure your own" in text.lower() or "measure the curve of your scanner" in text.lower()


# --- notebook results object --------------------------------------------------------------------------------


def test_dataframe_columns_units_and_values(tmp_path):
    pytest.importorskip("pandas")  # in the test extra
    result = _study(clinical=ClinicalOptions(recovery_curve=_analytic_curve(tmp_path)))
    frame = result.to_dataframe()
    assert list(frame.columns) == roi_columns()
    assert list(frame["roi"]) == [e["name"] for e in result.stats["rois"]]
    assert frame.attrs["units"]["mean_gy"].startswith("Gy") and frame.attrs["units"]["volume_ml"] == "mL"
    assert frame.attrs["units"]["D70"] == "Gy" and frame.attrs["units"]["V100"] == "% of volume"
    assert frame.attrs["units"]["tumor_burden_percent"] == "% of liver volume"
    by_roi = frame.set_index("roi")
    assert by_roi.loc["A", "mean_gy"] == result.roi("A")["mean_gy"]
    assert by_roi.loc["A", "mean_gy_pvc"] == result.roi("A")["mean_gy_pvc"]
    assert by_roi.loc["tumors_all", "derived"] and not by_roi.loc["A", "derived"]
    assert frame["tumor_burden_percent"].tolist() == pytest.approx([60.4] * len(frame))

    lesions = result.lesions()
    assert list(lesions.columns) == list(LESION_COLUMNS)
    assert list(lesions["roi"]) == ["A", "B", "C"]  # given tumours only
    c = lesions.set_index("roi").loc["C"]
    assert c["recovery_clamped"] and c["partial_volume_warning"] and "under 5 mL" in c["partial_volume_reason"]


def test_dataframe_without_pandas_says_how_to_install(monkeypatch):
    result = _study()
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        result.to_dataframe()


def test_api_warnings_name_api_parameters():
    result = _study()
    text = json.dumps([result.stats["warnings"], result.stats["assumptions"]])
    assert "ClinicalOptions(resolution_mm=...)" in text and "--resolution-mm" not in text


# --- command line: stats.csv, cohort.csv, report --------------------------------------------------------------


def test_command_line_writes_burden_and_pvc_columns(tmp_path, capsys):
    files = {}
    for name, mask in (("liver", LIVER), ("a", LESION_A), ("b", LESION_B), ("c", LESION_C)):
        files[name] = write_nifti(GRID.with_array(mask), tmp_path / f"{name}.nii.gz")
    activity = write_nifti(GRID.with_array(LIVER * 1e5 + (LESION_A + LESION_B + LESION_C) * 1e6), tmp_path / "act.nii")
    out = tmp_path / "out"
    args = ["run", "--activity", str(activity), "--activity-units", "Bq/mL", "--scan-delay-h", "0"]
    args += ["--roi", f"liver={files['liver']}"]
    args += [item for n in "abc" for item in ("--roi", f"tumor:{n.upper()}={files[n]}")]
    args += ["--recovery-curve", str(_analytic_curve(tmp_path)), "--out", str(out)]
    assert main(args) == 0
    stats = json.loads((out / "stats.json").read_text())
    # the command line names its flags
    assert any("--resolution-mm" in a["fix"] for a in stats["assumptions"])
    assert "ClinicalOptions(" not in json.dumps(stats["assumptions"])

    with (out / "stats.csv").open(newline="") as handle:
        rows = {row["name"]: row for row in csv.DictReader(handle)}
    assert set(PV_COLUMNS) | {"tumor_burden_percent"} <= set(rows["A"])
    assert float(rows["A"]["tumor_burden_percent"]) == pytest.approx(60.4)
    assert float(rows["A"]["mean_gy_pvc"]) == pytest.approx(stats["rois"][1]["mean_gy_pvc"], rel=1e-5)
    assert rows["C"]["partial_volume_warning"] == "true" and rows["A"]["partial_volume_warning"] == "false"
    assert rows["liver"]["mean_gy_pvc"] == "" and rows["liver"]["recovery_coefficient"] == ""

    cohort = tables.case_rows(out, "case1")
    columns = tables.cohort_columns(cohort)
    assert {"tumor_burden_percent", *PV_COLUMNS} <= set(columns)
    by_roi = {row["roi"]: row for row in cohort}
    assert by_roi["A"]["tumor_burden_percent"] == pytest.approx(60.4)
    assert by_roi["A"]["recovery_coefficient"] == pytest.approx(_rc(400 * VOXEL_ML), rel=1e-5)
    assert by_roi["liver"]["mean_gy_pvc"] is None

    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'data-json="tumor_burden/burden_percent">60.4<' in html
    assert "mean PVC" in html and "rc.csv" in html


def test_batch_lesion_columns_are_the_stats_csv_columns():
    assert tables.LESION_COLUMNS == PV_COLUMNS


def test_recovery_curve_option_on_the_command_line():
    from dosimetry.cli import build_parser
    from dosimetry.cli.clinical_options import clinical_options_from_args

    args = build_parser().parse_args(
        ["run", "--activity", "a.nii", "--out", "o", "--recovery-curve", "darienzo2017-endpoints"]
    )
    assert clinical_options_from_args(args).recovery_curve.coefficients == (0.20, 0.86)


def test_docs_example_runs_and_its_correction_recovers_the_true_lesion_doses(capsys):
    pytest.importorskip("pandas")
    import runpy

    example = Path(__file__).resolve().parents[1] / "docs" / "per_study_example.py"
    names = runpy.run_path(str(example), run_name="__main__")
    printed = capsys.readouterr().out
    assert "tumour burden 2.1%" in printed and "mean_gy_pvc" in printed
    assert "--" not in "\n".join(line for line in printed.splitlines() if line.startswith("ASSUMED"))
    lesions = names["lesions"]
    # blurred to 8 mm FWHM the lesions lose 15-40% of their mean dose; the curve measured on the same
    # (simulated) scanner brings each within 10% of the truth, the smallest least well (shape, contrast)
    assert (lesions["error_percent"] < -15).all()
    assert (lesions["error_pvc_percent"].abs() < 10).all()
    assert (lesions["error_pvc_percent"].abs() < lesions["error_percent"].abs()).all()


# --- resolution from the PET header: the post-reconstruction filter, a lower bound ---------------------------


@pytest.mark.parametrize(
    ("kernel", "fwhm"),
    [
        ("XYZGAUSSIAN5.00", 5.0),
        ("XYZ Gauss6.00", 6.0),
        (["FBP", "8.0 mm Gaussian"], 8.0),
        ("GAUSSIAN 4", 4.0),
        ("ALL-PASS", None),
        ("GAUSSIAN 0", None),
        ("GAUSSIAN 95", None),  # not a width in mm
        (None, None),
    ],
)
def test_post_filter_fwhm_from_convolution_kernel(kernel, fwhm):
    from dosimetry.dicom.resolution import post_filter_fwhm_mm

    assert post_filter_fwhm_mm(kernel) == fwhm


def _one_lesion(volume_ml=10.0):
    return {"rois": [{"name": "T", "role": "tumor", "volume_ml": volume_ml, "mean_gy": 100.0}]}


def test_header_filter_is_used_as_a_lower_bound_when_larger_than_the_voxels():
    stats = _one_lesion()
    _, assumptions = partial_volume_check(
        stats, resolution_mm=None, spacing_mm=(4.0, 4.0, 4.0), header_filter_fwhm_mm=9.0
    )
    record = stats["rois"][0]["partial_volume"]
    assert record["resolution_mm"] == 9.0 and "PET header" in record["resolution_source"]
    assert assumptions[0]["value_used"] == 9.0 and "filter FWHM is a lower bound" in assumptions[0]["why"]
    stats = _one_lesion()
    partial_volume_check(stats, resolution_mm=None, spacing_mm=(4.0, 4.0, 5.0), header_filter_fwhm_mm=3.0)
    assert stats["rois"][0]["partial_volume"]["resolution_mm"] == 5.0  # the voxels are the larger bound
    stats = _one_lesion()
    partial_volume_check(stats, resolution_mm=7.0, spacing_mm=(4.0, 4.0, 4.0), header_filter_fwhm_mm=9.0)
    assert stats["rois"][0]["partial_volume"]["resolution_mm"] == 7.0  # given wins


def test_dicom_pet_header_filter_reaches_the_partial_volume_check(tmp_path):
    import pydicom

    import dicom_builders as b
    from dosimetry.pipeline import run_dicom_study

    b.write_phantom_study(tmp_path / "s", with_ct=False)
    for path in (tmp_path / "s").rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        if ds.Modality == "PT":
            ds.ConvolutionKernel = "XYZGAUSSIAN9.00"
            ds.save_as(path)
    result = run_dicom_study(tmp_path / "s")
    assert result.stats["inputs"]["dicom"]["emission"]["post_filter_fwhm_mm"] == 9.0
    record = result.roi("Tumour 1")["partial_volume"]
    assert record["resolution_mm"] == 9.0 and "PET header" in record["resolution_source"]
