"""Our storage SCP's guards (bind address, AE titles, SOP classes, only the retrieval in progress) and the
export-folder source (the share only read, results written, stored back to a real Orthanc)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import RLELossless
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, MRImageStorage, Verification

from dosimetry.nightly.config import Node
from dosimetry.nightly.network import StorageServer, StoreTarget
from dosimetry.nightly.uids import study_key
from nightly_helpers import SAMPLE, as_tc99m_maa, copy_study, run_nightly, write_config
from orthanc_server import OrthancServer, build_shim, free_port, orthanc_program


def _scu(title: str) -> AE:
    ae = AE(ae_title=title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = 5
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage, [RLELossless])  # the sample CT's transfer syntax
    ae.add_requested_context(MRImageStorage)
    return ae


@pytest.fixture
def scp(tmp_path):
    local = Node("Y90DOSI", "127.0.0.1", free_port())
    target = StoreTarget()
    with StorageServer(local, ["ORTHANC"], target, timeout_s=5) as server:
        yield server, target


def test_scp_listens_on_the_configured_address_only(scp):
    server, _ = scp
    assert server.address == ("127.0.0.1", server.local.port)


def test_scp_rejects_ae_titles_not_allowed_and_a_wrong_called_title(scp):
    server, _ = scp
    intruder = _scu("INTRUDER").associate("127.0.0.1", server.local.port, ae_title="Y90DOSI")
    assert intruder.is_rejected and not intruder.is_established
    wrong_called = _scu("ORTHANC").associate("127.0.0.1", server.local.port, ae_title="SOMEONE")
    assert wrong_called.is_rejected
    allowed = _scu("ORTHANC").associate("127.0.0.1", server.local.port, ae_title="Y90DOSI")
    try:
        assert allowed.is_established and allowed.send_c_echo().Status == 0
        accepted = {str(c.abstract_syntax) for c in allowed.accepted_contexts}
        assert str(CTImageStorage) in accepted and str(MRImageStorage) not in accepted  # only the inputs' classes
    finally:
        allowed.release()


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
def test_scp_writes_only_instances_of_the_retrieval_in_progress_under_hashed_names(scp, tmp_path):
    server, target = scp
    ct = pydicom.dcmread(sorted((SAMPLE / "CT").glob("*.dcm"))[0])
    ct.SOPInstanceUID = "1.2.3.4/../../evil"  # a hostile value never reaches a path
    folder = tmp_path / "in"
    assoc = _scu("ORTHANC").associate("127.0.0.1", server.local.port, ae_title="Y90DOSI")
    try:
        assert assoc.send_c_store(ct).Status != 0  # nothing expected: refused
        assert not folder.exists()
        with target.expect(str(ct.StudyInstanceUID), {"9.9.9"}, folder):
            assert assoc.send_c_store(ct).Status != 0  # another series: refused
        with target.expect(str(ct.StudyInstanceUID), {str(ct.SeriesInstanceUID)}, folder):
            assert assoc.send_c_store(ct).Status == 0
    finally:
        assoc.release()
    files = list(folder.iterdir())
    assert [p.name for p in files] == [hashlib.sha256(b"1.2.3.4/../../evil").hexdigest()[:32] + ".dcm"]
    assert pydicom.dcmread(files[0]).SOPInstanceUID == "1.2.3.4/../../evil"


def _tree(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_folder_source_reads_the_share_only_writes_results_and_stores_back(tmp_path, tmp_path_factory):
    if orthanc_program() is None:
        pytest.fail("Orthanc is not installed: run ./scripts/test.sh, which installs the Debian package orthanc")
    share = tmp_path / "share"
    study_uid = copy_study(share / "export-1", "folder")
    before = _tree(share)
    server = OrthancServer(
        tmp_path / "orthanc", our_ae="Y90DOSI", our_port=free_port(), shim=build_shim(tmp_path_factory.mktemp("shim"))
    ).start()
    try:
        job = tmp_path / "job"
        config = write_config(job, our_port=server.our_port, pacs_port=server.dicom_port, source=share)
        result = run_nightly(config)
        assert result.returncode == 0, result.stderr
        assert f"study {study_key(study_uid)}: stored: 4 instances sent" in result.stdout
        assert sorted(i["Modality"] for i in server.instances(study_uid)) == ["DOC", "RTDOSE", "SEG", "SR"]
        results = next((job / "results" / study_key(study_uid)).iterdir())
        manifest = json.loads((results / "nightly.json").read_text())
        assert {e["what"] for e in manifest["send"]} == {"rtdose", "sr", "seg", "report"}
        assert (results / "stats.json").exists() and (results / "report.pdf").exists()
        assert _tree(share) == before  # the input share: not a byte, not a time stamp changed

        # our outputs exported to the share later are not taken as inputs: nothing is computed again
        for entry in manifest["send"]:
            shutil.copy(results / entry["file"], share / "export-1" / f"ours-{entry['what']}.dcm")
        again = run_nightly(config)
        assert again.returncode == 0, again.stderr
        assert "1 up to date" in again.stdout and "computing" not in again.stdout
        assert len(server.instances(study_uid)) == 4
    finally:
        server.stop()


def test_a_failing_study_is_retried_up_to_max_attempts_then_left_with_its_reason(tmp_path):
    share = tmp_path / "share"
    study_uid = copy_study(share, "retry")
    job = tmp_path / "job"
    config = write_config(job, our_port=free_port(), pacs_port=None, source=share)
    # Tc-99m with absolute calibration is refused (exit 5) by the run itself: a failure that repeats
    config.write_text(
        config.read_text()
        .replace('method = "ldm"', 'method = "ldm"\nemission_nuclide = "Tc-99m"')
        .replace("settle_s = 0", "settle_s = 0\nmax_attempts = 2")
    )
    key = study_key(study_uid)
    for attempt in (1, 2):
        result = run_nightly(config)
        assert result.returncode == 0, result.stderr
        assert f"study {key}: computing (attempt {attempt} of 2)" in result.stdout
        assert f"study {key}: failed: exit 5:" in result.stdout
    last = run_nightly(config)
    assert last.returncode == 0 and "computing (attempt" not in last.stdout
    assert f"study {key}: left failed after 2 attempts: computing: exit 5:" in last.stdout
    assert not (job / "results" / key).exists()
    assert "2.25." not in last.stdout  # UIDs in messages are replaced by hashes


def test_tc99m_maa_study_is_a_predictive_run_labelled_so_with_its_csv_options(tmp_path):
    share = tmp_path / "share"
    study_uid = copy_study(share, "maa", transform=as_tc99m_maa)
    job = tmp_path / "job"
    config = write_config(job, our_port=free_port(), pacs_port=None, source=share)
    (job / "treatments.csv").write_text(f"StudyInstanceUID,calibration,administered_gbq\n{study_uid},relative,2.0\n")
    config.write_text(config.read_text().replace('method = "ldm"', 'method = "ldm"\nstudies_csv = "treatments.csv"'))
    result = run_nightly(config)
    assert result.returncode == 0, result.stderr
    assert "(predictive, Tc-99m MAA)" in result.stdout
    results = next((job / "results" / study_key(study_uid)).iterdir())
    manifest = json.loads((results / "nightly.json").read_text())
    assert manifest["predictive"] is True
    rtdose = pydicom.dcmread(results / "rtdose.dcm", stop_before_pixels=True)
    assert rtdose.SeriesDescription == "Y-90 predictive dose from Tc-99m MAA"
    stats = json.loads((results / "stats.json").read_text())
    assert stats["inputs"]["activity"]["calibration"] == "relative"  # from the CSV row
    assert stats["inputs"]["activity"]["administered_activity_gbq"] == 2.0


def test_only_one_pass_at_a_time(tmp_path):
    from dosimetry.nightly.job import _pass_lock

    share = tmp_path / "share"
    copy_study(share, "lock")
    job = tmp_path / "job"
    config = write_config(job, our_port=free_port(), pacs_port=None, source=share)
    with _pass_lock(job / "ledger.sqlite"):
        result = run_nightly(config)
    assert result.returncode == 10 and result.stderr.startswith("error: another pass of the nightly job is running")
    assert not (job / "ledger.sqlite").exists()
