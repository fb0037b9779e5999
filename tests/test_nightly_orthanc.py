"""The nightly job end to end against a real Orthanc (Debian package, started per test on loopback ports).

No mock of the network: studies are uploaded through Orthanc's REST API, the job talks DICOM to it
(C-ECHO, C-FIND, C-MOVE or C-GET to our storage SCP, C-STORE back), and the results are read back through
REST. Faults are real: Orthanc stopped or frozen (SIGSTOP) in the middle of a run, the job killed with
SIGKILL, an AE title that is not allowed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest

from dosimetry.export import read_measurement_report, read_rt_dose
from dosimetry.io.images import read_image
from dosimetry.nightly.uids import study_key
from nightly_helpers import SAMPLE, as_fdg, copy_study, run_nightly, start_nightly, wait_for_line, write_config
from orthanc_server import OrthancServer, build_shim, free_port, orthanc_program

TRUTH = json.loads((SAMPLE.parent / "phantom" / "truth.json").read_text())
OUTPUT_MODALITIES = ("RTDOSE", "SR", "SEG", "DOC")


@pytest.fixture(scope="session")
def shim(tmp_path_factory):
    if orthanc_program() is None:
        pytest.fail("Orthanc is not installed: run ./scripts/test.sh, which installs the Debian package orthanc")
    return build_shim(tmp_path_factory.mktemp("shim"))


@pytest.fixture
def pacs(tmp_path, shim):
    server = OrthancServer(tmp_path / "orthanc", our_ae="Y90DOSI", our_port=free_port(), shim=shim).start()
    yield server
    server.stop(graceful=False)


def _outputs(pacs: OrthancServer, study_uid: str) -> Counter:
    return Counter(i["Modality"] for i in pacs.instances(study_uid) if i["Modality"] in OUTPUT_MODALITIES)


def _ledger(job: Path, study_uid: str) -> dict:
    with sqlite3.connect(job / "ledger.sqlite") as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM studies WHERE study_uid = ?", (study_uid,)).fetchone()
        sent = db.execute("SELECT what FROM sent WHERE study_uid = ?", (study_uid,)).fetchall()
    return {**dict(row), "sent": sorted(r[0] for r in sent)} if row else {}


def _normal_liver_point() -> np.ndarray:
    """World position (LPS mm) of a normal-liver voxel at least 2 voxels from any edge of the compartment."""
    from scipy import ndimage

    rois = SAMPLE.parent / "phantom" / "rois"
    liver = read_image(rois / "liver.nii.gz")
    normal = liver.array > 0.5
    for tumor in rois.glob("tumor_*.nii.gz"):
        normal &= ~(read_image(tumor).array > 0.5)
    inner = np.argwhere(ndimage.binary_erosion(normal, iterations=2))
    return liver.index_to_world(inner[len(inner) // 2])


def _dose_at(image, xyz) -> float:
    index = np.rint(image.world_to_index(xyz)).astype(int)
    return float(image.array[tuple(index)])


def test_full_pass_stores_rtdose_sr_seg_pdf_then_a_rerun_sends_nothing(pacs, tmp_path):
    study_uid = copy_study(tmp_path / "study", "full", patient=("DOE^JANE", "PID4711"))
    uploaded = pacs.upload_folder(tmp_path / "study")
    job = tmp_path / "job"
    config = write_config(job, our_port=pacs.our_port, pacs_port=pacs.dicom_port)

    first = run_nightly(config, verbose=True)
    assert first.returncode == 0, first.stderr
    assert f"study {study_key(study_uid)}: stored: 4 instances sent" in first.stdout
    assert _outputs(pacs, study_uid) == Counter({m: 1 for m in OUTPUT_MODALITIES})
    instances = {i["Modality"]: i for i in pacs.instances(study_uid)}
    assert len(pacs.instances(study_uid)) == uploaded + 4

    # the RT Dose read back from the PACS: the ground-truth dose of normal liver at a world point
    rtdose_path = tmp_path / "rtdose-from-pacs.dcm"
    rtdose_path.write_bytes(pacs.instance_file(instances["RTDOSE"]["id"]))
    dose = read_rt_dose(rtdose_path)
    assert _dose_at(dose, _normal_liver_point()) == pytest.approx(
        TRUTH["compartments"]["normal_liver"]["mean_dose_ldm_gy"], rel=0.01
    )
    # the SR's numbers are those of stats.json; the SEG holds the study's 5 ROIs; the PDF is a PDF
    ledger = _ledger(job, study_uid)
    assert ledger["state"] == "stored" and ledger["sent"] == ["report", "rtdose", "seg", "sr"] and not ledger["no_rois"]
    stats = json.loads((Path(ledger["results_dir"]) / "stats.json").read_text())
    sr = read_measurement_report(
        pydicom.dcmread(pydicom.filebase.DicomBytesIO(pacs.instance_file(instances["SR"]["id"])))
    )
    for entry in stats["rois"]:
        if entry["name"] in sr:
            assert sr[entry["name"]]["mean_gy"] == pytest.approx(entry["mean_gy"], rel=1e-3)
    seg = pydicom.dcmread(pydicom.filebase.DicomBytesIO(pacs.instance_file(instances["SEG"]["id"])))
    assert len(seg.SegmentSequence) == 5
    pdf = pydicom.dcmread(pydicom.filebase.DicomBytesIO(pacs.instance_file(instances["DOC"]["id"])))
    assert pdf.MIMETypeOfEncapsulatedDocument == "application/pdf" and bytes(pdf.EncapsulatedDocument)[:5] == b"%PDF-"
    assert {
        str(pydicom.dcmread(Path(ledger["results_dir"]) / f).StudyInstanceUID)
        for f in ("rtdose.dcm", "sr.dcm", "seg.dcm", "report-pdf.dcm")
    } == {study_uid}

    # no patient name or ID in the job's output, even at -vv (pynetdicom's debug dumps included)
    for text in (first.stdout, first.stderr):
        assert "DOE" not in text and "PID4711" not in text

    # a second run adds nothing
    second = run_nightly(config)
    assert second.returncode == 0, second.stderr
    assert "1 up to date" in second.stdout and "storing" not in second.stdout
    assert len(pacs.instances(study_uid)) == uploaded + 4

    # the ledger and the results lost: computed again from scratch, the same UIDs, so the PACS adds nothing
    first_uids = {i["SOPInstanceUID"] for i in pacs.instances(study_uid)}
    shutil.rmtree(job / "results")
    (job / "ledger.sqlite").unlink()
    third = run_nightly(config)
    assert third.returncode == 0, third.stderr
    assert "stored: 4 instances sent" in third.stdout
    assert {i["SOPInstanceUID"] for i in pacs.instances(study_uid)} == first_uids

    # --dry-run with a ledger: "would do nothing"; not a byte changes; --log-phi names the patient (so the
    # check above can fail)
    before = {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in job.rglob("*") if p.is_file()}
    phi = run_nightly(config, "--dry-run", "--log-phi")
    assert phi.returncode == 0, phi.stderr
    assert "PID4711" in phi.stdout and "would do nothing (up to date)" in phi.stdout
    assert {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in job.rglob("*") if p.is_file()} == before


def test_dry_run_prints_the_plan_and_changes_nothing(pacs, tmp_path):
    assert pacs.listening_addresses() == {"127.0.0.1"}  # the test PACS listens on the loopback address only
    study_uid = copy_study(tmp_path / "study", "dry")
    uploaded = pacs.upload_folder(tmp_path / "study")
    job = tmp_path / "job"
    config = write_config(job, our_port=pacs.our_port, pacs_port=pacs.dicom_port)
    result = run_nightly(config, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert (
        f"study {study_key(study_uid)}: would fetch 3 series ({uploaded} instances), compute and store" in result.stdout
    )
    assert sorted(p.name for p in job.iterdir()) == ["nightly.toml"]
    assert len(pacs.instances(study_uid)) == uploaded


def test_pacs_unreachable_at_start_is_exit_12_and_the_ledger_untouched(tmp_path):
    job = tmp_path / "job"
    config = write_config(job, our_port=free_port(), pacs_port=free_port(), timeout_s=2)
    result = run_nightly(config)
    assert result.returncode == 12
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: PACS ORTHANC at 127.0.0.1:")
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in job.iterdir()) == ["nightly.toml"]  # no ledger, no work, no results
    # an existing ledger is not opened for writing either
    from dosimetry.nightly.ledger import Ledger

    with Ledger.open(job / "ledger.sqlite") as ledger:
        ledger.begin("1.2.3", study_key("1.2.3"), "fp")
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in job.iterdir()}
    assert run_nightly(config).returncode == 12
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in job.iterdir()} == before


@pytest.mark.parametrize("fault, moment", [("stopped", "computing"), ("frozen", "computing"), ("frozen", "fetching")])
def test_pacs_lost_mid_run_then_the_next_run_completes_without_duplicates(pacs, tmp_path, fault, moment):
    """Orthanc stopped (connections refused or closed) or frozen (SIGSTOP: connections hang until the
    timeouts) while the job computes (so the C-STOREs fail) or once it starts fetching (the retrieval or,
    if it already finished, the C-STOREs fail): exit 12, the study marked for retry, then completed."""
    study_uid = copy_study(tmp_path / "study", f"lost-{fault}-{moment}")
    uploaded = pacs.upload_folder(tmp_path / "study")
    job = tmp_path / "job"
    config = write_config(
        job, our_port=pacs.our_port, pacs_port=pacs.dicom_port, timeout_s=3, send=("rtdose", "sr", "seg")
    )
    process = start_nightly(config)
    lines: list[str] = []
    wait_for_line(process, moment, lines)
    if fault == "stopped":
        pacs.stop()
    else:
        pacs.freeze()  # the PACS accepts connections but never answers: the timeouts must end the wait
    out, err = process.communicate(timeout=120)
    assert process.returncode == 12, "".join(lines) + out + err
    assert err.startswith("error: PACS ORTHANC") and err.count("\n") == 1 and "Traceback" not in err
    assert "marked for retry" in out
    ledger = _ledger(job, study_uid)
    assert ledger["state"] == "failed" and "retried on the next run" in ledger["reason"] and ledger["sent"] == []
    assert ledger["attempts"] <= 1  # the network fault is not counted against the study

    if fault == "stopped":
        pacs.start()
    else:
        pacs.thaw()
    again = run_nightly(config)
    assert again.returncode == 0, again.stderr
    assert "stored: 3 instances sent" in again.stdout
    if moment == "computing":
        assert "computing" not in again.stdout  # the results of the interrupted run are kept
    assert _outputs(pacs, study_uid) == Counter({"RTDOSE": 1, "SR": 1, "SEG": 1})
    assert len(pacs.instances(study_uid)) == uploaded + 3
    assert run_nightly(config).returncode == 0 and len(pacs.instances(study_uid)) == uploaded + 3


def test_job_killed_while_fetching_computing_and_storing_then_rerun_completes_without_duplicates(pacs, tmp_path):
    study_uid = copy_study(tmp_path / "study", "killed")
    uploaded = pacs.upload_folder(tmp_path / "study")
    job = tmp_path / "job"
    config = write_config(job, our_port=pacs.our_port, pacs_port=pacs.dicom_port, send=("rtdose", "sr", "seg"))
    for moment in ("fetching", "computing", "storing"):
        process = start_nightly(config)
        wait_for_line(process, moment, [])
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL
        assert _outputs(pacs, study_uid)["RTDOSE"] <= 1
    final = run_nightly(config)
    assert final.returncode == 0, final.stderr
    assert _outputs(pacs, study_uid) == Counter({"RTDOSE": 1, "SR": 1, "SEG": 1})
    assert len(pacs.instances(study_uid)) == uploaded + 3
    ledger = _ledger(job, study_uid)
    assert ledger["state"] == "stored" and ledger["sent"] == ["rtdose", "seg", "sr"]
    assert not any("partial" in p.name for p in job.rglob("*"))  # nothing half-written
    assert run_nightly(config).returncode == 0 and len(pacs.instances(study_uid)) == uploaded + 3


def test_study_without_rois_then_an_rtstruct_arrives_and_it_is_computed_again(pacs, tmp_path):
    study_uid = copy_study(tmp_path / "study", "norois", rtstruct=False)
    uploaded = pacs.upload_folder(tmp_path / "study")
    job = tmp_path / "job"
    config = write_config(
        job, our_port=pacs.our_port, pacs_port=pacs.dicom_port, retrieve="C-GET", send=("rtdose", "sr", "seg")
    )
    first = run_nightly(config)
    assert first.returncode == 0, first.stderr
    assert "no ROIs" in first.stdout
    assert _outputs(pacs, study_uid) == Counter({"RTDOSE": 1})  # RT Dose only
    rtdose = [i for i in pacs.instances(study_uid) if i["Modality"] == "RTDOSE"][0]
    assert rtdose["SeriesDescription"].endswith("no ROIs")
    ledger = _ledger(job, study_uid)
    assert ledger["no_rois"] == 1
    stats = json.loads((Path(ledger["results_dir"]) / "stats.json").read_text())
    assert [e["name"] for e in stats["rois"]] == ["whole image"] and any("no ROIs" in w for w in stats["warnings"])
    assert stats["rois"][0]["volume_ml"] > 0 and stats["rois"][0]["max_gy"] > 50

    assert run_nightly(config).returncode == 0 and len(pacs.instances(study_uid)) == uploaded + 1  # nothing new

    copy_study(tmp_path / "rtstruct", "norois", only_rtstruct=True)  # the RTSTRUCT arrives later
    pacs.upload_folder(tmp_path / "rtstruct")
    second = run_nightly(config)
    assert second.returncode == 0, second.stderr
    assert "its inputs changed" in second.stdout and "stored: 3 instances sent" in second.stdout
    assert _outputs(pacs, study_uid) == Counter({"RTDOSE": 2, "SR": 1, "SEG": 1})
    ledger = _ledger(job, study_uid)
    assert ledger["no_rois"] == 0 and ledger["state"] == "stored"
    stats = json.loads((Path(ledger["results_dir"]) / "stats.json").read_text())
    assert "whole image" not in [e["name"] for e in stats["rois"]] and len(stats["rois"]) > 5


def test_ae_title_not_allowed_is_rejected_by_our_scp(pacs, tmp_path):
    """Orthanc (AE ORTHANC) may not send to us when only another AE title is allowed: nothing is received."""
    study_uid = copy_study(tmp_path / "study", "intruder")
    pacs.upload_folder(tmp_path / "study")
    job = tmp_path / "job"
    config = write_config(job, our_port=pacs.our_port, pacs_port=pacs.dicom_port, timeout_s=5, allowed=("OTHERPACS",))
    result = run_nightly(config)
    assert result.returncode == 12 and "C-MOVE ended with status" in result.stderr
    assert not any((job / "work").rglob("*.dcm"))
    assert _outputs(pacs, study_uid) == Counter()


def test_a_study_the_nuclide_policy_refuses_is_skipped_without_being_fetched(pacs, tmp_path):
    fdg_uid = copy_study(tmp_path / "fdg", "fdg", transform=as_fdg)
    pacs.upload_folder(tmp_path / "fdg")
    job = tmp_path / "job"
    config = write_config(job, our_port=pacs.our_port, pacs_port=pacs.dicom_port, send=("rtdose",))
    first = run_nightly(config)
    assert first.returncode == 0, first.stderr
    assert f"study {study_key(fdg_uid)}: skipped: not a Y-90 study" in first.stdout and "F-18" in first.stdout
    assert "fetching" not in first.stdout and not any((job / "work").rglob("*.dcm"))
    assert _ledger(job, fdg_uid)["state"] == "skipped" and _outputs(pacs, fdg_uid) == Counter()
    second = run_nightly(config)
    assert (
        second.returncode == 0 and "1 skipped" in second.stdout and f"study {study_key(fdg_uid)}" not in second.stdout
    )


def test_a_study_still_arriving_during_the_fetch_is_left_for_the_next_run_then_completed(
    pacs, tmp_path, monkeypatch, capsys
):
    """Instances reach the PACS while the job fetches (a modality still sending): the PACS's counts change,
    so the study is not computed on a partial series; it is marked for the next run, which completes it."""
    from dosimetry.cli import main
    from dosimetry.nightly import sources

    study_uid = copy_study(tmp_path / "study", "arriving")
    late = sorted((tmp_path / "study" / "CT").glob("*.dcm"))[-1]  # the last CT slice is still on its way
    held = tmp_path / "late.dcm"
    late.rename(held)
    uploaded = pacs.upload_folder(tmp_path / "study")
    job = tmp_path / "job"
    config = write_config(job, our_port=pacs.our_port, pacs_port=pacs.dicom_port)

    original = sources.PacsSource.refresh
    arrivals = []

    def arrives_during_the_fetch(self, candidate, own):
        if not arrivals:  # the first check after the retrieval: the late slice has reached the PACS meanwhile
            arrivals.append(pacs.post("/instances", held.read_bytes()))
        return original(self, candidate, own)

    monkeypatch.setattr(sources.PacsSource, "refresh", arrives_during_the_fetch)
    assert main(["nightly", "--config", str(config), "--since", "2020-01-01"]) == 0
    out = capsys.readouterr().out
    assert arrivals and arrivals[0]["Status"] == "Success", out
    assert "still arriving" in out and "left for the next run" in out
    assert _outputs(pacs, study_uid) == Counter()  # nothing computed from the partial study, nothing sent
    assert "still arriving" in _ledger(job, study_uid)["reason"]

    monkeypatch.setattr(sources.PacsSource, "refresh", original)
    second = run_nightly(config)
    assert second.returncode == 0, second.stderr
    assert f"fetching 3 series ({uploaded + 1} instances)" in second.stdout
    assert _outputs(pacs, study_uid) == Counter({m: 1 for m in OUTPUT_MODALITIES})
    assert _ledger(job, study_uid)["state"] == "stored"
