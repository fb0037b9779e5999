"""DICOM input: find the series of a Y-90 post-treatment study in a folder and read them.

Entry points
------------
:func:`load_study`
    Folder -> :class:`StudyInputs` (activity image at scan time, CT, ROIs, times, warnings, provenance).
:func:`inventory`, :func:`format_inventory`
    The series of a folder, and their table for ``dosimetry inspect``.

One module per job: :mod:`.discovery` (scan, inventory, selection), :mod:`.timing` (DICOM times, decay),
:mod:`.slices` (frames to a 3-D grid), :mod:`.pet`, :mod:`.spect`, :mod:`.ct`, :mod:`.rtstruct`,
:mod:`.seg`, :mod:`.study`.
"""

from dosimetry.dicom.discovery import (
    AmbiguousSeriesError,
    Kind,
    SeriesRecord,
    format_inventory,
    inventory,
    select_series,
)
from dosimetry.dicom.study import StudyInputs, load_study

__all__ = [
    "AmbiguousSeriesError",
    "Kind",
    "SeriesRecord",
    "StudyInputs",
    "format_inventory",
    "inventory",
    "load_study",
    "select_series",
]
