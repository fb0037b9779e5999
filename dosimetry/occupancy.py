"""An ROI's occupancy on a grid, stored only inside its bounding box.

An ROI covers a small part of the scan: a liver is about 5% of a 256^3 PET grid, a lesion far less. Its
occupancy (the fraction 0..1 of each voxel inside the ROI) is therefore kept as a float32 array over the
ROI's index box plus the box's position on the grid, :class:`Occupancy`, instead of a full-grid array: for a
256^3 study with four ROIs this is a few MB instead of 256 MB, and every statistic reads only the box.

Every operation gives, voxel for voxel, the values the same operation gives on the full-grid arrays (the
voxels outside a box are zero and stay zero), and the voxels an ROI selects come in the C order of the full
grid, so statistics gathered through :meth:`Occupancy.gather` are the same arrays as before, in the same
order. The functions of this module also accept full-grid arrays (wrapped without a copy by
:meth:`Occupancy.of`), so callers with arrays of their own keep working.

An :class:`Occupancy` reads like a read-only 3-D array where that is cheap: ``shape``, ``dtype``, ``ndim``,
``sum``, ``any``, basic slicing (``occ[i0:i1, j0:j1, k0:k1]``) and ``np.asarray(occ)``, which builds the
full-grid array (for notebooks and old code; the pipeline never does).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from dosimetry.image import nonzero_box
from dosimetry.layout import c_order_copy


class Occupancy:
    """Occupancy (0..1) of one ROI on a grid of ``grid_shape``, stored as ``values`` over the index box
    ``start <= ijk < start + values.shape``; zero elsewhere.

    Parameters
    ----------
    values : ndarray, 3-D (any number of axes for arrays wrapped by :meth:`of`)
        The occupancy inside the box (float32 in the pipeline).
    start : sequence of int
        Grid index of ``values[0, 0, 0]``.
    grid_shape : sequence of int
        Shape of the whole grid (the dose grid).
    """

    __slots__ = ("values", "start", "grid_shape")

    def __init__(self, values: np.ndarray, start: Sequence[int], grid_shape: Sequence[int]):
        values = np.asarray(values)
        start = tuple(int(s) for s in start)
        grid_shape = tuple(int(s) for s in grid_shape)
        if not values.ndim == len(start) == len(grid_shape):
            raise ValueError("values, start and grid_shape of an occupancy need the same number of axes")
        if any(s < 0 or s + n > g for s, n, g in zip(start, values.shape, grid_shape)):
            raise ValueError(f"box at {start} of shape {values.shape} does not fit the grid {grid_shape}")
        self.values = values
        self.start = start
        self.grid_shape = grid_shape

    # --- construction ------------------------------------------------------------------------------------------
    @classmethod
    def of(cls, weights) -> "Occupancy":
        """``weights`` as an :class:`Occupancy`: itself, or a full-grid array wrapped without a copy."""
        if isinstance(weights, Occupancy):
            return weights
        array = np.asarray(weights)
        return cls(array, (0,) * array.ndim, array.shape)

    @classmethod
    def cropped(cls, array: np.ndarray, dtype=np.float32) -> "Occupancy":
        """The nonzero box of a full-grid array, copied in C order as ``dtype`` (an empty box if all zero)."""
        array = np.asarray(array)
        box = nonzero_box(array if array.dtype.kind in "bu" else array != 0)
        if box is None:
            return cls.empty(array.shape, dtype)
        lo, hi = box
        return cls(c_order_copy(array[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], dtype), lo, array.shape)

    @classmethod
    def empty(cls, grid_shape: Sequence[int], dtype=np.float32) -> "Occupancy":
        """No voxel of the grid."""
        return cls(np.zeros((0, 0, 0), dtype), (0, 0, 0), grid_shape)

    # --- the box -----------------------------------------------------------------------------------------------
    @property
    def stop(self) -> tuple[int, int, int]:
        return tuple(s + n for s, n in zip(self.start, self.values.shape))

    @property
    def box(self) -> tuple[slice, slice, slice]:
        """The box as slices of the grid: ``volume[occ.box]`` are the voxels under ``values``."""
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop))

    # --- array-like reading ------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        return self.grid_shape

    @property
    def ndim(self) -> int:
        return len(self.grid_shape)

    @property
    def dtype(self) -> np.dtype:
        return self.values.dtype

    def __repr__(self) -> str:
        return f"Occupancy(box {self.start}..{self.stop} of grid {self.grid_shape}, {self.dtype})"

    def full(self, dtype=None) -> np.ndarray:
        """The full-grid array (a new array of the whole grid)."""
        out = np.zeros(self.grid_shape, dtype or self.dtype)
        out[self.box] = self.values
        return out

    def __array__(self, dtype=None, copy=None):
        return self.full(dtype)

    def window(self, start: Sequence[int], stop: Sequence[int]) -> np.ndarray:
        """The occupancy over the grid box ``start <= ijk < stop`` (zeros where this box does not reach)."""
        start, stop = np.asarray(start, int), np.asarray(stop, int)
        if (
            np.array_equal(start, self.start)
            and np.array_equal(stop, self.stop)
            and (self.values.flags.c_contiguous or self.values.size == 0)
        ):
            return self.values
        out = np.zeros(tuple(np.maximum(stop - start, 0)), self.dtype)
        lo = np.maximum(start, self.start)
        hi = np.minimum(stop, self.stop)
        if np.all(hi > lo):
            src = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, self.start))
            dst = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start))
            out[dst] = self.values[src]
        return out

    def __getitem__(self, key):
        """Basic slicing only (``occ[a:b, c:d, e:f]``, steps of 1): the values of that part of the grid."""
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (3 - len(key))
        if len(key) != 3 or not all(isinstance(k, slice) and k.step in (None, 1) for k in key):
            raise TypeError("an Occupancy supports basic slicing only; use np.asarray(occ) for other indexing")
        bounds = [k.indices(n)[:2] for k, n in zip(key, self.grid_shape)]
        return self.window([b[0] for b in bounds], [max(b) for b in bounds])

    def as_image(self, grid, margin: int = 1):
        """The box and ``margin`` zero voxels around it (within the grid) as an :class:`~dosimetry.image.Image`
        on the lattice of ``grid`` (the grid this occupancy is on): the same function of world position, for
        code that takes a mask image (the margin keeps resampling at the box's faces as on the full grid)."""
        if tuple(grid.shape) != self.grid_shape:
            raise ValueError(f"the grid {grid.shape} is not the grid {self.grid_shape} of this occupancy")
        if self.values.size == 0:
            return grid.with_array(np.zeros(grid.shape, self.dtype))
        lo = np.maximum(np.asarray(self.start) - margin, 0)
        hi = np.minimum(np.asarray(self.stop) + margin, self.grid_shape)
        return grid.crop(lo, hi).with_array(self.window(lo, hi))

    def crop(self, volume: np.ndarray) -> np.ndarray:
        """The part of a full-grid ``volume`` under the box (a view)."""
        if tuple(volume.shape) != self.grid_shape:
            raise ValueError(f"a volume of shape {volume.shape} is not on the grid {self.grid_shape}")
        return volume[self.box]

    def any(self) -> bool:
        return bool(self.values.any())

    def sum(self, dtype=None):
        return self.values.sum(dtype=dtype)

    def nonzero_box(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The grid index range [lower, upper) of the nonzero voxels (as :func:`dosimetry.image.nonzero_box`)."""
        box = nonzero_box(self.values)
        if box is None:
            return None
        offset = np.asarray(self.start)
        return box[0] + offset, box[1] + offset

    # --- the ROI's voxels --------------------------------------------------------------------------------------
    def voxels(self) -> tuple[np.ndarray, np.ndarray]:
        """The voxels with occupancy > 0: their weights and their flat C-order indices on the grid, in that
        order (the order ``full[full > 0]`` gives)."""
        positive = self.values > 0
        local = np.flatnonzero(positive)
        del positive
        if self.values.flags.c_contiguous:
            weights = np.take(self.values.reshape(-1), local)
        else:
            weights = self.values[np.unravel_index(local, self.values.shape)]
        if self.values.shape == self.grid_shape:
            return weights, local
        ijk = np.unravel_index(local, self.values.shape)
        flat = np.ravel_multi_index(tuple(i + s for i, s in zip(ijk, self.start)), self.grid_shape)
        return weights, flat


def gather(volume: np.ndarray, flat_index: np.ndarray) -> np.ndarray:
    """``volume`` at C-order flat indices of its grid, without a copy of ``volume`` whatever its memory order."""
    volume = np.asarray(volume)
    if volume.flags.c_contiguous:
        return np.take(volume.reshape(-1), flat_index)
    return volume[np.unravel_index(flat_index, volume.shape)]


def _hull(items: Sequence[Occupancy]) -> tuple[np.ndarray, np.ndarray] | None:
    boxes = [(np.asarray(o.start), np.asarray(o.stop)) for o in items if o.values.size]
    if not boxes:
        return None
    return np.min([b[0] for b in boxes], axis=0), np.max([b[1] for b in boxes], axis=0)


def _intersection(a: Occupancy, b: Occupancy) -> tuple[np.ndarray, np.ndarray] | None:
    lo = np.maximum(a.start, b.start)
    hi = np.minimum(a.stop, b.stop)
    return (lo, hi) if np.all(hi > lo) else None


def union(items: Iterable, grid_shape: Sequence[int]) -> Occupancy:
    """Union of occupancies: ``min(sum, 1)`` (float32, summed in the order given), on the hull of their boxes.

    The values are those of ``total = zeros; total += w for w in items; minimum(total, 1)`` on the full grid.
    """
    items = [Occupancy.of(w) for w in items]
    hull = _hull(items)
    if hull is None:
        return Occupancy.empty(grid_shape)
    lo, hi = hull
    total = np.zeros(tuple(hi - lo), np.float32)
    for occ in items:
        if occ.values.size:
            total[tuple(slice(a - s, b - s) for a, b, s in zip(occ.start, occ.stop, lo))] += occ.values
    return Occupancy(np.minimum(total, 1.0, out=total), lo, grid_shape)


def difference(a, b) -> Occupancy:
    """``clip(a - b, 0, 1)`` (in the dtype of ``a``), on the box of ``a`` (outside it the result is 0)."""
    a, b = Occupancy.of(a), Occupancy.of(b)
    out = np.subtract(a.values, b.window(a.start, a.stop))
    np.clip(out, 0.0, 1.0, out=out)
    return Occupancy(out, a.start, a.grid_shape)


def minimum(a, b) -> Occupancy:
    """``minimum(a, b)``, on the intersection of their boxes (outside it one of them is 0)."""
    a, b = Occupancy.of(a), Occupancy.of(b)
    box = _intersection(a, b)
    if box is None:
        return Occupancy.empty(a.grid_shape, np.result_type(a.dtype, b.dtype))
    lo, hi = box
    return Occupancy(np.minimum(a.window(lo, hi), b.window(lo, hi)), lo, a.grid_shape)
