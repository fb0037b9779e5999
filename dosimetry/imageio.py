"""Reading and writing images, and conversion to SimpleITK and nibabel: the one place where LPS meets RAS.

* Our :class:`~dosimetry.image.Image` is in LPS (DICOM patient coordinates), like SimpleITK/ITK.
* NIfTI stores RAS affines; :data:`LPS_TO_RAS` is the only sign flip in the package.
* NIfTI is read and written with nibabel (sform/qform kept exactly, ``scl_slope`` applied);
  NRRD and MHA/MHD with SimpleITK. 3D Slicer ``.seg.nrrd`` files are read by :mod:`dosimetry.roi`.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk

from .errors import GeometryError, InputFileError
from .image import Image

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""Affine that maps LPS world coordinates to RAS (its own inverse)."""

_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_SITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")


# --- SimpleITK -------------------------------------------------------------------------------------------
def to_sitk(image: Image) -> sitk.Image:
    """Convert to a SimpleITK image (array copied; SimpleITK arrays are indexed [k, j, i])."""
    array = image.array
    if array.dtype == bool:
        array = array.astype(np.uint8)
    out = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    out.SetOrigin(tuple(float(v) for v in image.origin_mm))
    out.SetSpacing(tuple(float(v) for v in image.spacing_mm))
    out.SetDirection(tuple(float(v) for v in image.direction.ravel()))
    return out


def from_sitk(sitk_image: sitk.Image) -> Image:
    """Convert a 3-D scalar SimpleITK image to an :class:`Image` (array copied)."""
    if sitk_image.GetDimension() != 3 or sitk_image.GetNumberOfComponentsPerPixel() != 1:
        raise GeometryError(
            f"expected a 3-D scalar image, got dimension {sitk_image.GetDimension()} with "
            f"{sitk_image.GetNumberOfComponentsPerPixel()} components per voxel"
        )
    array = sitk.GetArrayFromImage(sitk_image).transpose(2, 1, 0).copy()
    direction = np.asarray(sitk_image.GetDirection(), dtype=float).reshape(3, 3)
    return Image(array, sitk_image.GetOrigin(), sitk_image.GetSpacing(), direction)


# --- nibabel / NIfTI -----------------------------------------------------------------------------------------
def to_nibabel(image: Image) -> nib.Nifti1Image:
    """A NIfTI-1 image with the RAS affine of ``image`` (both sform and qform set, code 'scanner')."""
    array = image.array.astype(np.uint8) if image.array.dtype == bool else image.array
    nifti = nib.Nifti1Image(np.asarray(array), LPS_TO_RAS @ image.affine_lps)
    nifti.set_sform(nifti.affine, code="scanner")
    nifti.set_qform(nifti.affine, code="scanner")
    nifti.header.set_xyzt_units("mm", "sec")
    return nifti


def from_nibabel(nifti) -> Image:
    """An :class:`Image` from a nibabel spatial image (RAS affine converted to LPS, scaling applied)."""
    array = np.asanyarray(nifti.dataobj)
    while array.ndim > 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise GeometryError(f"expected a 3-D image, got shape {array.shape}")
    return Image.from_affine(np.asarray(array), LPS_TO_RAS @ np.asarray(nifti.affine, dtype=float))


# --- files -------------------------------------------------------------------------------------------------
def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in _NIFTI_SUFFIXES + _SITK_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def read_image(path: str | os.PathLike) -> Image:
    """Read a NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr) or MetaImage (.mha, .mhd) volume.

    Raises
    ------
    InputFileError
        The file does not exist, has an unknown suffix, or cannot be parsed.
    GeometryError
        The file is not a 3-D scalar volume or has a sheared affine.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file; check the path")
    suffix = _suffix(path)
    try:
        if suffix in _NIFTI_SUFFIXES:
            return from_nibabel(nib.load(str(path)))
        if suffix in _SITK_SUFFIXES:
            return from_sitk(sitk.ReadImage(str(path)))
    except GeometryError as err:
        raise GeometryError(f"{path}: {err}") from err
    except Exception as err:  # parsers raise many types; all mean "not a readable image"
        raise InputFileError(f"{path}: cannot read as an image ({type(err).__name__}: {err})") from err
    raise InputFileError(
        f"{path}: unknown image format {suffix!r}; give a .nii, .nii.gz, .nrrd, .nhdr, .mha or .mhd file"
    )


def write_nifti(image: Image, path: str | os.PathLike) -> Path:
    """Write ``image`` as NIfTI-1 (``.nii`` or ``.nii.gz``) via a temporary file renamed into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial{''.join(path.suffixes)}")
    nib.save(to_nibabel(image), str(tmp))
    os.replace(tmp, path)
    return path
