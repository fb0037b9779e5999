"""A run's per-ROI and per-lesion results as rows of plain values: for ``stats.csv`` and for notebooks.

:func:`roi_rows` gives one row per ROI (given and derived) with the columns :func:`roi_columns`: the
statistics of :data:`~dosimetry.stats.roi_stats.STAT_KEYS`, the partial-volume fields of lesions and the study's
hepatic tumour burden. :func:`lesion_rows` gives one row per lesion (given tumour ROI) with its
partial-volume check, recovery correction and radiobiology. :data:`UNITS` names the unit of every column.
``DosimetryResult.to_dataframe()`` and ``DosimetryResult.lesions()`` wrap them in pandas DataFrames (pandas
is optional: the command line and the nightly job do not need it).
"""

from __future__ import annotations

from dosimetry.stats.roi_stats import STAT_KEYS

__all__ = ["LESION_COLUMNS", "PV_COLUMNS", "UNITS", "lesion_rows", "roi_columns", "roi_rows", "to_frame"]

PV_COLUMNS: tuple[str, ...] = (
    "mean_gy_pvc",
    "recovery_coefficient",
    "equivalent_diameter_mm",
    "diameter_per_fwhm",
    "partial_volume_warning",
)
"""Per-lesion partial-volume columns of ``stats.csv`` (empty for other ROIs)."""

STUDY_COLUMNS: tuple[str, ...] = ("tumor_burden_percent",)
"""Per-study columns repeated on every row of ``stats.csv``."""

LESION_COLUMNS: tuple[str, ...] = (
    "roi",
    "volume_ml",
    "mean_gy",
    "mean_gy_pvc",
    "recovery_coefficient",
    "recovery_clamped",
    "D70",
    "D90",
    "V100",
    "bed_mean_gy",
    "eud_gy",
    "equivalent_diameter_mm",
    "resolution_mm",
    "diameter_per_fwhm",
    "partial_volume_warning",
    "partial_volume_reason",
)

UNITS: dict[str, str] = {
    "roi": "",
    "role": "",
    "derived": "",
    "volume_ml": "mL",
    "mass_g": "g",
    "activity_mbq": "MBq (at implant)",
    "mean_gy": "Gy (mass-weighted)",
    "std_gy": "Gy",
    "min_gy": "Gy",
    "max_gy": "Gy",
    "median_gy": "Gy",
    "mean_gy_pvc": "Gy (mean_gy / recovery_coefficient)",
    "recovery_coefficient": "1 (measured / true concentration)",
    "recovery_clamped": "",
    "equivalent_diameter_mm": "mm",
    "resolution_mm": "mm (FWHM)",
    "diameter_per_fwhm": "1",
    "partial_volume_warning": "",
    "partial_volume_reason": "",
    "tumor_burden_percent": "% of liver volume",
    "bed_mean_gy": "Gy (BED)",
    "eud_gy": "Gy",
}
"""Unit of every column; DVH columns: ``D<x>`` in Gy (dose to x% of the volume), ``V<x>`` in % of volume."""


def _unit(column: str) -> str:
    if column in UNITS:
        return UNITS[column]
    return "Gy" if column.startswith("D") else "% of volume"


def roi_columns() -> list[str]:
    """Columns of :func:`roi_rows` (``name`` is ``roi`` in the DataFrame)."""
    return ["roi", "role", "derived", *STAT_KEYS, *PV_COLUMNS, *STUDY_COLUMNS]


def _burden(stats: dict):
    return (stats.get("tumor_burden") or {}).get("burden_percent")


def roi_rows(stats: dict) -> list[dict]:
    """One row per ROI of ``stats['rois']`` (columns :func:`roi_columns`; None where not applicable)."""
    burden = _burden(stats)
    rows = []
    for entry in stats["rois"]:
        pv = entry.get("partial_volume") or {}
        row = {"roi": entry["name"], "role": entry["role"], "derived": "derived" in entry}
        row.update({key: entry[key] for key in STAT_KEYS})
        row.update(
            {
                "mean_gy_pvc": entry.get("mean_gy_pvc"),
                "recovery_coefficient": pv.get("recovery_coefficient"),
                "equivalent_diameter_mm": pv.get("equivalent_diameter_mm"),
                "diameter_per_fwhm": pv.get("ratio"),
                "partial_volume_warning": pv.get("warning"),
                "tumor_burden_percent": burden,
            }
        )
        rows.append(row)
    return rows


def lesion_rows(stats: dict) -> list[dict]:
    """One row per lesion (given tumour ROI), columns :data:`LESION_COLUMNS`."""
    radiobiology = {r["name"]: r for r in (stats.get("radiobiology") or {}).get("rois", [])}
    rows = []
    for entry in stats["rois"]:
        if entry["role"] != "tumor" or "derived" in entry:
            continue
        pv = entry.get("partial_volume") or {}
        rb = radiobiology.get(entry["name"], {})
        rows.append(
            {
                "roi": entry["name"],
                "volume_ml": entry["volume_ml"],
                "mean_gy": entry["mean_gy"],
                "mean_gy_pvc": entry.get("mean_gy_pvc"),
                "recovery_coefficient": pv.get("recovery_coefficient"),
                "recovery_clamped": pv.get("recovery_clamped"),
                "D70": entry["D70"],
                "D90": entry["D90"],
                "V100": entry["V100"],
                "bed_mean_gy": rb.get("bed_mean_gy"),
                "eud_gy": rb.get("eud_gy"),
                "equivalent_diameter_mm": pv.get("equivalent_diameter_mm"),
                "resolution_mm": pv.get("resolution_mm"),
                "diameter_per_fwhm": pv.get("ratio"),
                "partial_volume_warning": pv.get("warning"),
                "partial_volume_reason": pv.get("reason"),
            }
        )
    return rows


def to_frame(rows: list[dict], columns: list[str] | tuple[str, ...]):
    """A pandas DataFrame of ``rows`` with ``columns``; ``frame.attrs['units']`` names each column's unit.

    Raises
    ------
    ImportError
        pandas is not installed (it is optional), with the command that installs it.
    """
    try:
        import pandas as pd
    except ImportError as err:
        raise ImportError(
            "DataFrames of results need pandas, which y90-dosimetry does not install by itself: "
            "pip install pandas (or use result.stats, a plain dict)"
        ) from err
    frame = pd.DataFrame(rows, columns=list(columns))
    frame.attrs["units"] = {column: _unit(column) for column in columns}
    return frame
