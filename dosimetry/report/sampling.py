"""Linear sampling of a volume on a plane of points, and 2-D cross morphology, for the report's images.

Without scipy.ndimage on the usual path (its import alone is tens of milliseconds of a run's start-up):

* :func:`sample_linear` returns what ``scipy.ndimage.map_coordinates(array, grid.full(), order=1,
  mode="constant", cval=cval, prefilter=False, output=np.float32)`` returns. When the plane is axis-aligned
  in the array (each of the 3 index coordinates varies along the rows only, along the columns only, or not
  at all: :meth:`PlaneIndex.axes`), trilinear interpolation is separable: two slices along the constant
  axis are blended, then the rows, then the columns, each a gather and a weighted sum. Other planes (an
  oblique grid) go to ``map_coordinates``, imported there.
* :func:`erode_cross` and :func:`dilate_cross` are ``scipy.ndimage.binary_erosion(mask, iterations=n,
  border_value=0)`` and ``binary_dilation(mask, iterations=n)`` with scipy's default structure (the 2-D
  cross, connectivity 1), done with shifted slices.

Semantics of ``mode="constant"`` copied (scipy >= 1.6, checked on 1.17, pinned by the tests): a point whose
index is outside ``[0, n - 1]`` on any axis gets ``cval`` (no interpolation towards ``cval`` in the last
half voxel: that is ``mode="grid-constant"``); inside, the two neighbours along each axis are blended by
the fractional part, all in float64, rounded to float32 once. The blends are nested here instead of
scipy's sum of eight weighted corners, so a value can differ from scipy's by float64 rounding (1e-16
relative), which after the float32 rounding only rarely shows, as one float32 ulp. One difference on
purpose: a NaN voxel spreads in scipy to points that give it weight 0; here it does not (no NaN is drawn).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PlaneIndex", "dilate_cross", "erode_cross", "sample_linear"]

_CONSTANT, _ROWS, _COLUMNS = 0, 1, 2


@dataclass(frozen=True)
class PlaneIndex:
    """Fractional voxel indices of a regular grid of points: ``origin + j * down + i * across`` for row j
    and column i of ``shape`` (rows, columns); ``origin``, ``down`` and ``across`` are (3,) float64."""

    origin: np.ndarray
    down: np.ndarray
    across: np.ndarray
    shape: tuple[int, int]

    def full(self) -> np.ndarray:
        """The indices of every point, (3, rows, columns) float64."""
        j = np.arange(self.shape[0], dtype=np.float64)[:, None]
        i = np.arange(self.shape[1], dtype=np.float64)[None, :]
        return np.stack([self.origin[k] + j * self.down[k] + i * self.across[k] for k in range(3)])

    def axes(self) -> list[tuple[int, np.ndarray]] | None:
        """Per array axis ``(kind, indices)``: kind 0 constant (one index), 1 along the rows (one index per
        row), 2 along the columns (one per column); the same float64 values as :meth:`full`. None unless
        exactly one axis is of each kind (an oblique grid)."""
        out = []
        for k in range(3):
            down, across = self.down[k] != 0, self.across[k] != 0
            if down and across:
                return None
            if down:
                j = np.arange(self.shape[0], dtype=np.float64)
                out.append((_ROWS, self.origin[k] + j * self.down[k]))
            elif across:
                i = np.arange(self.shape[1], dtype=np.float64)
                out.append((_COLUMNS, self.origin[k] + i * self.across[k]))
            else:
                out.append((_CONSTANT, np.array([self.origin[k]])))
        if sorted(kind for kind, _ in out) != [_CONSTANT, _ROWS, _COLUMNS]:
            return None
        return out


def sample_linear(array: np.ndarray, grid: PlaneIndex, *, cval: float, offset=None) -> np.ndarray:
    """Linear samples (float32, ``grid.shape``) of the 3-D ``array`` (any real or bool dtype, not copied)
    at the indices of ``grid`` minus ``offset`` ((3,) int, default 0: ``array`` is then a crop of a larger
    volume starting at ``offset``); ``cval`` outside ``[0, n - 1]`` on any axis. Equal to
    ``scipy.ndimage.map_coordinates(..., order=1, mode="constant", prefilter=False)`` (see the module
    docstring); oblique grids are sampled by it."""
    if array.ndim != 3:
        raise ValueError(f"sample_linear: a 3-D array is needed, got shape {array.shape}")
    offset = np.zeros(3, np.intp) if offset is None else np.asarray(offset)
    axes = grid.axes()
    if axes is None:
        from scipy.ndimage import map_coordinates

        coords = grid.full() - offset[:, None, None]
        source = array.astype(np.float32) if array.dtype == bool else array
        return map_coordinates(source, coords, output=np.float32, order=1, mode="constant", cval=cval, prefilter=False)
    return _sample_separable(array, [(kind, x - offset[k]) for k, (kind, x) in enumerate(axes)], grid.shape, cval)


def _neighbours(x: np.ndarray, n: int) -> tuple[slice, np.ndarray, np.ndarray, np.ndarray]:
    """For indices ``x`` (linear in the row or column, hence monotonic) on an axis of length n: the slice of them inside ``[0, n - 1]``, and
    for those the lower and upper neighbour and the weight of the upper one."""
    inside = np.flatnonzero((x >= 0) & (x <= n - 1))
    if inside.size == 0:
        return slice(0, 0), np.empty(0, np.intp), np.empty(0, np.intp), np.empty(0)
    x = x[inside[0] : inside[-1] + 1]
    lower = np.floor(x)
    t = x - lower
    lower = lower.astype(np.intp)
    upper = np.minimum(lower + 1, n - 1)  # x == n - 1: the upper neighbour has weight 0
    return slice(inside[0], inside[-1] + 1), lower, upper, t


def _sample_separable(array: np.ndarray, axes, shape: tuple[int, int], cval: float) -> np.ndarray:
    out = np.full(shape, cval, np.float32)
    kinds = [kind for kind, _ in axes]
    c, r, q = kinds.index(_CONSTANT), kinds.index(_ROWS), kinds.index(_COLUMNS)
    _, c_lo, c_hi, c_t = _neighbours(axes[c][1], array.shape[c])
    if c_lo.size == 0:  # the plane misses the array (often: an ROI's box)
        return out
    rows, r_lo, r_hi, r_t = _neighbours(axes[r][1], array.shape[r])
    if r_lo.size == 0:
        return out
    cols, q_lo, q_hi, q_t = _neighbours(axes[q][1], array.shape[q])
    if q_lo.size == 0:
        return out
    # the source block the points need, two slices along the constant axis, as float64 (rows, columns)
    r0, r1 = int(r_lo.min()), int(r_hi.max()) + 1
    q0, q1 = int(q_lo.min()), int(q_hi.max()) + 1
    index = [slice(None)] * 3
    index[r], index[q] = slice(r0, r1), slice(q0, q1)
    planes = []
    for k in (int(c_lo[0]), int(c_hi[0])):
        index[c] = k
        block = array[tuple(index)].astype(np.float64)
        planes.append(block if r < q else block.T)
    t = float(c_t[0])
    block = (1.0 - t) * planes[0] + t * planes[1]
    block = (1.0 - r_t)[:, None] * block[r_lo - r0] + r_t[:, None] * block[r_hi - r0]
    block = (1.0 - q_t) * block[:, q_lo - q0] + q_t * block[:, q_hi - q0]
    out[rows, cols] = block
    return out


def erode_cross(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    """``scipy.ndimage.binary_erosion(mask, iterations=iterations, border_value=0)`` of a 2-D mask with
    the cross (connectivity 1): a pixel stays when it and its 4 neighbours are set, outside counts as unset."""
    if mask.ndim != 2 or iterations < 1:
        raise ValueError(f"erode_cross: a 2-D mask and iterations >= 1 are needed, got {mask.shape}, {iterations}")
    m = np.asarray(mask, bool)
    for _ in range(iterations):
        e = np.zeros_like(m)
        e[1:-1, 1:-1] = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
        m = e
    return m


def dilate_cross(mask: np.ndarray, iterations: int = 1) -> np.ndarray:
    """``scipy.ndimage.binary_dilation(mask, iterations=iterations)`` of a 2-D mask with the cross
    (connectivity 1): a pixel is set when it or one of its 4 neighbours is."""
    if mask.ndim != 2 or iterations < 1:
        raise ValueError(f"dilate_cross: a 2-D mask and iterations >= 1 are needed, got {mask.shape}, {iterations}")
    m = np.asarray(mask, bool)
    for _ in range(iterations):
        d = m.copy()
        d[1:] |= m[:-1]
        d[:-1] |= m[1:]
        d[:, 1:] |= m[:, :-1]
        d[:, :-1] |= m[:, 1:]
        m = d
    return m
