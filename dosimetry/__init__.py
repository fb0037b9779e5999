"""y90 voxel dosimetry: post-treatment absorbed dose of Y-90 radioembolization from PET/SPECT, CT and ROIs."""

import logging

from .image import Image

__all__ = ["Image"]
__version__ = "0.1.0"

logging.getLogger("dosimetry").addHandler(logging.NullHandler())
