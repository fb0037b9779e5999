"""The hospital's nightly job, ``dosimetry nightly``: new Y-90 studies from the PACS, computed, sent back.

One pass per call (:class:`~.job.NightlyPass`); modules with one job each: :mod:`.config` (the TOML file),
:mod:`.network` (pynetdicom SCU and storage SCP), :mod:`.sources` (PACS or export folder),
:mod:`.compute` (the study computed as ``dosimetry run`` does), :mod:`.ledger` (SQLite record of every
study), :mod:`.uids` (hash-derived names and output UIDs), :mod:`.command` (the subcommand).
The PACS administrator's side is in README.md ("For the PACS administrator: the nightly job").
"""
