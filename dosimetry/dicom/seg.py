"""DICOM Segmentation (SEG) objects to ROIs, read with highdicom.

Each segment becomes one :class:`~dosimetry.roi.Roi` on the grid of the segmentation (highdicom builds
the volume and its LPS affine from the per-frame plane positions; missing frames are empty). BINARY
segments give 0/1 masks, FRACTIONAL segments their occupancy fractions (rescaled to [0, 1]).

References
----------
.. [PS3.3-C.8.20] DICOM PS3.3 C.8.20 Segmentation modules (Segment Sequence, Segment Label, Segmentation
   Type BINARY/FRACTIONAL, Maximum Fractional Value).
.. [Herrmann2018] Herrmann MD et al. Implementing the DICOM standard for digital pathology. J Pathol
   Inform 2018;9:37 (highdicom).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dosimetry.errors import GeometryError, InputFileError, RoiError
from dosimetry.image import Image
from dosimetry.roi import Roi
from dosimetry.dicom.rtstruct import resolve_role


def seg_to_rois(
    path,
    *,
    frame_of_reference_uid: str | None = None,
    role_overrides: dict | None = None,
) -> tuple[tuple[Roi, ...], list[str]]:
    """Every segment of a SEG file as an ROI on the segmentation's own grid.

    Raises
    ------
    InputFileError
        Unreadable file, not a segmentation, or frames that do not form a volume.
    GeometryError
        The segmentation lies on another Frame of Reference than ``frame_of_reference_uid``.
    RoiError
        A segment (not ignored) without a voxel inside; the message gives the ``--segment-role
        'NAME=ignore'`` fix.
    """
    import highdicom as hd  # imported when a SEG is read (0.2-0.5 s)

    path = Path(path)
    try:
        seg = hd.seg.segread(path)
    except Exception as err:
        raise InputFileError(f"{path}: cannot read as a DICOM Segmentation ({type(err).__name__}: {err})") from err
    seg_for = str(seg.get("FrameOfReferenceUID", "") or "")
    warnings: list[str] = []
    if frame_of_reference_uid and not seg_for:
        warnings.append(
            f"{path.name}: the segmentation states no Frame of Reference; taken as that of the image "
            f"({frame_of_reference_uid}): check that it was drawn on this scan"
        )
    if frame_of_reference_uid and seg_for and seg_for != frame_of_reference_uid:
        raise GeometryError(
            f"{path.name}: segmentation on Frame of Reference {seg_for}, the image on {frame_of_reference_uid}; "
            "expected one Frame of Reference; register the segmentation to the emission image first"
        )
    try:
        volume = seg.get_volume(combine_segments=False, rescale_fractional=True, dtype=np.float32)
    except Exception as err:
        raise InputFileError(
            f"{path}: segmentation frames do not form a regular volume ({type(err).__name__}: {err}); "
            "expected parallel, evenly spaced frames"
        ) from err
    rois = []
    numbers = [int(item.SegmentNumber) for item in seg.SegmentSequence]
    labels = {int(item.SegmentNumber): str(item.SegmentLabel) for item in seg.SegmentSequence}
    array = volume.array
    if array.ndim == 3:
        array = array[..., np.newaxis]
    for channel, number in enumerate(numbers):
        name = labels[number].strip() or f"segment {number}"
        role = resolve_role(name, role_overrides)
        if role is None:
            continue
        mask = np.clip(array[..., channel].astype(np.float32), 0.0, 1.0)
        if not np.all(np.isfinite(mask)) or not np.any(mask > 0):
            raise RoiError(
                f"{path.name}: segment {name!r} is empty (no voxel inside); redraw it, or leave it out with "
                f"--segment-role '{name}=ignore'"
            )
        try:
            image = Image.from_affine(mask, volume.affine)
        except GeometryError as err:
            raise GeometryError(f"{path.name}: segment {name!r}: {err}") from err
        rois.append(Roi(name, role, image, source=f"{path.name}:segment {number}"))
    return tuple(rois), warnings
