"""Batch runs of ``dosimetry run`` over a cohort: resumable, each case isolated, local or on Dask.

Modules: :mod:`.cases` (discovery, cases CSV, case ids), :mod:`.runopts` (run options as tokens, CSV
columns), :mod:`.ledger` (SQLite ledger), :mod:`.execute` (one case in its own process: the design note),
:mod:`.executors` (local slots, Dask), :mod:`.commit` (work folder -> ``OUT/<case_id>``), :mod:`.tables`
(summary, cohort, batch.json), :mod:`.api` (:func:`run_batch`), :mod:`.command` (``dosimetry batch``).
"""

from dosimetry._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {"BatchResult": "api", "run_batch": "api"})
