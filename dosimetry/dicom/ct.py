"""CT series (classic CT Image or Enhanced CT storage) to Hounsfield units in float32.

Each slice is rescaled with its own Rescale Slope/Intercept. Slices must form one regular stack (see
:func:`dosimetry.dicom.slices.sort_frames`); a gantry-tilted stack is resampled trilinearly onto the
orthogonal grid with the same in-plane axes (voxels outside the acquired slab get -1024 HU) and a warning
says so, or refused when ``tilt='refuse'``.

References
----------
.. [PS3.3-C.8.2.1] DICOM PS3.3 C.8.2.1 CT Image Module (Rescale Slope/Intercept to HU, Gantry/Detector
   Tilt) and C.7.6.2 Image Plane Module.
.. [PS3.3-C.7.6.16] Enhanced and Legacy Converted Enhanced CT: per-frame Plane Position, Plane Orientation,
   Pixel Measures (Pixel Spacing, Slice Thickness) and Pixel Value Transformation (Rescale to HU).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dosimetry.image import Image
from dosimetry.dicom import slices
from dosimetry.dicom.reading import read_series

AIR_HU: float = -1024.0
"""Fill value (HU) for voxels outside a resampled tilted CT."""


@dataclass(frozen=True)
class CtVolume:
    """A CT in HU (int16 when integer, else float32) with warnings and a record of how it was read."""

    image: Image
    warnings: tuple[str, ...] = ()
    provenance: dict = field(default_factory=dict)


def load_ct(files, *, tilt: str = "resample", label: str = "CT series", headers: tuple = ()) -> CtVolume:
    """Read a CT series as HU (int16 when the rescale gives integers in its range, as it usually does; else
    float32).

    Parameters
    ----------
    files : sequence of path
        Files of one series (single-frame CT images, or one Enhanced CT file).
    tilt : {'resample', 'refuse'}
        Handling of gantry tilt (sheared stacks).
    label : str
        Series label for messages.
    headers : tuple of Header, optional
        The files' headers as the inventory read them (:mod:`dosimetry.dicom.reading`): completed, not read
        again.

    Raises
    ------
    InputFileError
        Unreadable files or pixel data.
    GeometryError
        Irregular stacks, or tilt with ``tilt='refuse'``.
    """
    datasets = read_series(files, headers)
    first = datasets[0][1]
    if "PerFrameFunctionalGroupsSequence" in first:
        frames = [fr for name, ds in datasets for fr in slices.frames_from_enhanced(name, ds)]
    else:
        frames = slices.frames_from_single_frame_files(datasets)
    ordered = slices.sort_frames(frames, label=label)
    # integer HU (the usual rescale: slope 1, integer intercept) as int16, exactly; otherwise float32 plane
    # by plane (the same values as a float64 stack cast at the end); a tilted stack is resampled in float64
    if ordered.tilted:
        planes = (fr.values for fr in ordered.frames)
    elif _integer_hu(ordered.frames):
        planes = (fr.values.astype(np.int16) for fr in ordered.frames)
    else:
        planes = (fr.values.astype(np.float32) for fr in ordered.frames)
    thickness = first.get("SliceThickness")
    if thickness in (None, "") and "PerFrameFunctionalGroupsSequence" in first:  # Enhanced CT: Pixel Measures
        measures = slices.functional_group(first, 0, "PixelMeasuresSequence")
        thickness = measures.get("SliceThickness") if measures is not None else None
    warnings: list[str] = []
    if len(frames) == 1:
        warnings.append(f"{label}: a single CT slice; its SliceThickness is used as the slice spacing")
    image, geo_warnings = slices.build_image(
        ordered,
        planes,
        label=label,
        tilt=tilt,
        fill_value=AIR_HU,
        single_slice_thickness_mm=float(thickness) if thickness not in (None, "") else None,
    )
    warnings += geo_warnings
    provenance = {
        "modality": "CT",
        "series_uid": str(first.get("SeriesInstanceUID", "")),
        "series_description": str(first.get("SeriesDescription", "")),
        "n_files": len(datasets),
        "n_frames": len(frames),
        "gantry_tilt_resampled": bool(ordered.tilted),
        "header_gantry_tilt_deg": float(first.GantryDetectorTilt)
        if first.get("GantryDetectorTilt") not in (None, "")
        else None,
    }
    array = image.array if image.array.dtype == np.int16 else np.asarray(image.array, dtype=np.float32)
    return CtVolume(image.with_array(array), tuple(warnings), provenance)


def _integer_hu(frames) -> bool:
    """Whether every frame's HU (stored x slope + intercept) are integers within int16: a CT kept as int16
    holds exactly the values of a float one in half the memory (a 512 x 512 x 112 CT: 59 MB, not 117 MB)."""
    low, high = np.iinfo(np.int16).min, np.iinfo(np.int16).max
    for fr in frames:
        if fr.slope != round(fr.slope) or fr.intercept != round(fr.intercept) or fr.stored.dtype.kind not in "iu":
            return False
        if fr.stored.size:
            ends = (float(fr.stored.min()) * fr.slope + fr.intercept, float(fr.stored.max()) * fr.slope + fr.intercept)
            if min(ends) < low or max(ends) > high:
                return False
    return True
