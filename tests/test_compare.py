"""``dosimetry compare``: predicted (Tc-99m MAA) against delivered (Y-90) dose on the sample phantom.

The pair is made from the sample study: the predictive run is the sample image with relative calibration
to the planned 2 GBq (residual 0.03, lung shunt 0.05, exactly the sample's truth); the delivered run is the
same image, absolutely calibrated, with the activity of every voxel touching tumour T3 multiplied by 1.5.
With local deposition the dose of a voxel is proportional to its activity, so the delivered T3 mean dose is
exactly 1.5 x the predicted one and T1, T2 and the lung are unchanged: a planted difference whose
Bland-Altman numbers are known. A copy of the delivered study moved rigidly (rotation and shift of every
image) is in another frame: it must be registered on the CTs to recover the same differences.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from dosimetry.cli import main
from dosimetry.compare import compare_runs
from dosimetry.compare.agreement import LOA_Z, bland_altman, correlations, lin_ccc
from dosimetry.compare.runs import image_lung_shunt
from dosimetry.errors import GeometryError, RoiError, UnitsError
from dosimetry.image import Image
from dosimetry.io.images import read_image, write_nifti
from helpers import rotation

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "phantom"
ROI_NAMES = {"liver": "liver", "lung": "lung", "tumor_T1": "tumor", "tumor_T2": "tumor", "tumor_T3": "tumor"}
PLANT = 1.5
MOVE_R = rotation("z", 3.0) @ rotation("x", -2.0)
MOVE_T = np.array([11.0, -7.5, 6.0])


# --- agreement statistics against published and analytic values ---------------------------------------------------


def _copied_runs(pair, tmp_path) -> dict:
    """Copies of the pair's run folders (stats.json and dose.nii.gz) under ``tmp_path``, to be edited."""
    copies = {}
    for key in ("predicted", "plain"):
        copies[key] = tmp_path / key
        copies[key].mkdir()
        for name in ("stats.json", "dose.nii.gz"):
            (copies[key] / name).write_bytes((pair[key] / name).read_bytes())
    return copies


def test_bland_altman_reproduces_the_published_peak_flow_example():
    # Bland & Altman, Lancet 1986;327:307, table 1 (first readings), peak flow (l/min); published for
    # Wright - mini Wright: mean difference -2.1, SD 38.8, limits (mean +- 2 SD) -79.7 to 75.5
    wright = [494, 395, 516, 434, 476, 557, 413, 442, 650, 433, 417, 656, 267, 478, 178, 423, 427]
    mini = [512, 430, 520, 428, 500, 600, 364, 380, 658, 445, 432, 626, 260, 477, 259, 350, 451]
    result = bland_altman(mini, wright)  # delivered - predicted = Wright - mini
    assert result["n"] == 17
    assert result["bias"] == pytest.approx(-2.1, abs=0.05)
    assert result["sd"] == pytest.approx(38.8, abs=0.05)
    assert result["bias"] - 2 * result["sd"] == pytest.approx(-79.7, abs=0.1)
    assert result["bias"] + 2 * result["sd"] == pytest.approx(75.5, abs=0.15)
    assert result["loa_upper"] - result["bias"] == pytest.approx(1.959964 * result["sd"], rel=1e-6)
    # CI of the bias: t(0.975, 16) = 2.1199 times SD / sqrt(17)
    assert result["bias_ci"][1] - result["bias"] == pytest.approx(2.1199 * 38.765 / math.sqrt(17), rel=1e-3)


def test_lin_ccc_analytic_values_and_correlations():
    x = np.array([10.0, 40.0, 25.0, 80.0, 55.0])
    s2 = x.var()
    # shift c: rho_c = 2 s^2 / (2 s^2 + c^2); scale k: rho_c = 2k s^2 / ((1 + k^2) s^2 + (k - 1)^2 m^2)
    # (Lin 1989, moments with 1/n); Pearson is 1 for both
    assert lin_ccc(x, x + 7.0) == pytest.approx(2 * s2 / (2 * s2 + 49.0), rel=1e-12)
    assert lin_ccc(x, 1.3 * x) == pytest.approx(2 * 1.3 * s2 / ((1 + 1.3**2) * s2 + 0.3**2 * x.mean() ** 2), rel=1e-12)
    c = correlations(x, 1.3 * x)
    assert c["pearson_r"] == pytest.approx(1.0) and c["spearman_rho"] == pytest.approx(1.0)
    assert correlations(x[:2], x[:2]) is None  # fewer than 3 pairs
    constant = correlations(x, np.full(5, 3.0))
    assert math.isnan(constant["pearson_r"]) and constant["note"]
    assert bland_altman([1.0], [2.0]) is None
    # percent of the pair mean: d = 1.2 p gives 100 * 0.2 / 1.1 for every pair, SD 0
    percent = bland_altman(x, 1.2 * x, percent=True)
    assert percent["bias"] == pytest.approx(100 * 0.2 / 1.1) and percent["sd"] == pytest.approx(0.0, abs=1e-9)
    assert LOA_Z == pytest.approx(1.959964, abs=1e-6)


def test_image_lung_shunt_from_roi_activities():
    rois = [
        {"name": "liver", "role": "liver", "activity_mbq": 1843.0},
        {"name": "lung L", "role": "lung", "activity_mbq": 40.0},
        {"name": "lung R", "role": "lung", "activity_mbq": 57.0},
        {"name": "lungs_all", "role": "lung", "activity_mbq": 97.0, "derived": "union"},
    ]
    assert image_lung_shunt(rois) == pytest.approx(97.0 / 1940.0)
    assert image_lung_shunt(rois[:1]) is None


# --- the sample pair -------------------------------------------------------------------------------------------------
def _run(args: list[str]) -> None:
    assert main(["run", *args, "--method", "ldm", "-q"]) == 0


def _roi_args(folder: Path, names: dict[str, str]) -> list[str]:
    args = []
    for file_name, name in names.items():
        args += ["--roi", f"{ROI_NAMES[file_name]}:{name}={folder / f'{file_name}.nii.gz'}"]
    return args


def _moved(image: Image) -> Image:
    """The image of a patient moved by q = R p + t: same voxels, new world geometry."""
    return Image(image.array, MOVE_R @ image.origin_mm + MOVE_T, image.spacing_mm, MOVE_R @ image.direction)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    activity = read_image(SAMPLE / "activity_bqml.nii.gz")
    t3 = read_image(SAMPLE / "rois" / "tumor_T3.nii.gz")
    assert t3.same_grid(activity)
    planted = activity.with_array(np.where(t3.array > 0, PLANT * activity.array, activity.array).astype(np.float32))
    write_nifti(planted, root / "planted.nii.gz")
    moved = root / "moved"
    moved.mkdir()
    write_nifti(_moved(planted), moved / "activity.nii.gz")
    write_nifti(_moved(read_image(SAMPLE / "ct_hu.nii.gz")), moved / "ct.nii.gz")
    for name in ROI_NAMES:
        mask = read_image(SAMPLE / "rois" / f"{name}.nii.gz")
        write_nifti(_moved(mask.with_array(mask.array.astype(np.uint8))), moved / f"{name}.nii.gz")
    same = {n: n for n in ROI_NAMES}
    renamed = {"liver": "Liver", "lung": "lung", "tumor_T1": "lesion 1", "tumor_T2": "lesion 2", "tumor_T3": "lesion 3"}
    common = ["--activity-units", "Bq/mL", "--ct", str(SAMPLE / "ct_hu.nii.gz")]
    y90 = ["--emission-nuclide", "Y-90", "--scan-delay-h", "20"]
    runs = {k: root / k for k in ("predicted", "delivered", "plain", "moved_run")}
    _run(
        ["--activity", str(SAMPLE / "activity_bqml.nii.gz"), *common, *_roi_args(SAMPLE / "rois", same)]
        + ["--emission-nuclide", "Tc-99m", "--calibration", "relative", "--administered-gbq", "2"]
        + ["--residual-fraction", "0.03", "--lung-shunt-fraction", "0.05", "--out", str(runs["predicted"])]
    )
    _run(
        [
            "--activity",
            str(root / "planted.nii.gz"),
            *common,
            *_roi_args(SAMPLE / "rois", renamed),
            *y90,
            "--out",
            str(runs["delivered"]),
        ]
    )
    _run(
        [
            "--activity",
            str(SAMPLE / "activity_bqml.nii.gz"),
            *common,
            *_roi_args(SAMPLE / "rois", same),
            *y90,
            "--out",
            str(runs["plain"]),
        ]
    )
    _run(
        ["--activity", str(moved / "activity.nii.gz"), "--activity-units", "Bq/mL", "--ct", str(moved / "ct.nii.gz")]
        + [*_roi_args(moved, same), *y90, "--out", str(runs["moved_run"])]
    )
    return {"root": root, "moved": moved, "renamed": renamed, **runs}


def _by_name(record: dict) -> dict:
    return {e["delivered_roi"]: e for e in record["rois"]}


def test_planted_difference_recovered_with_renamed_rois(pair, tmp_path):
    matches = [f"{a}={b}" for a, b in pair["renamed"].items() if a != b]
    out = tmp_path / "cmp"
    argv = [
        "compare",
        "--predicted",
        str(pair["predicted"]),
        "--delivered",
        str(pair["delivered"]),
        "--out",
        str(out),
        "-q",
    ]
    assert main(argv + [x for m in matches for x in ("--match", m)]) == 0
    record = json.loads((out / "compare.json").read_text())
    rois = _by_name(record)
    assert rois["lesion 3"]["predicted_roi"] == "tumor_T3"
    for name in ("lesion 1", "lesion 2", "lung"):
        assert rois[name]["mean_gy"]["difference_percent"] == pytest.approx(0.0, abs=0.01)
    p3 = rois["lesion 3"]["mean_gy"]["predicted"]
    assert p3 > 100.0
    assert rois["lesion 3"]["mean_gy"]["delivered"] == pytest.approx(PLANT * p3, rel=1e-4)
    assert rois["lesion 3"]["mean_gy"]["difference_percent"] == pytest.approx(100 * (PLANT - 1), abs=0.01)
    # Bland-Altman over the three lesions: differences (0, 0, 0.5 p3)
    expected = np.array([0.0, 0.0, (PLANT - 1) * p3])
    ba = record["agreement"]["lesions"]["mean_gy"]["bland_altman"]
    assert ba["n"] == 3
    assert ba["bias"] == pytest.approx(expected.mean(), rel=1e-3)
    assert ba["sd"] == pytest.approx(expected.std(ddof=1), rel=1e-3)
    assert ba["loa_upper"] == pytest.approx(expected.mean() + LOA_Z * expected.std(ddof=1), rel=1e-3)
    # the lung shunt from the images is the sample's 0.05 in the prediction and lower in the delivered run
    # (the planted T3 activity adds to the liver)
    study = record["study"]
    assert study["lsf_image"]["predicted"] == pytest.approx(0.05, rel=1e-4)
    assert study["lsf_image"]["delivered"] < 0.05
    assert study["tn_ratio"]["delivered"] > study["tn_ratio"]["predicted"]
    # files
    assert {"compare.csv", "compare.html", "bland_altman_mean_gy.png", "scatter_D70.png"} <= {
        p.name for p in out.iterdir()
    }
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert {r["delivered_roi"] for r in rows} >= {"lesion 1", "lesion 2", "lesion 3", "Liver", "normal_liver"}
    page = (out / "compare.html").read_text()
    # 4 agreement plots; predicted and delivered planes and one pair per lesion (no difference: no frame recorded)
    assert "lesion 3" in page and page.count("data:image/png;base64,") == 4 + 2 + 3


def test_without_match_renamed_lesions_are_not_compared(pair):
    result = compare_runs(pair["predicted"], pair["delivered"])
    names = {e["delivered_roi"] for e in result.stats["rois"]}
    assert "lesion 1" not in names and "lung" in names
    assert any("without a delivered partner" in w and "tumor_T1" in w for w in result.warnings)
    with pytest.raises(RoiError, match="no ROI 'tumor_T9'"):
        compare_runs(pair["predicted"], pair["delivered"], match={"tumor_T9": "lesion 1"})


def test_refusals(pair, tmp_path):
    out = str(tmp_path / "x")
    p, d, plain = str(pair["predicted"]), str(pair["delivered"]), str(pair["plain"])
    # order swapped: the predictive run given as delivered
    assert main(["compare", "--predicted", plain, "--delivered", p, "--out", out, "-q"]) == UnitsError.exit_code
    # a Y-90 run as the prediction, accepted only with --accept-emission (and said so)
    with pytest.raises(UnitsError, match="expected a predictive dose"):
        compare_runs(plain, d)
    assert any("--accept-emission" in w for w in compare_runs(plain, d, accept_emission=True).warnings)
    # not a run folder
    (tmp_path / "empty").mkdir()
    assert main(["compare", "--predicted", str(tmp_path / "empty"), "--delivered", d, "--out", out, "-q"]) == 3
    # --out inside an input run
    assert main(["compare", "--predicted", p, "--delivered", plain, "--out", str(Path(p) / "cmp"), "-q"]) == 8
    # an output of ours is replaced only with --overwrite
    assert main(["compare", "--predicted", p, "--delivered", plain, "--out", out, "-q"]) == 0
    assert main(["compare", "--predicted", p, "--delivered", plain, "--out", out, "-q"]) == 7
    assert main(["compare", "--predicted", p, "--delivered", plain, "--out", out, "--overwrite", "-q"]) == 0
    out = str(tmp_path / "y")
    # options that contradict each other
    assert main(["compare", "--predicted", p, "--out", out, "-q"]) == 7
    assert main(["compare", "--pairs", out, "--predicted", p, "--delivered", plain, "--out", out, "-q"]) == 7
    # unknown ROI in --match, and a malformed one
    assert main(["compare", "--predicted", p, "--delivered", d, "--match", "nope=Liver", "--out", out, "-q"]) == 6
    assert main(["compare", "--predicted", p, "--delivered", d, "--match", "nope", "--out", out, "-q"]) == 7
    assert not Path(out).exists()


def test_different_frames_registered_on_the_cts(pair, tmp_path):
    """The delivered study moved rigidly: its ROIs and the registered predicted dose recover the plant."""
    own = _by_name(compare_runs(pair["predicted"], pair["plain"]).stats)
    out = tmp_path / "moved"
    roi_args = _roi_args(pair["moved"], {n: n for n in ROI_NAMES})
    argv = ["compare", "--predicted", str(pair["predicted"]), "--delivered", str(pair["moved_run"]), *roi_args]
    assert main(argv + ["--out", str(out), "-q"]) == 0
    record = json.loads((out / "compare.json").read_text())
    assert record["mode"] == "delivered ROIs"
    registration = record["alignment"]["registration"]
    assert registration["ncc"] > 0.9
    assert registration["rotation_deg"] == pytest.approx(math.degrees(math.acos((np.trace(MOVE_R) - 1) / 2)), abs=0.5)
    rois = _by_name(record)
    # the predicted dose on the moved grid keeps its ROI means (interpolation: a few percent at 4 mm voxels)
    for name in ("liver", "normal_liver", "tumor_T2", "tumor_T3"):
        assert rois[name]["mean_gy"]["predicted"] == pytest.approx(own[name]["mean_gy"]["predicted"], rel=0.05)
    # delivered: the moved copy of the planted study, evaluated on its own grid with its own (moved) ROIs,
    # gives the planted run's numbers
    planted = {r["name"]: r for r in json.loads((pair["delivered"] / "stats.json").read_text())["rois"]}
    for name in ("liver", "tumor_T1", "tumor_T2", "tumor_T3"):
        expected = planted[pair["renamed"][name]]["mean_gy"]
        assert rois[name]["mean_gy"]["delivered"] == pytest.approx(expected, rel=1e-3)
    ratio = rois["tumor_T3"]["mean_gy"]["delivered"] / rois["tumor_T3"]["mean_gy"]["predicted"]
    assert ratio == pytest.approx(PLANT, rel=0.06)
    assert rois["tumor_T2"]["mean_gy"]["difference_percent"] == pytest.approx(0.0, abs=5.0)
    diff = read_image(out / "difference_gy.nii.gz")
    assert diff.same_grid(read_image(pair["moved_run"] / "dose.nii.gz"))
    # without CTs or a stated common frame, the doses cannot be aligned: refused
    no_ct = main(argv + ["--predicted-ct", str(tmp_path / "missing.nii.gz"), "--out", str(tmp_path / "y"), "-q"])
    assert no_ct == 3


def test_cohort_pools_lesions_of_all_cases(pair, tmp_path):
    pairs = tmp_path / "pairs.csv"
    matches = ";".join(f"{a}={b}" for a, b in pair["renamed"].items() if a != b)
    pairs.write_text(
        "case_id,predicted,delivered,match\n"
        f"A,{pair['predicted']},{pair['delivered']},{matches}\n"
        f"B,{pair['predicted']},{pair['plain']},\n"
    )
    out = tmp_path / "cohort"
    assert main(["compare", "--pairs", str(pairs), "--out", str(out), "-q"]) == 0
    record = json.loads((out / "compare.json").read_text())
    lesions = record["agreement"]["lesions"]["mean_gy"]
    assert lesions["n"] == 6
    p3 = _by_name(record)["lesion 3"]["mean_gy"]["predicted"]
    expected = np.array([0.0, 0.0, (PLANT - 1) * p3, 0.0, 0.0, 0.0])
    assert lesions["bland_altman"]["bias"] == pytest.approx(expected.mean(), rel=1e-3)
    assert lesions["bland_altman"]["sd"] == pytest.approx(expected.std(ddof=1), rel=1e-3)
    assert record["study_agreement"]["tn_ratio"]["n"] == 2
    assert 'id="dose-images"' not in (out / "compare.html").read_text()  # no dose images for a cohort
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert {r["case_id"] for r in rows} == {"A", "B"}
    pairs.write_text("case_id,predicted\nA,x\n")
    assert main(["compare", "--pairs", str(pairs), "--out", str(tmp_path / "z"), "-q"]) == 3


def test_delivered_rois_on_one_frame_reproduce_each_runs_statistics(pair, tmp_path):
    """Same grid, no motion: resampling is the identity, so the delivered-ROI numbers are the runs' own."""
    from dosimetry.io.roi_files import read_mask_roi

    rois = [read_mask_roi(SAMPLE / "rois" / f"{n}.nii.gz", role, n) for n, role in ROI_NAMES.items()]
    own = {r["name"]: r for r in json.loads((pair["plain"] / "stats.json").read_text())["rois"]}
    predicted_own = {r["name"]: r for r in json.loads((pair["predicted"] / "stats.json").read_text())["rois"]}
    # file runs record no frame of reference: without CTs or --same-frame the doses cannot be aligned
    with pytest.raises(GeometryError, match="--same-frame"):
        compare_runs(pair["predicted"], pair["plain"], rois=rois)
    ct = read_image(SAMPLE / "ct_hu.nii.gz")  # the densities of the mass-weighted means, as in the runs
    result = compare_runs(pair["predicted"], pair["plain"], rois=rois, same_frame=True, delivered_ct=ct)
    assert result.stats["alignment"]["alignment"].startswith("same coordinates")
    for e in result.stats["rois"]:
        if e["delivered_roi"] in own:
            for metric in ("mean_gy", "D70"):
                assert e[metric]["delivered"] == pytest.approx(own[e["delivered_roi"]][metric], rel=1e-5)
                assert e[metric]["predicted"] == pytest.approx(predicted_own[e["delivered_roi"]][metric], rel=1e-5)
    # the same recorded FrameOfReferenceUID (as DICOM runs record it) means no registration either
    copies = _copied_runs(pair, tmp_path)
    for key in ("predicted", "plain"):
        stats = json.loads((copies[key] / "stats.json").read_text())
        stats["inputs"]["dicom"] = {"emission": {"frame_of_reference_uid": "1.2.3.4"}}
        (copies[key] / "stats.json").write_text(json.dumps(stats))
    same = compare_runs(copies["predicted"], copies["plain"], rois=rois, delivered_ct=ct)
    assert same.stats["alignment"]["alignment"].startswith("same frame of reference")
    assert same.stats["frames_of_reference"]["same"] is True
    assert same.predicted_on_delivered.array == pytest.approx(read_image(pair["predicted"] / "dose.nii.gz").array)


def test_dicom_pair_in_different_frames_with_the_delivered_runs_own_structures(tmp_path):
    """A Tc-99m MAA SPECT/CT and a Y-90 PET/CT as DICOM studies, each in its own frame of reference: the
    recorded FrameOfReferenceUIDs differ, so --on-delivered-grid registers the CTs and uses the delivered
    run's RTSTRUCT; the two studies show the same phantom, so the doses agree up to the MAA count rounding."""
    import dicom_builders as b
    from test_emission_policy import _maa_study

    _maa_study(tmp_path / "maa")
    b.write_phantom_study(tmp_path / "y90", study_key="y90")
    relative = ["--calibration", "relative", "--administered-gbq", "2.0", "--residual-fraction", "0", "--method", "ldm"]
    for name in ("maa", "y90"):
        assert main(["run", str(tmp_path / name), *relative, "--out", str(tmp_path / f"run_{name}"), "-q"]) == 0
    p, d = str(tmp_path / "run_maa"), str(tmp_path / "run_y90")
    own = compare_runs(p, d)
    assert own.stats["frames_of_reference"]["same"] is False
    assert any("different frames of reference" in w for w in own.warnings)
    out = tmp_path / "cmp"
    assert main(["compare", "--predicted", p, "--delivered", d, "--on-delivered-grid", "--out", str(out), "-q"]) == 0
    record = json.loads((out / "compare.json").read_text())
    registration = record["alignment"]["registration"]
    assert registration["ncc"] > 0.9 and registration["rotation_deg"] < 1.0
    assert max(abs(v) for v in registration["translation_mm"]) < 2.0
    liver = _by_name(record)["Liver"]["mean_gy"]
    assert liver["predicted"] == pytest.approx(liver["delivered"], rel=0.01)
    assert any("RTSTRUCT" in w or "structures" in w for w in record["warnings"])
    # compare.html: registered onto the delivered grid, so the difference image is drawn; each run's own
    # statistics in different frames: each dose over its own CT with its RTSTRUCT, and no difference image
    assert "difference delivered - predicted, three planes" in _images((out / "compare.html").read_text())
    from dosimetry.compare.files import write_comparison

    own_page = (write_comparison(own, tmp_path / "own") / "compare.html").read_text()
    own_images = _images(own_page)
    assert {"predicted dose over CT, three planes", "delivered dose over CT, three planes"} <= set(own_images)
    assert "difference delivered - predicted, three planes" not in own_images
    assert 'id="no-difference"' in own_page and "different frames of reference" in own_page
    assert "on black" not in own_page  # both CT series found through the runs' stats.json
    for which in ("predicted", "delivered"):  # outlined with the ROIs of each run's own RTSTRUCT
        legend = own_page[own_page.index(f'id="outline-legend-{which}"') :]
        assert 'data-outline="Liver"' in legend[: legend.index("</div>")]
    assert (
        main(
            [
                "compare",
                "--predicted",
                p,
                "--delivered",
                d,
                "--on-delivered-grid",
                "--roi",
                "liver=x.nii.gz",
                "--out",
                str(tmp_path / "z"),
                "-q",
            ]
        )
        == 7
    )


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def test_never_writes_into_or_deletes_its_input_runs(pair, tmp_path):
    """--out at, inside or above an input run is refused (exit 8) even with --overwrite; the runs are untouched."""
    p, d = Path(pair["predicted"]), Path(pair["delivered"])
    before = {run: _tree(run) for run in (p, d)}
    for out in (p, d, p / "cmp", p.parent):
        argv = ["compare", "--predicted", str(p), "--delivered", str(d), "--out", str(out), "--overwrite", "-q"]
        assert main(argv) == 8, out
    assert {run: _tree(run) for run in (p, d)} == before


# --- the dose images of compare.html ----------------------------------------------------------------------------
def _images(page: str) -> dict[str, bytes]:
    import base64
    import re

    return {
        alt: base64.b64decode(data)
        for alt, data in re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]+)"', page)
    }


def _panel_centre_rgb(png: bytes, column: int, columns: int) -> np.ndarray:
    """The centre pixel of the axial panel (first row) in ``column`` of a lesion sheet: the lesion centre."""
    from PIL import Image as PILImage
    import io

    rgb = np.asarray(PILImage.open(io.BytesIO(png)).convert("RGB"), np.float64)
    width = (rgb.shape[1] - 4 * (columns - 1)) // columns  # gap 4 px between columns
    return rgb[24 + width // 2, column * (width + 4) + width // 2]  # 24 px of column titles; square panels


def test_compare_page_draws_both_doses_and_one_pair_per_matched_lesion(pair, tmp_path):
    """Each run's own statistics: both doses over their CTs with their own ROIs (renamed lesions matched, in the
    same outline colour), one predicted/delivered pair per matched tumour; no frame recorded, so no difference
    image, and the page says why. The input runs are not written into."""
    import re

    p, d = Path(pair["predicted"]), Path(pair["delivered"])
    before = {run: _tree(run) for run in (p, d)}
    out = tmp_path / "cmp"
    matches = [x for a, b in pair["renamed"].items() if a != b for x in ("--match", f"{a}={b}")]
    assert main(["compare", "--predicted", str(p), "--delivered", str(d), *matches, "--out", str(out), "-q"]) == 0
    page = (out / "compare.html").read_text()
    images = _images(page)
    assert {"predicted dose over CT, three planes", "delivered dose over CT, three planes"} <= set(images)
    assert "difference delivered - predicted, three planes" not in images
    assert 'id="no-difference"' in page and "record no frame of reference" in page
    for which in ("predicted", "delivered"):
        for legend in ("dose-scale", "isodose-legend", "outline-legend"):
            assert f'id="{legend}-{which}"' in page
    lesions = re.findall(r'<figure class="lesion-pair" data-lesion="([^"]+)"', page)
    assert lesions == ["lesion 1", "lesion 2", "lesion 3"]
    assert sum(alt.startswith("lesion ") for alt in images) == 3
    # matched ROIs share an outline colour: the predicted tumor_T3 is drawn in the colour of lesion 3
    swatches = dict(
        re.findall(r'data-outline="([^"]+)"><span class="outline-swatch" style="border-color:(#\w+)"', page)
    )
    assert swatches["tumor_T3"] == swatches["lesion 3"] != swatches["Liver"] == swatches["liver"]
    # both columns of a lesion pair show the dose at the lesion centre (a band colour, not the CT grey)
    sheet = images["lesion lesion 3: predicted and delivered"]
    for column in (0, 1):
        r, g, b = _panel_centre_rgb(sheet, column, 2)
        assert not (r == g == b), column
    assert {run: _tree(run) for run in (p, d)} == before


def test_compare_page_difference_image_on_one_grid(pair, tmp_path):
    """Delivered ROIs on one frame (--on-delivered-grid --same-frame): the difference image is drawn; where the
    delivered dose is the predicted one (T1, same image and calibration) it is not coloured, where T3 was
    planted x 1.5 it is red (delivered > predicted)."""
    from dosimetry.compare.images import DIFFERENCE_EDGES_GY, DIFFERENCE_SCALE

    out = tmp_path / "grid"
    argv = ["compare", "--predicted", str(pair["predicted"]), "--delivered", str(pair["delivered"])]
    assert main(argv + ["--on-delivered-grid", "--same-frame", "--out", str(out), "-q"]) == 0
    page = (out / "compare.html").read_text()
    images = _images(page)
    assert "difference delivered - predicted, three planes" in images and 'id="no-difference"' not in page
    assert 'id="difference-scale"' in page and "ColorBrewer RdBu" in page
    assert DIFFERENCE_SCALE.band_index(np.array([-80.0, -4.9, 4.9, 5.0, 80.0])).tolist() == [10, 0, 0, 1, 5]
    record = json.loads((out / "compare.json").read_text())
    t3 = _by_name(record)["lesion 3"]["mean_gy"]
    assert t3["difference"] > 2 * DIFFERENCE_EDGES_GY[-1]  # the planted difference is in the darkest red band
    centre = {}
    for lesion in ("lesion 1", "lesion 3"):
        centre[lesion] = _panel_centre_rgb(images[f"lesion {lesion}: predicted and delivered"], 2, 3)
    r, g, b = centre["lesion 1"]
    assert r == g == b  # |difference| < 5 Gy: the CT grey shows
    r, g, b = centre["lesion 3"]
    assert r > b + 40 and r > g + 40, centre["lesion 3"]  # red: more delivered than predicted
    diff = read_image(out / "difference_gy.nii.gz")
    t1 = read_image(SAMPLE / "rois" / "tumor_T1.nii.gz").array > 0
    assert np.abs(diff.array[t1]).max() < DIFFERENCE_EDGES_GY[0]


def test_compare_images_of_a_run_without_ct_are_drawn_on_black(pair, tmp_path):
    from dosimetry.compare.files import write_comparison

    copies = _copied_runs(pair, tmp_path)
    stats = json.loads((copies["predicted"] / "stats.json").read_text())
    stats["inputs"]["ct"] = None
    (copies["predicted"] / "stats.json").write_text(json.dumps(stats))
    stats = json.loads((copies["plain"] / "stats.json").read_text())
    for entry in stats["inputs"]["rois"]:  # the delivered run's ROI files are gone
        entry["source"] = str(tmp_path / "gone" / "mask.nii.gz")
    (copies["plain"] / "stats.json").write_text(json.dumps(stats))
    out = write_comparison(compare_runs(copies["predicted"], copies["plain"]), tmp_path / "out")
    page = (out / "compare.html").read_text()
    caption = page[page.index('id="fig-planes-predicted"') :]
    caption = caption[caption.index("<figcaption>") : caption.index("</figcaption>")]
    assert "on black (no CT)" in caption and "records no CT" in caption
    delivered = page[page.index('id="fig-planes-delivered"') :]
    delivered = delivered[: delivered.index("</figcaption>")]
    assert "over its CT (W400/L40)" in delivered and "no ROI outlines for the delivered dose" in delivered
    assert 'id="outline-legend-delivered"><span class="legend-title">ROI outlines:</span></div>' in page
    assert page.count("could not be read (see the delivered image") == 3  # each lesion pair says why it is empty
