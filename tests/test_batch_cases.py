"""dosimetry batch without computing doses: case discovery and ids, the cases CSV and its faults, option
checks, OUT/ROOT nesting, and a case killed at its timeout."""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import pytest

from batch_studies import SAMPLE, copy_study, make_root, study_uid
from dosimetry.batch import run_batch
from dosimetry.batch.cases import discover_cases, read_cases_csv, sanitise
from dosimetry.cli import main
from dosimetry.errors import InputFileError, OptionsError

NIFTI = SAMPLE.parent / "phantom"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("batch_cases") / "root"
    make_root(base)
    return base


def write_csv(path: Path, rows: list[dict], columns=None) -> Path:
    columns = columns or list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_sanitise():
    assert sanitise("site 2/beta") == "site_2__beta"
    assert sanitise("a/b/c") == "a__b__c"
    assert sanitise("Müller, J/CT#1") == "M_ller__J__CT_1"
    assert sanitise(".hidden/x") == "_hidden__x"


def test_discovery_one_case_per_study_with_ids(root):
    cases = discover_cases(root, [])
    ids = [c.case_id for c in cases]
    pair = [study_uid(root / "pair" / "CT" / name) for name in ("a_CT0001.dcm", "b_CT0001.dcm")]
    hashed = sorted(f"pair-{hashlib.sha256(uid.encode()).hexdigest()[:8]}" for uid in pair)
    assert ids == sorted(["alpha", "broken", "site_2__beta", *hashed])
    by_id = {c.case_id: c for c in cases}
    # one folder, two studies: each case sees only its own study (its emission series chosen)
    assert by_id[hashed[0]].run_argv[1] == "--series" and by_id[hashed[0]].run_argv[2] != by_id[hashed[1]].run_argv[2]
    assert by_id["alpha"].run_argv == [str((root / "alpha").resolve())]
    assert len(by_id["alpha"].input_files) == 74 + 56 + 1
    assert len(by_id["broken"].input_files) == 74 + 55 + 1


def test_discovery_root_without_dicom_is_refused(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "x.txt").write_text("x")
    assert main(["batch", str(tmp_path / "root"), "--out", str(tmp_path / "out")]) == InputFileError.exit_code
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("out", ["root/inside", "root", "."])
def test_out_and_root_nesting_refused(tmp_path, capsys, out):
    root = copy_study(tmp_path / "root" / "s1", "nest").parent
    code = main(["batch", str(root), "--out", str(tmp_path / out), "-q"])
    assert code == 8
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --out") and "\n" not in err
    assert not (tmp_path / "root" / "inside").exists() and not (tmp_path / "ledger.sqlite").exists()


def test_csv_good_rows_and_overrides(tmp_path, root):
    csv_path = write_csv(
        tmp_path / "cases.csv",
        [
            {
                "case_id": "p1",
                "study": os.path.relpath(root / "alpha", tmp_path),
                "residual_fraction": "0.1",
                "series": "",
                "allow_roi_outside": "yes",
            },
            {
                "case_id": "n1",
                "activity": os.path.relpath(NIFTI / "activity_bqml.nii.gz", tmp_path),
                "ct": os.path.relpath(NIFTI / "ct_hu.nii.gz", tmp_path),
                "segmentation": os.path.relpath(NIFTI / "rois.seg.nrrd", tmp_path),
                "residual_fraction": "",
                "allow_roi_outside": "false",
            },
        ],
    )
    cases = read_cases_csv(
        csv_path, [("residual_fraction", ["--residual-fraction", "0.03"]), ("method", ["--method", "kernel"])]
    )
    p1, n1 = cases
    assert p1.run_argv == [
        str((root / "alpha").resolve()),
        "--method",
        "kernel",
        "--residual-fraction",
        "0.1",
        "--allow-roi-outside",
    ]
    assert n1.run_argv[:2] == ["--activity", str((NIFTI / "activity_bqml.nii.gz").resolve())]
    assert n1.run_argv[-4:] == ["--residual-fraction", "0.03", "--method", "kernel"]
    assert {label.split(":")[0] for label, _ in n1.input_files} == {"activity", "ct", "segmentation"}


def test_csv_every_faulty_row_listed_before_any_work(tmp_path, root, capsys):
    study = os.path.relpath(root / "alpha", tmp_path)
    csv_path = write_csv(
        tmp_path / "cases.csv",
        [
            {"case_id": "ok1", "study": study},
            {"case_id": "ok1", "study": study},  # duplicate id
            {"case_id": "", "study": study},  # empty id
            {"case_id": "bad/id", "study": study},  # invalid id
            {"case_id": "both", "study": study, "activity": study},  # study and activity
            {"case_id": "none"},  # neither
            {"case_id": "range", "study": study, "residual_fraction": "1.5"},  # refused by run's ranges
            {"case_id": "choice", "study": study, "method": "monte-carlo"},  # not a method
            {"case_id": "lost", "study": "no/such/folder"},  # missing folder
            {
                "case_id": "roi",
                "activity": os.path.relpath(NIFTI / "activity_bqml.nii.gz", tmp_path),
                "roi": "liver=missing.nii.gz",
            },  # missing mask
        ],
        columns=["case_id", "study", "activity", "roi", "residual_fraction", "method"],
    )
    out = tmp_path / "out"
    assert main(["batch", str(root), "--out", str(out), "--cases", str(csv_path)]) == OptionsError.exit_code
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: --cases")
    for text in (
        "row 3 (ok1): duplicate case_id (also row 2)",
        "row 4: empty case_id",
        "row 5 (bad/id)",
        "row 6 (both): give either",
        "row 7 (none): give either",
        "row 8 (range): --residual-fraction",
        "row 9 (choice): --method",
        "row 10 (lost): study 'no/such/folder' not found",
        "row 11 (roi): roi liver 'missing.nii.gz' not found",
    ):
        assert text in err, text
    assert not out.exists()


def test_csv_missing_files_only_exit_3_and_unknown_column_exit_7(tmp_path, root, capsys):
    missing = write_csv(
        tmp_path / "missing.csv", [{"case_id": "a", "study": "nowhere"}, {"case_id": "b", "study": "nowhere2"}]
    )
    assert main(["batch", str(root), "--out", str(tmp_path / "o1"), "--cases", str(missing)]) == 3
    err = capsys.readouterr().err
    assert "row 2 (a)" in err and "row 3 (b)" in err
    unknown = write_csv(tmp_path / "unknown.csv", [{"case_id": "a", "study": "x", "dose_boost": "2", "Name": "y"}])
    assert main(["batch", str(root), "--out", str(tmp_path / "o2"), "--cases", str(unknown)]) == 7
    err = capsys.readouterr().err
    assert "unknown column(s) 'dose_boost', 'Name'" in err
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


@pytest.mark.parametrize(
    "argv, code, text",
    [
        (["--residual-fraction", "1.5"], 7, "--residual-fraction"),
        (["--method", "nonsense"], 7, "--method"),
        (["--no-such-option", "1"], 2, "unknown option '--no-such-option'"),
        (["--roi", "liver=x.nii.gz"], 7, "--roi names an input file"),
        (["--workers", "0"], 7, "--workers"),
        (["--case-timeout-s", "-1"], 7, "--case-timeout-s"),
        (["--overwrite"], 7, "--overwrite is not a batch option"),
    ],
)
def test_bad_options_refused_before_any_work(tmp_path, root, capsys, argv, code, text):
    out = tmp_path / "out"
    assert main(["batch", str(root), "--out", str(out), *argv]) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and text in err and "\n" not in err
    assert not out.exists()


def test_missing_out_is_a_usage_error(root, capsys):
    assert main(["batch", str(root)]) == 2
    assert "--out" in capsys.readouterr().err


def test_case_killed_at_its_timeout_is_failed_and_leaves_nothing(tmp_path, root):
    csv_path = write_csv(
        tmp_path / "cases.csv", [{"case_id": "slow", "study": os.path.relpath(root / "alpha", tmp_path)}]
    )
    out = tmp_path / "out"
    result = run_batch(root, out, cases=csv_path, case_timeout_s=0.05)
    assert result.exit_code == 11
    (row,) = result.summary
    assert row["status"] == "failed" and row["exit_code"] == -9 and "timed out after 0.05 s" in row["error"]
    assert sorted(p.name for p in out.iterdir()) == [
        ".batch-lock",
        "batch.json",
        "cohort.csv",
        "ledger.sqlite",
        "summary.csv",
    ]
    assert result.cohort == []


def test_a_second_batch_on_the_same_out_is_refused(tmp_path, root, capsys):
    import fcntl

    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".batch-lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running batch holds it
        assert main(["batch", str(root), "--out", str(out), "-q"]) == 8
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: another batch is writing") and "\n" not in err
    assert sorted(p.name for p in out.iterdir()) == [".batch-lock"]


def test_csv_roi_column_gives_run_roi_options_with_absolute_paths(tmp_path):
    rois = NIFTI / "rois"
    masks = sorted(rois.glob("*.nii.gz"))[:2]
    cell = ";".join(f"{'liver' if n == 0 else 'tumor:T1'}={os.path.relpath(m, tmp_path)}" for n, m in enumerate(masks))
    csv_path = write_csv(
        tmp_path / "cases.csv",
        [
            {"case_id": "r1", "activity": os.path.relpath(NIFTI / "activity_bqml.nii.gz", tmp_path), "roi": cell},
            {
                "case_id": "r2",
                "activity": os.path.relpath(NIFTI / "activity_bqml.nii.gz", tmp_path),
                "roi": "blob=x.nii.gz",
            },
        ],
    )
    with pytest.raises(OptionsError) as info:
        read_cases_csv(csv_path, [])
    assert "row 3 (r2): roi 'blob=x.nii.gz'" in str(info.value) and "row 2" not in str(info.value)
    rows = list(csv.DictReader(csv_path.open()))
    write_csv(csv_path, rows[:1])
    (case,) = read_cases_csv(csv_path, [])
    expected = ["--roi", f"liver={masks[0].resolve()}"]
    if len(masks) > 1:
        expected += ["--roi", f"tumor:T1={masks[1].resolve()}"]
    assert case.run_argv[2:] == expected
