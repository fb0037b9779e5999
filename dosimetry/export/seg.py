"""ROI masks as a DICOM Segmentation (highdicom), on the grid of the source images they were drawn on.

A DICOM Segmentation is defined on the pixel grid of its source images: one frame per source slice (for
each segment that has voxels there). Our ROI masks may lie on any grid, so each mask is first mapped onto
the source images' grid through world coordinates (:func:`dosimetry.geometry.resample.occupancy_in_box`, the
fraction of each source voxel inside the ROI) and then thresholded (binary segmentation) or kept as
occupancy fractions (fractional segmentation).

Which source images to give:

* the CT series the ROIs were drawn on (usual case): the SEG has the CT's slices and pixel size;
* the PET (or SPECT) series, when the ROIs are on the dose/PET grid: the SEG then has one frame per PET
  slice at PET resolution, exactly the voxels the statistics used (at 0.5 occupancy).

Export ROIs that came from NIfTI/NRRD files this way; ROIs that came from DICOM (RTSTRUCT or SEG) already
exist as DICOM objects and should be referenced rather than copied.

References
----------
.. [PS3.3-A.51] DICOM PS3.3 A.51 Segmentation IOD; C.8.20 Segmentation Image Module (Segment
   Sequence, Segmented Property Category/Type Code Sequences, CID 7150/7151).
.. [highdicom] Herrmann et al., J Digit Imaging 35 (2022) 1719-1737, doi:10.1007/s10278-022-00683-y.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset

from dosimetry._version import __version__
from dosimetry.errors import GeometryError, InputFileError, OptionsError, RoiError
from dosimetry.image import Image
from dosimetry.geometry.resample import occupancy_in_box
from dosimetry.roi import Roi
from dosimetry.export.rtdose import MANUFACTURER, new_uid, save_dataset_atomically
from dosimetry.export.sr import PRIVATE_CODING_SCHEME, ROLE_CODES, declare_private_scheme

_ORIENTATION_TOL = 1e-4
_SPACING_TOL_MM = 1e-2


def source_grid(source_images: Sequence[Dataset]) -> tuple[Image, list[int]]:
    """The voxel grid of a single-frame image series, and which dataset holds each ``k`` plane.

    Parameters
    ----------
    source_images : sequence of pydicom.dataset.Dataset
        Single-frame images of one series (CT, PET, ...), in any order.

    Returns
    -------
    grid : Image
        A zero image (uint8) with the series' geometry: ``i`` along rows (first Image Orientation
        vector), ``j`` down columns, ``k`` along the slice normal.
    order : list of int
        ``order[k]`` is the index in ``source_images`` of the slice at plane ``k``.

    Raises
    ------
    InputFileError
        No images, multi-frame images, or images without geometry attributes.
    GeometryError
        Slices with different orientations, sizes or uneven spacing.
    """
    if not source_images:
        raise InputFileError("no source images given for the segmentation; give the CT or PET series")
    for ds in source_images:
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise InputFileError(
                "multi-frame (enhanced) source images are not supported for SEG export; "
                "give a classic single-frame CT or PET series"
            )
        missing = [
            k
            for k in ("ImageOrientationPatient", "ImagePositionPatient", "PixelSpacing", "Rows", "Columns")
            if k not in ds
        ]
        if missing:
            raise InputFileError(f"a source image lacks {', '.join(missing)}; give images with plane geometry")
    first = source_images[0]
    orientation = np.asarray(first.ImageOrientationPatient, dtype=float)
    size = (int(first.Columns), int(first.Rows))
    spacing = np.asarray(first.PixelSpacing, dtype=float)
    for ds in source_images[1:]:
        if (
            not np.allclose(np.asarray(ds.ImageOrientationPatient, dtype=float), orientation, atol=_ORIENTATION_TOL)
            or (int(ds.Columns), int(ds.Rows)) != size
            or not np.allclose(np.asarray(ds.PixelSpacing, dtype=float), spacing, atol=1e-4)
        ):
            raise GeometryError("the source images differ in orientation, size or pixel spacing; give one series")
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    positions = np.array([np.asarray(ds.ImagePositionPatient, dtype=float) for ds in source_images])
    along = positions @ normal
    order = [int(v) for v in np.argsort(along, kind="stable")]
    if len(order) > 1:
        steps = np.diff(along[order])
        step = float(np.mean(steps))
        if step <= 0 or np.max(np.abs(steps - step)) > _SPACING_TOL_MM:
            raise GeometryError(
                "the source slices are not evenly spaced (or repeat a position); give one regular series"
            )
    else:
        step = float(first.get("SliceThickness", 0) or 1.0)
    grid = Image(
        np.zeros(size + (len(order),), dtype=np.uint8),
        positions[order[0]],
        (spacing[1], spacing[0], step),
        np.column_stack([row_dir, col_dir, normal]),
    )
    return grid, order


def build_segmentation(
    rois: Sequence[Roi],
    source_images: Sequence[Dataset],
    *,
    fractional: bool = False,
    threshold: float = 0.5,
    algorithm_type: str = "MANUAL",
    series_description: str = "Y-90 dosimetry ROIs",
    series_number: int = 901,
    instance_number: int = 1,
) -> hd.seg.Segmentation:
    """A DICOM Segmentation of ``rois`` on the grid of ``source_images``.

    Parameters
    ----------
    rois : sequence of Roi
        ROIs with masks on any grid (occupancy 0..1); segment labels are the ROI names, segment numbers
        follow the order given (1, 2, ...).
    source_images : sequence of pydicom.dataset.Dataset
        The single-frame series whose grid the SEG uses (see the module docstring); headers suffice.
    fractional : bool
        False: BINARY segmentation, a voxel is in the segment when at least ``threshold`` of it lies in
        the ROI. True: FRACTIONAL segmentation of type OCCUPANCY (0..1 in 255 steps).
    threshold : float
        Occupancy (0 < threshold <= 1) for the binary segmentation.
    algorithm_type : {'MANUAL', 'SEMIAUTOMATIC', 'AUTOMATIC'}
        Segment Algorithm Type (0062,0008) of every segment: how the ROIs were made (the package does
        not know; MANUAL by default).
    series_description : str
    series_number, instance_number : int

    Returns
    -------
    highdicom.seg.Segmentation

    Raises
    ------
    OptionsError
        ``threshold`` out of (0, 1] or an unknown ``algorithm_type``.
    RoiError
        No ROI, or an ROI that covers no source voxel by at least ``threshold``.
    GeometryError
        An ROI does not overlap the source images at all; see also :func:`source_grid`.
    InputFileError
        See :func:`source_grid`.

    Notes
    -----
    Segmented Property Category/Type codes follow the ROI role (SCT codes for liver, lung, neoplasm,
    tissue; the local scheme of :mod:`.sr` for the perfused territory).
    """
    if not 0.0 < threshold <= 1.0:
        raise OptionsError(f"threshold must be in (0, 1], got {threshold}")
    try:
        algorithm = hd.seg.SegmentAlgorithmTypeValues(algorithm_type)
    except ValueError:
        raise OptionsError(
            f"unknown algorithm_type {algorithm_type!r}; use MANUAL, SEMIAUTOMATIC or AUTOMATIC"
        ) from None
    rois = list(rois)
    if not rois:
        raise RoiError("no ROI to export as a segmentation")
    grid, order = source_grid(source_images)
    n_frames, rows, columns = len(source_images), grid.shape[1], grid.shape[0]
    frame_of_plane = np.asarray(order)  # the dataset (frame) index of each plane k
    dtype = np.float32 if fractional else np.uint8
    # segments are the slowest axis in memory (highdicom takes a (frames, rows, columns, segments) array; it
    # sums over segments to find overlaps and reads one segment's frames at a time: both fast this way)
    by_segment = np.zeros((len(rois), n_frames, rows, columns), dtype=dtype)
    pixels = np.moveaxis(by_segment, 0, -1)
    descriptions = []
    for number, roi in enumerate(rois, start=1):
        try:
            occupancy = occupancy_in_box(roi.mask, grid)  # only the source voxels the ROI reaches
        except GeometryError as err:
            raise GeometryError(f"ROI {roi.name!r} ({roi.source or 'mask'}): {err}") from err
        box = occupancy.values.astype(np.float32) if fractional else (occupancy.values >= threshold).astype(np.uint8)
        if not np.any(box > 0):
            raise RoiError(
                f"ROI {roi.name!r} has no voxel on the grid of the source images (outside them, or "
                "smaller than half a voxel); give the series the ROI was drawn on"
            )
        (i0, j0, k0), (i1, j1, k1) = occupancy.start, occupancy.stop
        # [i, j, k] -> frame of plane k, rows j, columns i
        by_segment[number - 1][frame_of_plane[k0:k1], j0:j1, i0:i1] = box.transpose(2, 1, 0)
        category, kind = ROLE_CODES.get(roi.role.value, ROLE_CODES["other"])
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=roi.name[:64],
                segmented_property_category=category,
                segmented_property_type=kind,
                algorithm_type=algorithm,
                tracking_uid=new_uid(),
                tracking_id=roi.name[:64],
            )
        )
    options = {}
    if fractional:
        options = {"fractional_type": hd.seg.SegmentationFractionalTypeValues.OCCUPANCY, "max_fractional_value": 255}
    seg = hd.seg.Segmentation(
        source_images=list(source_images),
        pixel_array=pixels,
        segmentation_type=(
            hd.seg.SegmentationTypeValues.FRACTIONAL if fractional else hd.seg.SegmentationTypeValues.BINARY
        ),
        segment_descriptions=descriptions,
        series_instance_uid=new_uid(),
        series_number=int(series_number),
        sop_instance_uid=new_uid(),
        instance_number=int(instance_number),
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MANUFACTURER,
        software_versions=__version__,
        device_serial_number="none",
        content_label="Y90ROIS",
        content_description="ROIs of Y-90 dosimetry",
        **options,
    )
    seg.SeriesDescription = series_description
    if any(
        ROLE_CODES.get(r.role.value, ROLE_CODES["other"])[1].scheme_designator == PRIVATE_CODING_SCHEME for r in rois
    ):
        declare_private_scheme(seg)
    return seg


def write_segmentation(
    rois: Sequence[Roi], source_images: Sequence[Dataset], path: str | os.PathLike, **options
) -> Path:
    """Build (:func:`build_segmentation`, same keywords) and write the SEG atomically.

    Raises
    ------
    OutputError
        The file cannot be written.
    """
    return save_dataset_atomically(build_segmentation(rois, source_images, **options), path)
