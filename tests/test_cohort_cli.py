"""``dosimetry cohort``: the command writes the tables, JSON, figures and page; bad input is one line; the
notebook-style example in docs/ runs (issue 14)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cohort_helpers import synthetic_cohort, write_csv

from dosimetry.cli import main
from dosimetry.cli.cohort import BOOTSTRAP_UNITS, CRITERIA_CHOICES
from dosimetry.cohort import OUTPUT_FILES, analyse_cohort
from dosimetry.cohort.criteria import CRITERIA
from dosimetry.cohort.dose_response import BOOTSTRAP_UNITS as API_UNITS
from dosimetry.export.output_guard import MARKER_NAME

ROOT = Path(__file__).resolve().parents[1]


def test_choices_of_the_parser_are_the_apis():
    assert CRITERIA_CHOICES == tuple(CRITERIA) and BOOTSTRAP_UNITS == API_UNITS


def test_cohort_command_writes_every_file_and_the_numbers_of_the_api(tmp_path, capsys):
    cohort, responses, _ = synthetic_cohort(tmp_path / "in", n_patients=20, flip=0.1, seed=2)
    out = tmp_path / "out"
    argv = [str(cohort), "--responses", str(responses), "--criteria", "recist11", "--out", str(out)]
    assert main(["cohort", *argv, "--bootstrap", "100", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "RECIST 1.1:" in printed and "Youden threshold" in printed and f"results: {out.resolve()}" in printed
    names = {p.name for p in out.iterdir()}
    assert set(OUTPUT_FILES) | {MARKER_NAME} <= names
    for metric in ("mean_gy", "D70", "bed_of_mean_gy"):
        for figure in ("roc", "groups", "logistic"):
            assert (out / f"{figure}_{metric}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    record = json.loads((out / "dose_response.json").read_text())
    api = analyse_cohort(cohort, responses, n_bootstrap=100, seed=3)
    mean = record["dose_response"]["mean_gy"]
    assert mean["roc"]["auc"] == pytest.approx(api.metrics["mean_gy"].auc)
    assert mean["youden"]["threshold_gy"] == pytest.approx(api.metrics["mean_gy"].threshold_gy)
    assert mean["roc"]["auc_ci95"] == pytest.approx(list(api.metrics["mean_gy"].auc_ci95))
    assert record["criterion"]["reference"].startswith("Eisenhauer")
    with (out / "lesions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == api.metrics["mean_gy"].n_lesions
    assert {r["category"] for r in rows} <= {"CR", "PR", "SD", "PD"} and all(r["rule"] for r in rows)
    html = (out / "cohort_analysis.html").read_text()
    assert html.count("data:image/png;base64,") == 9 and "Youden threshold" in html
    # no leftovers of the temporary folder
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_bad_input_is_one_line_without_traceback_and_nothing_is_written(tmp_path):
    cohort, _, _ = synthetic_cohort(tmp_path, n_patients=3, seed=1)
    responses = write_csv(
        tmp_path / "bad.csv",
        [
            {"case_id": "P001", "roi": "lesion1", "timepoint": "baseline", "longest_diameter_mm": "-4"},
            {"case_id": "P999", "roi": "lesion1", "timepoint": "baseline", "longest_diameter_mm": "30"},
        ],
    )
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dosimetry",
            "cohort",
            str(cohort),
            "--responses",
            str(responses),
            "--criteria",
            "recist11",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 3 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert (
        "P001/lesion1 longest_diameter_mm is negative" in lines[0] and "P999/lesion1 has no follow-up row" in lines[0]
    )
    assert "Traceback" not in proc.stderr and not out.exists()


def test_out_inside_an_input_and_bad_options_are_refused(tmp_path):
    cohort, responses, _ = synthetic_cohort(tmp_path / "in", n_patients=3, seed=1)
    base = ["cohort", str(cohort), "--responses", str(responses), "--criteria", "who"]
    assert main([*base, "--out", str(cohort)]) == 8  # --out is an input
    assert main([*base, "--out", str(tmp_path / "o"), "--bootstrap", "20"]) == 7
    assert main([*base, "--out", str(tmp_path / "o"), "--seed", "-1"]) == 7
    assert (
        main(["cohort", str(cohort), "--responses", str(responses), "--criteria", "choi", "--out", "x"]) == 7
    )  # a bad value
    assert not (tmp_path / "o").exists()


def test_the_notebook_style_example_runs(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "cohort_example.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Youden threshold" in proc.stdout and "planted: 120 Gy" in proc.stdout
    threshold = float(proc.stdout.split("Youden threshold ")[1].split(" Gy")[0])
    assert abs(threshold - 120.0) < 15.0
    assert (tmp_path / "analysis" / "cohort_analysis.html").is_file()


def test_never_writes_into_or_deletes_its_inputs(tmp_path):
    """--out at or above COHORT.csv / RESPONSES.csv is refused (exit 8) even with --overwrite; inputs untouched."""
    cohort, responses, _ = synthetic_cohort(tmp_path / "in", n_patients=3, seed=1)
    folder = cohort.parent
    before = {f.name: f.read_bytes() for f in sorted(folder.iterdir())}
    base = ["cohort", str(cohort), "--responses", str(responses), "--criteria", "recist11"]
    for out in (cohort, responses, folder, tmp_path):
        assert main([*base, "--out", str(out), "--overwrite", "-q"]) == 8, out
    assert {f.name: f.read_bytes() for f in sorted(folder.iterdir())} == before
