"""Synthetic COHORT.csv / RESPONSES.csv for the cohort-analysis tests (written by the batch's own writer)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from dosimetry.batch.tables import write_cohort


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def cohort_row(case_id: str, roi: str, role: str, mean_gy: float, **extra) -> dict:
    """A row as ``batch.tables.case_rows`` makes it."""
    row = {
        "case_id": case_id,
        "roi": roi,
        "role": role,
        "volume_ml": extra.pop("volume_ml", 20.0),
        "mean_gy": mean_gy,
        "D2": mean_gy * 1.5,
        "D70": extra.pop("D70", mean_gy * 0.7),
        "V100": 50.0,
        "tn_ratio": 3.0,
        "lung_dose_gy": 5.0,
        "lung_dose_source": "lung shunt estimate",
        "method": "ldm",
        "emission": "Y-90 dose",
    }
    row.update(extra)
    return row


def synthetic_cohort(
    folder: Path,
    *,
    n_patients: int,
    threshold_gy: float | None = 120.0,
    flip: float = 0.0,
    d50_gy: float | None = None,
    slope_per_gy: float = 0.05,
    seed: int = 0,
) -> tuple[Path, Path, list[tuple[float, bool]]]:
    """A cohort whose lesions respond when their mean dose is >= ``threshold_gy`` (outcome flipped with
    probability ``flip``), or with probability ``1/(1+exp(-slope (D - d50)))`` when ``d50_gy`` is given.

    Responders shrink by 35-70% (RECIST PR), non-responders change by -20% to +35% (SD or PD); a patient's
    third lesion is not a target lesion (RECIST 1.1's two per organ). Returns the
    two paths (``folder/cohort.csv`` written by :func:`dosimetry.batch.tables.write_cohort`) and the
    (dose, responded) of each lesion.
    """
    rng = np.random.default_rng(seed)
    cohort, responses, truth = [], [], []
    for p in range(n_patients):
        case_id = f"P{p + 1:03d}"
        cohort.append(cohort_row(case_id, "liver", "liver", 35.0, volume_ml=1500.0))
        lesions = int(rng.integers(1, 4))
        for k in range(lesions):
            roi = f"lesion{k + 1}"
            dose = round(float(rng.lognormal(np.log(130.0), 0.6)), 2)
            cohort.append(cohort_row(case_id, roi, "tumor", dose, D70=round(dose * 0.7, 2)))
            if d50_gy is None:
                responds = (dose >= threshold_gy) != bool(rng.random() < flip)
            else:
                responds = bool(rng.random() < 1.0 / (1.0 + np.exp(-slope_per_gy * (dose - d50_gy))))
            truth.append((dose, responds))
            base = round(float(rng.uniform(20, 90)), 1)
            factor = rng.uniform(0.3, 0.65) if responds else rng.uniform(0.8, 1.35)
            target = "yes" if k < 2 else "no"  # RECIST 1.1: at most two target lesions per organ
            for timepoint, size in (("baseline", base), ("follow-up", round(base * factor, 1))):
                responses.append(
                    {
                        "case_id": case_id,
                        "roi": roi,
                        "timepoint": timepoint,
                        "longest_diameter_mm": size,
                        "target": target,
                    }
                )
        if lesions > 1:
            cohort.append(cohort_row(case_id, "tumors_all", "tumor", 100.0))
    folder.mkdir(parents=True, exist_ok=True)
    write_cohort(folder, cohort)
    return folder / "cohort.csv", write_csv(folder / "responses.csv", responses), truth
