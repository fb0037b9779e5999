"""Volume averages on axis-aligned grids, one axis at a time (issue 10).

:func:`dosimetry.geometry.resample.mean_on_grid` averages an image over each target voxel by sampling it with
SimpleITK's linear interpolation at the ``n**3`` sub-voxel centres of the voxel. Where the two grids are
axis-aligned (the target's axes are the source's, permuted or flipped: every CT and PET of one study), the
sub-voxel centres form a tensor grid and trilinear interpolation is a product of one-dimensional linear
weights, as is "inside the image" (SimpleITK's rule: continuous index in ``[-0.5, size - 0.5)`` on every
axis). The average over the sub-voxels is then a product of three sparse per-axis weight matrices:

    sum = sum_xyz W0[i, x] W1[j, y] W2[k, z] value[x, y, z]

with ``Wa[t, x]`` the sum over the ``n`` sub-voxel positions of target voxel ``t`` on axis ``a`` of the
linear weight of source voxel ``x`` (zero where the position lies outside), and the covered fraction
``c0[i] c1[j] c2[k] / n**3`` with ``ca[t]`` the number of inside positions. This is the same sum as the
sampling computes, in another order: the result equals it to float32 rounding (SimpleITK rounds every
sample to float32 before they are summed; here everything is float64 and rounded once), about 1e-7
relative, and the covered fractions are the same integers. It needs ~3 passes over the source instead of
``n**3`` interpolations per target voxel, and no supersampled copy.

A sub-voxel centre that lies on the image's outer face in exact arithmetic (grids whose spacings are
simple fractions of each other, as in the sample) is outside, as SimpleITK decides there: positions within
:data:`_FACE_TOLERANCE` of a voxel face are put on it before the half-open test.

ITK's linear interpolator takes the edge value in the half voxel beyond the outermost voxel centres (it
clamps the index), which the weights here do by clamping the position to ``[0, size - 1]``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse

from dosimetry.image import Image
from dosimetry.threads import in_threads

_AXIS_TOLERANCE = 1e-9
_SLAB_SOURCE_VOXELS = 4_000_000
_FACE_TOLERANCE = 1e-9
"""Source voxels: positions closer than this to a voxel face (half-integer index) are taken to lie on it."""


def axis_alignment(source: Image, target: Image) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """How the target's axes map onto the source's, or None when the grids are not axis-aligned.

    Returns
    -------
    axes : ndarray of int, (3,)
        Source axis of each target axis.
    offset : ndarray, (3,)
        Continuous source index (on axis ``axes[a]``) of target index 0 on axis ``a``.
    slope : ndarray, (3,)
        Source index step per target index step on each target axis (negative where flipped).
    """
    rotation = source.direction.T @ target.direction  # column a: target axis a in source axes
    axes = np.argmax(np.abs(rotation), axis=0)
    if (
        sorted(axes.tolist()) != [0, 1, 2]
        or not np.allclose(np.abs(rotation[axes, range(3)]), 1.0, atol=_AXIS_TOLERANCE)
        or np.count_nonzero(np.abs(rotation) > _AXIS_TOLERANCE) != 3
    ):
        return None
    offset_src = ((target.origin_mm - source.origin_mm) @ source.direction) / source.spacing_mm
    offset = offset_src[axes]
    slope = rotation[axes, range(3)] * target.spacing_mm / source.spacing_mm[axes]
    return axes, offset, slope


def linear_axis_weights(
    n_target: int, n_source: int, offset: float, slope: float, n: int
) -> tuple[scipy.sparse.csr_matrix, np.ndarray]:
    """Per-axis weights of the ``n`` sub-voxel samples of each target index, and the inside counts.

    Returns
    -------
    weights : csr_matrix, (n_target, n_source)
        Sum over the inside sub-voxel positions of their linear-interpolation weights (each row sums to
        the row's count).
    counts : ndarray of int64, (n_target,)
        Number of sub-voxel positions inside ``[-0.5, n_source - 0.5)`` (SimpleITK's inside test).
    """
    t = np.arange(n_target, dtype=np.float64)[:, None]
    m = np.arange(n, dtype=np.float64)[None, :]
    positions = offset + slope * (t - 0.5 + (m + 0.5) / n)  # (n_target, n): continuous source index
    # a position within rounding of a voxel face (a half-integer index) is put on it, so that a sub-voxel
    # centre exactly on the image's outer face is outside as in exact arithmetic (ITK's half-open rule)
    faces = np.round(positions * 2.0) / 2.0
    positions = np.where(np.abs(positions - faces) < _FACE_TOLERANCE, faces, positions)
    inside = (positions >= -0.5) & (positions < n_source - 0.5)
    counts = inside.sum(axis=1).astype(np.int64)
    clamped = np.clip(positions, 0.0, n_source - 1.0)
    base = np.minimum(np.floor(clamped).astype(np.int64), max(n_source - 2, 0))
    frac = clamped - base
    rows = np.broadcast_to(np.arange(n_target)[:, None], positions.shape)
    keep = inside.ravel()
    rows, base, frac = rows.ravel()[keep], base.ravel()[keep], frac.ravel()[keep]
    if n_source == 1:  # one voxel: every inside position takes its value
        data, cols, rr = np.ones_like(frac), np.zeros_like(base), rows
    else:
        data = np.concatenate([1.0 - frac, frac])
        cols = np.concatenate([base, base + 1])
        rr = np.concatenate([rows, rows])
    weights = scipy.sparse.coo_matrix((data, (rr, cols)), shape=(n_target, n_source)).tocsr()
    weights.sum_duplicates()
    return weights, counts


def _row_range(indptr: np.ndarray, indices: np.ndarray, row: int) -> tuple[int, int]:
    """Column range [first, last + 1) of one row of a CSR matrix (rows of inside targets are never empty)."""
    cols = indices[indptr[row] : indptr[row + 1]]
    return int(cols.min()), int(cols.max()) + 1


def _reduce_first(values: np.ndarray, weights: scipy.sparse.csr_matrix) -> np.ndarray:
    """``out[t] = sum_x weights[t, x] values[x]`` over the first axis of a C-ordered float64 array.

    The first axis is the slowest in memory, so each term is a multiply-add of whole contiguous rows; the
    sparse product (``csr_matvecs``) writes the output once, adding the terms of each row in column order
    from zero (the same sums, in the same order, as one gather per tap, without the gathered copies).
    """
    flat = values.reshape(values.shape[0], -1)
    return np.asarray(weights @ flat).reshape((weights.shape[0],) + values.shape[1:])


def separable_mean(
    image: Image,
    target: Image,
    n: int,
    *,
    values: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Volume average of ``image`` over each ``target`` voxel (``n`` sub-voxel samples per axis), per axis.

    Parameters
    ----------
    image : Image
        Source image (any dtype; ``values`` converts slabs of it, e.g. HU -> g/mL).
    target : Image
        Grid to average onto (its values are not used).
    n : int
        Sub-voxel samples per target axis, as for the sampling it replaces.
    values : callable, optional
        Applied to each slab of the source array (elementwise conversions only), before averaging.

    Returns
    -------
    (mean, coverage) or None
        float32 mean (NaN where nothing is covered) and float32 covered fraction, on the target grid; None
        when the grids are not axis-aligned (the caller then samples).
    """
    alignment = axis_alignment(image, target)
    if alignment is None:
        return None
    axes, offset, slope = alignment
    source = np.transpose(image.array, axes)  # a view, axis a along target axis a
    w, counts = [], []
    for a in range(3):
        weights, count = linear_axis_weights(target.shape[a], source.shape[a], offset[a], slope[a], n)
        w.append(weights)
        counts.append(count)
    mean = np.full(target.shape, np.nan, dtype=np.float32)
    coverage = np.empty(target.shape, dtype=np.float32)
    for k in range(target.shape[2]):  # a plane at a time: no int64 array of the whole grid
        coverage[:, :, k] = np.outer(counts[0], counts[1]) * counts[2][k] / float(n**3)
    rows = [np.flatnonzero(c) for c in counts]
    if any(r.size == 0 for r in rows):
        return mean, coverage
    lo = [int(r[0]) for r in rows]
    hi = [int(r[-1]) + 1 for r in rows]
    # source columns that the target box needs on axes 0 and 1, and the taps of the box's rows
    c_lo, c_hi, taps = [], [], []
    for a in (0, 1):
        rows_a = w[a][lo[a] : hi[a]]
        used = np.flatnonzero(np.diff(rows_a.tocsc().indptr))
        c_lo.append(int(used[0]))
        c_hi.append(int(used[-1]) + 1)
        taps.append(rows_a[:, c_lo[a] : c_hi[a]].tocsr())
    plane = max((c_hi[0] - c_lo[0]) * (c_hi[1] - c_lo[1]), 1)
    w2 = w[2]
    indptr, indices = w2.indptr, w2.indices
    slabs = []  # target slices [k, k_end) and their source slices [z0, z1): at most ~_SLAB_SOURCE_VOXELS voxels
    k = lo[2]
    while k < hi[2]:
        z0, z1 = _row_range(indptr, indices, k)
        k_end = k + 1
        while k_end < hi[2]:
            r0, r1 = _row_range(indptr, indices, k_end)
            if (max(z1, r1) - min(z0, r0)) * plane > _SLAB_SOURCE_VOXELS:
                break
            z0, z1 = min(z0, r0), max(z1, r1)
            k_end += 1
        slabs.append((k, k_end, z0, z1))
        k = k_end

    def average(slab_range: tuple[int, int, int, int]) -> None:
        k, k_end, z0, z1 = slab_range
        slab = source[c_lo[0] : c_hi[0], c_lo[1] : c_hi[1], z0:z1]
        if values is not None:
            slab = values(slab)
        # each axis in turn made the slowest in memory (one copy) and reduced by its taps, in float64;
        # z first, the other two kept in the slab's memory order so that the first copy reads it linearly
        strides = slab.strides
        labels = [2] + sorted((0, 1), key=lambda a: -abs(strides[a]))
        along = np.ascontiguousarray(slab.transpose(labels), dtype=np.float64)
        del slab
        along = _reduce_first(along, w2[k:k_end][:, z0:z1].tocsr())
        for a in (labels[1], labels[2]):
            along = _reduce_first(np.ascontiguousarray(np.moveaxis(along, labels.index(a), 0)), taps[a])
            labels = [a] + [b for b in labels if b != a]
        total = along.transpose([labels.index(a) for a in range(3)])  # (i, j, k)
        cov = counts[0][lo[0] : hi[0], None, None] * counts[1][None, lo[1] : hi[1], None]
        cov = cov * counts[2][None, None, k:k_end]
        with np.errstate(invalid="ignore", divide="ignore"):
            block = np.where(cov > 0, total / np.where(cov > 0, cov, 1), np.nan)
        mean[lo[0] : hi[0], lo[1] : hi[1], k:k_end] = block

    # slabs are independent (each writes its own target slices) and numpy's copies and scipy's sparse
    # products release the GIL: a second thread takes every other slab
    in_threads(average, slabs)
    return mean, coverage
