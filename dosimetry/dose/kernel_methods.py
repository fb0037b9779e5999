"""Dose voxel kernel methods: ``kernel``, ``kernel-density`` and ``kernel-range``.

Each takes the activity at implant time (Bq per voxel) and the mass density (g/mL = g/cm3) on the same
grid, and returns the absorbed dose of the permanent implant (Gy, float32, same grid), like
:func:`~dosimetry.dose.ldm.ldm_dose`. The number of decays in a voxel is ``A0 * tau`` (``tau`` the Y-90
mean life); the voxel S values come from :mod:`dosimetry.dose.kernels` (Graves 2019 water kernel, integrated
over source and target voxels, renormalised to the ICRP 107 mean beta energy 0.93290 MeV, the LDM
energy). All three methods deposit the same total energy as LDM when the activity lies more than the beta
range inside the volume (energy that would leave the volume is lost, as in a patient).

=================  ==================================================  ====================================
method             what it computes                                    where it is wrong
=================  ==================================================  ====================================
``kernel``         convolution with the soft-tissue kernel             ignores the CT: wrong in lung (dose to
                   (1.03 g/cm3): MIRD 17 voxel S value method          lung about 70% low), bone, air
``kernel-density`` ``kernel`` x rho_ref / rho of the target voxel      right in uniform tissue of any density
                   (energy of the soft-tissue kernel redistributed     (charged-particle equilibrium); near a
                   to the real mass)                                   liver-lung interface the range is not
                                                                       scaled: about 2x high in the first
                                                                       2 mm of lung, too low deeper in lung
``kernel-range``   a range-scaled kernel for every source-target       straight-line transport: no
                   pair, from the mean density along the straight      backscatter or lateral spread change
                   line between them (numba, parallel)                 at interfaces (see its Notes)
=================  ==================================================  ====================================

kernel-range at the voxel level
-------------------------------
The straight-line model (:func:`kernel_range_dose`, Notes) gives the dose at a point ``y`` per decay at a
point ``x`` as ``rho_bar^2 D_w(rho_bar |y - x|)``, ``rho_bar(x, y)`` the mean density on the segment. The
voxel S value of a source-target voxel pair is the mean of that over ``x`` in the source voxel and ``y`` in
the target voxel. It is built in three steps, each exact in homogeneous tissue:

1. **Path density of the centre line** ``rho_c``: the density summed along the segment between the voxel
   centres, accumulated from the source outwards shell by shell (Chebyshev step ``m``): the sum at offset
   ``d`` is interpolated from the up to 4 voxels around ``d (m - 1) / m`` one step back, plus the trapezoid
   of the last step. The interpolation of the sums is perspective-corrected: along a lateral axis whose two
   parent voxels lie on the same side of the source, the parents are weighted as if ``sum x |coordinate|``
   were linear (it is, for a ray crossing a boundary parallel to its dominant axis, where the density sum is
   ``a + b / coordinate``); plain bilinear weights overestimate ``rho_c`` there (0.50 instead of 0.46 g/cm3
   for a ray that grazes a liver/lung boundary), which had put the lung dose 5% low at 2-6 mm with 2 mm
   voxels. Weights sum to 1, so a homogeneous medium is unchanged.
2. **The homogeneous voxel S value** ``S_d(rho_c)`` from :func:`~dosimetry.dose.kernels.density_kernel_table`.
3. **Sub-voxel correction** (why: with 2-4 mm voxels one liver voxel is 2-4 mm x 1.06 g/cm3 of
   radiological depth, comparable to the decay length of the kernel tail, and a point near the far face of
   a liver source voxel sees a denser path to the lung than a point at the interface; the dose falls off
   convexly with radiological depth, so the centre line alone puts lung dose low: -10% at 4-6 mm (2 mm
   voxels) and -34% at 16-20 mm (4 mm voxels) against EGSnrc. The voxel-averaged S value taken at one path
   density cannot represent a dense-source / light-target pair.) The pair is treated as locally layered
   along one grid axis ``k``: the axis along which the density changes from each end voxel towards the
   other (largest ``|rho(s + d_k e_k) - rho_s| + |rho(t - d_k e_k) - rho_t|``; the dominant axis if that is
   0 everywhere). In tissue layered along ``k`` the path density from a point of the source voxel to a point
   of the target voxel depends only on their positions ``a, b`` in [0, 1] along ``k`` (distance from the
   two facing faces, in voxels)::

       rho_q(a, b) = (rho_s a + M + rho_t b) / (n - 1 + a + b),   M = rho_c n - (rho_s + rho_t) / 2

   (``n = |d_k|``; ``M``, the layers in between, is read from the centre line). The correction, averaged
   over a 2 x 2 Gauss rule in ``(a, b)``, is::

       (r_c / r_q)^2 [S_d(rho_q r_q / r_c) - S_d(rho_c r_q / r_c)]

   with ``r_q`` the distance of the two points (separation ``(n - 1 + a + b) h_k`` along ``k``, the centre
   offsets across) and ``r_c`` the centre distance. ``S_d`` at the density that gives the point pair's
   radiological distance at the centre distance, times the inverse-square factor, is the straight-line
   dose ``rho_q^2 D_w(rho_q r_q)`` smoothed like a voxel S value; subtracting the same expression for the
   homogeneous medium of density ``rho_c`` removes the voxel geometry that ``S_d(rho_c)`` already holds, and
   makes the correction exactly 0 in homogeneous tissue (LDM in uniform tissue and exact energy
   conservation are kept). It is applied to pairs with ``|rho_s - rho_c| + |rho_t - rho_c| > 1%`` of
   ``rho_c`` (:data:`dosimetry.dose.ray_tracing.SUBVOXEL_TOLERANCE`).

Measured (tests/test_dose_methods.py; EGSnrc liver/lung slab, interface on a voxel boundary): within 10%
of the MC in every 2 mm bin (1 and 2 mm voxels) or voxel (3-4.07 mm) from -10 to +20 mm, for 1, 2, 4 mm and
4.07 x 4.07 x 3.0 mm voxels with the slab normal along each axis (largest deviation +9.3%, at 18-20 mm in
lung with 1 and 2 mm voxels: that is the straight-line model itself, whose exact solution for the slab, a
1-D integral of the planar water kernel over radiological depth, is +9% there). At every voxel size the
method is within 2.5% of that exact solution averaged over the same voxels; before the correction it was
-10% (2 mm) and -34% (4 mm) from the MC.

Assumptions, and where it is still wrong:

* Straight-line transport (see :func:`kernel_range_dose`): lung dose 12-20 mm beyond a liver interface is
  5-9% above EGSnrc at any voxel size.
* Uniform voxels. A voxel that straddles an interface is a uniform mixture (mean density, activity spread
  over the voxel): with the liver/lung interface through the middle of the voxels, lung dose 2-20 mm
  beyond it is 12-30% above the MC with 4 mm voxels and 5-17% with 2 mm voxels, although the method is
  within 3% of the straight-line model of that voxelised object. The sub-voxel positions of activity and
  density are lost at voxelisation (a finer density grid, or a model of where the interface and the
  activity sit inside the mixed voxel, would be needed). Before the sub-voxel correction these errors
  were partly cancelled by the centre-line bias (+15% / -3% .. +15% with 4 mm), so for interfaces inside
  voxels the corrected method is further from the MC than the old one.
* Layering along one grid axis: for interfaces oblique to the grid the correction is approximate; with a
  liver/lung plane at 30-45 degrees, 4 mm voxels are up to 9% below the same voxelised object computed with
  1 mm voxels (axis-aligned: within 5%).
* Energy in heterogeneous tissue is conserved only approximately: within 0.1% for a liver/lung plane,
  -0.7% for active lung next to liver, -2.4% for a 20 mm liver sphere in lung with 4 mm voxels (-2.8% with
  4.07 x 4.07 x 3.0 mm, -0.8% with 2 mm; before the correction -3.6%, -3.7% and -1.4%).
* Cost: the correction is about 7 table lookups per corrected pair (2.4x the ray-tracing time of the plain
  centre line).

Long-range sources (below 0.9 g/cm3 with a reach of 12 voxels or more: lung at voxels up to 3.8 mm) are
ray-traced on a grid with voxels twice as large and their dose given back to the fine voxels
(:mod:`dosimetry.dose.coarse_range`; issue 13: the sample phantom with a 5% lung shunt at 2 mm needs 8x
less CPU time, 720 s -> 53-89 s; the accuracy it costs is measured in the README, "Dose methods"). All
other sources (liver, tumour, soft tissue, bone) are computed exactly as before.

The ray tracing (numba, parallel) runs in batches of sources of about :data:`RAY_BATCH_SECONDS`, sized by
the estimated cost of each source (voxels within its reach), and returns to Python between them: Ctrl-C
takes effect there and the progress display advances (stage ``ray tracing``, one step per source). Each thread's accumulator receives its sources in the same order
whatever the batches, so the dose is bit-identical to a single call (``tests/test_dose_chunks.py``).

Memory (issue 13: peak <= 4x the float32 volume times the arrays the method needs; it needs 3: the
activity, the density and the dose). Full-size arrays of ``kernel-range``, in float32 volumes ``V``: the
dose accumulator (float64, 2 V), the per-thread accumulators (float64 slabs of planes along axis 0 over a
group of sources plus the kernel table's reach on either side, :data:`ACCUMULATOR_VOLUMES` = 2 V in all;
the groups are fixed by the sources, so the dose does not depend on them), during the FFT of the
homogeneous sources one float32 input volume and the FFT's own (about 3 V, the output included), the
long-range mask (V / 4) and the coarse grid (V / 2), and the float32 result (V) at the end. Everything
else is per source (flat index, decays, clamped density, cost: 32 bytes a source, 8 V x the fraction of
voxels that are sources) or slabs of planes (the coarse split and prolongation,
:data:`~dosimetry.dose.coarse_range.SLAB_FRACTION`): no full-size float64 copy of the activity or the
density is made, the density is clamped where it is read. Plus the kernel tables of the voxel size (about
25 MiB at 2 mm, cached). Measured on the 2 mm sample phantom (``scripts/bench_kernel_range.py``): 60-89 MiB =
6.2-9.2 V above the resident set before the call (9 runs), bound 12 V = 116 MiB (before: 217-240 MiB, 22.4-24.8 V); the dose
is bit-identical. The per-thread slabs hold at least ``1 + 2 x reach`` planes each: with many threads on a
small grid that minimum, not :data:`ACCUMULATOR_VOLUMES`, sets their size.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time

import numpy as np

from dosimetry import progress
from dosimetry.constants import (
    DPK_WATER_DENSITY_G_CM3,
    GY_PER_DECAY_PER_MGY_PER_MBQ_S,
    KERNEL_RANGE_MAX_DENSITY_G_CM3,
    KERNEL_RANGE_MIN_DENSITY_G_CM3,
    KERNEL_REFERENCE_DENSITY_G_CM3,
    Y90_DPK_MAX_RADIUS_WATER_MM,
    Y90_MEAN_LIFE_S,
)
from dosimetry.errors import GeometryError, UnitsError
from dosimetry.image import Image
from dosimetry.layout import slowest_axis_slabs
from dosimetry.dose.kernels import DENSITY_NODES_PER_DOUBLING, DensityKernelTable, density_kernel_table, voxel_s_values
from dosimetry.dose.coarse_range import add_prolonged, split_long_range
from dosimetry.dose.convolution import convolve


def _check_inputs(activity_bq: Image, density_g_ml: Image) -> tuple[np.ndarray, np.ndarray]:
    if not activity_bq.same_grid(density_g_ml):
        raise GeometryError("activity and density must be on the same grid; resample the density first")
    activity = np.asarray(activity_bq.array)
    density = np.asarray(density_g_ml.array)
    bad = np.count_nonzero(~np.isfinite(activity))
    if bad:
        raise UnitsError(f"the activity image has {bad} NaN or infinite voxels; set them to 0 before dose")
    bad = np.count_nonzero(~np.isfinite(density) | (density < 0))
    if bad:
        raise UnitsError(f"the density image has {bad} negative, NaN or infinite voxels; density must be >= 0 g/mL")
    return activity, density


DECAYS_SCALE = Y90_MEAN_LIFE_S * GY_PER_DECAY_PER_MGY_PER_MBQ_S
"""Decays per Bq of the permanent implant (the mean life, s) x 1e-9, so that (activity in Bq x this x S in
mGy/(MBq s)) is Gy."""


def _scaled_decays(activity: np.ndarray) -> np.ndarray:
    """Decays per voxel of the permanent implant x 1e-9, so that (this x S in mGy/(MBq s)) is Gy."""
    return activity.astype(np.float64) * DECAYS_SCALE


_SLAB_VOXELS = 2_000_000


def _scaled_decays_float32(activity: np.ndarray) -> np.ndarray:
    """:func:`_scaled_decays` as a C-ordered float32 array (what the convolution takes and may overwrite),
    computed slab by slab in float64 as before: the same values without two float64 copies of the volume."""
    out = np.empty(activity.shape, dtype=np.float32)
    for part in slowest_axis_slabs(activity, _SLAB_VOXELS):
        out[part] = _scaled_decays(activity[part])
    return out


# --- kernel ----------------------------------------------------------------------------------------------
def kernel_dose(activity_bq: Image, density_g_ml: Image) -> Image:
    """Absorbed dose (Gy) by convolution with the Y-90 voxel S values of homogeneous soft tissue.

    Parameters
    ----------
    activity_bq : Image
        Activity in each voxel at implant time (Bq).
    density_g_ml : Image
        Mass density (g/mL), same grid; checked but not used by this method.

    Returns
    -------
    Image
        Dose in Gy, float32, same grid.

    Notes
    -----
    ``D(t) = sum_s A0(s) tau S(t - s)`` with ``S`` the voxel S values for the voxel size of the image in
    soft tissue of 1.03 g/cm3 (:data:`~dosimetry.constants.KERNEL_REFERENCE_DENSITY_G_CM3`), from
    :func:`dosimetry.dose.kernels.voxel_s_values`, by FFT or direct convolution
    (:func:`~dosimetry.dose.convolution.convolve`). This is the MIRD Pamphlet 17 voxel S value method, as in
    most commercial software.

    Assumptions: the whole body is homogeneous soft tissue. Where it is wrong: the dose is the dose to
    1.03 g/cm3 tissue whatever the CT says: in lung (0.26-0.3 g/cm3) the dose is about 70% low, in denser
    liver (1.06) 3% high; in uniform tissue of density 1.03 it equals LDM in the interior.

    References
    ----------
    Bolch WE et al. MIRD Pamphlet No. 17. J Nucl Med 1999;40:11S-36S.
    Graves SA, Flynn RT, Hyer DE. Med Phys 2019;46:5284-93. doi:10.1002/mp.13789
    """
    activity, _ = _check_inputs(activity_bq, density_g_ml)
    kernel = voxel_s_values(activity_bq.spacing_mm, KERNEL_REFERENCE_DENSITY_G_CM3)
    dose = convolve(_scaled_decays_float32(activity), kernel, overwrite_input=True)
    return activity_bq.with_array(np.ascontiguousarray(dose, dtype=np.float32))


# --- kernel-density --------------------------------------------------------------------------------------
def kernel_density_dose(activity_bq: Image, density_g_ml: Image) -> Image:
    """Absorbed dose (Gy): soft-tissue kernel dose scaled by ``rho_ref / rho`` of the target voxel.

    Parameters
    ----------
    activity_bq : Image
        Activity in each voxel at implant time (Bq).
    density_g_ml : Image
        Mass density (g/mL) from the CT, same grid.

    Returns
    -------
    Image
        Dose in Gy, float32, same grid; 0 where the density is 0.

    Notes
    -----
    ``D(t) = D_kernel(t) * rho_ref / rho(t)``, ``rho_ref = 1.03 g/cm3``: the energy that the soft-tissue
    kernel deposits in the voxel is divided by the voxel's real mass (Dieudonne 2013). In uniform tissue of
    any density this equals LDM in the interior (all the energy is deposited locally on average), and the
    total energy (sum of dose x mass) equals that of ``kernel`` whatever the density.

    Assumptions: the spatial spread of the energy is that of soft tissue. Where it is wrong: the range is
    not scaled with density, so across a liver-lung interface too much energy stays in the first
    millimetres of lung (about 2x the Monte Carlo dose in the first 2 mm) and none reaches deeper lung
    beyond 11 mm; in air voxels (rho -> 0) the dose diverges and is meaningless.

    References
    ----------
    Dieudonne A, Hobbs RF, Lebtahi R, et al. Study of the impact of tissue density heterogeneities on
    3-dimensional abdominal dosimetry: comparison between dose kernel convolution and direct Monte Carlo
    methods. J Nucl Med 2013;54:236-43. doi:10.2967/jnumed.112.105825
    """
    activity, density = _check_inputs(activity_bq, density_g_ml)
    kernel = voxel_s_values(activity_bq.spacing_mm, KERNEL_REFERENCE_DENSITY_G_CM3)
    dose = convolve(_scaled_decays_float32(activity), kernel, overwrite_input=True)
    rho = density.astype(np.float32)
    np.multiply(dose, np.float32(KERNEL_REFERENCE_DENSITY_G_CM3), out=dose)
    np.divide(dose, rho, out=dose, where=rho > 0)
    dose[rho <= 0] = 0.0
    return activity_bq.with_array(np.ascontiguousarray(dose, dtype=np.float32))


# --- kernel-range ----------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _ray_order(row_of_offset_bytes: bytes, shape: tuple[int, int, int]):
    """Signed offsets in Chebyshev shells, each with up to 4 weighted parents one step back on its line.

    The straight line from the source (offset 0) to an offset ``d`` of Chebyshev number ``m`` (the number
    of unit steps along its dominant axis) passes, one step earlier, through the point ``d (m - 1) / m``
    of shell ``m - 1``; its parents are the (up to 4) voxels around that point, with bilinear weights.
    Interpolating the accumulated density of the parents removes the drift of a one-parent digital
    line (which sends rays sideways by up to a voxel and biases the path density near interfaces).
    The density *sums* are interpolated with perspective-corrected weights (``path_weights``): along an
    axis whose two parents lie on the same side of the source (both coordinates nonzero), the bilinear
    weight of a parent is multiplied by ``|parent coordinate| / |point coordinate|``; this is linear
    interpolation of ``sum x |coordinate|``, exact for a ray crossing a boundary parallel to its dominant
    axis (sum = ``a + b / coordinate`` there), and the weights still sum to 1. Densities at the point
    use the bilinear ``weights``.

    Returns read-only arrays: offsets (n, 3) int64, parents (n, 4) int64, weights (n, 4) float64,
    path_weights (n, 4) float64, octant row (n,) int64, shell_start (m_max + 2,) int64.
    """
    rows = np.frombuffer(row_of_offset_bytes, dtype=np.int32).reshape(shape)
    ext = np.array(shape) - 1
    grids = np.meshgrid(*[np.arange(-n, n + 1) for n in ext], indexing="ij")
    offsets = np.stack([g.ravel() for g in grids], axis=1)
    row = rows[np.abs(offsets[:, 0]), np.abs(offsets[:, 1]), np.abs(offsets[:, 2])].astype(np.int64)
    offsets, row = offsets[row >= 0], row[row >= 0]
    cheb = np.abs(offsets).max(axis=1)
    order = np.lexsort((np.abs(offsets).sum(axis=1), cheb))
    offsets, row, cheb = offsets[order], row[order], cheb[order]
    lookup = np.full(tuple(2 * ext + 1), -1, dtype=np.int64)
    lookup[offsets[:, 0] + ext[0], offsets[:, 1] + ext[1], offsets[:, 2] + ext[2]] = np.arange(len(offsets))
    m = np.maximum(cheb, 1)[:, None].astype(float)
    point = offsets * (m - 1.0) / m  # one step back on the line, in index units
    low = np.floor(point + 1e-9).astype(np.int64)
    frac = np.clip(point - low, 0.0, 1.0)
    frac[frac < 1e-9] = 0.0
    parents = np.zeros((len(offsets), 4), dtype=np.int64)
    weights = np.zeros((len(offsets), 4))
    path_weights = np.zeros((len(offsets), 4))
    # perspective factor per axis: |coordinate| when both corners along the axis lie on the same side of the
    # source (both nonzero), else 1 (plain linear interpolation)
    persp = (frac > 0) & ((low >= 1) | (low + 1 <= -1))
    # the corners of the unit cell around `point`; weight 0 for corners of a zero fractional part
    for corner in range(8):
        bits = np.array([(corner >> a) & 1 for a in range(3)])
        w = np.prod(np.where(bits == 1, frac, 1.0 - frac), axis=1)
        use = w > 0
        idx = low + bits
        inside = np.all(np.abs(idx) <= ext, axis=1)
        if np.any(use & ~inside):
            raise RuntimeError("ray parent outside the offset table")  # pragma: no cover - a bug
        p = np.where(
            use,
            lookup[
                np.clip(idx[:, 0] + ext[0], 0, 2 * ext[0]),
                np.clip(idx[:, 1] + ext[1], 0, 2 * ext[1]),
                np.clip(idx[:, 2] + ext[2], 0, 2 * ext[2]),
            ],
            -1,
        )
        factor = np.prod(np.where(persp, np.abs(idx) / np.where(persp, np.abs(point), 1.0), 1.0), axis=1)
        k = np.flatnonzero(use)  # each offset's next free parent slot
        s = np.count_nonzero(weights[k] > 0, axis=1)
        parents[k, s] = p[k]
        weights[k, s] = w[k]
        path_weights[k, s] = w[k] * factor[k]
    parents[cheb == 0] = 0
    weights[cheb == 0] = 0.0
    path_weights[cheb == 0] = 0.0
    used = weights > 0
    bad = used & ((parents < 0) | (np.abs(offsets[parents]).max(axis=2) != (cheb[:, None] - 1)))
    if (
        np.any(bad)
        or np.any(np.abs(weights.sum(axis=1)[cheb > 0] - 1.0) > 1e-9)
        or np.any(np.abs(path_weights.sum(axis=1)[cheb > 0] - 1.0) > 1e-9)
    ):
        raise RuntimeError("ray parent table is inconsistent")  # pragma: no cover - a bug, not an input fault
    shell_start = np.searchsorted(cheb, np.arange(cheb.max() + 2)).astype(np.int64)
    result = (offsets.astype(np.int64), parents, weights, path_weights, row, shell_start)
    for arr in result:
        arr.flags.writeable = False
    return result


HOMOGENEOUS_TOLERANCE = 0.10
"""A source whose whole reach (12 mm / rho) has densities within +-10% of its own is treated as lying in a
homogeneous medium of its density and handled by FFT convolution (see :func:`kernel_range_dose`)."""


def _node_kernel(table: DensityKernelTable, k: int) -> np.ndarray:
    """Full (signed-offset) array of the energy-density kernel rho_k S_k of density node ``k``."""
    column = np.asarray(table.energy_density[:, k], dtype=np.float64)
    offsets = np.asarray(table.offsets)
    nonzero = column > 0
    ext = offsets[nonzero].max(axis=0)
    full = np.zeros(tuple(2 * ext + 1))
    for signs in np.array(np.meshgrid([1, -1], [1, -1], [1, -1], indexing="ij")).reshape(3, -1).T:
        idx = offsets[nonzero] * signs + ext
        full[idx[:, 0], idx[:, 1], idx[:, 2]] = column[nonzero]
    return full


def _homogeneous_sources(
    density: np.ndarray, sources: np.ndarray, rho_sources: np.ndarray, spacing: np.ndarray, lo: float, hi: float
) -> np.ndarray:
    """Boolean per source (flat indices ``sources``, clamped densities ``rho_sources``): its reach holds only
    densities within the tolerance of its own. ``density`` is the density as given; the maximum and minimum
    filters run on it and are clamped to [lo, hi] afterwards (the same as filtering the clamped density: the
    clamp is monotone), read only at the sources: one full-size temporary at a time, of the density's dtype."""
    from scipy.ndimage import maximum_filter, minimum_filter

    homogeneous = np.zeros(len(sources), dtype=bool)
    reach_mm = Y90_DPK_MAX_RADIUS_WATER_MM * DPK_WATER_DENSITY_G_CM3 / rho_sources
    # reach buckets of doubling size, each source tested with the bucket that covers its reach
    bucket = np.ceil(np.log2(np.maximum(reach_mm, 1e-3))).astype(int)
    for b in np.unique(bucket):
        sel = np.flatnonzero(bucket == b)
        at = sources[sel]
        size = tuple(2 * int(math.ceil(2.0**b / h)) + 1 for h in spacing)
        high = np.clip(maximum_filter(density, size=size, mode="nearest").ravel()[at].astype(np.float64), lo, hi)
        low = np.clip(minimum_filter(density, size=size, mode="nearest").ravel()[at].astype(np.float64), lo, hi)
        rho = rho_sources[sel]
        homogeneous[sel] = (high <= rho * (1.0 + HOMOGENEOUS_TOLERANCE)) & (low >= rho * (1.0 - HOMOGENEOUS_TOLERANCE))
    return homogeneous


RAY_BATCH_SECONDS = 0.25
"""Target duration of one call of the compiled ray-tracing loop: between calls Ctrl-C takes effect and the
progress display advances. The batch of sources is sized from the speed of the previous batch (the cost
of a source grows with its range: 64x in lung); the result does not depend on the batches."""


def _source_batches(n_sources: int, n_chunks: int, batch_sources: int | None, cost=None):
    """Yield (start, stop) of source batches; fixed ``batch_sources``, or sized to last about
    :data:`RAY_BATCH_SECONDS` each from the measured speed of the previous batch.

    ``cost`` (optional, one estimate per source, e.g. the number of voxels within its reach) makes the
    batches equal in estimated cost rather than in sources: without it a batch sized on soft-tissue sources
    that runs into lung sources (64x costlier at the same voxel size) lasted a minute, and so did Ctrl-C."""
    if batch_sources is not None:
        step = max(1, int(batch_sources))
        for start in range(0, n_sources, step):
            yield start, min(n_sources, start + step)
        return
    if cost is None:
        cost = np.ones(n_sources)
    cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(cost, dtype=np.float64))])
    start, budget = 0, None  # one source per thread first: a lung source at 1 mm can take 0.1 s
    while start < n_sources:
        if budget is None:
            stop = min(n_sources, start + n_chunks)
        else:
            stop = int(np.searchsorted(cumulative, cumulative[start] + budget, side="right")) - 1
            stop = min(n_sources, max(stop, start + n_chunks))
        began = time.perf_counter()
        yield start, stop
        elapsed = max(time.perf_counter() - began, 1e-6)
        done = cumulative[stop] - cumulative[start]
        budget = min(4.0 * done, done * RAY_BATCH_SECONDS / elapsed)
        start = stop


ACCUMULATOR_VOLUMES = 2.0
"""Memory of the per-thread ray-tracing accumulators together, in float32 volumes of the grid (issue 13:
peak memory). Each thread accumulates in float64 over a slab of planes along axis 0 that covers the targets
of a group of sources (their planes plus the table's reach on either side); the groups are sized to this
budget (at least one source plane) and added to the dose one after another."""


def _source_groups(source_planes: np.ndarray, n0: int, reach_planes: int, max_slab_planes: int):
    """Yield (start, stop, slab_lo, slab_hi) over sources sorted by plane: the sources ``start:stop`` lie in
    at most ``max_slab_planes - 2 reach_planes`` consecutive planes (at least one), their targets in planes
    ``slab_lo:slab_hi``. Depends on the sources and the grid only (not on timing): the dose is reproducible."""
    group_planes = max(1, max_slab_planes - 2 * reach_planes)
    start = 0
    while start < len(source_planes):
        first = int(source_planes[start])
        stop = int(np.searchsorted(source_planes, first + group_planes, side="left"))
        last = int(source_planes[stop - 1])
        yield start, stop, max(0, first - reach_planes), min(n0, last + reach_planes + 1)
        start = stop


def _range_kernel_dose(
    decays: np.ndarray,
    density: np.ndarray,
    table: DensityKernelTable,
    spacing,
    n_chunks: int,
    *,
    scale: float = 1.0,
    exclude: np.ndarray | None = None,
    split_homogeneous: bool = True,
    batch_sources: int | None = None,
    accumulator_volumes: float = ACCUMULATOR_VOLUMES,
) -> np.ndarray:
    """Dose (float64, the grid) of the sources ``decays * scale != 0`` that ``exclude`` (bool, optional)
    leaves out. ``decays`` and ``density`` are read, never written or copied to full-size float64: the
    decays and densities are gathered at the sources only, the density is clamped where it is read."""
    nodes = np.asarray(table.densities_g_cm3, dtype=np.float64)
    lo, hi = float(nodes[0]), float(nodes[-1])
    decays = np.ascontiguousarray(decays)
    density = np.ascontiguousarray(density)
    if density.dtype not in (np.float32, np.float64):
        density = density.astype(np.float64)
    active = decays != 0
    if exclude is not None:
        active &= ~exclude
    sources = np.flatnonzero(active)
    del active
    source_decays = decays.ravel()[sources].astype(np.float64) * scale
    rho_sources = np.clip(density.ravel()[sources].astype(np.float64), lo, hi)
    dose = np.zeros(decays.shape)
    if split_homogeneous and len(sources):
        homogeneous = _homogeneous_sources(density, sources, rho_sources, np.asarray(spacing, dtype=float), lo, hi)
        # homogeneous sources: D = sum_k conv(A w_k(rho_s) / rho_s, rho_k S_k), w_k linear in rho
        at, d_h, rho_h = sources[homogeneous], source_decays[homogeneous], rho_sources[homogeneous]
        u = np.log(rho_h / nodes[0]) * (DENSITY_NODES_PER_DOUBLING / math.log(2.0))
        k_low = np.clip(np.floor(u).astype(int), 0, len(nodes) - 2)
        w_high = np.clip((rho_h - nodes[k_low]) / (nodes[k_low + 1] - nodes[k_low]), 0.0, 1.0)
        node_groups = np.unique(k_low)
        with (
            progress.stage("homogeneous sources", total=2 * len(node_groups))
            if len(node_groups)
            else contextlib.nullcontext()
        ):
            for k in node_groups:
                sel = k_low == k
                for node, weight in ((k, 1.0 - w_high[sel]), (k + 1, w_high[sel])):
                    values = d_h[sel] * weight / rho_h[sel]
                    if np.any(values):
                        part = np.zeros(decays.shape, dtype=np.float32)
                        part.ravel()[at[sel]] = values
                        dose += convolve(part, _node_kernel(table, int(node)))
                        del part
                    progress.advance()
        keep = ~homogeneous
        sources, source_decays, rho_sources = sources[keep], source_decays[keep], rho_sources[keep]
    if len(sources):
        from dosimetry.dose.ray_tracing import _node_bins, _range_scatter  # numba: only for this method

        rows = np.ascontiguousarray(table.row_of_offset)
        offsets, parents, weights, path_weights, row, shell_start = _ray_order(rows.tobytes(), rows.shape)
        arguments = (
            source_decays,
            density,
            sources,
            offsets,
            parents,
            weights,
            path_weights,
            row,
            shell_start,
            np.ascontiguousarray(table.energy_density),
            nodes,
            *_node_bins(nodes),
            np.asarray(spacing, dtype=np.float64),
        )
        # estimated cost of a source: the voxels within its reach (12 mm / rho), at least one
        reach_mm = Y90_DPK_MAX_RADIUS_WATER_MM * DPK_WATER_DENSITY_G_CM3 / rho_sources
        cost = 1.0 + reach_mm**3 / float(np.prod(spacing))
        n0 = decays.shape[0]
        plane = int(np.prod(decays.shape[1:]))
        reach_planes = int(np.abs(offsets[:, 0]).max())  # no target lies further than this from its source
        max_slab_planes = int(accumulator_volumes * 4.0 * n0 * plane // (8 * n_chunks * plane))
        groups = list(_source_groups(sources // plane, n0, reach_planes, max_slab_planes))
        slab_planes = max(hi_ - lo_ for _, _, lo_, hi_ in groups)
        buffer = np.empty(n_chunks * slab_planes * plane)
        with progress.stage("ray tracing", total=len(sources)):
            for g_start, g_stop, slab_lo, slab_hi in groups:
                out = buffer[: n_chunks * (slab_hi - slab_lo) * plane].reshape(
                    (n_chunks, slab_hi - slab_lo) + decays.shape[1:]
                )
                out.fill(0.0)
                for start, stop in _source_batches(g_stop - g_start, n_chunks, batch_sources, cost[g_start:g_stop]):
                    _range_scatter(*arguments, out, slab_lo, g_start + start, g_start + stop)
                    progress.advance(stop - start)
                for chunk in range(n_chunks):
                    dose[slab_lo:slab_hi] += out[chunk]
    return dose


def kernel_range_dose(activity_bq: Image, density_g_ml: Image, *, coarse_long_range: bool = True) -> Image:
    """Absorbed dose (Gy) with a range-scaled kernel for every source-target pair (heterogeneous tissue).

    Parameters
    ----------
    activity_bq : Image
        Activity in each voxel at implant time (Bq).
    density_g_ml : Image
        Mass density (g/mL) from the CT, same grid.

    coarse_long_range : bool
        Ray-trace sources below 0.9 g/cm3 whose reach spans 12 voxels or more (lung at voxels up to 3.8 mm) on a grid twice
        as coarse (:mod:`dosimetry.dose.coarse_range`; 8x faster for the sample phantom at 2 mm); False: every source on
        the image grid.

    Returns
    -------
    Image
        Dose in Gy, float32, same grid.

    Notes
    -----
    In a homogeneous medium the Y-90 point kernel is ``rho^2 D_w(rho r)`` (O'Connor's theorem). For
    straight-line electron transport through a heterogeneous medium the energy a point source deposits
    per unit path length depends only on the radiological depth ``r_eff = integral rho dl`` along the
    ray, so the energy deposited per unit mass at a point at distance ``r`` is

        ``D(r) = D_w(r_eff) * (r_eff / r)^2 = rho_bar^2 D_w(rho_bar r)``,  ``rho_bar = r_eff / r``,

    the homogeneous kernel of the mean density along the ray, independent of the target density; the
    energy along every ray is conserved exactly. Voxelised:

        ``D(t) = sum_s A0(s) tau S_{rho_bar(s,t)}(t - s)``

    with ``S_rho`` the voxel S values of the homogeneous medium of density ``rho``
    (:func:`dosimetry.dose.kernels.density_kernel_table`, 32 density nodes per doubling from 0.2 to 3.1
    g/cm3; ``rho S_rho`` is interpolated linearly in ``rho``, so at every density the kernel deposits
    exactly the LDM energy), ``rho_bar(s, t)`` the path density of the line between the voxel centres,
    plus a sub-voxel correction for pairs whose end voxels differ in density from the path (the module
    documentation, "kernel-range at the voxel level", gives the three steps, their assumptions and the
    measured accuracy). ``r_eff`` is accumulated from the source outwards, shell by shell of the
    Chebyshev (dominant-axis) step number ``m``: the density sum at ``d`` is the (perspective-corrected)
    interpolation of the sums at the 4 voxels around ``d (m - 1) / m`` plus the trapezoid of the last
    step, and ``rho_bar = sum / m`` (every step is the same length along the line); the source voxel uses
    its own density. A ray stops where the kernel, corrected, is zero (``rho_bar * r_min >= 12 mm``) or at
    the edge of the volume (that energy is lost). Densities are clamped to [0.2, 3.0] g/cm3 for the range
    only (:data:`~dosimetry.constants.KERNEL_RANGE_MIN_DENSITY_G_CM3`). Sources whose whole reach
    (12 mm / rho) has densities within +-10% of their own (:data:`HOMOGENEOUS_TOLERANCE`) are treated as
    sitting in homogeneous tissue of their density and computed by FFT convolution with the node kernels
    (``sum_k conv(A w_k(rho_s) / rho_s, rho_k S_k)``); only the others are ray-traced.

    In uniform tissue of any density this is the homogeneous kernel of that density: it equals LDM in
    the interior and conserves the energy exactly. Against EGSnrc for a liver/lung slab it is within 10%
    of the Monte Carlo depth dose in every 2 mm bin (or 3-4 mm voxel) from -10 to +20 mm with 1, 2, 4 and
    4.07 x 4.07 x 3.0 mm voxels when the interface lies on a voxel boundary (tests/test_dose_methods.py).

    Assumptions and where it is wrong: straight-line (rectilinear, continuous slowing down) transport:
    5-9% too much dose 12-20 mm into lung beyond a liver interface. It ignores that backscatter and
    lateral scattering differ on each side of an interface (the dose in the first millimetres of liver
    next to lung is slightly too high, since backscatter from lung is less than from tissue), treats
    every medium as water of another density (no atomic-number effects: bone dose is a few % off), and
    takes every voxel as uniform: a voxel that straddles an interface is a mixture, and beyond it the
    dose is that of the mixture (12-30% above the MC in lung behind a liver/lung interface through the
    middle of 4 mm voxels). The sub-voxel correction assumes layering along one grid axis (up to 9% low
    for oblique interfaces with 4 mm voxels). The total energy in strongly heterogeneous geometry is
    conserved only approximately (the path density differs from ray to ray through one voxel pair):
    within 0.1% at a liver-lung plane, 2.4% lost for a 20 mm liver sphere in lung with 4 mm voxels. Dose
    in air voxels (density below 0.2) is not meaningful. The range in lung is up to 4x longer, so the
    cost grows with the lung volume reached by activity: O(sources x voxels within range).

    References
    ----------
    O'Connor JE. Phys Med Biol 1957;1:352-69. doi:10.1088/0031-9155/1/4/305
    Sanchez-Garcia M, Gardin I, Lebtahi R, Dieudonne A. A new approach for dose calculation in targeted
    radionuclide therapy (TRT) based on collapsed cone superposition: validation with 90Y. Phys Med Biol
    2014;59:4769-84. doi:10.1088/0031-9155/59/17/4769
    Graves SA, Flynn RT, Hyer DE. Med Phys 2019;46:5284-93. doi:10.1002/mp.13789
    """
    activity, density = _check_inputs(activity_bq, density_g_ml)
    if np.any(density == 0):
        lowest = KERNEL_RANGE_MIN_DENSITY_G_CM3
    else:  # the lowest density, without a copy of the positive voxels
        lowest = float(np.min(density, initial=np.inf))
        lowest = KERNEL_RANGE_MIN_DENSITY_G_CM3 if not math.isfinite(lowest) else lowest
    lowest = min(max(lowest, KERNEL_RANGE_MIN_DENSITY_G_CM3), KERNEL_RANGE_MAX_DENSITY_G_CM3)
    table = density_kernel_table(activity_bq.spacing_mm, lowest)
    scale = DECAYS_SCALE
    import numba  # (here: the other methods do not import it)

    spacing, threads = activity_bq.spacing_mm, numba.get_num_threads()
    split = split_long_range(activity, density, spacing, scale=scale) if coarse_long_range else None
    exclude = None if split is None else split.long_range
    dose = _range_kernel_dose(activity, density, table, spacing, threads, scale=scale, exclude=exclude)
    if split is not None:
        coarse_table = density_kernel_table(split.coarse_spacing_mm, lowest)
        with progress.stage("long-range sources (coarse grid)"):
            coarse = _range_kernel_dose(
                split.coarse_decays, split.coarse_density, coarse_table, split.coarse_spacing_mm, threads
            )
        del split
        add_prolonged(dose, coarse, density)
        del coarse
    out = np.empty(dose.shape, dtype=np.float32)
    out[...] = dose
    return activity_bq.with_array(out)


__all__ = ["kernel_density_dose", "kernel_dose", "kernel_range_dose"]
