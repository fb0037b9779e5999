"""What a PET header says about the image's resolution: the FWHM of its post-reconstruction Gaussian filter.

DICOM has no attribute for the resolution (FWHM) of a reconstructed image. Scanners write the
post-reconstruction filter into ConvolutionKernel (0018,1210), e.g. ``XYZGAUSSIAN5.00`` or ``GAUSSIAN 6 mm``
(Siemens, GE), and the image cannot be sharper than that filter: the effective FWHM is about
sqrt(FWHM_system^2 + FWHM_filter^2). The filter's FWHM is therefore a **lower bound** of the resolution, used by
the partial-volume check (:mod:`dosimetry.stats.partial_volume`) when the user gives no ``resolution_mm``, and said so.
"""

from __future__ import annotations

import re

__all__ = ["post_filter_fwhm_mm"]

_GAUSS_THEN_NUMBER = re.compile(r"GAUSS\w*\s*[:=]?\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_NUMBER_THEN_GAUSS = re.compile(r"(\d+(?:\.\d+)?)\s*MM\s*(?:FWHM\s*)?GAUSS", re.IGNORECASE)
_MAX_FILTER_FWHM_MM = 30.0  # a larger "FWHM" is not a filter width in mm


def post_filter_fwhm_mm(convolution_kernel) -> float | None:
    """The Gaussian filter FWHM (mm) named in a ConvolutionKernel value, or None when it names none.

    >>> post_filter_fwhm_mm("XYZGAUSSIAN5.00")
    5.0
    >>> post_filter_fwhm_mm(["FBP", "6.0 mm Gaussian"])
    6.0
    >>> post_filter_fwhm_mm("ALL-PASS") is None
    True
    """
    if convolution_kernel is None:
        return None
    values = [convolution_kernel] if isinstance(convolution_kernel, str) else list(convolution_kernel)
    for value in values:
        text = str(value)
        match = _GAUSS_THEN_NUMBER.search(text) or _NUMBER_THEN_GAUSS.search(text)
        if match:
            fwhm = float(match.group(1))
            if 0.0 < fwhm <= _MAX_FILTER_FWHM_MM:
                return fwhm
    return None
