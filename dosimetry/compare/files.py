"""The files of a comparison, written into a temporary folder and renamed into place when complete.

=================================  ===========================================================================
``compare.json``                   everything (see README): runs, alignment, per-ROI pairs, study values, agreement
``compare.csv``                    one row per ROI pair: predicted and delivered mean dose and D70, differences
``bland_altman_<metric>.png``      Bland-Altman plot of the ROIs counted in the agreement (mean_gy, D70)
``scatter_<metric>.png``           delivered against predicted, with the identity line
``compare.html``                   one self-contained page of the above, with the dose images (predicted,
                                   delivered, difference; per lesion) of :mod:`dosimetry.compare.images`
``predicted_on_delivered.nii.gz``  delivered-ROI mode: the predicted dose on the delivered grid (Gy)
``difference_gy.nii.gz``           delivered-ROI mode: delivered - predicted (Gy) on the delivered grid
=================================  ===========================================================================
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from dosimetry.compare.api import METRICS, ComparisonResult
from dosimetry.compare.figures import bland_altman_png, scatter_png
from dosimetry.compare.images import image_sections
from dosimetry.compare.page import comparison_page
from dosimetry.export.output_guard import recorded_input_paths
from dosimetry.export.results import json_safe, atomic_output_dir
from dosimetry.progress import stage

OUTPUT_FILES = ("compare.json", "compare.csv", "compare.html")


def write_compare_csv(stats: dict, path: Path) -> None:
    """One row per ROI pair (``case_id`` first in a cohort)."""
    cohort = "cases" in stats
    columns = ["predicted_roi", "delivered_roi", "role", "in_agreement", "predicted_volume_ml", "delivered_volume_ml"]
    for metric in METRICS:
        columns += [
            f"predicted_{metric}",
            f"delivered_{metric}",
            f"difference_{metric}",
            f"difference_percent_{metric}",
        ]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow((["case_id"] if cohort else []) + columns)
        for e in stats["rois"]:
            values = [e["predicted_roi"], e["delivered_roi"], e.get("role"), e["in_agreement"]]
            values += [e["volume_ml"]["predicted"], e["volume_ml"]["delivered"]]
            for metric in METRICS:
                m = e[metric]
                values += [m["predicted"], m["delivered"], m["difference"], m["difference_percent"]]
            text = [f"{v:.6g}" if isinstance(v, float) else ("" if v is None else str(v)) for v in values]
            writer.writerow(([e["case_id"]] if cohort else []) + text)


def _protected_inputs(result: ComparisonResult) -> list[str]:
    paths = [os.fspath(p) for p in result.input_paths]
    for folder in result.input_paths:
        try:
            paths += recorded_input_paths(json.loads((Path(folder) / "stats.json").read_text()).get("inputs"))
        except (OSError, ValueError, AttributeError):
            pass
    return paths


def _run_stats(stats: dict) -> dict[str, dict]:
    """Each run's own ``stats.json`` (for the page header's dates and activities); unreadable ones left out."""
    out = {}
    for which, run in (stats.get("runs") or {}).items():
        try:
            out[which] = json.loads((Path(run["folder"]) / "stats.json").read_text())
        except (OSError, ValueError, KeyError):
            pass
    return out


def write_comparison(result: ComparisonResult, out_dir: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write the files of ``result`` (module docstring) into ``out_dir``, atomically.

    Raises
    ------
    OutputError
        ``out_dir`` is, contains or lies inside an input run (or its inputs), exists (without
        ``overwrite``, or not written by this software) or cannot be written.
    """
    stats = result.stats
    lesions_or_rois = stats["agreement"]["rois"]
    figures: dict[str, bytes] = {}
    with stage("figures"):
        for metric in METRICS:
            figures[f"bland_altman_{metric}.png"] = bland_altman_png(
                stats["rois"], metric, lesions_or_rois[metric]["bland_altman"]
            )
            figures[f"scatter_{metric}.png"] = scatter_png(stats["rois"], metric)
    with atomic_output_dir(out_dir, overwrite=overwrite, inputs=_protected_inputs(result)) as tmp:
        if result.predicted_on_delivered is not None:
            from dosimetry.io.images import write_nifti

            p, d = result.predicted_on_delivered, result.delivered_dose
            write_nifti(p.with_array(np.asarray(p.array, np.float32)), tmp / "predicted_on_delivered.nii.gz")
            diff = np.asarray(d.array, np.float64) - np.asarray(p.array, np.float64)
            write_nifti(d.with_array(diff.astype(np.float32)), tmp / "difference_gy.nii.gz")
        for name, png in figures.items():
            (tmp / name).write_bytes(png)
        write_compare_csv(stats, tmp / "compare.csv")
        run_stats = _run_stats(stats)
        with stage("images"):
            sections = image_sections(result, run_stats=run_stats)
        page = comparison_page(stats, figures, run_stats=run_stats, image_sections=sections)
        (tmp / "compare.html").write_text(page, encoding="utf-8")
        (tmp / "compare.json").write_text(json.dumps(json_safe(stats), indent=2) + "\n")
    return Path(out_dir)


def format_comparison(stats: dict) -> str:
    """A short plain-text table of the pairs and the agreement of the mean doses."""
    cohort = "cases" in stats
    lines = [f"{'case/ROI' if cohort else 'ROI':<28}{'pred Gy':>9}{'deliv Gy':>10}{'diff Gy':>9}{'diff %':>8}"]
    for e in stats["rois"]:
        m = e["mean_gy"]
        name = (f"{e['case_id']}/" if cohort else "") + (
            e["delivered_roi"]
            if e["predicted_roi"] == e["delivered_roi"]
            else f"{e['predicted_roi']}={e['delivered_roi']}"
        )
        pct = f"{m['difference_percent']:>8.1f}" if m["difference_percent"] is not None else f"{'-':>8}"
        lines.append(f"{name[:27]:<28}{m['predicted']:>9.1f}{m['delivered']:>10.1f}{m['difference']:>9.1f}{pct}")
    for set_name in ("lesions", "rois"):
        ba = stats["agreement"][set_name]["mean_gy"]["bland_altman"]
        if ba:
            lines.append(
                f"{set_name} mean dose: bias {ba['bias']:.1f} Gy, limits of agreement {ba['loa_lower']:.1f} to "
                f"{ba['loa_upper']:.1f} Gy (n = {ba['n']})"
            )
    for w in stats["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


__all__ = ["OUTPUT_FILES", "format_comparison", "write_compare_csv", "write_comparison"]
