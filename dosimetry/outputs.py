"""Writing a run's results: all files into a temporary folder, renamed into place only when complete.

Files: ``dose.nii.gz`` (Gy, activity grid), ``stats.json`` (schema in README), ``stats.csv`` (one row per
ROI), ``dvh.csv`` (cumulative DVHs, one column per ROI), ``report.html`` (the study report,
:mod:`dosimetry.report`). An interrupted or failed run leaves no output
folder behind (and never a half-written one).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import OutputError
from .imageio import write_nifti
from .pipeline import DosimetryResult
from .report import write_report
from .stats import STAT_KEYS

OUTPUT_FILES = ("dose.nii.gz", "stats.json", "stats.csv", "dvh.csv", "report.html")


def _json_safe(value):
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    return value


def write_stats_json(stats: dict, path: Path) -> None:
    path.write_text(json.dumps(_json_safe(stats), indent=2) + "\n")


def write_stats_csv(stats: dict, path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("name", "role") + STAT_KEYS)
        for entry in stats["rois"]:
            writer.writerow([entry["name"], entry["role"]] + [f"{entry[k]:.6g}" for k in STAT_KEYS])


def write_dvh_csv(dose_axis_gy: np.ndarray, curves: dict[str, np.ndarray], path: Path) -> None:
    names = list(curves)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["dose_gy"] + [f"{n} volume_percent" for n in names])
        for i, dose in enumerate(dose_axis_gy):
            writer.writerow([f"{dose:.6g}"] + [f"{curves[n][i]:.6g}" for n in names])


@contextmanager
def atomic_output_dir(out_dir: str | os.PathLike, *, overwrite: bool = False):
    """A temporary folder beside ``out_dir`` that becomes ``out_dir`` when the ``with`` block succeeds.

    On any exception the temporary folder is removed and ``out_dir`` is left as it was; an existing
    ``out_dir`` is replaced (only with ``overwrite``) after the new content is complete.

    Raises
    ------
    OutputError
        ``out_dir`` exists (without ``overwrite``), or the folder cannot be created or renamed.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise OutputError(f"{out_dir} exists already; choose another --out or add --overwrite")
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=parent))
    except OSError as err:
        raise OutputError(f"cannot create the output folder {out_dir}: {err.strerror}") from err
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=parent))
            os.replace(out_dir, old / "previous")
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OutputError):
            raise
        raise OutputError(f"cannot write {out_dir}: {err.strerror or err}") from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_results(result: DosimetryResult, out_dir: str | os.PathLike, *, overwrite: bool = False,
                  pdf: bool = False) -> Path:
    """Write every output file of ``result`` into ``out_dir``, atomically.

    The files are written into a hidden temporary folder beside ``out_dir`` and the folder is renamed to
    ``out_dir`` at the end. An existing ``out_dir`` is an error unless ``overwrite`` is true, in which
    case it is replaced only after the new results are complete. With ``pdf``, the report is also printed
    to ``report.pdf`` by headless Chromium.

    Raises
    ------
    OutputError
        ``out_dir`` exists (without ``overwrite``) or cannot be created.
    """
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        write_nifti(result.dose_gy.with_array(result.dose_gy.array.astype(np.float32)), tmp / "dose.nii.gz")
        if result.dicom_sources:
            from .export.study import write_dicom_outputs  # DICOM runs only: RT Dose, SR (and SEG)

            warnings = result.stats["warnings"]  # skipped exports say why, in stats.json and on the terminal
            warnings.extend(w for w in write_dicom_outputs(result, tmp).warnings if w not in warnings)
        write_stats_json(result.stats, tmp / "stats.json")
        write_stats_csv(result.stats, tmp / "stats.csv")
        write_dvh_csv(result.dvh_dose_gy, result.dvh_volume_percent, tmp / "dvh.csv")
        write_report(result, tmp / "report.html")
        if pdf:
            from .report.html import html_to_pdf  # needs headless Chromium

            html_to_pdf(tmp / "report.html", tmp / "report.pdf")
    return Path(out_dir)
