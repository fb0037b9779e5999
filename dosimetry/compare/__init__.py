"""Predicted (Tc-99m MAA) against delivered (Y-90) dose, ROI by ROI and across a cohort (``dosimetry compare``).

Modules: :mod:`~dosimetry.compare.runs` (a run folder, its emission verdict), :mod:`~dosimetry.compare.agreement`
(differences, Bland-Altman, correlations), :mod:`~dosimetry.compare.api` (:func:`compare_runs`,
:func:`compare_cohort`), :mod:`~dosimetry.compare.figures`, :mod:`~dosimetry.compare.page` (HTML) and
:mod:`~dosimetry.compare.files` (:func:`write_comparison`).
"""

from dosimetry.compare.api import ComparisonResult, compare_cohort, compare_runs, read_pairs
from dosimetry.compare.files import write_comparison

__all__ = ["ComparisonResult", "compare_cohort", "compare_runs", "read_pairs", "write_comparison"]
