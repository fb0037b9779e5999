"""y90 voxel dosimetry: post-treatment absorbed dose of Y-90 radioembolization from PET/SPECT, CT and ROIs.

The public API::

    from dosimetry import Image, Roi, DosimetryOptions, run_dosimetry, run_dicom_study, read_image, write_results
"""

import logging

from .errors import DosimetryError
from .image import Image
from .imageio import read_image, write_nifti
from .outputs import write_results
from .pipeline import DosimetryOptions, DosimetryResult, run_dicom_study, run_dosimetry
from .roi import Role, Roi
from .roi_io import read_mask_roi, read_slicer_segmentation

__all__ = [
    "DosimetryError", "DosimetryOptions", "DosimetryResult", "Image", "Role", "Roi", "read_image",
    "read_mask_roi", "read_slicer_segmentation", "run_dicom_study", "run_dosimetry", "write_nifti", "write_results",
]
from ._version import __version__  # noqa: E402

logging.getLogger("dosimetry").addHandler(logging.NullHandler())
