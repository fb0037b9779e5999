"""dosimetry batch end to end on real files: sample studies copied with new UIDs, broken cases among them.

One batch of the cohort is computed once (module fixture); the tests of resumption work on copies of its
OUT, so that each recomputes only what it changes. Dask runs on a real ``distributed.LocalCluster`` with
worker processes on the loopback address. No test asserts a duration.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from batch_studies import SAMPLE, copy_study, make_root
from dosimetry.batch import run_batch
from dosimetry.cli import main

RUN_OPTIONS = ["--residual-fraction", "0.03", "--lung-shunt", "0.05"]
GOOD = ["alpha", "site_2__beta"]
DICOM_RUN_FILES = {
    ".y90-dosimetry-output.json",
    "dose.nii.gz",
    "stats.json",
    "stats.csv",
    "dvh.csv",
    "report.html",
    "rtdose.dcm",
    "sr.dcm",
}
TABLES = {"summary.csv", "cohort.csv", "batch.json", "ledger.sqlite", ".batch-lock"}


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def ledger_rows(out: Path) -> dict[str, tuple]:
    with closing(sqlite3.connect(out / "ledger.sqlite")) as db:
        return {r[0]: r[1:] for r in db.execute("SELECT case_id, state, computations FROM cases")}


def dose(case_dir: Path) -> np.ndarray:
    return np.asarray(nib.load(case_dir / "dose.nii.gz").dataobj)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    base = tmp_path_factory.mktemp("batch")
    root = base / "root"
    make_root(root)
    out = base / "out"
    code = main(["batch", str(root), "--out", str(out), "--workers", "2", *RUN_OPTIONS])  # with the progress bar
    return root, out, code


def processes_of(batch_pid: int) -> list[int]:
    """Processes started by the batch ``batch_pid`` (its case processes and their servers), by environment."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"Y90_BATCH_PARENT_PID={batch_pid}".encode() in environ:
                found.append(int(entry.name))
    return found


def none_left(batch_pid: int, timeout_s: float = 20) -> bool:
    deadline = time.monotonic() + timeout_s
    while processes_of(batch_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not processes_of(batch_pid)


def copy_out(cohort, tmp_path) -> Path:
    return Path(shutil.copytree(cohort[1], tmp_path / "out", symlinks=True))


def test_batch_writes_each_case_and_the_tables(cohort):
    root, out, code = cohort
    assert code == 11  # the broken study failed, the others are complete
    summary = read_csv(out / "summary.csv")
    ids = [row["case_id"] for row in summary]
    assert ids == sorted(ids) and len(ids) == 5 and ids[0] == "alpha" and ids[-1] == "site_2__beta"
    status = {row["case_id"]: row for row in summary}
    assert [row["status"] for row in summary].count("ok") == 4
    broken = status["broken"]
    assert broken["status"] == "failed" and broken["exit_code"] == "4" and "slice(s) missing" in broken["error"]
    assert all(float(row["seconds"]) > 0 for row in summary)
    # each case folder holds exactly what `dosimetry run` writes, and nothing half-written is left
    assert {p.name for p in out.iterdir()} == TABLES | {i for i in ids if i != "broken"}
    for case_id in ids:
        if case_id != "broken":
            assert {p.name for p in (out / case_id).iterdir()} == DICOM_RUN_FILES
    stats = json.loads((out / "alpha" / "stats.json").read_text())
    assert stats["inputs"]["dicom"]["folder"] == str((root / "alpha").resolve())
    assert ledger_rows(out) == {i: ("failed" if i == "broken" else "done", 1) for i in ids}


def test_cohort_table_rows_per_case_and_roi(cohort):
    _, out, _ = cohort
    rows = read_csv(out / "cohort.csv")
    columns = list(rows[0])
    assert columns[:5] == ["case_id", "roi", "role", "volume_ml", "mean_gy"]
    assert {"D70", "D98", "V100", "V200"} <= set(columns)
    assert columns[-6:] == [
        "tn_ratio",
        "lung_dose_gy",
        "lung_dose_source",
        "method",
        "emission",
        "tumor_burden_percent",
    ]
    assert "broken" not in {row["case_id"] for row in rows}
    alpha = [row for row in rows if row["case_id"] == "alpha"]
    stats_csv = read_csv(out / "alpha" / "stats.csv")
    assert [row["roi"] for row in alpha] == [row["name"] for row in stats_csv]
    assert [float(row["D70"]) for row in alpha] == [float(row["D70"]) for row in stats_csv]
    stats = json.loads((out / "alpha" / "stats.json").read_text())
    assert float(alpha[0]["tn_ratio"]) == pytest.approx(stats["tumor_to_normal"]["dose_ratio"], rel=1e-12)
    assert float(alpha[0]["lung_dose_gy"]) == pytest.approx(stats["lung"]["mean_gy"], rel=1e-12)
    assert alpha[0]["lung_dose_source"] == "lung ROI"
    assert alpha[0]["method"] == "ldm" and alpha[0]["emission"] == "Y-90 dose"


def test_batch_json_record(cohort):
    _, out, _ = cohort
    record = json.loads((out / "batch.json").read_text())
    assert record["counts"] == {"ok": 4, "skipped": 0, "failed": 1, "cases": 5}
    assert record["options"]["workers"] == 2 and record["options"]["run_options"] == RUN_OPTIONS
    assert record["version"] and record["started_utc"] <= record["ended_utc"] and record["exit_code"] == 11


def test_rerun_of_a_finished_batch_skips_every_done_case(cohort, tmp_path, capsys):
    root, _, _ = cohort
    out = copy_out(cohort, tmp_path)
    before = {i: (out / i / "dose.nii.gz").stat().st_ino for i in GOOD}
    assert main(["batch", str(root), "--out", str(out), "--workers", "2", *RUN_OPTIONS]) == 11
    captured = capsys.readouterr()
    assert "failed cases" in captured.err and "broken" in captured.err  # the table of failed cases
    summary = {row["case_id"]: row["status"] for row in read_csv(out / "summary.csv")}
    assert summary.pop("broken") == "failed" and set(summary.values()) == {"skipped"}
    assert {i: (out / i / "dose.nii.gz").stat().st_ino for i in GOOD} == before
    assert {v[1] for v in ledger_rows(out).values()} == {1}
    assert len(read_csv(out / "cohort.csv")) == len(read_csv(cohort[1] / "cohort.csv"))


def test_changed_input_recomputes_exactly_that_case_and_failed_cases_wait(cohort, tmp_path):
    root = Path(shutil.copytree(cohort[0], tmp_path / "root"))  # a moved cohort is still recognised
    out = copy_out(cohort, tmp_path)
    pet = root / "site 2" / "beta" / "PET" / "PT0005.dcm"
    ds = pydicom.dcmread(pet)
    ds.SeriesDescription = "edited"
    ds.save_as(pet)
    touched = root / "alpha" / "PET" / "PT0005.dcm"  # new times, same content: still the same input
    os.utime(touched, ns=(time.time_ns(), time.time_ns()))
    result = run_batch(root, out, run_options=RUN_OPTIONS, workers=2)
    status = {row["case_id"]: row["status"] for row in result.summary}
    assert status["site_2__beta"] == "ok" and status["alpha"] == "skipped" and status["broken"] == "failed"
    assert result.exit_code == 11
    rows = ledger_rows(out)
    assert rows["site_2__beta"] == ("done", 2) and rows["alpha"] == ("done", 1) and rows["broken"] == ("failed", 1)
    # failed and unchanged: retried only with --retry-failed ...
    result = run_batch(root, out, run_options=RUN_OPTIONS, retry_failed=True)
    assert ledger_rows(out)["broken"] == ("failed", 2)
    assert {r["case_id"]: r["status"] for r in result.summary}["site_2__beta"] == "skipped"
    # ... or when its input changed: the missing slice is put back
    copy_study(tmp_path / "fix", "broken")
    shutil.copy(tmp_path / "fix" / "PET" / "PT0020.dcm", root / "broken" / "PET" / "PT0020.dcm")
    result = run_batch(root, out, run_options=RUN_OPTIONS)
    assert result.exit_code == 0 and ledger_rows(out)["broken"] == ("done", 3)
    assert {r["status"] for r in result.summary} == {"ok", "skipped"}
    assert (out / "broken" / "dose.nii.gz").is_file()
    assert sorted(set(result.summary_frame()["status"])) == ["ok", "skipped"]
    assert set(result.cohort_frame()["case_id"]) == {r["case_id"] for r in result.summary}


def test_commit_interrupted_after_the_run_is_finished_without_running_again(cohort, tmp_path):
    """A batch killed between 'committing' and 'done': the next start moves the output into place."""
    root, _, _ = cohort
    out = copy_out(cohort, tmp_path)
    work = out / ".batch-work" / "alpha.0123456789ab"
    work.mkdir(parents=True)
    os.replace(out / "alpha", work / "out")
    with closing(sqlite3.connect(out / "ledger.sqlite")) as db, db:
        db.execute(
            "UPDATE cases SET state = 'committing', work = ?, computations = 0 WHERE case_id = 'alpha'", (str(work),)
        )
    result = run_batch(root, out, run_options=RUN_OPTIONS)
    assert {r["case_id"]: r["status"] for r in result.summary}["alpha"] == "skipped"
    assert ledger_rows(out)["alpha"] == ("done", 1)
    assert (out / "alpha" / "dose.nii.gz").is_file() and not (out / ".batch-work").exists()


def test_csv_cases_on_dask_identical_to_local_then_a_changed_option_recomputes_only_its_case(cohort, tmp_path):
    """Cases from a CSV (a DICOM study, image files, an empty folder) as tasks on a real Dask LocalCluster
    with worker processes: the dose is bit for bit the local run's; then, locally, a changed CSV option
    recomputes only its case."""
    distributed = pytest.importorskip("distributed")
    root, local_out, _ = cohort
    nifti = SAMPLE.parent / "phantom"
    rows = [
        {"case_id": "dicom-a", "study": str(root / "alpha"), "residual_fraction": ""},
        {
            "case_id": "nifti",
            "activity": str(nifti / "activity_bqml.nii.gz"),
            "ct": str(nifti / "ct_hu.nii.gz"),
            "segmentation": str(nifti / "rois.seg.nrrd"),
            "scan_delay_h": "20",
            "residual_fraction": "",
        },
        {"case_id": "empty", "study": str(root / "empty"), "residual_fraction": ""},
    ]

    def write(rows):
        with (tmp_path / "cases.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(
                handle,
                fieldnames=["case_id", "study", "activity", "ct", "segmentation", "scan_delay_h", "residual_fraction"],
            )
            writer.writeheader()
            writer.writerows(rows)

    write(rows)
    out = tmp_path / "out"
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        code = main(
            [
                "batch",
                str(root),
                "--out",
                str(out),
                "--cases",
                str(tmp_path / "cases.csv"),
                "-q",
                "--dask-scheduler",
                cluster.scheduler_address,
                *RUN_OPTIONS,
            ]
        )
    assert code == 11
    status = {r["case_id"]: r for r in read_csv(out / "summary.csv")}
    assert list(status) == ["dicom-a", "nifti", "empty"]  # the CSV's order
    assert status["dicom-a"]["status"] == status["nifti"]["status"] == "ok"
    assert status["empty"]["status"] == "failed" and status["empty"]["exit_code"] == "3"
    assert {p.name for p in (out / "nifti").iterdir()} == DICOM_RUN_FILES - {"rtdose.dcm", "sr.dcm"}
    local, remote = dose(local_out / "alpha"), dose(out / "dicom-a")
    assert local.dtype == remote.dtype and local.tobytes() == remote.tobytes()  # bit for bit
    assert (out / "dicom-a" / "stats.csv").read_bytes() == (local_out / "alpha" / "stats.csv").read_bytes()
    assert ledger_rows(out) == {"dicom-a": ("done", 1), "nifti": ("done", 1), "empty": ("failed", 1)}
    rows[0]["residual_fraction"] = "0.1"
    write(rows)
    result = run_batch(
        root, out, cases=tmp_path / "cases.csv", run_options={"residual_fraction": 0.03, "lung_shunt": 0.05}
    )
    assert [r["status"] for r in result.summary] == ["ok", "skipped", "failed"]
    assert ledger_rows(out) == {"dicom-a": ("done", 2), "nifti": ("done", 1), "empty": ("failed", 1)}
    stats = json.loads((out / "dicom-a" / "stats.json").read_text())
    assert stats["inputs"]["options"]["residual_fraction"] == pytest.approx(0.1)


def test_kill_9_mid_run_then_rerun_completes_each_case_once(cohort, tmp_path):
    root = tmp_path / "root"
    for name in ("alpha", "site 2/beta"):
        shutil.copytree(cohort[0] / name, root / Path(name).name)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dosimetry", "batch", str(root), "--out", str(out), "-q", *RUN_OPTIONS]
    batch = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    states = {}
    while time.monotonic() < deadline and batch.poll() is None:
        if (out / "ledger.sqlite").exists():
            try:
                states = {k: v[0] for k, v in ledger_rows(out).items()}
            except sqlite3.OperationalError:
                states = {}
            if states.get("alpha") == "done" and states.get("beta") == "running":
                break
        time.sleep(0.05)
    assert states == {"alpha": "done", "beta": "running"}, states
    assert processes_of(batch.pid)  # the running case (and its warm server)
    batch.send_signal(signal.SIGKILL)
    batch.wait()
    assert none_left(batch.pid)  # they died with the batch: nothing goes on writing
    # nothing half-written: only complete case folders in OUT
    assert {p.name for p in out.iterdir()} <= {
        "alpha",
        "ledger.sqlite",
        "ledger.sqlite-wal",
        "ledger.sqlite-shm",
        ".batch-lock",
        ".batch-work",
    }
    assert {p.name for p in (out / "alpha").iterdir()} == DICOM_RUN_FILES
    assert main(["batch", str(root), "--out", str(out), "-q", *RUN_OPTIONS]) == 0
    assert {r["case_id"]: r["status"] for r in read_csv(out / "summary.csv")} == {"alpha": "skipped", "beta": "ok"}
    assert ledger_rows(out) == {"alpha": ("done", 1), "beta": ("done", 1)}
    assert {p.name for p in out.iterdir()} == TABLES | {"alpha", "beta"}


def test_ctrl_c_stops_the_running_case_and_the_next_run_resumes_it(cohort, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(cohort[0] / "alpha", root / "alpha")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "dosimetry", "batch", str(root), "--out", str(out), "-q", *RUN_OPTIONS]
    batch = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    state = None
    while time.monotonic() < deadline and batch.poll() is None and state != "running":
        try:
            state = ledger_rows(out).get("alpha", (None,))[0] if (out / "ledger.sqlite").exists() else None
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    assert state == "running"
    work = next((out / ".batch-work").iterdir())
    batch.send_signal(signal.SIGINT)
    _, err = batch.communicate(timeout=60)
    assert batch.returncode == 130
    assert none_left(batch.pid)
    assert err.strip().splitlines()[-1].startswith("error: interrupted; the finished cases are kept")
    assert "Traceback" not in err
    assert ledger_rows(out) == {"alpha": ("pending", 0)}
    assert not work.exists() and not (out / "alpha").exists()
    assert read_csv(out / "summary.csv")[0]["status"] == "skipped"  # not finished: says so in its error
    assert json.loads((out / "batch.json").read_text())["interrupted"] is True


def test_a_case_killed_like_by_the_oom_killer_fails_alone(cohort, tmp_path):
    """SIGKILL of a running case's process (what the OOM killer does): that case fails with -9, the next one
    runs and completes."""
    import threading

    from dosimetry.batch import execute

    root, local_out, _ = cohort
    with (tmp_path / "cases.csv").open("w", newline="") as handle:
        handle.write(f"case_id,study\nkilled,{root / 'alpha'}\nsurvivor,{root / 'site 2' / 'beta'}\n")
    out = tmp_path / "out"
    results = []
    batch = threading.Thread(
        target=lambda: results.append(
            run_batch(root, out, cases=tmp_path / "cases.csv", run_options=RUN_OPTIONS, workers=1)
        )
    )
    batch.start()
    deadline = time.monotonic() + 120
    while not execute._live_pids and time.monotonic() < deadline:
        time.sleep(0.01)
    (pid,) = execute._live_pids
    os.kill(pid, signal.SIGKILL)
    batch.join(timeout=300)
    (result,) = results
    killed, survivor = result.summary
    assert killed["status"] == "failed" and killed["exit_code"] == -9 and "SIGKILL" in killed["error"]
    assert survivor["status"] == "ok" and result.exit_code == 11
    assert not (out / "killed").exists()
    assert dose(out / "survivor").tobytes() == dose(local_out / "site_2__beta").tobytes()


def test_error_line_of_a_case():
    from dosimetry.batch.execute import _error_line

    assert _error_line("warning: x\nerror: no DICOM file found\n", 3) == "no DICOM file found"
    assert (
        _error_line("Traceback (most recent call last):\n  ...\nZeroDivisionError: division by zero\n", 1)
        == "internal error: ZeroDivisionError: division by zero"
    )
    assert _error_line("", -9) == "the case's process was killed by SIGKILL (out of memory?)"
    assert _error_line("", -11) == "the case's process was killed by SIGSEGV"


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file and folder under ``folder``: content hash (files) and modification time."""
    import hashlib

    return {
        str(p.relative_to(folder)): (
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir",
            p.stat().st_mtime_ns,
        )
        for p in sorted(folder.rglob("*"))
    }


def test_batch_never_writes_into_or_deletes_its_inputs(tmp_path):
    root = tmp_path / "root"
    copy_study(root / "alpha", "inputs-alpha")
    (root / "empty").mkdir()
    (root / "notes.txt").write_text("not a DICOM file\n")
    before = _snapshot(root)
    out = tmp_path / "out"
    assert main(["batch", str(root), "--out", str(out), "-q", *RUN_OPTIONS]) == 0
    assert main(["batch", str(root), "--out", str(out), "-q", "--retry-failed", *RUN_OPTIONS]) == 0  # the rerun
    assert _snapshot(root) == before
