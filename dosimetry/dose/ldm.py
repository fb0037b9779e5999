"""Local deposition method (LDM): all beta energy absorbed in the voxel where the decay happens."""

from __future__ import annotations

import numpy as np

from dosimetry.constants import JOULE_PER_MEV, Y90_MEAN_BETA_ENERGY_MEV
from dosimetry.quantify.decay import cumulated_activity_bq_s
from dosimetry.image import Image
from dosimetry.layout import slowest_axis_slabs
from dosimetry.threads import in_threads

_SLAB_VOXELS = 1_000_000


def ldm_dose(activity_bq: Image, density_g_ml: Image) -> Image:
    """Absorbed dose (Gy) by local deposition of the mean beta energy of a permanent Y-90 implant.

    Parameters
    ----------
    activity_bq : Image
        Activity in each voxel at implant time (Bq).
    density_g_ml : Image
        Mass density (g/mL) on the same grid.

    Returns
    -------
    Image
        Dose in Gy, float32, same grid. Voxels of zero density get zero dose.

    Notes
    -----
    ``D = A0 * tau * E_mean / m`` with ``tau = T1/2 / ln 2`` (cumulated activity of a permanent implant),
    ``E_mean = 0.93290 MeV`` (ICRP 107) and ``m = rho * V``; for a whole organ this is the MIRD formula
    ``D[Gy] = 49.76 * A[GBq] / M[kg]``. The method ignores the beta range (mean 2.5 mm, maximum 11 mm):
    it overestimates the dose at the edges of hot regions and in low-density lung, and underestimates it
    next to them (see the kernel methods).

    References
    ----------
    Gulec SA, Mesoloras G, Stabin M. J Nucl Med 2006;47:1209-11.
    Pasciak AS, Bourgeois AC, Bradley YC. Front Oncol 2014;4:121 (LDM for Y-90 PET).
    """
    activity = np.asarray(activity_bq.array)
    density = np.asarray(density_g_ml.array)
    energy_per_decay_j = Y90_MEAN_BETA_ENERGY_MEV * JOULE_PER_MEV
    voxel_volume_l = activity_bq.voxel_volume_ml / 1000.0
    # the dose in the activity's memory order (the files' order: slabs are written contiguously, and the NIfTI
    # writer takes Fortran order without a transposing copy)
    dose = np.empty_like(activity, dtype=np.float32)
    # one density for every voxel (no CT: a broadcast value): its mass once, the same float64 operations
    uniform_mass_kg = float(np.float64(density.flat[0]) * voxel_volume_l) if _is_uniform(density) else None
    # slab by slab, in float64 as before (identical values), so no full-size float64 temporaries; slabs are
    # independent, so two threads share them (numpy releases the GIL)

    def deposit(part) -> None:
        energy_j = cumulated_activity_bq_s(activity[part].astype(np.float64))
        energy_j *= energy_per_decay_j
        if uniform_mass_kg is not None:
            if uniform_mass_kg > 0:
                energy_j /= uniform_mass_kg
            else:
                energy_j[...] = 0.0
            dose[part] = energy_j
            return
        mass_kg = density[part].astype(np.float64)
        mass_kg *= voxel_volume_l
        slab = np.zeros_like(energy_j)
        np.divide(energy_j, mass_kg, out=slab, where=mass_kg > 0)
        dose[part] = slab

    in_threads(deposit, slowest_axis_slabs(activity, _SLAB_VOXELS))  # contiguous slabs in C or Fortran order
    return activity_bq.with_array(dose)


def _is_uniform(values: np.ndarray) -> bool:
    """One value seen at every voxel: a broadcast of a single element (all strides 0)."""
    return values.size > 0 and all(stride == 0 for stride in values.strides)
