"""Nearest-neighbour counts of a 0/1 mask on an axis-aligned grid, one axis at a time (issue 10).

:func:`dosimetry.geometry.resample.occupancy_in_box` counts, for each target voxel, how many of its ``n**3``
sub-voxel centres land on a set voxel of a 0/1 mask, by SimpleITK nearest-neighbour resampling of the
supersampled grid (:func:`~dosimetry.geometry.resample._supersampled_sums`): ``n**3`` lookups per target
voxel, most of the time of a run's ROI stage for a fine CT-grid segmentation.

Where both grids' directions are signed permutation matrices (exact zeros off the axes: a CT-grid
segmentation and the PET of one study), the source index that SimpleITK picks on a source axis depends on the
sub-voxel's coordinate along one target axis only, and the count is separable:

    count[i, j, k] = sum_xyz N0[i, x] N1[j, y] N2[k, z] mask[x, y, z]

with ``Na[t, x]`` the number of the ``n`` sub-voxel positions of target index ``t`` on axis ``a`` that
SimpleITK maps to source index ``x`` (none where it finds the position outside the image).

Which index SimpleITK picks is decided by ITK's floating-point arithmetic where a position lies on a voxel
face (grids whose spacings are simple ratios, as 700 mm / 256 and 500 mm / 512 are: 2.8 exactly, meet such
ties), so the maps are not computed here: they are **read from SimpleITK itself**, by resampling with the same
resampler settings (origin, spacing, direction, interpolator) three probe images whose voxels hold their own
index along one axis, onto one line of sub-voxels along each target axis (per slab along the third, as the
real resampling sets its origin per slab). ITK maps each output line from the transformed first point and a
per-pixel step, independently of the other lines, so the indices on a line equal those of every parallel
line of the full resampling: a few thousand lookups instead of ``n**3`` per voxel. The counts are integers in
float64, exact; tests compare them with the full resampling on tie-rich and random grids.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from dosimetry.geometry.separable_mean import _reduce_first, axis_alignment
from dosimetry.image import Image


def signed_permutation(direction: np.ndarray) -> bool:
    """True when ``direction`` has exactly one nonzero entry, +1 or -1, in each row and column."""
    d = np.asarray(direction, dtype=float)
    return bool(
        np.all((d == 0) | (np.abs(d) == 1))
        and np.all(np.count_nonzero(d, axis=0) == 1)
        and np.all(np.count_nonzero(d, axis=1) == 1)
    )


def nearest_counts(mask: Image, target: Image, lower, upper, n: int, slab: int) -> np.ndarray | None:
    """Per target voxel of the box [lower, upper), the number of its ``n**3`` sub-voxel centres on a set
    voxel of the 0/1 ``mask``, as :func:`~dosimetry.geometry.resample._supersampled_sums` counts them with
    SimpleITK (default 0 outside the mask's grid); ``slab`` is the number of target planes per resampling
    there (it sets the output origin of each).

    Returns
    -------
    ndarray of float64 (integer values), [i, j, k] over the box, or None
        None when a direction is not a signed permutation, or the mask has 65535 voxels or more along an
        axis (the caller then resamples).
    """
    if not (signed_permutation(mask.direction) and signed_permutation(target.direction)):
        return None
    if max(mask.shape) >= np.iinfo(np.uint16).max:  # the probes hold index + 1 as uint16
        return None
    axes = [int(v) for v in axis_alignment(mask, target)[0]]  # mask axis of each target axis
    lower = [int(v) for v in lower]
    upper = [int(v) for v in upper]
    maps = [_axis_map(mask, target, lower, upper, n, slab, a, axes[a]) for a in range(3)]
    matrices = [_count_matrix(m, n, mask.shape[axes[a]]) for a, m in enumerate(maps)]
    source = np.transpose(np.asarray(mask.array), axes)  # a view: axis a runs along target axis a
    # the slowest axis in memory first (its copy to the front reads linearly), each reduced by one product
    order = sorted(range(3), key=lambda a: -abs(source.strides[a]))
    values = source
    labels = [0, 1, 2]
    for a in order:
        front = np.moveaxis(values, labels.index(a), 0)
        values = _reduce_first(
            np.ascontiguousarray(front, dtype=np.float32 if values is source else np.float64), matrices[a]
        )
        labels = [a] + [b for b in labels if b != a]
    return values.transpose([labels.index(a) for a in range(3)])


def _axis_map(mask: Image, target: Image, lower, upper, n: int, slab: int, a: int, source_axis: int) -> np.ndarray:
    """Source index (on ``source_axis``) + 1 that SimpleITK's nearest-neighbour resampling gives each of the
    ``n * (upper[a] - lower[a])`` sub-voxel positions on target axis ``a``; 0 where it finds them outside."""
    import SimpleITK as sitk

    from dosimetry.io.images import to_sitk

    size = mask.shape[source_axis]
    shape = [1, 1, 1]
    shape[source_axis] = size
    ramp = (np.arange(1, size + 1, dtype=np.uint16)).reshape(shape)
    probe = to_sitk(mask.with_array(np.broadcast_to(ramp, mask.shape)))
    resampler = sitk.ResampleImageFilter()
    resampler.SetInterpolator(sitk.sitkNearestNeighbor)
    resampler.SetDefaultPixelValue(0.0)
    resampler.SetOutputDirection(tuple(float(v) for v in target.direction.ravel()))
    resampler.SetOutputSpacing(tuple(float(v) for v in target.spacing_mm / n))
    resampler.SetOutputPixelType(sitk.sitkUInt16)
    out = []
    # the line runs along the physical axis of target axis a; its other coordinates are put at the mask's
    # centre (inside it, so that the inside test passes there), which leaves the coordinate along the line,
    # and so the index along source_axis, as in the full resampling (exact zeros off the directions' axes)
    along = int(np.argmax(np.abs(target.direction[:, a])))
    centre = mask.index_to_world((np.asarray(mask.shape, dtype=float) - 1.0) / 2.0)
    # the output origin as the full resampling sets it: per slab of target planes along axis 2
    starts = range(int(lower[2]), int(upper[2]), slab) if a == 2 else [int(lower[2])]
    for k0 in starts:
        k1 = min(k0 + slab, upper[2])
        first = np.array([lower[0], lower[1], k0], dtype=float) - 0.5 + 0.5 / n
        origin = np.array(target.index_to_world(first), dtype=float)
        others = [q for q in range(3) if q != along]
        origin[others] = centre[others]
        resampler.SetOutputOrigin(tuple(float(v) for v in origin))
        line = [1, 1, 1]
        line[a] = int((upper[a] - lower[a]) * n if a != 2 else (k1 - k0) * n)
        resampler.SetSize(line)
        out.append(sitk.GetArrayFromImage(resampler.Execute(probe)).reshape(-1))
    return np.concatenate(out).astype(np.int64)


def _count_matrix(mapped: np.ndarray, n: int, n_source: int) -> scipy.sparse.csr_matrix:
    """``N[t, x]``: how many of the ``n`` positions of target index ``t`` map to source index ``x``."""
    rows = np.repeat(np.arange(mapped.size // n), n)
    inside = mapped > 0
    counts = scipy.sparse.coo_matrix(
        (np.ones(int(inside.sum())), (rows[inside], mapped[inside] - 1)), shape=(mapped.size // n, n_source)
    ).tocsr()
    counts.sum_duplicates()
    return counts
