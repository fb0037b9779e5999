"""The files of a cohort analysis, written into a temporary folder that is renamed into place.

=========================  ==========================================================================
``lesions.csv``            one row per lesion: measurements, change, category, responder, the rule that
                           decided it, mean dose, D70, BED, volume
``patients.csv``           one row per patient: target-lesion sums, change, category, rule
``dose_response.json``     every number (criterion, counts, per metric: groups, ROC and AUC with CI,
                           Youden threshold with CI, sensitivity/specificity, no-response/all-response
                           doses, logistic fit with D50), warnings, inputs and options
``<figure>_<metric>.png``  ``roc``, ``groups``, ``logistic`` for each metric
``cohort_analysis.html``   the page with the tables and figures
=========================  ==========================================================================
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from dosimetry.cohort.api import CohortAnalysis
from dosimetry.progress import advance, stage

__all__ = ["OUTPUT_FILES", "write_cohort_analysis"]

OUTPUT_FILES = ("lesions.csv", "patients.csv", "dose_response.json", "cohort_analysis.html")


def _write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as handle:
        if not rows:
            return
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})


def write_cohort_analysis(result: CohortAnalysis, out_dir: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write the files of ``result`` (module docstring) into ``out_dir``, atomically.

    Raises
    ------
    OutputError
        ``out_dir`` is, contains or lies inside an input (COHORT.csv, RESPONSES.csv); it exists (without
        ``overwrite``, or was not written by this software); or it cannot be written.
    """
    from dosimetry.cohort.figures import FIGURES
    from dosimetry.cohort.page import cohort_page
    from dosimetry.export.results import json_safe, atomic_output_dir

    inputs = [result.inputs["cohort"], result.inputs["responses"]]
    with atomic_output_dir(out_dir, overwrite=overwrite, inputs=inputs) as tmp:
        _write_csv(result.lesion_rows(), tmp / "lesions.csv")
        _write_csv(result.patient_rows(), tmp / "patients.csv")
        figures: dict[str, dict[str, bytes]] = {}
        with stage("figures", total=len(result.metrics) * len(FIGURES)):
            for key, metric in result.metrics.items():
                figures[key] = {}
                for name, draw in FIGURES.items():
                    png = draw(metric)
                    (tmp / f"{name}_{key}.png").write_bytes(png)
                    figures[key][name] = png
                    advance()
        (tmp / "cohort_analysis.html").write_text(cohort_page(result, figures))
        (tmp / "dose_response.json").write_text(json.dumps(json_safe(result.to_dict()), indent=2) + "\n")
    return Path(out_dir)
