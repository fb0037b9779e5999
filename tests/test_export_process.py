"""The DICOM exports written by their own process (dosimetry.export.background): the same files as in the run's
process, errors and log records carried back, a dead export process replaced by writing in the run's process,
and the command line (which uses it) interrupted at any moment: one line, exit 130, nothing left behind."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest

from dosimetry.errors import OutputError
from dosimetry.export import background
from dosimetry.export.results import write_results
from dosimetry.export.sr import read_measurement_report
from dosimetry.export.study import write_dicom_outputs
from dosimetry.io.roi_files import read_mask_roi
from dosimetry.occupancy import Occupancy
from dosimetry.pipeline import DosimetryOptions, run_dicom_study

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DICOM = ROOT / "data" / "samples" / "phantom_dicom"
EXTRA_ROI = ROOT / "data" / "samples" / "phantom" / "rois" / "tumor_T1.nii.gz"
DICOM_FILES = ("rtdose.dcm", "seg.dcm", "sr.dcm")


@pytest.fixture(scope="module")
def result():
    """The sample DICOM study with one ROI added from a NIfTI mask, so that every export (SEG too) is written."""
    return run_dicom_study(
        SAMPLE_DICOM,
        options=DosimetryOptions(residual_fraction=0.03, lung_shunt_fraction=0.05),
        extra_rois=[read_mask_roi(EXTRA_ROI, "tumor", "Added T1")],
    )


def _copy(result):
    """The same result with its own stats (write_results adds timings and warnings to them)."""
    return replace(result, stats=json.loads(json.dumps(result.stats)))


def _content(folder: Path) -> dict:
    """What the DICOM files say, without the UIDs and times that every export makes anew."""
    rtdose, seg = (pydicom.dcmread(folder / name) for name in ("rtdose.dcm", "seg.dcm"))
    return {
        "rtdose pixels": rtdose.pixel_array.tobytes(),
        "rtdose scaling": float(rtdose.DoseGridScaling),
        "rtdose geometry": (list(rtdose.ImagePositionPatient), list(rtdose.GridFrameOffsetVector)),
        "rtdose study": (rtdose.StudyInstanceUID, rtdose.FrameOfReferenceUID),
        "seg pixels": seg.pixel_array.tobytes(),
        "seg segments": [str(item.SegmentLabel) for item in seg.SegmentSequence],
        "seg sources": [
            item.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
        ],
        "sr numbers": read_measurement_report(folder / "sr.dcm"),
    }


def test_the_export_process_writes_what_the_run_process_writes(result, tmp_path):
    here, there = _copy(result), _copy(result)
    write_results(here, tmp_path / "here")
    with background.ExportProcess() as exporter:
        write_results(there, tmp_path / "there", export_process=exporter)
        assert exporter.worker_seconds is not None and exporter.worker_peak_mib > 0
    assert _content(tmp_path / "here") == _content(tmp_path / "there")
    for name in ("stats.json", "stats.csv", "dvh.csv", "dose.nii.gz"):
        assert (tmp_path / "there" / name).exists(), name
    timings = json.loads((tmp_path / "there" / "stats.json").read_text())["timings_s"]
    assert "output DICOM (export process)" in timings and "output DICOM" in timings
    assert "output DICOM (export process)" not in here.stats["timings_s"]
    strip = ("timings_s",)
    assert {k: v for k, v in here.stats.items() if k not in strip} == {
        k: v for k, v in there.stats.items() if k not in strip
    }


@pytest.mark.parametrize("same", [True, False])
def test_the_seg_built_ahead_is_used_only_when_it_is_the_results(result, tmp_path, caplog, same):
    """The command line's export process builds the SEG while the run computes (rois_resampled); the files are
    those of the run's own process either way, and a SEG built from other occupancies is built again."""
    here = _copy(result)
    write_results(here, tmp_path / "here")
    with background.ExportProcess() as exporter, caplog.at_level(logging.DEBUG, logger="dosimetry"):
        if same:
            there = _copy(
                run_dicom_study(
                    SAMPLE_DICOM,
                    options=DosimetryOptions(residual_fraction=0.03, lung_shunt_fraction=0.05),
                    extra_rois=[read_mask_roi(EXTRA_ROI, "tumor", "Added T1")],
                    rois_resampled=exporter.prepare,
                )
            )
        else:  # built ahead from a smaller occupancy than the result's (half of its box emptied)
            there = _copy(result)
            weight = there.roi_weights["Added T1"]
            values = weight.values.copy()
            values[: values.shape[0] // 2] = 0
            smaller = Occupancy(values, weight.start, weight.grid_shape)
            roles = {"Added T1": "tumor"}
            exporter.prepare(there.dicom_sources, there.dose_gy, {"Added T1": smaller}, roles)
        write_results(there, tmp_path / "there", export_process=exporter)
    rebuilt = [r for r in caplog.records if "built again" in r.getMessage()]
    assert len(rebuilt) == (0 if same else 1)
    assert _content(tmp_path / "here") == _content(tmp_path / "there")


def test_a_dead_export_process_is_replaced_by_writing_in_the_run_process(result, tmp_path, caplog):
    there = _copy(result)
    with background.ExportProcess() as exporter:
        os.kill(exporter.pid, signal.SIGKILL)
        with caplog.at_level(logging.DEBUG, logger="dosimetry"):
            write_results(there, tmp_path / "there", export_process=exporter)
    assert any("writing the exports in this process" in r.getMessage() for r in caplog.records)
    for name in DICOM_FILES:
        assert (tmp_path / "there" / name).exists(), name
    here = _copy(result)
    write_results(here, tmp_path / "here")
    assert _content(tmp_path / "here") == _content(tmp_path / "there")


def test_errors_and_log_records_come_back_from_the_export_process(result, tmp_path, caplog):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    missing = blocker / "out"  # cannot be created: a file is in the way
    with pytest.raises(OutputError) as here:
        write_dicom_outputs(result, missing, parts=background.PARTS)
    with background.ExportProcess() as exporter:
        exporter.submit(result, missing)
        with pytest.raises(OutputError) as there:
            exporter.wait()
    assert str(there.value) == str(here.value)

    # highdicom logs at INFO while it builds the SEG and SR, in the export process: the run's level decides
    # which of those records it shows
    for level in (logging.INFO, logging.WARNING):
        (tmp_path / str(level)).mkdir()
        caplog.clear()
        # (the level of the highdicom logger too: a command run earlier in this process sets it)
        with background.ExportProcess() as exporter, caplog.at_level(level), caplog.at_level(level, "highdicom"):
            exporter.submit(result, tmp_path / str(level))
            exports = exporter.wait()
        assert [p.name for p in exports.written] == ["seg.dcm", "sr.dcm"]
        shown = [r for r in caplog.records if r.name.startswith("highdicom")]
        assert bool(shown) == (level == logging.INFO)
        assert all(r.levelno >= level for r in caplog.records)


def test_closing_ends_a_busy_export_process_at_once(result, tmp_path):
    """Ctrl-C during the exports: the run's process closes the export process, which ends at its SIGTERM (not
    at the SIGKILL that close() sends one that did not end within 5 s)."""
    (tmp_path / "out").mkdir()
    exporter = background.ExportProcess()
    exporter.submit(result, tmp_path / "out")  # returns once the export process has read it: it is writing now
    exporter.close()
    assert exporter.exitcode == -signal.SIGTERM


def test_turned_off_by_the_environment(monkeypatch):
    monkeypatch.setenv(background.ENVIRONMENT_SWITCH, "0")
    assert background.start() is None


def test_a_process_that_cannot_start_means_writing_here(monkeypatch):
    def cannot(*args, **kwargs):
        raise OSError("resource temporarily unavailable")

    monkeypatch.setattr(background, "ExportProcess", cannot)
    assert background.start() is None
    monkeypatch.delattr(background.signal, "pthread_sigmask")  # (Windows)
    assert not background.enabled()


def test_the_command_line_uses_it_and_ctrl_c_leaves_nothing(tmp_path):
    """The console command on a DICOM study writes its exports through the export process; SIGINT at several
    moments gives exit 130 with one line and no output, or a complete run (exit 0). No timing is asserted."""
    from test_output_safety import snapshot

    inputs_before = (snapshot(SAMPLE_DICOM), EXTRA_ROI.read_bytes())
    code = "import sys; from dosimetry.cli import main; print('ready', flush=True); sys.exit(main())"
    argv = [sys.executable, "-c", code, "run", str(SAMPLE_DICOM), "--roi", f"tumor:Added T1={EXTRA_ROI}", "-q"]
    done = subprocess.run([*argv, "--out", str(tmp_path / "full")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    timings = json.loads((tmp_path / "full" / "stats.json").read_text())["timings_s"]
    assert "output DICOM (export process)" in timings
    assert sorted(p.name for p in (tmp_path / "full").glob("*.dcm")) == sorted(DICOM_FILES)
    outcomes = []
    for i, delay_s in enumerate((0.3, 1.0, 2.0, 3.0)):
        out = tmp_path / f"out{i}"
        proc = subprocess.Popen([*argv, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay_s)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        outcomes.append(proc.returncode)
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".out{i}")]  # no temporary folder left
        complete = f"error: interrupted after the results were written to {out}; they are complete"
        if proc.returncode == 130 and err.strip() != complete:
            assert err.strip().splitlines() == ["error: interrupted; no output was written"], err
            assert not out.exists()
        else:  # finished (exit 0), or interrupted just after the folder was renamed into place
            assert proc.returncode == 0 or err.strip() == complete, err
            assert sorted(p.name for p in out.glob("*.dcm")) == sorted(DICOM_FILES)
    assert 130 in outcomes
    assert (snapshot(SAMPLE_DICOM), EXTRA_ROI.read_bytes()) == inputs_before  # both processes leave the inputs alone


@pytest.mark.parametrize("verbose,shown", [("-v", False), ("-vv", True)])
def test_library_info_records_with_uids_only_at_vv(tmp_path, capsys, verbose, shown):
    """highdicom logs at INFO each module it copies, with the SOP Instance UID of the image: -v shows the run's
    stages, not those; -vv shows everything."""
    from dosimetry.cli import main

    argv = ["run", str(SAMPLE_DICOM), "--roi", f"tumor:Added T1={EXTRA_ROI}", verbose, "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "dosimetry: load" in err  # -v works
    assert ("copy attributes of module" in err) == shown
