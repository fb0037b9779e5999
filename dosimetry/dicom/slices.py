"""From 2-D DICOM frames (single-frame files or frames of an enhanced multi-frame) to one 3-D Image.

Each frame carries its plane geometry (Image Position/Orientation (Patient), Pixel Spacing) and its own
rescale. :func:`sort_frames` orders frames along the slice normal and refuses what would otherwise be
silently averaged: mixed orientations or pixel spacings, duplicate positions, missing slices and uneven
spacing. :func:`build_image` stacks them, and resamples a gantry-tilted (sheared) stack onto an
orthogonal grid when asked to.

Array convention: ``array[i, j, k]`` with ``i`` the column index (along the first direction cosine of
Image Orientation (Patient)), ``j`` the row index and ``k`` the slice index (along the slice normal).

References
----------
.. [PS3.3-C.7.6.2] DICOM PS3.3 section C.7.6.2 (Image Plane Module: Image Position (Patient), Image
   Orientation (Patient), Pixel Spacing = [row spacing, column spacing]).
.. [PS3.3-C.7.6.16] DICOM PS3.3 section C.7.6.16 (Multi-frame Functional Groups Module) and C.7.6.16.2
   (Plane Position, Plane Orientation, Pixel Measures, Pixel Value Transformation, Frame Content, Real
   World Value Mapping (C.7.6.16.2.11: stored values to real-world values in the units of its Measurement
   Units Code Sequence), Unassigned Shared / Per-Frame Converted Attributes (C.7.6.16.2.25, where a Legacy
   Converted Enhanced image keeps the classic attributes that have no place in its IOD, e.g. the PET Units,
   Decay Correction, Decay Factor and Radiopharmaceutical Information Sequence)).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset

from dosimetry.errors import GeometryError, InputFileError
from dosimetry.image import Image
from dosimetry.io.images import MAX_SPACING_MM, MIN_SPACING_MM

POSITION_TOL_MM: float = 0.01
"""Absolute slack on slice positions (mm): scanners round positions to a few micrometres."""

SPACING_REL_TOL: float = 0.02
"""Slice gaps may differ from the median gap by this fraction before the stack is called uneven."""

SLICE_POSITION_REL_TOL: float = 0.025
"""Largest distance (fraction of the mean slice step) of a slice from its place on the regular grid.

The grid is built on the mean step (first to last slice) and every slice must lie within this fraction of
a step from its grid position; nothing is resampled and the largest deviation is stated in a warning. Real
multi-bed PET shifts the slices after a bed junction by the table's rounding (0.08 mm on a 3.27 mm step,
2.4 %, seen on public data); 2.5 % of a 2-5 mm PET slice is under 2 % of the scanner's 4-7 mm resolution.
Other readers are looser still: dcm2niix calls gaps equal within 0.2 mm (``isSameFloatT(dx, ..., 0.2)``
in nii_dicom_batch.cpp) and ITK's ImageSeriesReader takes the spacing of the first two slices and only
warns on non-uniformity (``SpacingWarningRelThreshold``); here a missing slice or a stack whose slices
drift further is still refused."""

TILT_TOL: float = 1e-3
"""Sine of the largest angle between the slice-to-slice step and the slice normal taken as no tilt."""

MAX_TILT_DEG: float = 45.0
"""Largest gantry tilt resampled (CT gantries tilt up to about 30 deg); beyond, the stack is refused."""

MAX_RESAMPLED_GROWTH: float = 8.0
"""A tilted stack is resampled onto at most this many times its own number of voxels."""


@dataclass(eq=False)
class Frame:
    """One 2-D plane of a series with its geometry and rescale.

    Attributes
    ----------
    position_mm : ndarray (3,)
        Image Position (Patient): LPS centre of the first transmitted pixel, mm.
    orientation : ndarray (6,)
        Image Orientation (Patient): row direction then column direction cosines.
    pixel_spacing_mm : ndarray (2,)
        Pixel Spacing: distance between rows, then between columns, mm.
    stored : ndarray (rows, cols)
        Stored pixel values (before rescale).
    slope, intercept : float
        Rescale (or real-world value) slope and intercept of this frame.
    source : str
        File name and frame number, for messages.
    meta : dict
        Modality-specific per-frame values (acquisition time, decay factor, ...).
    """

    position_mm: np.ndarray
    orientation: np.ndarray
    pixel_spacing_mm: np.ndarray
    stored: np.ndarray
    slope: float = 1.0
    intercept: float = 0.0
    source: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def values(self) -> np.ndarray:
        """Rescaled values in float64: stored x slope + intercept."""
        return self.stored.astype(np.float64) * self.slope + self.intercept

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.orientation[:3], self.orientation[3:])


def _floats(value, n: int, what: str, source: str) -> np.ndarray:
    try:
        arr = np.asarray([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        arr = np.empty(0)
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise GeometryError(f"{source}: {what} is {value!r}; expected {n} numbers; the file lacks plane geometry")
    return arr


def _scalar(value, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")  # unparseable: reported with its file by check_rescale


RESCALE_REQUIRED_MODALITIES = ("PT", "CT")
"""Modalities whose classic image module makes Rescale Slope/Intercept Type 1 (PS3.3 C.8.9.4, C.8.2.1)."""


def rescale_problem(slope, intercept) -> str | None:
    """What is wrong with a rescale (slope and intercept as floats, NaN = absent or unparseable), or None:
    the slope must be finite and positive (0 erases the image, a negative one inverts it), the
    intercept finite."""
    if not (np.isfinite(slope) and slope > 0):
        return f"RescaleSlope {slope:g}" if np.isfinite(slope) else "RescaleSlope missing or not a number"
    if not np.isfinite(intercept):
        return "RescaleIntercept not a number"
    return None


def checked_rescale(slope, intercept, *, source: str, required: bool = False) -> tuple[float, float]:
    """Slope and intercept (header values, possibly absent) as floats, checked by :func:`rescale_problem`.

    Raises
    ------
    InputFileError
        A slope of 0, negative or not a number, a missing slope when ``required``, an intercept not a number.
    """
    slope_f = _scalar(slope, float("nan") if required else 1.0)
    intercept_f = _scalar(intercept, 0.0)
    problem = rescale_problem(slope_f, intercept_f)
    if problem:
        raise InputFileError(
            f"{source}: {problem}; expected a positive RescaleSlope and a numeric RescaleIntercept (stored values "
            "x slope + intercept); the values cannot be scaled: re-export the series from the scanner"
        )
    return slope_f, intercept_f


def check_frame_rescales(frames, *, label: str) -> None:
    """Refuse frames whose rescale :func:`rescale_problem` rejects, naming the first files and the count.

    Raises
    ------
    InputFileError
    """
    bad = [(fr, rescale_problem(fr.slope, fr.intercept)) for fr in frames]
    bad = [(fr, problem) for fr, problem in bad if problem]
    if bad:
        listed = "; ".join(f"{fr.source}: {problem}" for fr, problem in bad[:3])
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        raise InputFileError(
            f"{label}: {len(bad)} of {len(frames)} slices have an unusable rescale ({listed}{more}); expected a "
            "positive RescaleSlope and a numeric RescaleIntercept (stored values x slope + intercept); the "
            "values cannot be scaled: re-export the series from the scanner"
        )


def frames_from_single_frame_files(datasets: list[tuple[str, Dataset]]) -> list[Frame]:
    """One :class:`Frame` per classic single-frame image (CT Image, PET Image storage).

    Parameters
    ----------
    datasets : list of (name, Dataset)
        Datasets read with their pixel data; ``name`` is used in messages.
    """
    frames = []
    for name, ds in datasets:
        if "PixelData" not in ds:
            raise InputFileError(f"{name}: image without pixel data; the series is incomplete, re-export it")
        try:
            stored = ds.pixel_array
        except Exception as err:  # decoders raise many types
            raise InputFileError(
                f"{name}: pixel data cannot be decoded ({type(err).__name__}: {err}); install the decoder "
                "for its transfer syntax (pylibjpeg, pyjpegls) or re-export uncompressed"
            ) from err
        if stored.ndim != 2:
            raise InputFileError(f"{name}: expected one 2-D frame, got pixel data of shape {stored.shape}")
        required = str(ds.get("Modality", "")).upper() in RESCALE_REQUIRED_MODALITIES
        instance = ds.get("InstanceNumber")
        frames.append(
            Frame(
                position_mm=_floats(ds.get("ImagePositionPatient"), 3, "ImagePositionPatient", name),
                orientation=_floats(ds.get("ImageOrientationPatient"), 6, "ImageOrientationPatient", name),
                pixel_spacing_mm=_floats(ds.get("PixelSpacing"), 2, "PixelSpacing", name),
                stored=stored,
                slope=_scalar(ds.get("RescaleSlope"), float("nan") if required else 1.0),
                intercept=_scalar(ds.get("RescaleIntercept"), 0.0),
                source=name if instance in (None, "") else f"{name} (instance {instance})",
            )
        )
    return frames


def functional_group(ds: Dataset, frame_index: int, keyword: str) -> Dataset | None:
    """The first item of functional-group sequence ``keyword`` for frame ``frame_index`` (0-based),
    from the per-frame groups, else the shared groups; None when absent [PS3.3-C.7.6.16]."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = ds.get("SharedFunctionalGroupsSequence")
    items = []
    if per_frame and frame_index < len(per_frame):
        items.append(per_frame[frame_index])
    if shared:
        items.append(shared[0])
    for item in items:
        seq = item.get(keyword)
        if seq:
            return seq[0]
    return None


def functional_group_items(ds: Dataset, frame_index: int, keyword: str) -> list[Dataset]:
    """All items of functional-group sequence ``keyword`` for frame ``frame_index`` (0-based): those of
    the per-frame group when it has the sequence, else those of the shared group; [] when absent."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = ds.get("SharedFunctionalGroupsSequence")
    for group in ([per_frame[frame_index]] if per_frame and frame_index < len(per_frame) else []) + (
        [shared[0]] if shared else []
    ):
        seq = group.get(keyword)
        if seq:
            return list(seq)
    return []


def converted_attribute_items(ds: Dataset, frame_index: int) -> tuple[Dataset, ...]:
    """The Unassigned Per-Frame then Shared Converted Attributes items of a frame [PS3.3-C.7.6.16]."""
    items = []
    for keyword in ("UnassignedPerFrameConvertedAttributesSequence", "UnassignedSharedConvertedAttributesSequence"):
        item = functional_group(ds, frame_index, keyword)
        if item is not None:
            items.append(item)
    return tuple(items)


def first_present(items, keyword: str):
    """The value of ``keyword`` in the first of ``items`` (datasets) that holds a non-empty one, else None."""
    for item in items:
        value = item.get(keyword) if item is not None else None
        if value not in (None, ""):
            return value
    return None


def with_converted_attributes(ds: Dataset) -> Dataset:
    """The top-level attributes of ``ds`` completed by its Unassigned Shared Converted Attributes.

    A Legacy Converted Enhanced image keeps the classic series attributes that its IOD has no place for
    (PET Units, Decay Correction, Radiopharmaceutical Information Sequence, ...) in that functional group
    [PS3.3-C.7.6.16]; this view lets them be read like the attributes of a classic image. Top-level
    attributes win. ``ds`` itself is returned when it has no such group.
    """
    shared = ds.get("SharedFunctionalGroupsSequence")
    converted = shared[0].get("UnassignedSharedConvertedAttributesSequence") if shared else None
    if not converted:
        return ds
    view = Dataset()
    for elem in converted[0]:
        view.add(elem)
    for elem in ds:
        if elem.tag != 0x7FE00010:  # no pixel data in the view
            view.add(elem)
    return view


def frames_from_enhanced(name: str, ds: Dataset) -> list[Frame]:
    """One :class:`Frame` per frame of an enhanced multi-frame image (Enhanced PET, Enhanced CT).

    The rescale is taken from the Pixel Value Transformation group, else the first Real World Value
    Mapping item. ``meta`` holds the Frame Content and PET Frame Correction Factors items, all Real World
    Value Mapping items (``rwvm_items``) and the Unassigned Per-Frame/Shared Converted Attributes items
    (``converted``) of the frame.
    """
    try:
        pixels = ds.pixel_array
    except Exception as err:
        raise InputFileError(f"{name}: pixel data cannot be decoded ({type(err).__name__}: {err})") from err
    n_frames = int(ds.get("NumberOfFrames", 1))
    if pixels.ndim == 2:
        pixels = pixels[np.newaxis]
    if pixels.shape[0] != n_frames:
        raise InputFileError(f"{name}: NumberOfFrames is {n_frames} but the pixel data has {pixels.shape[0]} frames")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and len(per_frame) != n_frames:
        raise GeometryError(
            f"{name}: PerFrameFunctionalGroupsSequence has {len(per_frame)} items for {n_frames} frames; "
            "frame descriptions are missing (expected one item per frame); re-export the image"
        )
    frames = []
    for f in range(n_frames):
        src = f"{name} frame {f + 1}"
        position = functional_group(ds, f, "PlanePositionSequence")
        orientation = functional_group(ds, f, "PlaneOrientationSequence")
        measures = functional_group(ds, f, "PixelMeasuresSequence")
        if position is None or orientation is None or measures is None:
            raise GeometryError(
                f"{src}: no Plane Position/Plane Orientation/Pixel Measures functional group; the file "
                "does not define where its frames lie"
            )
        transform = functional_group(ds, f, "PixelValueTransformationSequence")
        rwvm_items = functional_group_items(ds, f, "RealWorldValueMappingSequence")
        rwvm = rwvm_items[0] if rwvm_items else None
        slope, intercept = 1.0, 0.0
        if transform is not None:
            slope = _scalar(transform.get("RescaleSlope"), float("nan"))  # Type 1 in the functional group
            intercept = _scalar(transform.get("RescaleIntercept"), 0.0)
        elif rwvm is not None:
            slope = _scalar(rwvm.get("RealWorldValueSlope"), 1.0)
            intercept = _scalar(rwvm.get("RealWorldValueIntercept"), 0.0)
        frames.append(
            Frame(
                position_mm=_floats(position.get("ImagePositionPatient"), 3, "ImagePositionPatient", src),
                orientation=_floats(orientation.get("ImageOrientationPatient"), 6, "ImageOrientationPatient", src),
                pixel_spacing_mm=_floats(measures.get("PixelSpacing"), 2, "PixelSpacing", src),
                stored=pixels[f],
                slope=slope,
                intercept=intercept,
                source=src,
                meta={
                    "frame_content": functional_group(ds, f, "FrameContentSequence"),
                    "pet_corrections": functional_group(ds, f, "PETFrameCorrectionFactorsSequence"),
                    "rwvm": rwvm,
                    "rwvm_items": rwvm_items,
                    "converted": converted_attribute_items(ds, f),
                },
            )
        )
    return frames


@dataclass(frozen=True)
class SortedFrames:
    """Frames ordered along the slice normal, with the slice-to-slice step vector (mm, LPS)."""

    frames: tuple[Frame, ...]
    step_mm: np.ndarray
    tilted: bool
    max_position_error_mm: float = 0.0
    """Largest distance of a slice from its position on the regular grid of mean step ``step_mm``."""


def sort_frames(frames: list[Frame], *, label: str) -> SortedFrames:
    """Order frames along their common normal and check that they form one regular stack.

    Raises
    ------
    GeometryError
        Mixed orientations, pixel spacings or matrix sizes; two frames at one position; a missing slice;
        uneven slice spacing; orientation vectors that are not orthogonal unit vectors; a pixel spacing
        that is not positive. ``label`` (series description and UID) names the series in the message.
    InputFileError
        Slices whose RescaleSlope is 0, negative, not a number or missing where the modality requires it
        (:func:`check_frame_rescales`).
    """
    if not frames:
        raise GeometryError(f"{label}: no image frames")
    check_frame_rescales(frames, label=label)
    first = frames[0]
    for fr in frames[1:]:
        if not np.allclose(fr.orientation, first.orientation, atol=1e-4):
            raise GeometryError(
                f"{label}: frames have different ImageOrientationPatient ({fr.source}: "
                f"{np.round(fr.orientation, 4).tolist()} vs {np.round(first.orientation, 4).tolist()}); "
                "expected one orientation per series (a localizer or a mixed series?); select another series"
            )
        if not np.allclose(fr.pixel_spacing_mm, first.pixel_spacing_mm, rtol=1e-4, atol=1e-4):
            raise GeometryError(
                f"{label}: frames have different PixelSpacing ({fr.pixel_spacing_mm.tolist()} vs "
                f"{first.pixel_spacing_mm.tolist()}); expected one pixel size per series"
            )
        if fr.stored.shape != first.stored.shape:
            raise GeometryError(
                f"{label}: frames have different matrix sizes ({fr.stored.shape} vs {first.stored.shape}); "
                "expected one matrix per series"
            )
    normal = first.normal
    row, col = first.orientation[:3], first.orientation[3:]
    if (
        abs(np.linalg.norm(row) - 1.0) > 1e-3
        or abs(np.linalg.norm(col) - 1.0) > 1e-3
        or abs(row @ col) > 1e-3
        or abs(np.linalg.norm(normal) - 1.0) > 1e-3
    ):
        raise GeometryError(
            f"{label}: ImageOrientationPatient {first.orientation.tolist()} ({first.source}) is not two orthogonal "
            "unit vectors; fix the header or re-export the series"
        )
    if not np.all((first.pixel_spacing_mm >= MIN_SPACING_MM) & (first.pixel_spacing_mm <= MAX_SPACING_MM)):
        raise GeometryError(
            f"{label}: PixelSpacing {first.pixel_spacing_mm.tolist()} ({first.source}) is not a pixel size in mm "
            f"({MIN_SPACING_MM:g}-{MAX_SPACING_MM:g} mm); fix the header or re-export the series"
        )
    depth = np.array([fr.position_mm @ normal for fr in frames])
    order = np.argsort(depth, kind="stable")
    frames = [frames[i] for i in order]
    depth = depth[order]
    if len(frames) == 1:
        return SortedFrames(tuple(frames), normal.copy(), False)
    gaps = np.diff(depth)
    dup = np.flatnonzero(gaps < POSITION_TOL_MM)
    if dup.size:
        i = int(dup[0])
        raise GeometryError(
            f"{label}: two frames at the same slice position {depth[i]:.3f} mm ({frames[i].source}, "
            f"{frames[i + 1].source}); expected one frame per position (several time points, gates or a "
            "duplicated file?); select a single-volume series"
        )
    median = float(np.median(gaps))
    tol = max(SPACING_REL_TOL * median, POSITION_TOL_MM)
    for i in np.flatnonzero(np.abs(gaps - median) > tol):
        ratio = gaps[i] / median
        if abs(ratio - round(ratio)) * median <= tol and round(ratio) >= 2:
            raise GeometryError(
                f"{label}: {int(round(ratio)) - 1} slice(s) missing between positions {depth[i]:.2f} and "
                f"{depth[i + 1]:.2f} mm (gap {gaps[i]:.2f} mm, spacing {median:.2f} mm); expected a complete "
                "series; copy all files of the series"
            )
    # the regular grid on the mean step; each slice must lie near its place on it (SLICE_POSITION_REL_TOL)
    positions = np.array([fr.position_mm for fr in frames])
    step = (positions[-1] - positions[0]) / (len(frames) - 1)
    step_mm = float(np.linalg.norm(step))
    errors = np.linalg.norm(positions - (positions[0] + np.outer(np.arange(len(frames)), step)), axis=1)
    worst = int(np.argmax(errors))
    allowed = max(SLICE_POSITION_REL_TOL * step_mm, POSITION_TOL_MM)
    if errors[worst] > allowed:
        along = abs(float((positions[worst] - positions[0] - worst * step) @ normal))
        what = (
            "uneven slice spacing"
            if along >= 0.5 * errors[worst]
            else "slice positions do not lie on one straight line (variable table offset?)"
        )
        raise GeometryError(
            f"{label}: {what}: slice {worst + 1} ({frames[worst].source}) lies {errors[worst]:.3f} mm from its "
            f"place on a regular grid of {step_mm:.3f} mm steps (gaps {gaps.min():.3f} to {gaps.max():.3f} mm; "
            f"tolerance {allowed:.3f} mm, {100 * SLICE_POSITION_REL_TOL:g} % of the step); expected a regular "
            "stack; resample the series to a regular grid first"
        )
    sine = np.linalg.norm(np.cross(step / step_mm, normal))
    return SortedFrames(tuple(frames), step, bool(sine > TILT_TOL), float(errors[worst]))


def _stack_planes(planes, n: int) -> np.ndarray:
    """Planes (rows, cols) -> array (cols, rows, n) in Fortran order: each plane is one contiguous copy
    (``np.stack`` along the last axis writes with a stride of ``n`` elements: ~10x slower on a CT), and the
    layout is SimpleITK's and NIfTI's (x fastest). ``planes`` may be a generator (no list of planes held)."""
    out = None
    for k, plane in enumerate(planes):
        if out is None:
            rows, cols = plane.shape
            out = np.empty((cols, rows, n), dtype=plane.dtype, order="F")
        out[:, :, k] = plane.T
    return out


def build_image(
    sorted_frames: SortedFrames,
    planes: Iterable[np.ndarray],
    *,
    label: str,
    tilt: str = "refuse",
    fill_value: float = 0.0,
    single_slice_thickness_mm: float | None = None,
) -> tuple[Image, list[str]]:
    """Stack 2-D planes (values of ``sorted_frames`` in the same order) into an :class:`Image`.

    Parameters
    ----------
    sorted_frames : SortedFrames
    planes : iterable of ndarray (rows, cols)
        Final values of each frame (rescaled, decay-corrected, ...), all of one dtype, in the order of
        ``sorted_frames``; a generator keeps only one plane at a time besides the result.
    label : str
        Series label for messages.
    tilt : {'refuse', 'resample'}
        What to do with a sheared stack (gantry tilt): raise, or resample trilinearly onto the orthogonal
        grid with the same in-plane axes and the slice spacing measured along the normal.
    fill_value : float
        Value of resampled voxels outside the tilted stack (-1024 for CT).
    single_slice_thickness_mm : float, optional
        Thickness used as the third spacing of a one-slice series.

    Returns
    -------
    image : Image
    warnings : list of str
    """
    frames = sorted_frames.frames
    first = frames[0]
    row_dir, col_dir = first.orientation[:3], first.orientation[3:]
    sx, sy = float(first.pixel_spacing_mm[1]), float(first.pixel_spacing_mm[0])
    array = _stack_planes(planes, len(frames))
    warnings: list[str] = []
    normal = first.normal
    if len(frames) == 1:
        thickness = single_slice_thickness_mm or 1.0
        direction = np.column_stack([row_dir, col_dir, normal])
        return Image(array, first.position_mm, (sx, sy, thickness), direction), warnings
    step = sorted_frames.step_mm
    deviation_mm, step_length_mm = sorted_frames.max_position_error_mm, float(np.linalg.norm(step))
    if deviation_mm > POSITION_TOL_MM:
        warnings.append(
            f"{label}: slice positions deviate from a regular grid by up to {deviation_mm:.3f} mm "
            f"({100 * deviation_mm / step_length_mm:.1f} % of the {step_length_mm:.3f} mm mean step; tolerance "
            f"{100 * SLICE_POSITION_REL_TOL:g} %): the image uses the mean step, nothing was resampled"
        )
    if not sorted_frames.tilted:
        dz = float(np.linalg.norm(step))
        direction = np.column_stack([row_dir, col_dir, step / dz])
        return Image(array, first.position_mm, (sx, sy, dz), direction), warnings
    angle = float(np.degrees(np.arccos(np.clip(abs(step @ normal) / np.linalg.norm(step), -1, 1))))
    if angle > MAX_TILT_DEG:
        raise GeometryError(
            f"{label}: slices are sheared by {angle:.1f} deg (more than a gantry tilt of {MAX_TILT_DEG:g} deg); "
            "expected a stack of slices along their normal; check the ImagePositionPatient values"
        )
    if tilt != "resample":
        raise GeometryError(
            f"{label}: gantry tilt of {angle:.2f} deg (slices are sheared); expected an orthogonal stack; "
            "resample the series, or load it with tilt='resample'"
        )
    src = np.column_stack([row_dir * sx, col_dir * sy, step])
    dz = float(step @ normal)
    dst_dir = np.column_stack([row_dir, col_dir, normal])
    dst = dst_dir * np.array([sx, sy, dz])
    shape = np.array(array.shape)
    corners = np.array([[a, b, c] for a in (0, shape[0] - 1) for b in (0, shape[1] - 1) for c in (0, shape[2] - 1)])
    corner_idx = (corners @ src.T) @ np.linalg.inv(dst).T
    lo = np.floor(corner_idx.min(axis=0) + 1e-6)
    hi = np.ceil(corner_idx.max(axis=0) - 1e-6)
    out_shape = tuple(int(v) for v in (hi - lo + 1))
    if np.prod(np.asarray(out_shape, dtype=float)) > MAX_RESAMPLED_GROWTH * array.size + 1e6:
        raise GeometryError(
            f"{label}: resampling the tilted stack ({angle:.2f} deg) would need {out_shape} voxels for {array.shape}; "
            "check the ImagePositionPatient values or resample the series first"
        )
    origin = first.position_mm + dst @ lo
    matrix = np.linalg.inv(src) @ dst
    offset = np.linalg.inv(src) @ (origin - first.position_mm)
    from scipy import ndimage  # (here: only a tilted gantry needs it; ~0.09 s to import)

    resampled = ndimage.affine_transform(
        array.astype(np.float64), matrix, offset, output_shape=out_shape, order=1, cval=fill_value
    )
    warnings.append(
        f"{label}: gantry tilt of {angle:.2f} deg; resampled trilinearly onto an orthogonal grid of "
        f"{out_shape} voxels, {sx:.3f} x {sy:.3f} x {dz:.3f} mm"
    )
    return Image(resampled, origin, (sx, sy, dz), dst_dir), warnings
