"""Reading and writing images, and conversion to SimpleITK and nibabel: the one place where LPS meets RAS.

* Our :class:`~dosimetry.image.Image` is in LPS (DICOM patient coordinates), like SimpleITK/ITK.
* NIfTI stores RAS affines; :data:`LPS_TO_RAS` is the only sign flip in the package.
* NIfTI is read and written with nibabel (sform/qform kept exactly, ``scl_slope`` applied);
  NRRD and MHA/MHD with SimpleITK. 3D Slicer ``.seg.nrrd`` files are read by :mod:`dosimetry.roi`.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np

from dosimetry.errors import GeometryError, InputFileError
from dosimetry.image import Image

if TYPE_CHECKING:
    import SimpleITK as sitk

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""Affine that maps LPS world coordinates to RAS (its own inverse)."""

log = logging.getLogger("dosimetry")

MIN_SPACING_MM: float = 0.01
"""Smallest voxel size accepted from a file (mm): below it the header is in metres or broken."""
MAX_SPACING_MM: float = 100.0
"""Largest voxel size accepted from a file (mm): above it the header is in micrometres or broken."""
ORTHO_TOL: float = 1e-4
"""Largest deviation of the direction cosines' Gram matrix from the identity taken as orthonormal."""

_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_SITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")


# --- SimpleITK -------------------------------------------------------------------------------------------
def to_sitk(image: Image) -> sitk.Image:
    """Convert to a SimpleITK image (array copied; SimpleITK arrays are indexed [k, j, i])."""
    import SimpleITK as sitk  # imported where used: 116 MiB resident and 0.4 s, not needed by every run

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
    import SimpleITK as sitk

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


# --- geometry checks ------------------------------------------------------------------------------------------
def check_affine(affine_lps, source) -> None:
    """Refuse an index-to-world affine (4x4, LPS, mm) that does not describe a usable voxel grid.

    The voxel sizes (column norms) must be finite and within [:data:`MIN_SPACING_MM`,
    :data:`MAX_SPACING_MM`], and the axis directions orthonormal within :data:`ORTHO_TOL` (no shear, not
    singular).

    Raises
    ------
    GeometryError
        Naming ``source`` (a file) and the fix.
    """
    affine = np.asarray(affine_lps, dtype=float)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise GeometryError(
            f"{source}: the voxel-to-world matrix holds values that are not numbers ({np.round(affine, 4).tolist()}); "
            "fix the header's voxel size and orientation"
        )
    columns = affine[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    if np.any(spacing < MIN_SPACING_MM) or np.any(spacing > MAX_SPACING_MM):
        raise GeometryError(
            f"{source}: voxel size {np.round(spacing, 6).tolist()} mm is outside {MIN_SPACING_MM:g}-{MAX_SPACING_MM:g} mm "
            "(0, or a header in metres or micrometres?); rewrite the header with the voxel size in mm"
        )
    direction = columns / spacing
    deviation = float(np.max(np.abs(direction.T @ direction - np.eye(3))))
    if deviation > ORTHO_TOL:
        kind = (
            "singular (two axes in one direction)"
            if abs(np.linalg.det(direction)) < 1e-6
            else "not orthogonal (sheared)"
        )
        raise GeometryError(
            f"{source}: the axis directions are {kind}: {np.round(direction, 4).tolist()}; expected orthonormal "
            "axes; resample the image to an orthogonal grid or fix its orientation in the header"
        )


def _one_line(err: Exception) -> str:
    """An exception message on one line (ITK's messages span several and start with a source path)."""
    text = str(err)
    match = re.search(r"ITK ERROR: [^:]*\):\s*(.*)", text, flags=re.S)
    if match:
        text = match.group(1)
    return " ".join(text.split())[:300]


def _squeeze_volumes(array: np.ndarray, path: Path, notes: list[str]) -> np.ndarray:
    """A 3-D array from a file's data: 4-D and more with one volume are squeezed (with a note)."""
    if array.ndim < 3:
        raise GeometryError(
            f"{path}: the image is {array.ndim}-D (shape {list(array.shape)}); expected a 3-D volume; export the "
            "whole volume, not a slice"
        )
    if array.ndim > 3:
        extra = array.shape[3:]
        if int(np.prod(extra)) != 1:
            raise GeometryError(
                f"{path}: the image holds {int(np.prod(extra))} volumes (shape {list(array.shape)}); expected one 3-D "
                "volume; extract the time point or component you need (e.g. fslroi IN OUT 0 1)"
            )
        notes.append(f"{path}: a {array.ndim}-D image with a single volume (shape {list(array.shape)}) was read as 3-D")
        array = array.reshape(array.shape[:3])
    if 0 in array.shape:
        raise InputFileError(f"{path}: the image has no voxels (shape {list(array.shape)}); check the file")
    return array


def _raw_nifti_header(path: Path):
    """The NIfTI-1 or NIfTI-2 header as stored (nibabel's load 'fixes' pixdim 0 to 1 silently; this does not)."""
    with nib.openers.ImageOpener(str(path)) as fobj:
        size = np.frombuffer(fobj.read(4), dtype="<i4")
        fobj.seek(0)
        klass = nib.Nifti2Header if int(size[0]) in (540, 0x1C020000) else nib.Nifti1Header
        return klass.from_fileobj(fobj, check=False)


def _load_nifti(path: Path):
    """The nibabel image and its array (``scl_slope`` applied); ``.nii.gz`` decompressed by ISA-L (igzip),
    about twice as fast as zlib, into the same array."""
    if not path.name.lower().endswith(".gz"):
        nifti = nib.load(str(path))
        return nifti, np.asanyarray(nifti.dataobj)
    from isal import igzip
    from nibabel.fileholders import FileHolder

    with igzip.open(path, "rb") as fobj:
        size = int(np.frombuffer(fobj.read(4), dtype="<i4")[0])
        fobj.seek(0)
        klass = nib.Nifti2Image if size in (540, 0x1C020000) else nib.Nifti1Image
        holder = FileHolder(filename=str(path), fileobj=fobj)
        nifti = klass.from_file_map({"image": holder, "header": holder})
        return nifti, np.asanyarray(nifti.dataobj)


def _check_nifti_header(path: Path, notes: list[str]) -> None:
    """Refuse NIfTI headers whose voxel size is not usable; note a missing qform and sform."""
    header = _raw_nifti_header(path)
    ndim = int(header["dim"][0])
    pixdim = np.asarray(header["pixdim"][1:4], dtype=float)
    if ndim < 1 or ndim > 7:
        raise InputFileError(f"{path}: NIfTI dim[0] is {ndim}; expected 3 (a 3-D volume); the header is damaged")
    if ndim < 3:
        raise GeometryError(
            f"{path}: the image is {ndim}-D (NIfTI dim {header['dim'][1 : ndim + 1].tolist()}); expected a 3-D volume; "
            "export the whole volume, not a slice"
        )
    if not (np.all(np.isfinite(pixdim)) and np.all(pixdim > 0)):
        raise GeometryError(
            f"{path}: NIfTI pixdim (voxel size) is {pixdim.tolist()}; expected positive voxel "
            "sizes in mm; rewrite the header with the true voxel size (nibabel would read 0 as 1 mm)"
        )
    spatial_units = header.get_xyzt_units()[0]
    if spatial_units in ("meter", "micron"):
        raise GeometryError(f"{path}: NIfTI spatial units are {spatial_units}s; expected mm; rewrite the header in mm")
    if int(header["qform_code"]) == 0 and int(header["sform_code"]) == 0:
        notes.append(
            f"{path}: NIfTI qform_code and sform_code are both 0 (no orientation or origin stored): the fallback "
            "affine from pixdim only is used; check that the ROIs and the CT line up with it"
        )


# --- files -------------------------------------------------------------------------------------------------
def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in _NIFTI_SUFFIXES + _SITK_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def read_image(path: str | os.PathLike, *, notes: list[str] | None = None) -> Image:
    """Read a NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr) or MetaImage (.mha, .mhd) volume.

    The geometry is checked (:func:`check_affine`; for NIfTI also the stored pixdim and units). A 4-D
    image with a single volume is read as 3-D.

    Parameters
    ----------
    path : path
    notes : list of str, optional
        Receives the notes of the read (a squeezed 4-D image, a NIfTI without qform and sform); without
        it they are logged as warnings.

    Raises
    ------
    InputFileError
        The file does not exist, has an unknown suffix, or cannot be parsed.
    GeometryError
        Not a single 3-D scalar volume; voxel size 0, negative, not a number, below 0.01 mm or above 100 mm;
        singular or sheared axes.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file; check the path")
    suffix = _suffix(path)
    if suffix not in _NIFTI_SUFFIXES + _SITK_SUFFIXES:
        raise InputFileError(
            f"{path}: unknown image format {suffix!r}; give a .nii, .nii.gz, .nrrd, .nhdr, .mha or .mhd file"
        )
    found: list[str] = []
    try:
        if suffix in _NIFTI_SUFFIXES:
            _check_nifti_header(path, found)
            nifti, array = _load_nifti(path)
            array = _squeeze_volumes(array, path, found)
            affine_lps = LPS_TO_RAS @ np.asarray(nifti.affine, dtype=float)
        else:
            import SimpleITK as sitk

            sitk_image = sitk.ReadImage(str(path))
            if sitk_image.GetNumberOfComponentsPerPixel() != 1:
                raise GeometryError(
                    f"{path}: {sitk_image.GetNumberOfComponentsPerPixel()} components per voxel; expected a scalar "
                    "image; save one component"
                )
            dim = sitk_image.GetDimension()
            array = _squeeze_volumes(sitk.GetArrayFromImage(sitk_image).transpose(*range(dim - 1, -1, -1)), path, found)
            direction = np.asarray(sitk_image.GetDirection(), dtype=float).reshape(dim, dim)[:3, :3]
            affine_lps = np.eye(4)
            affine_lps[:3, :3] = direction * np.asarray(sitk_image.GetSpacing(), dtype=float)[:3]
            affine_lps[:3, 3] = np.asarray(sitk_image.GetOrigin(), dtype=float)[:3]
        check_affine(affine_lps, path)
        image = Image.from_affine(np.asarray(array), affine_lps)
    except (GeometryError, InputFileError):
        raise
    except RuntimeError as err:  # ITK: zero or NaN spacing, singular direction, unreadable data
        message = _one_line(err)
        kind = GeometryError if re.search(r"spacing|direction|determinant", message, flags=re.I) else InputFileError
        raise kind(
            f"{path}: cannot read as an image ({message}); fix the header's voxel size and orientation"
            if kind is GeometryError
            else f"{path}: cannot read as an image ({message})"
        ) from err
    except Exception as err:  # parsers raise many types; all mean "not a readable image"
        raise InputFileError(f"{path}: cannot read as an image ({type(err).__name__}: {_one_line(err)})") from err
    if notes is None:
        for note in found:
            log.warning(note)
    else:
        notes.extend(found)
    return image


GZIP_LEVEL = 1
"""Compression level of ``.nii.gz`` outputs (ISA-L's level 1: zlib level 1's size at ~10x its speed)."""


def write_nifti(image: Image, path: str | os.PathLike) -> Path:
    """Write ``image`` as NIfTI-1 (``.nii`` or ``.nii.gz``) via a temporary file renamed into place.

    ``.nii.gz`` is compressed by ISA-L (``isal.igzip``, a standard gzip stream that any reader opens),
    streamed: no uncompressed copy of the file is held in memory.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.partial{''.join(path.suffixes)}")
    nifti = to_nibabel(image)
    if path.name.lower().endswith(".gz"):
        from isal import igzip

        try:
            # mtime 0 and no file name in the gzip header: the same image gives the same file (reproducible
            # samples), whatever the temporary name
            with open(tmp, "wb") as raw, igzip.IGzipFile("", "wb", GZIP_LEVEL, fileobj=raw, mtime=0) as fobj:
                nifti.to_file_map(nib.Nifti1Image.make_file_map({"image": fobj, "header": fobj}))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    else:
        nib.save(nifti, str(tmp))
    os.replace(tmp, path)
    return path
