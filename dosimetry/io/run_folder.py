"""What a ``dosimetry run`` folder and the inputs it records hold: the dose, the CT and the DICOM structures.

Shared by ``dosimetry accumulate`` and ``dosimetry compare`` (:mod:`dosimetry.compare`), which read earlier
runs' folders. The DICOM readers are imported where used (this module is imported by the command line).
"""

from __future__ import annotations

import json
from pathlib import Path

from dosimetry.errors import InputFileError
from dosimetry.image import Image


def read_dose(path) -> Image:
    """A dose map (Gy) from an image file or a DICOM RT Dose (``.dcm``)."""
    from dosimetry.export.rtdose import read_rt_dose
    from dosimetry.io.images import read_image

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file; check the path")
    if path.suffix.lower() == ".dcm":
        return read_rt_dose(path)
    return read_image(path)


def read_ct(path: Path) -> Image:
    """A CT in HU from an image file, or from a DICOM folder holding one CT series."""
    from dosimetry.io.images import read_image

    if path.is_dir():
        from dosimetry.dicom.study import load_ct_from_folder

        return load_ct_from_folder(path)
    return read_image(path)


def rois_of_dicom_run(current: Path) -> tuple[list, list[str]]:
    """The RTSTRUCT/SEG ROIs of the DICOM study a run folder came from (none for other runs)."""
    stats_path = current / "stats.json"
    if not (current.is_dir() and stats_path.is_file()):
        return [], []
    try:
        dicom = json.loads(stats_path.read_text())["inputs"].get("dicom") or {}
    except (ValueError, KeyError, TypeError, AttributeError):
        return [], []
    folder = dicom.get("folder")
    if not folder or not dicom.get("structures") or not Path(folder).is_dir():
        return [], []
    from dosimetry.dicom import load_study

    uids = [
        part["series_uid"]
        for part in (dicom.get("emission"), dicom.get("ct"), dicom.get("structures"))
        if part and part.get("series_uid")
    ]
    # only the structures are needed: relative calibration accepts any emission units and timing
    study = load_study(folder, series_uid=uids, calibration="relative")
    return list(study.rois), ["ROIs: the structures of the DICOM study recorded in the run's stats.json"]


__all__ = ["read_ct", "read_dose", "rois_of_dicom_run"]
