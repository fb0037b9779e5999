"""y90 voxel dosimetry: post-treatment absorbed dose of Y-90 radioembolization from PET/SPECT, CT and ROIs.

The public API::

    from dosimetry import Image, Roi, DosimetryOptions, run_dosimetry, run_dicom_study, read_image, write_results

The names are loaded on first use (PEP 562), so that ``import dosimetry.cli`` does not import numpy,
SimpleITK and matplotlib before the command line has even read its options (and Ctrl-C during start-up
can be answered with one line).
"""

import importlib
import logging

from dosimetry._version import __version__ as __version__

_PUBLIC = {
    "ClinicalOptions": ".stats.clinical",
    "DosimetryError": ".errors",
    "RecoveryCurve": ".stats.recovery",
    "read_recovery_curve": ".stats.recovery",
    "DosimetryOptions": ".pipeline",
    "DosimetryResult": ".pipeline",
    "LoadedStudy": ".pipeline",
    "QuantifiedStudy": ".pipeline",
    "RoiOccupancy": ".pipeline",
    "StudyDose": ".pipeline",
    "compute_statistics": ".pipeline",
    "compute_study_dose": ".pipeline",
    "load_inputs": ".pipeline",
    "quantify_activity": ".pipeline",
    "resample_rois": ".pipeline",
    "run_stages": ".pipeline",
    "Image": ".image",
    "Role": ".roi",
    "Roi": ".roi",
    "read_image": ".io.images",
    "read_mask_roi": ".io.roi_files",
    "read_slicer_segmentation": ".io.roi_files",
    "run_dicom_study": ".pipeline",
    "run_dosimetry": ".pipeline",
    "write_nifti": ".io.images",
    "write_results": ".export.results",
}
"""Public name -> module that defines it."""

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'dosimetry' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))


logging.getLogger("dosimetry").addHandler(logging.NullHandler())
