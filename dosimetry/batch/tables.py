"""The batch's tables in OUT, each written to a temporary file and renamed: ``summary.csv``, ``cohort.csv``,
``batch.json``.

* ``summary.csv``: ``case_id, status, exit_code, error, seconds``, one row per case in case order; status
  ``ok`` (computed by this batch), ``skipped`` (done earlier with the same inputs, options and version: kept;
  ``seconds`` is the time it took then) or ``failed``.
* ``cohort.csv``: one row per case (ok or skipped) and ROI of its ``stats.csv`` (derived ROIs included):
  ``case_id, roi, role, volume_ml, mean_gy``, the DVH metrics (``D2`` ... ``V200``), and the case's
  ``tn_ratio`` (tumour-to-normal dose ratio), ``lung_dose_gy`` (the lung ROI's mean dose, else the
  lung-shunt estimate) with ``lung_dose_source`` (``lung ROI``, ``lung shunt estimate`` or empty),
  ``method`` and ``emission`` (``Y-90 dose`` or ``predictive dose from Tc-99m MAA``), ``tumor_burden_percent``
  (hepatic tumour burden, % of liver volume; empty when not computed); lesion rows also carry the
  partial-volume columns of ``stats.csv`` (``mean_gy_pvc``, ``recovery_coefficient``,
  ``equivalent_diameter_mm``, ``diameter_per_fwhm``, ``partial_volume_warning``).
* ``batch.json``: options, software version, counts, start and end times, exit code.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from pathlib import Path

SUMMARY_COLUMNS = ("case_id", "status", "exit_code", "error", "seconds")
CASE_COLUMNS = ("tn_ratio", "lung_dose_gy", "lung_dose_source", "method", "emission", "tumor_burden_percent")
LESION_COLUMNS = (
    "mean_gy_pvc",
    "recovery_coefficient",
    "equivalent_diameter_mm",
    "diameter_per_fwhm",
    "partial_volume_warning",
)
"""The lesion columns of ``stats.csv`` (:data:`dosimetry.stats.results_table.PV_COLUMNS`; named here so that the
batch process does not import numpy; a test checks they are equal). Empty for runs of older versions."""
_DVH_KEY = re.compile(r"[DV]\d+")


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _csv_text(columns, rows) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buffer.getvalue()


def write_summary(out_dir: Path, summary: list[dict]) -> None:
    write_atomic(out_dir / "summary.csv", _csv_text(SUMMARY_COLUMNS, summary))


def _number(text: str):
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def _lesion_value(text: str | None):
    if text in (None, ""):
        return None
    return text if text in ("true", "false") else _number(text)


def case_rows(case_dir: Path, case_id: str) -> list[dict]:
    """The cohort rows of one finished case, from its ``stats.csv`` and ``stats.json``."""
    stats = json.loads((case_dir / "stats.json").read_text())
    lung = stats.get("lung") or {}
    if lung.get("mean_gy") is not None:
        lung_dose, lung_source = lung["mean_gy"], "lung ROI"
    elif lung.get("lsf_estimate_gy") is not None:
        lung_dose, lung_source = lung["lsf_estimate_gy"], "lung shunt estimate"
    else:
        lung_dose, lung_source = None, ""
    case = {
        "tn_ratio": (stats.get("tumor_to_normal") or {}).get("dose_ratio"),
        "lung_dose_gy": lung_dose,
        "lung_dose_source": lung_source,
        "method": stats.get("method"),
        "emission": (stats.get("emission") or {}).get("label"),
        "tumor_burden_percent": (stats.get("tumor_burden") or {}).get("burden_percent"),
    }
    rows = []
    with (case_dir / "stats.csv").open(newline="") as handle:
        for entry in csv.DictReader(handle):
            row = {
                "case_id": case_id,
                "roi": entry["name"],
                "role": entry["role"],
                "volume_ml": _number(entry["volume_ml"]),
                "mean_gy": _number(entry["mean_gy"]),
            }
            row.update({k: _number(v) for k, v in entry.items() if _DVH_KEY.fullmatch(k)})
            row.update({k: _lesion_value(entry.get(k)) for k in LESION_COLUMNS})
            row.update(case)
            rows.append(row)
    return rows


def cohort_columns(rows: list[dict]) -> list[str]:
    dvh: list[str] = []
    for row in rows:
        dvh += [k for k in row if _DVH_KEY.fullmatch(k) and k not in dvh]
    return ["case_id", "roi", "role", "volume_ml", "mean_gy", *dvh, *LESION_COLUMNS, *CASE_COLUMNS]


def write_cohort(out_dir: Path, rows: list[dict]) -> None:
    write_atomic(out_dir / "cohort.csv", _csv_text(cohort_columns(rows), rows))


def write_batch_json(out_dir: Path, record: dict) -> None:
    write_atomic(out_dir / "batch.json", json.dumps(record, indent=2) + "\n")
