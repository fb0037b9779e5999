"""The HTML report of the sample study: every ROI, every number equal to stats.json, self-contained, and a
headless-Chromium screenshot that shows the images."""

import base64
import json
import re
import shutil
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from dosimetry import read_slicer_segmentation, run_dosimetry
from dosimetry.stats.clinical import ClinicalOptions
from dosimetry.export.results import write_results
from dosimetry.pipeline import DosimetryOptions
from dosimetry.report import html_to_pdf, html_to_png

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "phantom"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    rois, warnings = read_slicer_segmentation(SAMPLE / "rois.seg.nrrd")
    options = DosimetryOptions(
        activity_units="Bq/mL",
        scan_delay_h=20,
        administered_activity_gbq=2.0,
        residual_fraction=0.03,
        lung_shunt_fraction=0.05,
        clinical=ClinicalOptions(
            eud_alpha_per_gy=0.005, height_cm=172.0, weight_kg=70.0, indication="hcc", device="resin"
        ),
    )
    result = run_dosimetry(
        SAMPLE / "activity_bqml.nii.gz",
        rois,
        ct=SAMPLE / "ct_hu.nii.gz",
        options=options,
        extra_warnings=[*warnings, "a loader warning <with> markup & an ampersand"],
    )
    out = write_results(result, tmp_path_factory.mktemp("report") / "out")
    return out, json.loads((out / "stats.json").read_text())


class _Cells(HTMLParser):
    """Collects every element with a data-json attribute (its path and text), the ROI rows and the images."""

    def __init__(self):
        super().__init__()
        self.cells, self.roi_rows, self.images, self.scripts, self.text = [], [], [], 0, []
        self._open = None
        self._table = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table.append(a.get("id"))
        if tag == "tr" and "data-roi" in a and self._table and self._table[-1] == "roi-table":
            self.roi_rows.append({"name": a["data-roi"], "cells": {}})
        if "data-json" in a:
            self._open = [a["data-json"], "", tag]
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag):
        if tag == "table" and self._table:
            self._table.pop()
        if self._open and tag == self._open[2]:
            path, text, _ = self._open
            self.cells.append((path, text.strip()))
            if self._table and self._table[-1] == "roi-table" and self.roi_rows:
                self.roi_rows[-1]["cells"][path.rsplit("/", 1)[1]] = text.strip()
            self._open = None

    def handle_data(self, data):
        self.text.append(data)
        if self._open:
            self._open[1] += data


def _resolve(stats, path):
    value = stats
    for part in map(unquote, path.split("/")):
        if part.startswith("@"):
            value = next(e for e in value if e["name"] == part[1:])
        elif isinstance(value, list):
            value = value[int(part)]
        else:
            value = value[part]
    return value


def _matches(printed: str, value) -> bool:
    """True when ``printed`` is ``value`` rounded at the printed precision (half a unit of the last digit)."""
    if printed == "\u2014":
        return value is None
    if value is None:
        return False
    number = Decimal(printed)
    half_unit = Decimal(5) * Decimal(10) ** (number.as_tuple().exponent - 1)
    return abs(Decimal(repr(float(value))) - number) <= half_unit * (1 + Decimal("1e-9"))


@pytest.fixture(scope="module")
def parsed(written):
    out, stats = written
    parser = _Cells()
    parser.feed((out / "report.html").read_text(encoding="utf-8"))
    return parser, stats


def test_report_has_every_roi_and_its_numbers_equal_stats_json(parsed):
    parser, stats = parsed
    names = [e["name"] for e in stats["rois"]]
    assert [r["name"] for r in parser.roi_rows] == names
    text = " ".join(parser.text)
    for name in names:
        assert name in text
    per_roi_keys = {"volume_ml", "mass_g", "activity_mbq", "mean_gy", "std_gy", "min_gy", "median_gy", "max_gy"}
    for row in parser.roi_rows:
        assert set(row["cells"]) == per_roi_keys
        entry = next(e for e in stats["rois"] if e["name"] == row["name"])
        for key, printed in row["cells"].items():
            assert re.fullmatch(r"-?\d+\.\d", printed), (row["name"], key, printed)  # printed to 0.1
            assert _matches(printed, entry[key]), (row["name"], key, printed, entry[key])


def test_every_number_in_the_report_is_traceable_to_stats_json(parsed):
    parser, stats = parsed
    assert len(parser.cells) > 150
    sections = {path.split("/")[0] for path, _ in parser.cells}
    assert {"rois", "tumor_to_normal", "lung", "radiobiology", "planning", "flags", "inputs", "constants"} <= sections
    for path, printed in parser.cells:
        assert _matches(printed, _resolve(stats, path)), (path, printed, _resolve(stats, path))


def test_report_is_self_contained_and_shows_every_warning(parsed, written):
    parser, stats = parsed
    html = (written[0] / "report.html").read_text(encoding="utf-8")
    assert parser.scripts == 0
    assert not re.search(r"""(src|href)=["'](https?:|//|file:)""", html)
    lesions = [e for e in stats["rois"] if e["role"] == "tumor" and "derived" not in e]
    assert len(parser.images) == 1 + len(lesions)  # the three planes, then one slice per lesion (DVHs are SVG)
    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    text = " ".join(parser.text)
    assert stats["warnings"]
    for warning in stats["warnings"]:
        assert warning in text
    for section in ("Radiobiology", "Planning models", "Threshold flags", "Inputs", "Constants used", "Per lesion"):
        assert section in text


def test_screenshot_in_headless_chromium_shows_the_images(written, tmp_path):
    from matplotlib.image import imread

    chromium = shutil.which("chromium")
    assert chromium, "headless Chromium is needed for this test: apt-get install chromium (.ci/run installs it)"
    png = html_to_png(written[0] / "report.html", tmp_path / "report.png", width_px=1400, chromium=chromium)
    rgb = imread(png)[..., :3].astype(np.float64)
    height, width = rgb.shape[:2]
    assert width == 1400 and height > 3000  # the full page, not one screen
    assert rgb.mean(axis=2).std() > 0.1  # not blank
    # the dose images: bright, saturated pixels of many hues (the colour wash), near the top of the page
    top = rgb[: height // 3]
    high, low = top.max(axis=2), top.min(axis=2)
    coloured = (high > 0.5) & ((high - low) / np.maximum(high, 1e-6) > 0.4)
    assert coloured.mean() > 0.02, f"only {coloured.mean():.2%} of the top third is coloured"
    hue = np.floor(_hue(top[coloured]) * 6).astype(int) % 6
    counts = np.bincount(hue, minlength=6) / coloured.sum()
    assert (counts > 0.02).sum() >= 3, f"colour wash has too few hues: {counts.round(3)}"
    # the same HTML prints to PDF
    pdf = html_to_pdf(written[0] / "report.html", tmp_path / "report.pdf", chromium=chromium)
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 50_000


def _hue(rgb):
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    mx, mn = rgb.max(axis=1), rgb.min(axis=1)
    d = np.maximum(mx - mn, 1e-9)
    h = np.where(mx == r, ((g - b) / d) % 6, np.where(mx == g, (b - r) / d + 2, (r - g) / d + 4))
    return h / 6.0


def test_report_of_a_minimal_study_without_ct_tumour_or_lung(tmp_path):
    """One liver ROI, no CT, no administered activity: the report still renders and says what is missing."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from helpers import roi_on, sphere_mask_supersampled

    from dosimetry.image import Image
    from dosimetry.report import write_report

    grid = Image(np.zeros((20, 18, 16), np.float32), (-40.0, -36.0, -30.0), (4.0, 4.0, 4.0))
    liver = sphere_mask_supersampled(grid, (0.0, 0.0, 0.0), 25.0)
    activity = grid.with_array(liver * 1.0e6)
    result = run_dosimetry(
        activity,
        [roi_on(grid, liver, "Liver 50%/whole", "liver")],
        options=DosimetryOptions(activity_units="Bq/mL", scan_delay_h=0.0),
    )
    path = write_report(result, tmp_path / "report.html")
    parser = _Cells()
    parser.feed(path.read_text(encoding="utf-8"))
    text = " ".join(parser.text)
    assert "Liver 50%/whole" in text and "No tumour ROI" in text and "not computable" in text
    for path_, printed in parser.cells:
        assert _matches(printed, _resolve(result.stats, path_)), (path_, printed)
