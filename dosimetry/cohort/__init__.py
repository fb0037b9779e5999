"""Cohort analysis: tumour response by RECIST 1.1, mRECIST, WHO or EASL, and its relation to the dose.

``analyse_cohort(cohort_csv, responses_csv, criteria=...)`` reads the ``cohort.csv`` of ``dosimetry batch``
and a RESPONSES.csv of lesion sizes, classifies each lesion and patient and compares responders with
non-responders by lesion mean dose, D70 and BED (ROC, AUC and Youden threshold with bootstrap CIs, the doses
below which none and above which all responded, a logistic fit); ``write_cohort_analysis`` writes the
tables, figures, JSON and an HTML page. The command is ``dosimetry cohort``.

Modules: ``responses`` (reading and checking both files), ``criteria`` (the published rules),
``dose_response`` (the statistics: scikit-learn, scipy, statsmodels), ``figures`` (PNG), ``page`` (HTML),
``api`` (``analyse_cohort``), ``files`` (the output folder).
"""

from dosimetry.cohort.api import ClassifiedLesion, CohortAnalysis, PatientResponse, analyse_cohort
from dosimetry.cohort.criteria import CRITERIA, classify_lesion, classify_patient
from dosimetry.cohort.files import OUTPUT_FILES, write_cohort_analysis
from dosimetry.cohort.responses import CohortInputError

__all__ = [
    "CRITERIA",
    "ClassifiedLesion",
    "CohortAnalysis",
    "CohortInputError",
    "OUTPUT_FILES",
    "PatientResponse",
    "analyse_cohort",
    "classify_lesion",
    "classify_patient",
    "write_cohort_analysis",
]
