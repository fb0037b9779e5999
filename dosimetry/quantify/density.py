"""Mass density per voxel: from a CT (HU -> g/mL by Schneider 2000) averaged over each activity voxel, or a
stated default density when there is no CT."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from dosimetry.constants import DEFAULT_SOFT_TISSUE_DENSITY_G_ML, SOURCES
from dosimetry.io.data_files import hu_to_density_table
from dosimetry.errors import GeometryError
from dosimetry.image import Image
from dosimetry.geometry.resample import mean_on_grid


_SLAB_VOXELS = 4_000_000
_MAX_TABLE_ENTRIES = 1 << 20


def hu_to_density(hu) -> np.ndarray:
    """Mass density (g/mL) from CT numbers (HU), piecewise linear between the Schneider 2000 nodes.

    Values beyond the table (below -1000 HU or above 3000 HU) take the end values. A 3-D input is
    converted slab by slab into a float32 array in Fortran order (the layout SimpleITK takes without
    another copy); integer CT numbers (the usual case) go through a lookup table of the same
    interpolation, so no float64 copy of the CT is made.

    References
    ----------
    Schneider W, Bortfeld T, Schlegel W. Phys Med Biol 2000;45:459-78. doi:10.1088/0031-9155/45/2/314
    """
    hu_nodes, density_nodes = hu_to_density_table()
    values = np.asarray(hu)
    if values.ndim != 3:
        return np.interp(np.asarray(values, dtype=np.float64), hu_nodes, density_nodes).astype(np.float32)
    out = np.empty(values.shape, dtype=np.float32, order="F")
    step = max(1, _SLAB_VOXELS // max(values.shape[0] * values.shape[1], 1))
    for k0 in range(0, values.shape[2], step):
        slab = values[:, :, k0 : k0 + step]
        out[:, :, k0 : k0 + step] = _slab_density(slab, hu_nodes, density_nodes)
    return out


def _slab_density(slab: np.ndarray, hu_nodes: np.ndarray, density_nodes: np.ndarray) -> np.ndarray:
    """Densities of one slab: a lookup table when every value is an integer, else np.interp."""
    if slab.dtype.kind in "iu" and slab.dtype.itemsize <= 2:  # the usual CT: int16 HU
        # one table over every value of the type, indexed by the values' bit pattern (no int64 copy)
        unsigned = np.dtype(f"u{slab.dtype.itemsize}")
        return _full_range_table(slab.dtype.str)[slab.view(unsigned)]
    ints = None
    if slab.dtype.kind in "iu":
        ints = slab.astype(np.int64)
    elif slab.dtype.kind == "f" and slab.size:
        with np.errstate(invalid="ignore"):  # NaN and huge values do not survive the round trip: interp
            candidate = slab.astype(np.int32)
        if np.array_equal(candidate, slab):
            ints = candidate
    if ints is not None and ints.size:
        low, high = int(ints.min()), int(ints.max())
        if high - low < _MAX_TABLE_ENTRIES:
            table = np.interp(np.arange(low, high + 1, dtype=np.float64), hu_nodes, density_nodes).astype(np.float32)
            ints -= low
            return table[ints]
    return np.interp(np.asarray(slab, dtype=np.float64), hu_nodes, density_nodes).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _full_range_table(dtype: str) -> np.ndarray:
    """float32 densities (Schneider 2000 table) of every value of a <= 16-bit integer type, at the position of
    its unsigned bit pattern; each entry is np.interp of that integer, as the per-slab table gives it."""
    itemsize = np.dtype(dtype).itemsize
    values = np.arange(2 ** (8 * itemsize), dtype=f"u{itemsize}").view(dtype).astype(np.float64)
    return np.interp(values, *hu_to_density_table()).astype(np.float32)


@dataclass(frozen=True)
class DensityMap:
    """Density on the activity grid and how it was obtained (for the run record)."""

    density_g_ml: Image
    source: str
    """'ct' or 'default'."""
    record: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    outside_ct: np.ndarray | None = None
    """Voxels (bool, activity grid) not covered by the CT, which got the default density."""


def density_on_grid(
    ct_hu: Image | None, reference: Image, *, default_density_g_ml: float = DEFAULT_SOFT_TISSUE_DENSITY_G_ML
) -> DensityMap:
    """Density (g/mL) on the ``reference`` grid, from a CT in HU or the default density.

    The CT is converted to density on its own grid first (the HU -> density curve is not linear), then
    averaged over each reference voxel in world coordinates (:func:`~dosimetry.geometry.resample.mean_on_grid`).
    Reference voxels outside the CT take ``default_density_g_ml``; ``outside_ct`` marks them, so that
    the caller can say how much activity or ROI volume they hold.
    """
    if not np.isfinite(default_density_g_ml) or default_density_g_ml <= 0:
        raise GeometryError(f"default density must be a positive number of g/mL, got {default_density_g_ml}")
    if ct_hu is None:
        # one value seen at every voxel (a read-only broadcast view: no memory for a constant volume; a
        # method that needs a writable or contiguous array copies it)
        density = reference.with_array(np.broadcast_to(np.float32(default_density_g_ml), reference.shape))
        record = {
            "source": "default",
            "default_density_g_ml": default_density_g_ml,
            "note": f"no CT given: uniform density {default_density_g_ml} g/mL "
            f"({SOURCES['DEFAULT_SOFT_TISSUE_DENSITY_G_ML']})",
        }
        return DensityMap(
            density, "default", record, (f"no CT: every voxel has the default density {default_density_g_ml} g/mL",)
        )
    mean, coverage = mean_on_grid(ct_hu, reference, values=hu_to_density)
    if not np.any(coverage > 0):
        raise GeometryError("the CT does not overlap the activity image; check that both come from the same study")
    values = mean.array
    outside = coverage < 0.5
    values = np.where(outside | ~np.isfinite(values), np.float32(default_density_g_ml), values).astype(np.float32)
    record = {
        "source": "ct",
        "hu_to_density": SOURCES["HU_TO_DENSITY"],
        "resampling": "volume average over each activity voxel (supersampled, linear)",
        "voxels_outside_ct_fraction": float(outside.mean()),
        "default_density_g_ml": default_density_g_ml,
    }
    return DensityMap(reference.with_array(values), "ct", record, (), outside)
