"""Y-90 voxel S values (dose voxel kernels) for any voxel size and medium density, cached.

The only input is the Graves 2019 Y-90 beta dose point kernel (DPK) in water, ``kernels/
y90_beta_dpk_water_graves2019_0-12mm.csv``: the energy deposited per decay in 0.1 mm spherical shells
from 0 to 12 mm. Everything else is geometry.

How a voxel kernel is built
---------------------------
The voxel S value ``S(d)`` is the mean absorbed dose in the target voxel at index offset ``d`` per decay
uniformly distributed in the source voxel (MIRD Pamphlet 17). For an isotropic point kernel in a
homogeneous medium of density ``rho`` (g/cm3) it is exactly::

    S_rho(d) = (1 / rho) * integral_0^inf g_d(r) dE_w(rho * r)                                  (1)

* ``E_w(s)`` is the energy (MeV) deposited in water within radius ``s`` (mm) of a point source: the
  cumulative sum of the DPK shells, linear inside each 0.1 mm shell (constant energy per unit radial
  length, which is exact for the 1/r^2 kernel near the source). The medium is water scaled in density
  (O'Connor's theorem, electron transport without density effect): distances scale as ``rho * r``,
  so the point kernel of the medium is ``rho^2 D_w(rho r)``.
* ``g_d(r)`` is the mean over the sphere of radius ``r`` of the density of ``U = y - x``, the vector from
  a uniform point ``x`` in the source voxel to a uniform point ``y`` in the target voxel. ``U`` has the
  separable density ``prod_i tri((u_i - d_i h_i) / h_i) / h_i`` (``tri`` the unit triangle, ``h_i`` the
  spacing), so source and target voxels are both integrated exactly, for anisotropic voxels too.

``g_d(r) = F_d'(r) / (4 pi r^2)`` where ``F_d`` is the probability that ``|U| < r``. ``F_d'`` is computed by
Gauss-Legendre quadrature over the sphere (``u_x`` outer, then the angle ``theta`` with
``u_y = a sin(theta)``, ``u_z = a cos(theta)``, so no square-root singularity is left), with the
integration intervals split at every kink of the triangles. ``g_d`` is tabulated on a radial grid of step
``min(h) / 16``; equation (1) is then a sum over grid intervals of ``(g_j + g_{j+1}) / 2`` times the energy
deposited in the interval (the DPK is integrated exactly, only ``g`` is interpolated). The near-source
``1/r^2`` singularity of the DPK never appears: only energies enter.

Energy conservation is built in. The triangles form a partition of unity, ``sum_d g_d(r) = 1 / V`` at
every ``r`` (``V`` the voxel volume); after quadrature the table is rescaled at every radial node so that
this holds to rounding, hence ``sum_d S_rho(d) * rho * V = E_w(infinity)`` exactly, for every density.

Normalisation (energy per decay)
--------------------------------
The DPK file holds 0.92991 MeV per decay within 12 mm
(:data:`~dosimetry.constants.Y90_DPK_ENERGY_0_12MM_MEV`); the missing 0.32% of the ICRP 107 mean beta
energy (0.93290 MeV) is the bremsstrahlung that travels further. The kernels here are renormalised
(all shells multiplied by 0.93290 / 0.92991 = 1.00322) so that every kernel deposits exactly
:data:`~dosimetry.constants.Y90_KERNEL_ENERGY_PER_DECAY_MEV` = the LDM energy: in charged-particle
equilibrium every kernel method then gives the LDM dose exactly, and the methods differ only in where
they put the same energy. The price is that the bremsstrahlung energy (0.3%) is deposited within the
beta range instead of escaping; EGSnrc puts the uniform-water dose 0.23% below LDM (a_block reference,
+-0.25%), which is the size of this error.

Caching
-------
A kernel depends only on the spacing, the density, the DPK data and this code. It is cached in memory
(an ``lru_cache`` of read-only arrays) and on disk, in ``$Y90_DOSIMETRY_CACHE`` or
``~/.cache/y90-dosimetry/kernels`` (or the ``cache_dir`` argument), as ``.npz`` files written atomically
(temporary file + ``os.replace``), named by a SHA-256 of the spacing (rounded to 1e-4 mm), density,
DPK file digest and code version. A disk cache that cannot be written is skipped with a warning.

References
----------
.. [Graves2019] Graves SA, Flynn RT, Hyer DE. Dose point kernels for 2,174 radionuclides. Med Phys
   2019;46:5284-93. doi:10.1002/mp.13789
.. [MIRD17] Bolch WE, Bouchet LG, Robertson JS, et al. MIRD Pamphlet No. 17: the dosimetry of nonuniform
   activity distributions - radionuclide S values at the voxel level. J Nucl Med 1999;40:11S-36S.
.. [OConnor1957] O'Connor JE. The variation of scattered X-rays with density in an irradiated body.
   Phys Med Biol 1957;1:352-69. doi:10.1088/0031-9155/1/4/305
.. [Dieudonne2010] Dieudonne A, Hobbs RF, Bolch WE, Sgouros G, Gardin I. Fine-resolution voxel S values for
   constructing absorbed dose distributions at variable voxel size. J Nucl Med 2010;51:1600-7.
   doi:10.2967/jnumed.110.077149
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dosimetry._version import __version__
from dosimetry.constants import (
    DPK_WATER_DENSITY_G_CM3,
    KERNEL_RANGE_MAX_DENSITY_G_CM3,
    KERNEL_RANGE_MIN_DENSITY_G_CM3,
    MGY_PER_MBQ_S_PER_MEV_PER_G,
    Y90_DPK_MAX_RADIUS_WATER_MM,
    Y90_KERNEL_ENERGY_PER_DECAY_MEV,
)
from dosimetry.io.data_files import data_path
from dosimetry.errors import InputFileError, OptionsError

_log = logging.getLogger(__name__)

KERNEL_CODE_VERSION = "2"
"""Bumped whenever the construction below changes; part of every disk cache key."""

DPK_FILE = "y90_beta_dpk_water_graves2019_0-12mm.csv"
CACHE_ENV_VAR = "Y90_DOSIMETRY_CACHE"

_GAUSS_ORDER = 8
"""Gauss-Legendre points per smooth interval (S(0,0,0) converged to 1e-4 relative at 8)."""
_RADIAL_STEPS_PER_VOXEL = 16
"""Radial grid step = min(spacing) / 16 (S(0,0,0) within 0.1% of the converged value)."""
_SPACING_DECIMALS = 4
"""Spacings are rounded to 1e-4 mm before use, so DICOM float noise does not defeat the cache."""

DENSITY_NODES_PER_DOUBLING = 32
"""Density nodes of the range-scaled table: rho_k = 0.2 * 2**(k / 32) (2.2% apart)."""


# --- the point kernel ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PointKernel:
    """The Graves 2019 Y-90 water DPK as cumulative energy, read once (read-only arrays).

    Attributes
    ----------
    radius_mm : ndarray, shape (n + 1,)
        Shell boundaries in water, 0 to 12 mm.
    cumulative_energy_mev : ndarray, shape (n + 1,)
        Energy deposited within each radius per decay, as published (not renormalised), MeV.
    sha256 : str
        Digest of the data file (part of the cache keys).
    """

    radius_mm: np.ndarray
    cumulative_energy_mev: np.ndarray
    sha256: str

    @property
    def deposited_energy_mev(self) -> float:
        """Energy per decay deposited within the tabulated 12 mm, as published (MeV)."""
        return float(self.cumulative_energy_mev[-1])

    @property
    def normalisation(self) -> float:
        """Factor applied to every shell so the kernel deposits the LDM energy (about 1.0032)."""
        return Y90_KERNEL_ENERGY_PER_DECAY_MEV / self.deposited_energy_mev


@functools.lru_cache(maxsize=1)
def point_kernel() -> PointKernel:
    """The Y-90 water dose point kernel of [Graves2019], read from ``kernels/`` once per process."""
    raw = data_path(DPK_FILE).read_bytes()
    lines = [line for line in raw.decode("ascii").splitlines() if line.strip()]
    try:
        rows = np.array([[float(v) for v in line.split(",")[:2]] for line in lines[2:]])
    except ValueError as err:
        raise InputFileError(f"{DPK_FILE}: unreadable dose point kernel table ({err}); reinstall") from err
    outer_mm = rows[:, 0] * 10.0
    radius = np.concatenate([[0.0], outer_mm])
    if np.any(np.diff(radius) <= 0) or abs(radius[-1] - Y90_DPK_MAX_RADIUS_WATER_MM) > 1e-9:
        raise InputFileError(f"{DPK_FILE}: shell radii are not increasing up to 12 mm; reinstall the package")
    cumulative = np.concatenate([[0.0], np.cumsum(rows[:, 1])])
    for arr in (radius, cumulative):
        arr.flags.writeable = False
    return PointKernel(radius, cumulative, hashlib.sha256(raw).hexdigest())


def water_cumulative_energy_mev(radius_water_mm) -> np.ndarray:
    """Kernel energy (MeV per decay, renormalised) deposited within ``radius_water_mm`` of a point in water.

    Linear inside each 0.1 mm shell; equal to :data:`~dosimetry.constants.Y90_KERNEL_ENERGY_PER_DECAY_MEV`
    beyond 12 mm.
    """
    pk = point_kernel()
    cumulative = pk.cumulative_energy_mev * pk.normalisation
    return np.interp(np.asarray(radius_water_mm, dtype=float), pk.radius_mm, cumulative)


@dataclass(frozen=True)
class _RadialTable:
    offsets: np.ndarray  # (n, 3) int, octant offsets (all >= 0) whose support starts inside r_max
    j0: np.ndarray  # (n,) first radial node of each row
    g: np.ndarray  # (n, width) g_d(r_j), 1/mm3, partition of unity enforced
    dr_mm: float
    n_nodes: int  # radial nodes 0 .. n_nodes - 1 cover [0, r_max]
    extent: tuple[int, int, int]


def _extent(spacing_mm: tuple[float, float, float], r_max_mm: float) -> tuple[int, int, int]:
    # a target at index offset n can receive dose only if (n - 1) * h < r_max
    return tuple(int(math.ceil(r_max_mm / h - 1e-9)) for h in spacing_mm)  # type: ignore[return-value]


def _radial_table(spacing_mm: tuple[float, float, float], r_max_mm: float) -> _RadialTable:
    h = np.asarray(spacing_mm, dtype=float)
    extent = _extent(spacing_mm, r_max_mm)
    grids = np.meshgrid(*[np.arange(n + 1) for n in extent], indexing="ij")
    offsets = np.stack([g.ravel() for g in grids], axis=1)
    r_lo = np.sqrt((np.maximum(offsets - 1, 0) * h) ** 2 @ np.ones(3))
    r_hi = np.sqrt(((offsets + 1) * h) ** 2 @ np.ones(3))
    keep = r_lo < r_max_mm
    offsets, r_lo, r_hi = offsets[keep], r_lo[keep], r_hi[keep]
    dr = float(h.min()) / _RADIAL_STEPS_PER_VOXEL
    n_nodes = int(math.ceil(r_max_mm / dr)) + 1
    j0 = np.floor(r_lo / dr).astype(np.int64)
    j1 = np.minimum(np.ceil(r_hi / dr).astype(np.int64), n_nodes - 1)
    width = int((j1 - j0).max()) + 1
    from dosimetry.dose.kernel_integrals import _distance_density_table  # numba: only when computing

    gx, gw = np.polynomial.legendre.leggauss(_GAUSS_ORDER)
    g = _distance_density_table(offsets.astype(np.int64), h, j0, width, dr, gx, gw)
    # nodes past r_max belong to no table entry
    node = j0[:, None] + np.arange(width)[None, :]
    g[node >= n_nodes] = 0.0
    # partition of unity: sum over all (signed) offsets of g_d(r) is 1 / V at every r
    multiplicity = 2.0 ** np.count_nonzero(offsets, axis=1)
    total = np.zeros(n_nodes)
    valid = node < n_nodes
    np.add.at(total, node[valid], (g * multiplicity[:, None])[valid])
    target = 1.0 / float(np.prod(h))
    if np.any(total <= 0) or np.max(np.abs(total * np.prod(h) - 1.0)) > 0.02:
        raise RuntimeError(  # pragma: no cover - a bug in the quadrature, not an input fault
            f"voxel distance density quadrature is off by {np.max(np.abs(total * np.prod(h) - 1.0)):.3g}"
        )
    g[valid] *= (target / total)[node[valid]]
    return _RadialTable(offsets, j0, g, dr, n_nodes, extent)


def _octant_s_values(table: _RadialTable, density_g_cm3: float) -> np.ndarray:
    """Equation (1) for every row of ``table``: S in mGy/(MBq s) for a medium of the given density."""
    rho_rel = density_g_cm3 / DPK_WATER_DENSITY_G_CM3
    edges = np.arange(table.n_nodes) * table.dr_mm
    energy = water_cumulative_energy_mev(rho_rel * edges)
    d_energy = np.append(np.diff(energy), 0.0)  # energy in [r_j, r_j+1]; nothing past the last node
    width = table.g.shape[1]
    node = np.minimum(table.j0[:, None] + np.arange(width)[None, :], table.n_nodes - 1)
    g_next = np.concatenate([table.g[:, 1:], np.zeros((table.g.shape[0], 1))], axis=1)
    # (g_j + g_j+1) / 2 * dE_j ; MeV / (mm3 * g/cm3) = 1000 MeV/g
    s_mev_per_g = 1000.0 / density_g_cm3 * np.sum(0.5 * (table.g + g_next) * d_energy[node], axis=1)
    return s_mev_per_g * MGY_PER_MBQ_S_PER_MEV_PER_G


def _octant_to_full(offsets: np.ndarray, values: np.ndarray) -> np.ndarray:
    nonzero = values > 0
    extent = offsets[nonzero].max(axis=0) if np.any(nonzero) else np.zeros(3, dtype=int)
    full = np.zeros(tuple(2 * extent + 1))
    for sx in (1, -1):
        for sy in (1, -1):
            for sz in (1, -1):
                idx = offsets[nonzero] * np.array([sx, sy, sz]) + extent
                full[idx[:, 0], idx[:, 1], idx[:, 2]] = values[nonzero]
    return full


# --- validation and cache ----------------------------------------------------------------------------------
def _spacing_tuple(spacing_mm) -> tuple[float, float, float]:
    arr = np.asarray(spacing_mm, dtype=float)
    if arr.ndim == 0:
        arr = np.full(3, float(arr))
    if arr.shape != (3,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise OptionsError(f"spacing_mm must be one or three positive finite numbers (mm), got {spacing_mm!r}")
    arr = np.round(arr, _SPACING_DECIMALS)
    if np.any(arr <= 0):
        raise OptionsError(f"spacing_mm must be at least 1e-4 mm, got {spacing_mm!r}")
    return tuple(float(v) for v in arr)  # type: ignore[return-value]


def _density_value(density_g_cm3) -> float:
    value = float(density_g_cm3)
    if not math.isfinite(value) or value <= 0:
        raise OptionsError(f"density_g_cm3 must be a positive finite number (g/cm3), got {density_g_cm3!r}")
    return round(value, 6)


def _resolve_cache_dir(cache_dir) -> str:
    """'' when the disk cache is off, else the directory (not created here)."""
    if cache_dir is False:
        return ""
    if cache_dir is not None:
        return str(Path(cache_dir).expanduser())
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return str(Path(env).expanduser())
    return str(Path("~/.cache/y90-dosimetry/kernels").expanduser())


def _cache_key(kind: str, spacing: tuple[float, float, float], parameter: float) -> tuple[str, str]:
    meta = {
        "kind": kind,
        "spacing_mm": list(spacing),
        "parameter": parameter,
        "dpk_sha256": point_kernel().sha256,
        "code": f"{__version__}+kernels{KERNEL_CODE_VERSION}",
        "gauss_order": _GAUSS_ORDER,
        "radial_steps": _RADIAL_STEPS_PER_VOXEL,
        "density_nodes_per_doubling": DENSITY_NODES_PER_DOUBLING,
    }
    text = json.dumps(meta, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32], text


def _load_or_build(kind: str, spacing, parameter: float, cache_dir: str, build) -> dict[str, np.ndarray]:
    key, meta = _cache_key(kind, spacing, parameter)
    path = Path(cache_dir) / f"y90_{kind}_{key}.npz" if cache_dir else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
            if str(arrays.pop("meta")) == meta:
                return arrays
            _log.warning("kernel cache file %s does not match its key; rebuilding it", path)
        except (OSError, ValueError, KeyError) as err:
            _log.warning("kernel cache file %s is unreadable (%s); rebuilding it", path, err)
    arrays = build()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".partial")
            try:
                with os.fdopen(fd, "wb") as handle:
                    np.savez(handle, meta=np.array(meta), **arrays)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except OSError as err:
            _log.warning("cannot write the kernel cache in %s (%s); kernels will be rebuilt next run", cache_dir, err)
    return arrays


def _read_only(arr: np.ndarray) -> np.ndarray:
    arr = np.ascontiguousarray(arr)
    arr.flags.writeable = False
    return arr


# --- public: voxel S values ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def _voxel_s_values_cached(spacing: tuple[float, float, float], density: float, cache_dir: str) -> np.ndarray:
    def build():
        r_max = Y90_DPK_MAX_RADIUS_WATER_MM * DPK_WATER_DENSITY_G_CM3 / density
        table = _radial_table(spacing, r_max)
        return {"kernel": _octant_to_full(table.offsets, _octant_s_values(table, density))}

    return _read_only(_load_or_build("s_values", spacing, density, cache_dir, build)["kernel"])


def voxel_s_values(spacing_mm, density_g_cm3: float = 1.0, *, cache_dir=None) -> np.ndarray:
    """Y-90 voxel S values in a homogeneous medium, in mGy/(MBq s), for any voxel size.

    Parameters
    ----------
    spacing_mm : float or sequence of 3 float
        Voxel size along the three array axes (mm); anisotropic voxels are exact.
    density_g_cm3 : float, optional
        Mass density of the (water-like) medium, g/cm3; 1.0 is water. It scales the range.
    cache_dir : path-like or False, optional
        Disk cache directory; default ``$Y90_DOSIMETRY_CACHE`` or ``~/.cache/y90-dosimetry/kernels``.
        ``False`` turns the disk cache off (the memory cache stays).

    Returns
    -------
    ndarray of float64, shape (2 n0 + 1, 2 n1 + 1, 2 n2 + 1), read-only
        ``S[n0 + a, n1 + b, n2 + c]`` is the mean dose to the voxel at index offset ``(a, b, c)`` per decay
        in the centre voxel. Axes are in the order of ``spacing_mm``; ``n_i = ceil(R / h_i)`` with
        ``R = 12 mm / density`` (the last voxels that a point of the source voxel can reach), so the kernel
        covers the maximum beta range (11 mm in water).

    Raises
    ------
    OptionsError
        A spacing or density that is not positive and finite.

    Notes
    -----
    ``S_rho(d) = (1/rho) integral g_d(r) dE_w(rho r)`` (see the module documentation): the DPK of
    [Graves2019] scaled to density ``rho`` (``D_rho(r) = rho^2 D_w(rho r)``) and integrated exactly over
    source and target voxels. ``sum_d S(d) * rho * V`` equals 0.93290 MeV per decay (the ICRP 107 mean
    beta energy, to which the 0-12 mm kernel is renormalised by +0.32%). In water,
    ``S(0,0,0) = 1.590`` (3 mm voxels) and ``0.3470`` (6 mm), against 1.61 and 0.346 in [MIRD17].

    References
    ----------
    Graves SA, Flynn RT, Hyer DE. Med Phys 2019;46:5284-93. doi:10.1002/mp.13789
    Bolch WE et al. MIRD Pamphlet No. 17. J Nucl Med 1999;40:11S-36S.

    Examples
    --------
    >>> s = voxel_s_values((4.07, 4.07, 3.0), cache_dir=False)
    >>> s.shape, bool(s[3, 3, 4] == s.max())
    ((7, 7, 9), True)
    """
    spacing = _spacing_tuple(spacing_mm)
    density = _density_value(density_g_cm3)
    return _voxel_s_values_cached(spacing, density, _resolve_cache_dir(cache_dir))


def deposited_energy_mev(s_values_mgy_per_mbq_s: np.ndarray, spacing_mm, density_g_cm3: float = 1.0) -> float:
    """Energy per decay (MeV) that a voxel kernel deposits: ``sum(S * rho * V)`` in MeV.

    The check of energy conservation; 0.93290 MeV for every kernel of :func:`voxel_s_values`.
    """
    spacing = _spacing_tuple(spacing_mm)
    mass_g = float(np.prod(spacing)) / 1000.0 * float(density_g_cm3)
    return float(np.sum(s_values_mgy_per_mbq_s, dtype=np.float64)) * mass_g / MGY_PER_MBQ_S_PER_MEV_PER_G


# --- public: density-node table for the range-scaled kernel --------------------------------------------------
@dataclass(frozen=True)
class DensityKernelTable:
    """Voxel S values tabulated at density nodes, for :func:`~dosimetry.dose.kernel_methods.kernel_range_dose`.

    Attributes
    ----------
    densities_g_cm3 : ndarray, shape (k,)
        Density nodes ``rho_j = 0.2 * 2**(j / 32)``, from the lowest needed to 3.1 g/cm3.
    offsets : ndarray of int32, shape (n, 3)
        Octant index offsets (all >= 0) of the rows.
    energy_density : ndarray of float32, shape (n, k)
        ``rho_j * S_rho_j(d)`` in mGy/(MBq s) x g/cm3 (energy per unit volume). Interpolated linearly in
        ``rho`` and divided by ``rho`` this gives a kernel that deposits exactly 0.93290 MeV per decay at
        every density, not only at the nodes.
    row_of_offset : ndarray of int32, shape (n0 + 1, n1 + 1, n2 + 1)
        Row of the octant offset ``(a, b, c)``, -1 when it is out of range even at the lowest density.
    """

    densities_g_cm3: np.ndarray
    offsets: np.ndarray
    energy_density: np.ndarray
    row_of_offset: np.ndarray

    @property
    def extent(self) -> tuple[int, int, int]:
        return tuple(int(n) - 1 for n in self.row_of_offset.shape)  # type: ignore[return-value]


def density_nodes_g_cm3(min_density_g_cm3: float) -> np.ndarray:
    """The density nodes from the node just below ``min_density_g_cm3`` (floored at 0.2) to 3.1 g/cm3."""
    base = KERNEL_RANGE_MIN_DENSITY_G_CM3
    step = 2.0 ** (1.0 / DENSITY_NODES_PER_DOUBLING)
    top = int(math.ceil(math.log(KERNEL_RANGE_MAX_DENSITY_G_CM3 / base, step)))
    low = max(0, int(math.floor(math.log(max(min_density_g_cm3, base) / base, step) + 1e-9)))
    return base * step ** np.arange(low, top + 1)


@functools.lru_cache(maxsize=8)
def _density_table_cached(spacing: tuple[float, float, float], lowest: float, cache_dir: str):
    nodes = density_nodes_g_cm3(lowest)

    def build():
        r_max = Y90_DPK_MAX_RADIUS_WATER_MM * DPK_WATER_DENSITY_G_CM3 / float(nodes[0])
        table = _radial_table(spacing, r_max)
        energy = np.stack([_octant_s_values(table, float(rho)) * rho for rho in nodes], axis=1)
        rows = np.full(tuple(n + 1 for n in table.extent), -1, dtype=np.int32)
        rows[table.offsets[:, 0], table.offsets[:, 1], table.offsets[:, 2]] = np.arange(len(table.offsets))
        return {
            "offsets": table.offsets.astype(np.int32),
            "energy_density": energy.astype(np.float32),
            "row_of_offset": rows,
        }

    arrays = _load_or_build("density_table", spacing, float(nodes[0]), cache_dir, build)
    return DensityKernelTable(
        _read_only(nodes),
        _read_only(arrays["offsets"]),
        _read_only(arrays["energy_density"]),
        _read_only(arrays["row_of_offset"]),
    )


def density_kernel_table(spacing_mm, min_density_g_cm3: float, *, cache_dir=None) -> DensityKernelTable:
    """Voxel S values at density nodes from ``min_density_g_cm3`` (floored at 0.2 g/cm3) to 3.1 g/cm3.

    Parameters
    ----------
    spacing_mm : float or sequence of 3 float
        Voxel size (mm).
    min_density_g_cm3 : float
        Lowest density the table must serve; lower densities are treated as 0.2 g/cm3 (the table extent
        grows as 1 / density: 60 mm at 0.2 g/cm3).
    cache_dir : path-like or False, optional
        As for :func:`voxel_s_values`.
    """
    spacing = _spacing_tuple(spacing_mm)
    nodes = density_nodes_g_cm3(float(min_density_g_cm3))
    return _density_table_cached(spacing, float(nodes[0]), _resolve_cache_dir(cache_dir))


__all__ = [
    "CACHE_ENV_VAR",
    "DensityKernelTable",
    "KERNEL_CODE_VERSION",
    "PointKernel",
    "density_kernel_table",
    "density_nodes_g_cm3",
    "deposited_energy_mev",
    "point_kernel",
    "voxel_s_values",
    "water_cumulative_energy_mev",
]
