"""Writing a run's results: all files into a temporary folder, renamed into place only when complete.

Files: ``dose.nii.gz`` (Gy, activity grid), ``stats.json`` (schema in README), ``stats.csv`` (one row per
ROI), ``dvh.csv`` (cumulative DVHs, one column per ROI), ``report.html`` (the study report,
:mod:`dosimetry.report`), and the marker file ``.y90-dosimetry-output.json`` (software, version, time;
nothing about the patient) by which ``overwrite`` recognises a folder this software wrote.

An output folder never is, contains or lies inside an input (:mod:`dosimetry.export.output_guard`). An interrupted
or failed run leaves nothing new in or beside the output folder (no temporary folder, no parent folder it
created) and the previous output, if any, intact.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from dosimetry.errors import OutputError
from dosimetry.io.images import write_nifti
from dosimetry.export.output_guard import check_output_location, check_replaceable, recorded_input_paths, write_marker
from dosimetry.pipeline import DosimetryResult
from dosimetry.progress import stage
from dosimetry.report import write_report
from dosimetry.stats.results_table import PV_COLUMNS, STUDY_COLUMNS, roi_rows
from dosimetry.stats.roi_stats import STAT_KEYS

OUTPUT_FILES = ("dose.nii.gz", "stats.json", "stats.csv", "dvh.csv", "report.html")


def json_safe(value):
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    return value


def write_stats_json(stats: dict, path: Path) -> None:
    path.write_text(json.dumps(json_safe(stats), indent=2) + "\n")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:.6g}"


def write_stats_csv(stats: dict, path: Path) -> None:
    """One row per ROI: ``name, role``, :data:`~dosimetry.stats.roi_stats.STAT_KEYS`, the lesions' partial-volume
    columns (:data:`~dosimetry.stats.results_table.PV_COLUMNS`, empty for other ROIs) and the study's
    ``tumor_burden_percent`` (on every row; empty when not computed)."""
    columns = STAT_KEYS + PV_COLUMNS + STUDY_COLUMNS
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("name", "role") + columns)
        for row in roi_rows(stats):
            writer.writerow([row["roi"], row["role"]] + [_cell(row[k]) for k in columns])


def write_dvh_csv(dose_axis_gy: np.ndarray, curves: dict[str, np.ndarray], path: Path) -> None:
    names = list(curves)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dose_gy"] + [f"{n} volume_percent" for n in names])
        for i, dose in enumerate(dose_axis_gy):
            writer.writerow([f"{dose:.6g}"] + [f"{curves[n][i]:.6g}" for n in names])


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _remove_folders(folders: list[Path]) -> None:
    """Remove the (empty) folders this run created, deepest first; stop at the first one not empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            break


def _move_into_place(tmp: Path, out_dir: Path, *, overwrite: bool) -> None:
    """Rename the complete ``tmp`` to ``out_dir``; an existing ``out_dir`` is moved aside first, restored
    if the new folder cannot be renamed in, and deleted only once the new one is in place."""
    if not os.path.lexists(out_dir):
        os.replace(tmp, out_dir)
        return
    check_replaceable(out_dir, overwrite=overwrite)  # again: the folder may have changed during the run
    aside = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    try:
        os.replace(out_dir, aside / "previous")
    except BaseException:
        aside.rmdir()
        raise
    try:
        os.replace(tmp, out_dir)
    except BaseException:
        os.replace(aside / "previous", out_dir)
        aside.rmdir()
        raise
    try:
        shutil.rmtree(aside)
    except BaseException:  # interrupted while deleting the previous results: finish, then pass it on
        shutil.rmtree(aside, ignore_errors=True)
        raise


@contextmanager
def atomic_output_dir(
    out_dir: str | os.PathLike, *, overwrite: bool = False, inputs: Iterable[str | os.PathLike | None] = ()
):
    """A temporary folder beside ``out_dir`` that becomes ``out_dir`` when the ``with`` block succeeds.

    The folder gets the marker file :data:`~dosimetry.export.output_guard.MARKER_NAME` first, so that a later
    ``overwrite`` recognises it. On any exception (``KeyboardInterrupt`` included) the temporary folder and
    the parent folders created for it are removed and ``out_dir`` is left as it was. An existing
    ``out_dir`` is replaced only with ``overwrite``, only if this software wrote it (its marker file), and
    only after the new content is complete: it is renamed aside, the new folder renamed in (or the old one
    renamed back on failure), and then deleted.

    Raises
    ------
    OutputError
        ``out_dir`` is, contains or lies inside one of ``inputs``; it exists (without ``overwrite``, or
        without the marker file); or the folder cannot be created or renamed.
    """
    out_dir = Path(out_dir)
    check_output_location(out_dir, inputs)
    check_replaceable(out_dir, overwrite=overwrite)
    parent = out_dir.parent
    created = _missing_folders(parent)
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=parent))
    except OSError as err:
        _remove_folders(created)
        raise OutputError(
            f"cannot create the output folder {out_dir}: {err.strerror or err}; choose another --out"
        ) from err
    except BaseException:
        _remove_folders(created)
        raise
    try:
        write_marker(tmp)
        yield tmp
        os.chmod(tmp, 0o755)
        _move_into_place(tmp, out_dir, overwrite=overwrite)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_folders(created)
        if isinstance(err, OSError) and not isinstance(err, OutputError):
            raise OutputError(
                f"cannot write {out_dir}: {err.strerror or err}; check the space and "
                "permissions there or choose another --out"
            ) from err
        raise


def _dicom_part(result: DosimetryResult, tmp: Path, parts: tuple[str, ...]) -> bool:
    """Write ``parts`` of the DICOM exports (:func:`~dosimetry.export.study.write_dicom_outputs`) here; True
    when their warnings added one to the run's."""
    from dosimetry.export.study import write_dicom_outputs  # DICOM runs only: RT Dose, SR (and SEG)

    return _join_warnings(result, write_dicom_outputs(result, tmp, parts=parts))


def _join_warnings(result: DosimetryResult, exports) -> bool:
    """The exports' warnings (skipped exports say why) join the run's, without repeats; True when one was new."""
    warnings = result.stats["warnings"]
    before = len(warnings)
    warnings.extend(w for w in dict.fromkeys(exports.warnings) if w not in warnings)
    return len(warnings) > before


def write_results(
    result: DosimetryResult,
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    pdf: bool = False,
    isodose_gy: tuple[float, ...] | None = None,
    export_process=None,
) -> Path:
    """Write every output file of ``result`` into ``out_dir``, atomically.

    The files are written into a hidden temporary folder beside ``out_dir`` and the folder is renamed to
    ``out_dir`` at the end. An existing ``out_dir`` is an error unless ``overwrite`` is true, in which
    case it is replaced only after the new results are complete. With ``pdf``, the report is also printed
    to ``report.pdf`` by headless Chromium. ``isodose_gy`` sets the report's isodose lines (None: see
    :func:`dosimetry.report.render_report_html`).

    The time of writing each file is added to ``result.stats["timings_s"]`` (keys ``output FILE``), which
    ``stats.json``, written last, holds.

    ``export_process`` (an :class:`~dosimetry.export.background.ExportProcess`, for the command line) writes
    the SEG and SR of a DICOM run beside the other files; its seconds of work are
    ``timings_s["output DICOM (export process)"]`` and ``output DICOM`` is then the RT Dose, written here, and
    the time waited for it.
    Without it they are written here, in this process. The report shows the exports' warnings either way
    (it is written again when they add one).

    The input files recorded in ``result.stats["inputs"]`` (activity and CT files, ROI sources, DICOM
    folder) are protected: an ``out_dir`` that is, contains or lies inside one of them is refused.

    Raises
    ------
    OutputError
        ``out_dir`` overlaps an input, exists (without ``overwrite``, or was not written by this software)
        or cannot be created.
    """
    inputs = recorded_input_paths(result.stats.get("inputs"))
    # each file is a named stage (progress, and stats["timings_s"]: in the dict, so stats.json holds them)
    timings = result.stats.setdefault("timings_s", {})
    with atomic_output_dir(out_dir, overwrite=overwrite, inputs=inputs) as tmp:
        try:
            _write_files(result, tmp, timings, pdf=pdf, isodose_gy=isodose_gy, export_process=export_process)
        except BaseException:
            if export_process is not None:  # stopped before the temporary folder is removed: it writes there
                export_process.close()
            raise
    return Path(out_dir)


def _write_files(result: DosimetryResult, tmp: Path, timings: dict, *, pdf, isodose_gy, export_process) -> None:
    dicom = bool(result.dicom_sources)
    if dicom and export_process is not None:
        # the SEG and SR are written by it beside the files below (dosimetry.export.background); the RT Dose here
        export_process.submit(result, tmp)
        with stage("output DICOM", timings):
            _dicom_part(result, tmp, ("rtdose",))
    with stage("output dose.nii.gz", timings):
        dose = result.dose_gy
        write_nifti(dose.with_array(np.asarray(dose.array, dtype=np.float32)), tmp / "dose.nii.gz")
    if dicom and export_process is None:
        with stage("output DICOM", timings):
            _dicom_part(result, tmp, ("rtdose", "seg", "sr"))
    with stage("output stats.csv", timings):
        write_stats_csv(result.stats, tmp / "stats.csv")
    with stage("output dvh.csv", timings):
        write_dvh_csv(result.dvh_dose_gy, result.dvh_volume_percent, tmp / "dvh.csv")
    with stage("output report.html", timings):
        write_report(result, tmp / "report.html", isodose_gy=isodose_gy)
    if dicom and export_process is not None:
        with stage("output DICOM", timings):
            exports = export_process.wait()
        if export_process.worker_seconds is not None:
            timings["output DICOM (export process)"] = export_process.worker_seconds
        if _join_warnings(result, exports):
            with stage("output report.html", timings):  # again, with the warnings of the SEG and SR
                write_report(result, tmp / "report.html", isodose_gy=isodose_gy)
    if pdf:
        from dosimetry.report.html import html_to_pdf  # needs headless Chromium

        with stage("output report.pdf", timings):
            html_to_pdf(tmp / "report.html", tmp / "report.pdf")
    # last, so that it holds the other files' timings; written again to hold its own
    with stage("output stats.json", timings):
        write_stats_json(result.stats, tmp / "stats.json")
    write_stats_json(result.stats, tmp / "stats.json")
