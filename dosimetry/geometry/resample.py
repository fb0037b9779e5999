"""Putting images and masks from other grids onto the activity grid, through world coordinates.

Two operations, both computed by supersampling the target grid (each target voxel split into ``n**3``
sub-voxels whose centres are looked up in the source image through world coordinates, then averaged):

* :func:`occupancy_in_box` (and :func:`occupancy_on_grid`, the same on the whole grid): the fraction of each
  target voxel covered by a mask (nearest neighbour at the sub-voxel centres), kept over the voxels the mask
  can reach (:class:`~dosimetry.occupancy.Occupancy`). A mask on a finer, shifted or rotated grid keeps its
  volume and position.
* :func:`mean_on_grid`: the volume average of a continuous image (e.g. CT density) over each target voxel
  (linear interpolation at the sub-voxel centres), so that mass is integrated rather than point-sampled.

Work is done over the target voxels that can be touched (the source's bounding box) in slabs, so memory
stays bounded whatever the supersampling factor.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import numpy as np

from dosimetry.errors import GeometryError
from dosimetry.image import Image, nonzero_box
from dosimetry.io.images import to_sitk
from dosimetry.layout import c_order_copy
from dosimetry.occupancy import Occupancy
from dosimetry.geometry.separable_mean import separable_mean
from dosimetry.geometry.separable_nearest import nearest_counts

if TYPE_CHECKING:
    import SimpleITK as sitk

_MAX_SUBVOXELS_PER_SLAB = 8_000_000
_INTERPOLATORS = {"nearest": "sitkNearestNeighbor", "linear": "sitkLinear"}
"""Interpolator names -> SimpleITK constants (SimpleITK is imported where used: 116 MiB, 0.4 s)."""


def supersampling_factor(source: Image, target: Image, *, per_source_voxel: float = 2.0, maximum: int = 5) -> int:
    """Sub-voxels per target axis so that each source voxel is sampled about ``per_source_voxel`` times."""
    ratio = float(np.max(target.spacing_mm) / np.min(source.spacing_mm))
    return int(min(max(math.ceil(per_source_voxel * ratio), 1), maximum))


def _target_box(
    source: Image, target: Image, box: tuple[np.ndarray, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Index range [lower, upper) of target voxels that the source (or its box [lower, upper)) can touch."""
    if box is not None:
        lo, hi = box[0] - 0.5, box[1] - 1 + 0.5
    else:
        lo, hi = np.full(3, -0.5), np.asarray(source.shape, float) - 0.5
    corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
    idx = target.world_to_index(source.index_to_world(corners))
    lower = np.maximum(np.floor(idx.min(axis=0) + 0.5).astype(int) - 1, 0)
    upper = np.minimum(np.ceil(idx.max(axis=0) + 0.5).astype(int) + 1, np.asarray(target.shape))
    return lower, upper


def _block_sums(sub_kji: np.ndarray, n: int, dtype) -> np.ndarray:
    """Sums over n x n x n blocks of a C-ordered [k, j, i] array (SimpleITK's layout), as [i, j, k].

    Strided slices added one after the other, one axis at a time, in ``dtype``: no copy of the
    supersampled slab and no reduction over a short inner axis (slow in numpy). Sums of 0/1 samples are
    exact integers; sums of up to 125 float32 samples in float64 are exact unless the samples span more
    than about 2^22 in magnitude, so the order of summation does not change the result.
    """
    sums = sub_kji[:, :, 0::n].astype(dtype)
    for r in range(1, n):
        sums += sub_kji[:, :, r::n]
    rows = sums[:, 0::n, :].copy()
    for r in range(1, n):
        rows += sums[:, r::n, :]
    blocks = rows[0::n].copy()
    for r in range(1, n):
        blocks += rows[r::n]
    return blocks.transpose(2, 1, 0)


def _slab_planes(lower, upper, n: int) -> int:
    """Target planes (axis 2) per SimpleITK resampling of :func:`_supersampled_sums`: about
    ``_MAX_SUBVOXELS_PER_SLAB`` sub-voxels at a time (the slab also sets the output origin of each)."""
    plane = int(np.prod(np.asarray(upper[:2]) - np.asarray(lower[:2]))) * n**3
    return max(1, _MAX_SUBVOXELS_PER_SLAB // max(plane * n, 1))


def _supersampled_sums(
    src: sitk.Image, target: Image, lower, upper, n: int, interpolator: str, default: float, *, pixel_type: int
) -> np.ndarray:
    """Sum of ``src`` over the n**3 sub-voxel centres of each target voxel in [lower, upper).

    Parameters
    ----------
    pixel_type : int
        SimpleITK output pixel type of the resampling (``sitkUInt8`` for 0/1 masks: sums are counts).

    Returns
    -------
    ndarray, [i, j, k] over the box
        uint16 counts for ``sitkUInt8`` output, else float64 sums.
    """
    import SimpleITK as sitk

    integer = pixel_type == sitk.sitkUInt8
    out = np.empty(tuple(int(v) for v in upper - lower), dtype=np.uint16 if integer else np.float64)
    slab = _slab_planes(lower, upper, n)
    resampler = sitk.ResampleImageFilter()
    resampler.SetInterpolator(getattr(sitk, _INTERPOLATORS[interpolator]))
    resampler.SetDefaultPixelValue(float(default))
    resampler.SetOutputDirection(tuple(float(v) for v in target.direction.ravel()))
    resampler.SetOutputSpacing(tuple(float(v) for v in target.spacing_mm / n))
    resampler.SetOutputPixelType(pixel_type)
    for k0 in range(int(lower[2]), int(upper[2]), slab):
        k1 = min(k0 + slab, int(upper[2]))
        first = np.array([lower[0], lower[1], k0], dtype=float) - 0.5 + 0.5 / n
        resampler.SetOutputOrigin(tuple(float(v) for v in target.index_to_world(first)))
        size = (int(upper[0] - lower[0]) * n, int(upper[1] - lower[1]) * n, (k1 - k0) * n)
        resampler.SetSize(size)
        resampled = resampler.Execute(src)  # keep a reference: the array view below borrows its buffer
        sub = sitk.GetArrayViewFromImage(resampled)  # [k, j, i], C order
        out[:, :, k0 - int(lower[2]) : k1 - int(lower[2])] = _block_sums(sub, n, out.dtype)
        del resampled, sub
    return out


def _is_binary(values: np.ndarray) -> bool:
    """True for boolean arrays and arrays holding only 0 and 1."""
    if values.dtype == bool:
        return True
    return bool(np.all((values == 0) | (values == 1)))


def occupancy_on_grid(mask: Image, target: Image, *, supersample: int | None = None) -> Image:
    """Fraction (0..1) of each ``target`` voxel covered by ``mask``, computed in world coordinates.

    Parameters
    ----------
    mask : Image
        Occupancy mask (0/1 or fractions) on any grid.
    target : Image
        Grid to map onto (its values are not used).
    supersample : int, optional
        Sub-voxels per axis of each target voxel; by default about two samples per mask voxel (2..5).

    Returns
    -------
    Image
        float32 occupancy on the whole target grid: :func:`occupancy_in_box` written into a full array.

    Raises
    ------
    GeometryError
        The mask does not overlap the target grid at all.
    """
    return target.with_array(occupancy_in_box(mask, target, supersample=supersample).full())


def occupancy_in_box(mask: Image, target: Image, *, supersample: int | None = None) -> Occupancy:
    """:func:`occupancy_on_grid` kept only over the target voxels the mask can reach (float32, C order).

    Notes
    -----
    Only the mask's nonzero box (found from per-axis projections) is handed to SimpleITK, and only the
    target voxels it can touch are sampled. Sub-voxel centres outside the box would find zeros in the
    full mask and find the default 0 outside the cropped one: the result is the same. 0/1 masks are
    resampled as uint8 and averaged as integer counts; where both grids' directions are signed permutations
    (exact zeros off the axes) those counts are computed one axis at a time from SimpleITK's own index
    maps (:mod:`dosimetry.geometry.separable_nearest`), the same integers without ``n**3`` lookups per
    voxel. A mask on the target grid, or on its lattice (cropped to its extent), is copied voxel for voxel.
    """
    if mask.same_grid(target):  # C order, as the resampled ones: statistics gather by C-order flat index
        return Occupancy.cropped(mask.array, np.float32)
    offset = mask.subgrid_offset(target)
    if offset is not None:  # the same lattice (a mask cropped to its extent): each voxel is copied, as above
        return _pasted(mask.array, offset, target.shape)
    box = nonzero_box(mask.array if mask.array.dtype.kind in "bu" else mask.array > 0)
    if box is None:
        raise GeometryError("the mask does not overlap the image grid; check that both come from the same scan")
    lower, upper = _target_box(mask, target, box)
    if not np.all(upper > lower):
        raise GeometryError("the mask does not overlap the image grid; check that both come from the same scan")
    n = supersample or supersampling_factor(mask, target)
    # one voxel of margin around the nonzero box: sub-voxel centres at the box's faces find their own
    # (zero) neighbour rather than the default value, whatever the rounding of the shifted origin
    crop_lo = np.maximum(box[0] - 1, 0)
    crop_hi = np.minimum(box[1] + 1, np.asarray(mask.shape))
    import SimpleITK as sitk

    cropped = mask.crop(crop_lo, crop_hi)
    binary = _is_binary(cropped.array)
    sums = None
    if binary:  # grids with exactly axis-aligned directions: the same counts, one axis at a time
        sums = nearest_counts(cropped, target, lower, upper, n, _slab_planes(lower, upper, n))
    if sums is None:
        values = cropped.array.astype(np.uint8 if binary else np.float32)
        src = to_sitk(cropped.with_array(values))
        del values
        sums = _supersampled_sums(
            src, target, lower, upper, n, "nearest", 0.0, pixel_type=sitk.sitkUInt8 if binary else sitk.sitkFloat32
        )
    # the mean as np.mean computes it: float64 sum / count, then float32
    occupancy = np.ascontiguousarray(sums / float(n**3), dtype=np.float32)
    del sums
    if not occupancy.any():
        raise GeometryError("the mask does not overlap the image grid; check that both come from the same scan")
    np.clip(occupancy, 0.0, 1.0, out=occupancy)
    return Occupancy(occupancy, lower, target.shape)


def _pasted(values: np.ndarray, offset: np.ndarray, shape) -> Occupancy:
    """``values`` placed at index ``offset`` of a grid of ``shape`` (parts outside dropped), float32."""
    lo = np.maximum(offset, 0)
    hi = np.minimum(offset + np.asarray(values.shape), np.asarray(shape))
    if np.all(hi > lo):
        src = tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, offset))
        out = c_order_copy(values[src], np.float32)
        if out.any():
            np.clip(out, 0.0, 1.0, out=out)
            return Occupancy(out, lo, shape)
    raise GeometryError("the mask does not overlap the image grid; check that both come from the same scan")


_INSIDE_MARGIN = 1e-3
"""Continuous-index margin (source voxels) by which every sub-voxel centre of a target voxel must lie inside
the source's extent for the voxel to count as covered without sampling."""


def _inner_box(source: Image, target: Image, lower, upper, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Target voxels in [lower, upper) whose every sub-voxel centre lies inside the source's extent by
    :data:`_INSIDE_MARGIN`, as a box [lo, hi); None when the grids are not axis-aligned (the box is then
    not a box) or no voxel is inside."""
    rotation = source.direction.T @ target.direction  # column a: target axis a in source axes
    axes = np.argmax(np.abs(rotation), axis=0)
    if (
        sorted(axes.tolist()) != [0, 1, 2]
        or not np.allclose(np.abs(rotation[axes, range(3)]), 1.0, atol=1e-9)
        or np.count_nonzero(np.abs(rotation) > 1e-9) != 3
    ):
        return None
    offset = ((target.origin_mm - source.origin_mm) @ source.direction) / source.spacing_mm  # target voxel 0
    lo, hi = np.array(lower), np.array(upper)
    for a in range(3):
        s = axes[a]
        slope = rotation[s, a] * target.spacing_mm[a] / source.spacing_mm[s]
        t = np.arange(lower[a], upper[a], dtype=float)
        first, last = offset[s] + slope * (t - 0.5 + 0.5 / n), offset[s] + slope * (t + 0.5 - 0.5 / n)
        inside = (np.minimum(first, last) >= -0.5 + _INSIDE_MARGIN) & (
            np.maximum(first, last) <= source.shape[s] - 0.5 - _INSIDE_MARGIN
        )
        hits = np.flatnonzero(inside)
        if hits.size == 0:
            return None
        lo[a], hi[a] = lower[a] + hits[0], lower[a] + hits[-1] + 1
    return lo, hi


def _shell_boxes(lower, upper, inner_lo, inner_hi):
    """The box [lower, upper) minus the inner box, as up to six boxes."""
    lower, upper, inner_lo, inner_hi = (np.asarray(v) for v in (lower, upper, inner_lo, inner_hi))
    boxes = []
    lo, hi = lower.copy(), upper.copy()
    for a in (2, 1, 0):  # slabs along k, then rows along j inside them, then columns along i
        below_hi = hi.copy()
        below_hi[a] = inner_lo[a]
        above_lo = lo.copy()
        above_lo[a] = inner_hi[a]
        boxes += [(lo.copy(), below_hi), (above_lo, hi.copy())]
        lo[a], hi[a] = inner_lo[a], inner_hi[a]
    return [(b_lo, b_hi) for b_lo, b_hi in boxes if np.all(b_hi > b_lo)]


def _coverage_counts(image: Image, src: sitk.Image, target: Image, lower, upper, n: int) -> np.ndarray:
    """Per target voxel of [lower, upper), the number of its n**3 sub-voxel centres inside the image's extent.

    Nearest-neighbour samples of an image of ones (0 outside the extent), summed. Voxels surely inside (axis-
    aligned grids: every sub-voxel centre at least :data:`_INSIDE_MARGIN` source voxels inside) get n**3
    without sampling; only the shell around them is sampled.
    """
    import SimpleITK as sitk

    ones = sitk.Image(src.GetSize(), sitk.sitkUInt8)
    ones.CopyInformation(src)
    ones = sitk.Add(ones, 1)
    inner = _inner_box(image, target, lower, upper, n)
    if inner is None:
        return _supersampled_sums(ones, target, lower, upper, n, "nearest", 0.0, pixel_type=sitk.sitkUInt8)
    counts = np.full(tuple(int(v) for v in np.asarray(upper) - lower), n**3, dtype=np.uint16)
    for b_lo, b_hi in _shell_boxes(lower, upper, *inner):
        part = _supersampled_sums(ones, target, b_lo, b_hi, n, "nearest", 0.0, pixel_type=sitk.sitkUInt8)
        at = tuple(slice(int(b_lo[a] - lower[a]), int(b_hi[a] - lower[a])) for a in range(3))
        counts[at] = part
    return counts


def mean_on_grid(
    image: Image,
    target: Image,
    *,
    supersample: int | None = None,
    values: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[Image, np.ndarray]:
    """Volume average of ``image`` over each ``target`` voxel, with the fraction of it the image covers.

    Parameters
    ----------
    image, target : Image
        The image to average and the grid to average onto.
    supersample : int, optional
        Sub-voxels per axis of each target voxel; by default about one per source voxel (up to 4).
    values : callable, optional
        Elementwise conversion of the image's values (e.g. HU -> g/mL) applied before averaging, slab by
        slab where the grids are axis-aligned (no converted copy of the whole image).

    Returns
    -------
    mean : Image
        float32 average over the covered part of each target voxel (NaN where nothing is covered).
    coverage : ndarray
        Fraction (0..1) of each target voxel inside the image's extent.

    Notes
    -----
    Axis-aligned grids (the usual CT and PET of one study) are averaged one axis at a time
    (:func:`dosimetry.geometry.separable_mean.separable_mean`): the same sum of linear-interpolation samples, equal to
    the sampling to float32 rounding (~1e-7 relative), with the same covered fractions. Other grids are
    sampled with SimpleITK at every sub-voxel centre (:func:`sampled_mean_on_grid`).
    """
    if image.same_grid(target):
        array = values(image.array) if values is not None else image.array
        return target.with_array(array.astype(np.float32)), np.ones(target.shape, np.float32)
    n = supersample or supersampling_factor(image, target, per_source_voxel=1.0, maximum=4)
    fast = separable_mean(image, target, n, values=values)
    if fast is not None:
        return target.with_array(fast[0]), fast[1]
    if values is not None:
        image = image.with_array(values(image.array))
    return sampled_mean_on_grid(image, target, n)


def sampled_mean_on_grid(image: Image, target: Image, n: int) -> tuple[Image, np.ndarray]:
    """:func:`mean_on_grid` by SimpleITK linear sampling at the ``n**3`` sub-voxel centres of every voxel."""
    import SimpleITK as sitk

    lower, upper = _target_box(image, target, None)
    mean = np.full(target.shape, np.nan, dtype=np.float32)
    coverage = np.zeros(target.shape, dtype=np.float32)
    if np.all(upper > lower):
        values = image.array
        if values.dtype != np.float32 or not values.T.flags.c_contiguous:
            values = np.asfortranarray(values, dtype=np.float32)  # SimpleITK's [k, j, i] C order: one copy
        src = to_sitk(image.with_array(values))
        del values
        counts = _coverage_counts(image, src, target, lower, upper, n)
        # Sum of (value x inside) over sub-voxels: sample value with default 0 and divide by coverage.
        total = _supersampled_sums(src, target, lower, upper, n, "linear", 0.0, pixel_type=sitk.sitkFloat32)
        del src
        cov = counts / float(n**3)
        total /= float(n**3)
        with np.errstate(invalid="ignore", divide="ignore"):
            block = np.where(cov > 0, total / np.where(cov > 0, cov, 1.0), np.nan)
        mean[lower[0] : upper[0], lower[1] : upper[1], lower[2] : upper[2]] = block
        coverage[lower[0] : upper[0], lower[1] : upper[1], lower[2] : upper[2]] = cov
    return target.with_array(mean), coverage


OUTSIDE_IMAGE_LIMIT_PERCENT = 20.0
"""ROIs with more than this share of their volume outside the activity image are refused (unless allowed)."""
_OUTSIDE_IMAGE_NOTE_PERCENT = 0.1
"""Below this share (boundary sampling), no warning is given; the numbers are still recorded."""
_CHUNK_VOXELS = 2_000_000


def volume_outside_grid(mask: Image, target: Image) -> tuple[float, float]:
    """Volume (mL) of ``mask`` and the part of it outside the extent of ``target``, in world coordinates.

    Each mask voxel counts with its occupancy value; a mask voxel is outside when its centre lies beyond
    the outer faces of the target's voxel grid (so the result is exact to about half a mask voxel at the
    border).

    Returns
    -------
    volume_ml, outside_ml : float
    """
    values = np.asarray(mask.array)
    if values.dtype.kind not in "bu" and values.dtype != np.float32:
        values = values.astype(np.float32)  # 0/1 masks are summed as they are: no float copy
    total_ml = float(values.sum(dtype=np.float64)) * mask.voxel_volume_ml
    if mask.same_grid(target) or total_ml == 0.0:
        return total_ml, 0.0
    box = nonzero_box(values > 0)
    # fast path: the mask's nonzero box lies inside the target
    lo, hi = box[0], box[1] - 1
    corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
    if np.all(_inside(target, mask.index_to_world(corners))):
        return total_ml, 0.0
    # plane by plane along the mask's last axis: a plane whose four corner voxels all lie inside the target
    # is inside (the target's extent is convex), one whose corners all lie beyond one face is outside; only
    # the planes across a face are tested voxel by voxel
    limit = np.asarray(target.shape) - 0.5
    outside = 0.0
    for k in range(box[0][2], box[1][2]):
        plane_corners = np.array([[a, b, k] for a in (lo[0], hi[0]) for b in (lo[1], hi[1])])
        idx = target.world_to_index(mask.index_to_world(plane_corners))
        inside = (idx >= -0.5) & (idx <= limit)
        if np.all(inside):
            continue
        plane = values[box[0][0] : box[1][0], box[0][1] : box[1][1], k]
        if np.any(np.all(idx < -0.5, axis=0) | np.all(idx > limit, axis=0)):
            outside += float(plane.sum(dtype=np.float64))
            continue
        nz = np.argwhere(plane > 0)
        for start in range(0, len(nz), _CHUNK_VOXELS):
            part = nz[start : start + _CHUNK_VOXELS]
            ijk = np.column_stack([part + box[0][:2], np.full(len(part), k)])
            out = ~_inside(target, mask.index_to_world(ijk))
            outside += float(plane[tuple(part[out].T)].sum(dtype=np.float64))
    return total_ml, outside * mask.voxel_volume_ml


def _inside(target: Image, xyz: np.ndarray) -> np.ndarray:
    idx = target.world_to_index(xyz)
    return np.all((idx >= -0.5) & (idx <= np.asarray(target.shape) - 0.5), axis=-1)


def check_roi_inside(
    name: str, mask: Image, target: Image, *, allow_outside: bool = False, source: str = "", refuse: bool = True
) -> tuple[dict, str | None]:
    """The part of an ROI outside the activity image: its record for stats.json, a warning, or an error.

    Parameters
    ----------
    name, source : str
        The ROI's name and origin, for the messages.
    mask, target : Image
        The ROI's mask (any grid) and the activity image.
    allow_outside : bool
        Accept more than :data:`OUTSIDE_IMAGE_LIMIT_PERCENT` outside (the warning stays).
    refuse : bool
        False: never refuse, only warn (the pipeline's choice for ROIs of role 'other', such as a body
        outline drawn on a CT larger than the emission image, which feed no derived statistic).

    Returns
    -------
    record : dict
        ``outside_image_ml`` and ``outside_image_percent`` (of the ROI's own volume).
    warning : str or None

    Raises
    ------
    GeometryError
        More than the limit outside, without ``allow_outside``.
    """
    volume_ml, outside_ml = volume_outside_grid(mask, target)
    percent = 100.0 * outside_ml / volume_ml if volume_ml > 0 else 0.0
    record = {"outside_image_ml": outside_ml, "outside_image_percent": percent}
    label = f"ROI {name!r}" + (f" ({source})" if source else "")
    numbers = f"{percent:.1f}% of it ({outside_ml:.1f} of {volume_ml:.1f} mL) lies outside the activity image"
    if percent > OUTSIDE_IMAGE_LIMIT_PERCENT and refuse and not allow_outside:
        raise GeometryError(
            f"{label}: {numbers}, more than {OUTSIDE_IMAGE_LIMIT_PERCENT:g}%; check that the mask "
            "belongs to this scan, or add --allow-roi-outside (allow_roi_outside=True) to use the "
            "part inside"
        )
    if percent < _OUTSIDE_IMAGE_NOTE_PERCENT:
        return record, None
    return record, f"{label}: {numbers}; its statistics cover only the part inside"
