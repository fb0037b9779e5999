"""--out never destroys or pollutes an input; --overwrite replaces only our own output; failures leave no trace.

Every test works on a copy of the sample data in tmp_path, so no test can touch the repository's files.
"""

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

import dosimetry.export.results as outputs
import dosimetry.pipeline as pipeline
from dosimetry.cli import main
from dosimetry.errors import OutputError
from dosimetry.export.output_guard import MARKER_NAME, check_output_location, is_our_output
from dosimetry.io.roi_files import read_mask_roi, read_slicer_segmentation

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under ``folder`` (recursively, links not followed) with the hash of each file's bytes."""
    entries = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            key = str(path.relative_to(folder))
            if path.is_symlink():
                entries[key] = "link:" + os.readlink(path)
            elif path.is_dir():
                entries[key] = "dir"
            else:
                entries[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return entries


@pytest.fixture
def nifti(tmp_path):
    study = tmp_path / "in" / "phantom"
    shutil.copytree(SAMPLES / "phantom", study)
    return study


@pytest.fixture
def dicom(tmp_path):
    study = tmp_path / "in" / "phantom_dicom"
    shutil.copytree(SAMPLES / "phantom_dicom", study)
    return study


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a dose computation starts: the refusal must come before any work."""

    def forbidden(*args, **kwargs):
        raise AssertionError("the run started although --out overlaps an input")

    monkeypatch.setattr(pipeline, "run_dosimetry", forbidden)
    monkeypatch.setattr(pipeline, "run_dicom_study", forbidden)


def nifti_args(study: Path, out, *extra) -> list[str]:
    return [
        "run",
        "--activity",
        str(study / "activity_bqml.nii.gz"),
        "--ct",
        str(study / "ct_hu.nii.gz"),
        "--segmentation",
        str(study / "rois.seg.nrrd"),
        "--roi",
        f"other:liver mask={study / 'rois' / 'liver.nii.gz'}",
        "--roi",
        f"tumor:T1 mask={study / 'rois' / 'tumor_T1.nii.gz'}",
        "--scan-delay-h",
        "20",
        "--activity-units",
        "Bq/mL",
        "--out",
        str(out),
        "-q",
        *extra,
    ]


def dicom_args(study, out, *extra) -> list[str]:
    return ["run", str(study), "--residual-fraction", "0.03", "--lung-shunt", "0.05", "--out", str(out), "-q", *extra]


def assert_refused(capsys, argv, *names):
    assert main(argv) == OutputError.exit_code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --out "), err
    assert "choose an --out outside the inputs" in err[0]
    for name in names:
        assert str(name) in err[0]


# --- --out overlapping an input: exit 8 before any work, every input byte-identical -----------------------------


@pytest.mark.parametrize("overwrite", [True, False])
def test_out_equal_to_the_study_folder(dicom, no_work, capsys, overwrite):
    before = snapshot(dicom)
    assert len([k for k, v in before.items() if v != "dir"]) > 40
    assert_refused(capsys, dicom_args(dicom, dicom, *(["--overwrite"] if overwrite else [])), dicom)
    assert snapshot(dicom) == before


@pytest.mark.parametrize("where", ["inside", "inside a series folder", "parent", "grandparent"])
def test_out_inside_or_containing_the_study_folder(dicom, no_work, capsys, where):
    out = {
        "inside": dicom / "results",
        "inside a series folder": dicom / "CT" / "results",
        "parent": dicom.parent,
        "grandparent": dicom.parent.parent,
    }[where]
    top = dicom.parent.parent
    before = snapshot(top)
    assert_refused(capsys, dicom_args(dicom, out, "--overwrite"), out, dicom)
    assert snapshot(top) == before


@pytest.mark.parametrize(
    "target",
    [
        "activity_bqml.nii.gz",
        "ct_hu.nii.gz",
        "rois/liver.nii.gz",
        "rois/tumor_T1.nii.gz",
        "rois.seg.nrrd",
        "rois",
        "activity_bqml.nii.gz/x",
        ".",
    ],
)
@pytest.mark.parametrize("overwrite", [True, False])
def test_out_equal_to_inside_or_containing_an_input_file(nifti, no_work, capsys, target, overwrite):
    out = nifti / target
    before = snapshot(nifti.parent)
    assert_refused(capsys, nifti_args(nifti, out, *(["--overwrite"] if overwrite else [])), out)
    assert snapshot(nifti.parent) == before


def test_out_a_symlink_to_an_input(dicom, nifti, tmp_path, no_work, capsys):
    (tmp_path / "link_to_study").symlink_to(dicom, target_is_directory=True)
    (tmp_path / "link_to_ct").symlink_to(nifti / "ct_hu.nii.gz")
    before = snapshot(tmp_path)
    assert_refused(capsys, dicom_args(dicom, tmp_path / "link_to_study", "--overwrite"), "link_to_study")
    assert_refused(capsys, nifti_args(nifti, tmp_path / "link_to_ct", "--overwrite"), "link_to_ct")
    assert snapshot(tmp_path) == before


def test_out_through_a_symlinked_parent_and_relative_paths(dicom, tmp_path, no_work, capsys, monkeypatch):
    (tmp_path / "alias").symlink_to(tmp_path / "in", target_is_directory=True)
    before = snapshot(tmp_path)
    # --out through a symlinked parent folder, the study given plainly
    assert_refused(capsys, dicom_args(dicom, tmp_path / "alias" / "phantom_dicom" / "res", "--overwrite"))
    # the study through the symlinked parent, --out plainly inside it
    assert_refused(capsys, dicom_args(tmp_path / "alias" / "phantom_dicom", dicom / "res"))
    # relative paths and '..' from inside the study
    monkeypatch.chdir(dicom / "CT")
    assert_refused(capsys, dicom_args("..", "../results"), "../results")
    assert_refused(capsys, dicom_args("../../phantom_dicom/PET/..", "../CT/../PET", "--overwrite"))
    assert_refused(capsys, dicom_args(dicom, "../../..", "--overwrite"))
    assert snapshot(tmp_path) == before


def test_an_input_that_is_a_link_inside_out_or_a_hard_link_of_out(nifti, tmp_path, no_work, capsys):
    out = tmp_path / "res"
    out.mkdir()
    (out / MARKER_NAME).write_text(json.dumps({"software": "y90-dosimetry"}))  # looks like our output
    (out / "activity.nii.gz").symlink_to(nifti / "activity_bqml.nii.gz")
    os.link(nifti / "ct_hu.nii.gz", tmp_path / "hard.nii.gz")
    args = nifti_args(nifti, out, "--overwrite")
    args[args.index("--activity") + 1] = str(out / "activity.nii.gz")
    before = snapshot(tmp_path)
    assert_refused(capsys, args, out, "activity.nii.gz")
    assert_refused(capsys, nifti_args(nifti, tmp_path / "hard.nii.gz", "--overwrite"), "hard.nii.gz")
    assert snapshot(tmp_path) == before


def test_a_sibling_with_a_similar_name_is_not_an_overlap(dicom, tmp_path):
    """Paths are compared by components: 'phantom_dicom_results' does not lie inside 'phantom_dicom'."""
    check_output_location(tmp_path / "in" / "phantom_dicom_results", [dicom, dicom / "RTSTRUCT.dcm"])
    check_output_location(tmp_path / "in" / "phantom_dicom2" / "x", [dicom])
    with pytest.raises(OutputError, match="lies inside"):
        check_output_location(dicom / "x", [dicom])
    with pytest.raises(OutputError, match="contains"):
        check_output_location(tmp_path, [dicom / "RTSTRUCT.dcm"])


# --- --overwrite replaces only a folder this software wrote ----------------------------------------------------


@pytest.mark.parametrize("kind", ["folder", "file", "symlink to our output", "fake marker"])
def test_overwrite_refuses_what_we_did_not_write(nifti, tmp_path, no_work, capsys, kind):
    out = tmp_path / "elsewhere"
    if kind == "folder":
        out.mkdir()
        (out / "notes.txt").write_text("a physicist's notes")
    elif kind == "file":
        out.write_text("a file")
    elif kind == "fake marker":
        out.mkdir()
        (out / MARKER_NAME).write_text("{}")
    else:
        ours = tmp_path / "ours"
        ours.mkdir()
        (ours / MARKER_NAME).write_text(json.dumps({"software": "y90-dosimetry"}))
        out.symlink_to(ours, target_is_directory=True)
    before = snapshot(tmp_path)
    assert main(nifti_args(nifti, out, "--overwrite")) == OutputError.exit_code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not written by y90-dosimetry" in err[0] and "remove it yourself" in err[0]
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["run", "accumulate"])
def test_help_says_what_overwrite_replaces(capsys, command):
    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"only if it is a folder written by this software (it holds {MARKER_NAME})" in text
    assert "any other folder or file is never replaced or deleted" in text


def test_overwrite_replaces_our_own_output(nifti, tmp_path):
    out = tmp_path / "res"
    assert main(nifti_args(nifti, out)) == 0
    marker = json.loads((out / MARKER_NAME).read_text())
    assert set(marker) == {"software", "version", "written_utc", "note"} and marker["software"] == "y90-dosimetry"
    assert is_our_output(out)
    (out / "old.txt").write_text("from the first run")
    listing = sorted(os.listdir(tmp_path))
    assert main(nifti_args(nifti, out, "--overwrite")) == 0
    assert not (out / "old.txt").exists() and (out / "stats.json").is_file() and is_our_output(out)
    assert sorted(os.listdir(tmp_path)) == listing


def test_dicom_output_marker_holds_nothing_about_the_patient(dicom, tmp_path):
    import pydicom

    out = tmp_path / "res"
    assert main(dicom_args(dicom, out)) == 0
    text = (out / MARKER_NAME).read_text()
    ds = pydicom.dcmread(next((dicom / "PET").iterdir()), stop_before_pixels=True)
    for value in (str(ds.PatientName), ds.PatientID, ds.StudyInstanceUID, str(dicom)):
        assert value not in text


# --- failures and interruptions while writing: nothing new in or beside --out, the previous output intact ----


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    study = tmp_path_factory.mktemp("api") / "phantom"
    shutil.copytree(SAMPLES / "phantom", study)
    rois = [
        read_mask_roi(study / "rois" / "liver.nii.gz", "liver"),
        read_mask_roi(study / "rois" / "tumor_T1.nii.gz", "tumor", "T1"),
    ]
    options = pipeline.DosimetryOptions(activity_units="Bq/mL", scan_delay_h=20.0)
    return pipeline.run_dosimetry(
        str(study / "activity_bqml.nii.gz"), rois, ct=str(study / "ct_hu.nii.gz"), options=options
    ), study


def previous_output(result, out: Path) -> dict:
    outputs.write_results(result[0], out)
    (out / "earlier.txt").write_text("the previous results")
    return snapshot(out)


@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError, RuntimeError])
@pytest.mark.parametrize("with_previous", [False, True])
def test_writer_failing_midway_leaves_nothing(result, tmp_path, monkeypatch, error, with_previous):
    out = tmp_path / "res"
    kept = previous_output(result, out) if with_previous else None
    listing = snapshot(tmp_path)

    def dvh_fails(*args, **kwargs):  # after dose.nii.gz, stats.json and stats.csv were written
        raise error("simulated")

    monkeypatch.setattr(outputs, "write_dvh_csv", dvh_fails)
    with pytest.raises(OutputError if error is OSError else error):
        outputs.write_results(result[0], out, overwrite=True)
    assert snapshot(tmp_path) == listing
    if with_previous:
        assert snapshot(out) == kept


def test_failure_removes_the_parent_folders_it_created(result, tmp_path, monkeypatch):
    monkeypatch.setattr(outputs, "write_report", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        outputs.write_results(result[0], tmp_path / "a" / "b" / "res")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("failing_call", [1, 2])
@pytest.mark.parametrize("error", [KeyboardInterrupt, OSError])
def test_swap_failing_at_each_rename_keeps_the_previous_output(result, tmp_path, monkeypatch, failing_call, error):
    """Call 1 moves the previous output aside, call 2 moves the new one in: either failing restores it."""
    out = tmp_path / "res"
    kept = previous_output(result, out)
    listing = snapshot(tmp_path)
    real_replace, calls = os.replace, []

    def replace(src, dst):
        if Path(src).parent == tmp_path:  # the swap's renames (the writers' own renames happen inside the folder)
            calls.append((src, dst))
            if len(calls) == failing_call:
                raise error("simulated")
        return real_replace(src, dst)

    monkeypatch.setattr(outputs.os, "replace", replace)
    with pytest.raises(OutputError if error is OSError else error):
        outputs.write_results(result[0], out, overwrite=True)
    monkeypatch.undo()
    assert len(calls) == failing_call
    assert snapshot(tmp_path) == listing
    assert snapshot(out) == kept


def test_interrupt_while_deleting_the_previous_output(result, tmp_path, monkeypatch):
    """The new output is in place; the previous one is still deleted; the interrupt is passed on."""
    out = tmp_path / "res"
    previous_output(result, out)
    real_rmtree, calls = shutil.rmtree, []

    def rmtree(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(outputs.shutil, "rmtree", rmtree)
    with pytest.raises(KeyboardInterrupt):
        outputs.write_results(result[0], out, overwrite=True)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["res"]
    assert not (out / "earlier.txt").exists() and is_our_output(out)


def test_cannot_make_the_aside_folder(result, tmp_path, monkeypatch):
    out = tmp_path / "res"
    kept = previous_output(result, out)
    listing = snapshot(tmp_path)
    real_mkdtemp = outputs.tempfile.mkdtemp

    def mkdtemp(*args, prefix="", **kwargs):
        if ".old-" in prefix:
            raise PermissionError(13, "Permission denied")
        return real_mkdtemp(*args, prefix=prefix, **kwargs)

    monkeypatch.setattr(outputs.tempfile, "mkdtemp", mkdtemp)
    with pytest.raises(OutputError, match="Permission denied"):
        outputs.write_results(result[0], out, overwrite=True)
    assert snapshot(tmp_path) == listing and snapshot(out) == kept


def test_ctrl_c_during_a_command_line_run_keeps_the_previous_output(nifti, tmp_path, monkeypatch, capsys):
    out = tmp_path / "res"
    assert main(nifti_args(nifti, out)) == 0
    kept, listing = snapshot(out), snapshot(tmp_path)
    monkeypatch.setattr(outputs, "write_stats_csv", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert main(nifti_args(nifti, out, "--overwrite")) == 130
    assert snapshot(tmp_path) == listing and snapshot(out) == kept


# --- the same protection through the API (write_results) ----------------------------------------------------


@pytest.mark.parametrize("target", ["activity_bqml.nii.gz", "ct_hu.nii.gz", "rois/liver.nii.gz", "rois", ".", ".."])
def test_write_results_refuses_an_input(result, target):
    res, study = result
    before = snapshot(study.parent)
    with pytest.raises(OutputError, match="choose an --out outside the inputs"):
        outputs.write_results(res, study / target, overwrite=True)
    assert snapshot(study.parent) == before


def test_write_results_refuses_the_segmentation_and_the_dicom_folder(nifti, dicom, tmp_path):
    rois, _ = read_slicer_segmentation(nifti / "rois.seg.nrrd")
    res = pipeline.run_dosimetry(
        str(nifti / "activity_bqml.nii.gz"),
        rois,
        options=pipeline.DosimetryOptions(activity_units="Bq/mL", scan_delay_h=20.0),
    )
    assert res.stats["inputs"]["rois"][0]["source"] == f"{nifti / 'rois.seg.nrrd'}#Liver"
    with pytest.raises(OutputError, match="is the input .*rois.seg.nrrd: .*choose an --out outside the inputs"):
        outputs.write_results(res, nifti / "rois.seg.nrrd", overwrite=True)
    options = pipeline.DosimetryOptions(residual_fraction=0.03, lung_shunt_fraction=0.05)
    res = pipeline.run_dicom_study(dicom, options=options)
    before = snapshot(tmp_path / "in")
    for out in (dicom, dicom / "PET", dicom / "results", tmp_path / "in"):
        with pytest.raises(OutputError, match="phantom_dicom"):
            outputs.write_results(res, out, overwrite=True)
    assert snapshot(tmp_path / "in") == before
    outputs.write_results(res, tmp_path / "res")  # and outside the inputs it works
    assert (tmp_path / "res" / "rtdose.dcm").is_file()


def test_write_results_overwrite_refuses_a_folder_without_marker(result, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "a.txt").write_text("keep")
    with pytest.raises(OutputError, match="not written by y90-dosimetry"):
        outputs.write_results(result[0], out, overwrite=True)
    assert snapshot(tmp_path) == {"mine": "dir", "mine/a.txt": hashlib.sha256(b"keep").hexdigest()}


# --- accumulate ---------------------------------------------------------------------------------------------


def _accumulate(current, out, *extra):
    return [
        "accumulate",
        "--current",
        str(current),
        "--previous",
        str(Path(current) / "dose.nii.gz"),
        "--out",
        str(out),
        "-q",
        *extra,
    ]


@pytest.fixture
def run_folder(nifti, tmp_path):
    run = tmp_path / "run"
    assert main(nifti_args(nifti, run)) == 0
    return run


@pytest.mark.parametrize(
    "where",
    [
        "current run folder",
        "inside the run folder",
        "recorded CT",
        "recorded mask",
        "previous dose",
        "parent of everything",
    ],
)
def test_accumulate_refuses_an_out_overlapping_an_input(run_folder, nifti, tmp_path, capsys, where):
    out = {
        "current run folder": run_folder,
        "inside the run folder": run_folder / "acc",
        "recorded CT": nifti / "ct_hu.nii.gz",
        "recorded mask": nifti / "rois" / "liver.nii.gz",
        "previous dose": run_folder / "dose.nii.gz",
        "parent of everything": tmp_path,
    }[where]
    before = snapshot(tmp_path)
    assert_refused(capsys, _accumulate(run_folder, out, "--overwrite"), out)
    assert snapshot(tmp_path) == before


def test_accumulate_writes_the_marker_and_overwrites_only_its_own_output(run_folder, tmp_path, capsys):
    out = tmp_path / "acc"
    assert main(_accumulate(run_folder, out)) == 0
    assert is_our_output(out) and (out / "accumulate.json").is_file()
    assert main(_accumulate(run_folder, out, "--overwrite")) == 0
    other = tmp_path / "other"
    other.mkdir()
    assert main(_accumulate(run_folder, other, "--overwrite")) == OutputError.exit_code
    assert "not written by y90-dosimetry" in capsys.readouterr().err
    assert os.listdir(other) == []
