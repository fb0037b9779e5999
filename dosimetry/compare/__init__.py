"""Predicted (Tc-99m MAA) against delivered (Y-90) dose, ROI by ROI and across a cohort (``dosimetry compare``).

Modules: :mod:`~dosimetry.compare.runs` (a run folder, its emission verdict), :mod:`~dosimetry.compare.agreement`
(differences, Bland-Altman, correlations), :mod:`~dosimetry.compare.api` (:func:`compare_runs`,
:func:`compare_cohort`), :mod:`~dosimetry.compare.figures`, :mod:`~dosimetry.compare.page` (HTML) and
:mod:`~dosimetry.compare.files` (:func:`write_comparison`).
"""

from dosimetry._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "ComparisonResult": "api",
        "compare_cohort": "api",
        "compare_runs": "api",
        "read_pairs": "api",
        "write_comparison": "files",
    },
)
