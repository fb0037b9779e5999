"""The reports as a reader gets them (issue 15), end to end on the sample studies: the first page of
``report.html`` (header, the three doses), the images (crop, dose bands, isodose lines, outline legend,
per-lesion panels), the PDF (page numbers, every figure), and the same layout for ``compare`` and
``accumulate``."""

import io
import json
import re
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from dosimetry.cli import main
from dosimetry.image import Image
from dosimetry.report import html_to_pdf
from dosimetry.report.overlay import CROP_MARGIN_MM, DOSE_BANDS_GY, ISODOSE_GY

sys.path.insert(0, str(Path(__file__).parent))
from helpers import roi_on, sphere_mask_supersampled  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DICOM = ROOT / "data" / "samples" / "phantom_dicom"
SAMPLE = ROOT / "data" / "samples" / "phantom"


class _Page(HTMLParser):
    """Elements by id, data-* attributes, images, figure captions and the first page's text."""

    def __init__(self):
        super().__init__()
        self.attrs, self.images, self.captions, self.text = [], [], [], []
        self.first_page_text, self.key_doses, self.header_text = [], [], []
        self._stack: list[tuple[str, dict]] = []
        self._caption = None

    def _inside(self, ident: str) -> bool:
        return any(a.get("id") == ident for _, a in self._stack)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.attrs.append((tag, a))
        if tag == "img":
            self.images.append(a.get("alt", ""))
        if tag == "figcaption":
            self._caption = []
        if tag == "tr" and "data-dose" in a and self._inside("key-doses"):
            self.key_doses.append({"label": a["data-dose"], "paths": []})
        if "data-json" in a and self.key_doses and self._inside("key-doses"):
            self.key_doses[-1]["paths"].append(a["data-json"])
        if tag not in ("img", "br", "meta", "line", "rect", "polyline", "input"):
            self._stack.append((tag, a))

    def handle_endtag(self, tag):
        if tag == "figcaption" and self._caption is not None:
            self.captions.append("".join(self._caption))
            self._caption = None
        while self._stack:
            if self._stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        self.text.append(data)
        if self._caption is not None:
            self._caption.append(data)
        if self._inside("first-page"):
            self.first_page_text.append(data)
        if self._inside("report-header"):
            self.header_text.append(data)

    def with_attr(self, name: str) -> list[str]:
        return [a[name] for _, a in self.attrs if name in a]


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _resolve(stats, path):
    from test_report import _resolve as resolve  # the report's data-json paths, resolved as test_report does

    return resolve(stats, path)


@pytest.fixture(scope="module")
def dicom_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pages") / "run"
    argv = ["run", str(SAMPLE_DICOM), "--residual-fraction", "0.03", "--lung-shunt", "0.05"]
    argv += ["--indication", "hcc", "--device", "resin", "--out", str(out), "-q"]
    assert main(argv) == 0
    return out, json.loads((out / "stats.json").read_text())


def test_first_page_has_the_header_and_the_three_doses(dicom_run):
    out, stats = dicom_run
    page = _parse(out / "report.html")
    header = " ".join(" ".join(page.header_text).split())
    assert "DELIVERED (Y-90)" in header and "PREDICTIVE" not in header
    dicom = stats["inputs"]["dicom"]
    # scan and implant date/time as recorded from the DICOM headers (minutes)
    assert dicom["activity_time"].replace("T", " ")[:16] in header
    assert dicom["implant_time"].replace("T", " ")[:16] in header
    # the study date of the emission series' header, as ISO 8601
    import pydicom

    first_pet = next(
        p
        for p in sorted(SAMPLE_DICOM.rglob("*"))
        if p.is_file() and "PT" in str(pydicom.dcmread(p, stop_before_pixels=True).get("Modality", ""))
    )
    date = str(pydicom.dcmread(first_pet, stop_before_pixels=True).StudyDate)
    assert dicom["study_date"] == f"{date[:4]}-{date[4:6]}-{date[6:]}"
    assert f"Study date {dicom['study_date']}" in header
    assert "resin" in header and "hcc" in header
    assert f"{stats['activity_check']['administered_activity_gbq']:.3f} GBq" in header
    assert f"{stats['activity_check']['image_activity_at_implant_gbq']:.3f} GBq" in header
    # the three doses, mean and D70, from the ROIs the statistics name
    rows = {r["label"]: r["paths"] for r in page.key_doses}
    tumour, normal, lung = stats["tumor_to_normal"]["tumor"], "normal_liver", stats["lung"]["roi"]
    assert rows["Tumour"] == [f"rois/@{tumour}/mean_gy", f"rois/@{tumour}/D70"]
    assert rows["Normal liver"] == [f"rois/@{normal}/mean_gy", f"rois/@{normal}/D70"]
    assert rows["Lung"] == [f"rois/@{lung}/mean_gy", f"rois/@{lung}/D70"]
    first = " ".join(" ".join(page.first_page_text).split())
    for entry, _ in ((tumour, "Tumour"), (normal, "Normal liver"), (lung, "Lung")):
        e = next(x for x in stats["rois"] if x["name"] == entry)
        assert f"{e['mean_gy']:.1f}" in first and f"{e['D70']:.1f}" in first
    assert f"{stats['tumor_to_normal']['dose_ratio']:.2f}" in first
    assert f"{stats['tumor_burden']['burden_percent']:.1f}" in first
    # flags of the indication and device, and every warning, on the first page
    assert "indication hcc, device resin" in first
    raised = [r for r in stats["flags"]["results"] if r["flag"]]
    assert raised and all(r["meaning"] in first for r in raised)
    assert stats["warnings"] and all(w in first for w in stats["warnings"])


def test_images_have_isodose_lines_legend_and_one_panel_per_lesion(dicom_run):
    out, stats = dicom_run
    page = _parse(out / "report.html")
    # HCC + resin: the EANM 2022 Table 3 levels of the flags (normal liver 30 and 40 Gy, tumour 100 and 120 Gy)
    assert [float(x) for x in page.with_attr("data-isodose")] == [30.0, 40.0, 100.0, 120.0]
    assert "eanm2022-resin" in " ".join(page.captions)
    given = [e["name"] for e in stats["rois"] if "derived" not in e]
    outlined = page.with_attr("data-outline")
    assert outlined and set(outlined) <= set(given)
    largest = max(
        (e for e in stats["rois"] if e["role"] == "tumor" and "derived" not in e), key=lambda e: e["volume_ml"]
    )
    assert largest["name"] in outlined  # the planes cross at its centre
    lesions = [e["name"] for e in stats["rois"] if e["role"] == "tumor" and "derived" not in e]
    assert page.with_attr("data-lesion") == lesions
    assert sum(alt.startswith("lesion ") for alt in page.images) == len(lesions)
    # DVHs: the overview and one per lesion, isodose levels marked
    dvh_curves = page.with_attr("data-roi")
    assert set(lesions) <= set(dvh_curves)
    assert {float(x) for x in page.with_attr("data-gy")} <= {30.0, 40.0, 100.0, 120.0}
    # the colour bar lists the bands
    assert "dose-scale" in page.with_attr("id")


def _synthetic(dose_gy_inside: float):
    """A 50 Gy-like uniform 'liver' sphere (radius 40 mm) in a larger empty grid, CT 40 HU everywhere."""
    from dosimetry.pipeline import DosimetryOptions
    from dosimetry import run_dosimetry

    grid = Image(np.zeros((60, 60, 50), np.float32), (-120.0, -120.0, -100.0), (4.0, 4.0, 4.0))
    liver = sphere_mask_supersampled(grid, (10.0, -6.0, 4.0), 40.0)
    activity = grid.with_array((liver > 0.999) * 1.0e6)
    ct = grid.with_array(np.full(grid.shape, 40.0, np.float32))
    result = run_dosimetry(
        activity,
        [roi_on(grid, liver, "liver", "liver")],
        ct=ct,
        options=DosimetryOptions(activity_units="Bq/mL", scan_delay_h=0.0, method="ldm"),
    )
    return result, liver


def test_crop_box_is_the_roi_box_plus_the_margin():
    from dosimetry.report.overlay import crop_box_lps

    result, _ = _synthetic(50.0)
    lo, hi, what = crop_box_lps(result)
    assert what == "liver, lung and tumour ROIs"
    centre, radius = np.array([10.0, -6.0, 4.0]), 40.0
    # the ROI's voxel box (4 mm voxels) holds the sphere: within one voxel of centre +- radius, plus the margin
    assert np.all(np.abs(lo - (centre - radius - CROP_MARGIN_MM)) <= 4.0)
    assert np.all(np.abs(hi - (centre + radius + CROP_MARGIN_MM)) <= 4.0)
    full = result.dose_gy.corners_world()
    assert np.all(hi - lo < full.max(axis=0) - full.min(axis=0))  # smaller than the field of view


def test_normal_liver_dose_gets_its_band_colour_over_the_ct():
    """Inside a uniform region the pixel is 0.4 x CT grey + 0.6 x the band colour of its dose."""
    from PIL import Image as PILImage

    from dosimetry.report.overlay import _BAND_RGB, CT_WINDOW_HU, outline_colours, planes_png

    result, liver = _synthetic(50.0)
    inside = result.dose_gy.array[liver > 0.999]
    dose = float(np.median(inside))
    assert np.ptp(inside[inside > 0.99 * dose]) < 1e-3 * dose  # LDM: uniform inside
    centre = np.array([10.0, -6.0, 4.0])
    planes = planes_png(result, centre, "test", colours=outline_colours(result.stats))
    rgb = np.asarray(PILImage.open(io.BytesIO(planes.png)).convert("RGB"), np.float64)
    band = int(np.digitize(dose, DOSE_BANDS_GY)) - 1
    assert band >= 0
    colour = np.array([int(_BAND_RGB[band][i : i + 2], 16) for i in (1, 3, 5)], np.float64)
    grey = 255.0 * (40.0 - CT_WINDOW_HU[0]) / (CT_WINDOW_HU[1] - CT_WINDOW_HU[0])
    expected = 0.4 * grey + 0.6 * colour
    # the axial panel is the first; its centre is the sphere's centre (the crop is symmetric about it)
    axial_width = (rgb.shape[1] - 12) // 3
    pixel = rgb[rgb.shape[0] // 2, axial_width // 2]
    assert np.all(np.abs(pixel - expected) <= 1.5), (pixel, expected, dose)


def test_isodose_levels_are_options(dicom_run, tmp_path):
    from dosimetry.report.first_page import key_doses_html
    from dosimetry.report.html import render_report_html
    from dosimetry.report.layout import Section

    result, _ = _synthetic(50.0)
    text = render_report_html(
        result, isodose_gy=(30.0, 60.0), extra_sections=[Section("course", "Treatment course", "<p>hook</p>")]
    )
    path = tmp_path / "r.html"
    path.write_text(text)
    page = _parse(path)
    assert page.with_attr("data-isodose") == ["30", "60"]
    # without an indication: the EANM 2022 defaults
    default = tmp_path / "default.html"
    default.write_text(render_report_html(result))
    assert [float(x) for x in _parse(default).with_attr("data-isodose")] == list(ISODOSE_GY)
    assert '<section id="course"><h2>Treatment course</h2><p>hook</p></section>' in text
    assert "No tumour ROI" in text and key_doses_html(result.stats).count("no ROI") == 2  # no tumour, no lung


def test_isodose_levels_from_the_command_line(tmp_path, capsys):
    """``dosimetry run --isodose-gy`` reaches the report's images and legend; a bad list is one line, exit 7."""
    out = tmp_path / "run"
    argv = ["run", str(SAMPLE_DICOM), "--residual-fraction", "0.03", "--lung-shunt", "0.05", "-q"]
    assert main([*argv, "--isodose-gy", "150,25", "--out", str(out)]) == 0
    assert _parse(out / "report.html").with_attr("data-isodose") == ["25", "150"]
    capsys.readouterr()
    assert main([*argv, "--isodose-gy", "40,-3", "--out", str(tmp_path / "bad")]) == 7
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--isodose-gy '40,-3'" in err and not (tmp_path / "bad").exists()


def test_pdf_has_page_numbers_and_every_figure(dicom_run, tmp_path):
    from pypdf import PdfReader

    chromium = shutil.which("chromium")
    assert chromium, "headless Chromium is needed for this test: apt-get install chromium (scripts/test.sh installs it)"
    out, stats = dicom_run
    pdf = html_to_pdf(out / "report.html", tmp_path / "report.pdf", chromium=chromium)
    reader = PdfReader(pdf)
    n = len(reader.pages)
    assert 4 <= n <= 14, n
    texts = [" ".join(p.extract_text().split()) for p in reader.pages]
    for k, text in enumerate(texts, start=1):
        assert f"page {k} of {n}" in text, (k, text[-200:])
    # the first page alone holds the header, the three doses and the overview image
    assert "DELIVERED (Y-90)" in texts[0] and "Normal liver" in texts[0] and "Lung" in texts[0]
    assert "Absorbed dose in colour bands" in texts[0]
    everything = " ".join(texts)
    lesions = [e["name"] for e in stats["rois"] if e["role"] == "tumor" and "derived" not in e]
    for name in lesions:
        assert f"{name}: axial, coronal and sagittal slices" in everything
    assert "Cumulative DVH" in everything
    images = sum(len(page.images) for page in reader.pages)
    assert images >= 1 + len(lesions)


def test_compare_page_has_the_shared_first_page(tmp_path):
    runs = {}
    common = ["--activity", str(SAMPLE / "activity_bqml.nii.gz"), "--activity-units", "Bq/mL"]
    common += ["--ct", str(SAMPLE / "ct_hu.nii.gz"), "--segmentation", str(SAMPLE / "rois.seg.nrrd"), "--method", "ldm"]
    for kind, extra in (
        ("predicted", ["--emission-nuclide", "Tc-99m", "--calibration", "relative", "--administered-gbq", "2"]),
        ("delivered", ["--emission-nuclide", "Y-90", "--scan-delay-h", "20"]),
    ):
        runs[kind] = tmp_path / kind
        assert main(["run", *common, *extra, "--out", str(runs[kind]), "-q"]) == 0
    # the predicted run's own report says so, prominently
    predicted_header = " ".join(" ".join(_parse(runs["predicted"] / "report.html").header_text).split())
    assert "PREDICTIVE (Tc-99m MAA)" in predicted_header and "DELIVERED" not in predicted_header
    out = tmp_path / "cmp"
    assert (
        main(
            [
                "compare",
                "--predicted",
                str(runs["predicted"]),
                "--delivered",
                str(runs["delivered"]),
                "--out",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    page = _parse(out / "compare.html")
    header = " ".join(" ".join(page.header_text).split())
    assert "PREDICTIVE (Tc-99m MAA) vs DELIVERED (Y-90)" in header
    assert "Predicted: administered activity" in header  # from the predicted run's own stats.json
    first = " ".join(" ".join(page.first_page_text).split())
    record = json.loads((out / "compare.json").read_text())
    tumour = next(e for e in record["rois"] if e["delivered_roi"] == "tumors_all")
    assert [r["label"] for r in page.key_doses] == ["Tumour", "Normal liver", "Lung"]
    assert f"{tumour['mean_gy']['predicted']:.1f}" in first and f"{tumour['mean_gy']['delivered']:.1f}" in first
    pngs = sorted(p.name for p in out.glob("*.png"))
    figure_captions = [c for c in page.captions if c.endswith(".png")]
    assert sorted(figure_captions) == pngs  # every agreement figure, captioned with its file
    # the dose images: predicted and delivered planes, one pair per matched tumour ROI (no difference image:
    # runs from files record no frame of reference, which the page says)
    image_captions = [c for c in page.captions if not c.endswith(".png")]
    lesions = [e["delivered_roi"] for e in record["rois"] if e["role"] == "tumor" and not e["derived"]]
    assert page.with_attr("data-lesion") == lesions and len(lesions) == 3
    assert len(image_captions) == 2 + len(lesions)
    assert {"predicted dose over CT, three planes", "delivered dose over CT, three planes"} <= set(page.images)
    assert "no-difference" in page.with_attr("id")
    chromium = shutil.which("chromium")
    assert chromium
    from pypdf import PdfReader

    reader = PdfReader(html_to_pdf(out / "compare.html", tmp_path / "compare.pdf", chromium=chromium))
    n = len(reader.pages)
    texts = [" ".join(p.extract_text().split()) for p in reader.pages]
    assert all(f"page {k} of {n}" in text for k, text in enumerate(texts, 1))
    everything = " ".join(texts)
    for caption in page.captions:  # every figure caption is printed (its first words)
        assert " ".join(caption.split()[:6]) in everything, caption
    assert sum(len(p.images) for p in reader.pages) == len(pngs) + 2 + len(lesions)


def test_accumulate_report_of_a_run_with_itself_doubles_the_doses(dicom_run, tmp_path):
    out, stats = dicom_run
    acc = tmp_path / "acc"
    argv = ["accumulate", "--current", str(out), "--previous", str(out / "dose.nii.gz"), "--out", str(acc), "-q"]
    assert main(argv) == 0
    record = json.loads((acc / "accumulate.json").read_text())
    page = _parse(acc / "accumulate.html")
    header = " ".join(" ".join(page.header_text).split())
    assert "CUMULATIVE (2 treatments)" in header
    assert stats["inputs"]["dicom"]["implant_time"].replace("T", " ")[:16] in header  # the current run's header
    labels = [r["label"] for r in page.key_doses]
    # accumulate builds no tumour union: one row per tumour ROI, then normal liver and lung
    tumours = [e["name"] for e in record["rois"] if e["role"] == "tumor"]
    assert labels == ["Tumour"] * len(tumours) + ["Normal liver", "Lung"]
    for row in page.key_doses:
        current, cumulative, _ = (_resolve(record, p) for p in row["paths"])
        assert cumulative == pytest.approx(2 * current, rel=1e-5), row  # the same dose on the same grid, twice
        run_name = re.search(r"rois/@([^/]+)/", row["paths"][0]).group(1)
        run_entry = next(e for e in stats["rois"] if e["name"] == run_name)
        assert current == pytest.approx(run_entry["mean_gy"], rel=1e-4)
    assert "cumulative dose over CT, three planes" in page.images
