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

from dosimetry._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "CRITERIA": "criteria",
        "ClassifiedLesion": "api",
        "CohortAnalysis": "api",
        "CohortInputError": "responses",
        "OUTPUT_FILES": "files",
        "PatientResponse": "api",
        "analyse_cohort": "api",
        "classify_lesion": "criteria",
        "classify_patient": "criteria",
        "write_cohort_analysis": "files",
    },
)
