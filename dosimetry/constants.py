"""Physical constants and published reference values: the only place numbers of physics live.

Every constant carries its unit in its name and its source in :data:`SOURCES`. Output files record the
values used (``stats.json`` -> ``constants``) through :func:`constants_record`.

References
----------
.. [ICRP107] ICRP Publication 107. Nuclear decay data for dosimetric calculations. Ann ICRP 2008;38(3).
.. [CODATA2018] CODATA 2018 recommended values; 1 eV = 1.602176634e-19 J exactly (SI 2019).
.. [MIRD17] Bolch WE et al. MIRD Pamphlet No. 17. J Nucl Med 1999;40:11S-36S.
.. [Gulec2006] Gulec SA, Mesoloras G, Stabin M. Dosimetric techniques in 90Y-microsphere therapy of liver
   cancer: the MIRD equations for dose calculations. J Nucl Med 2006;47:1209-11 (49.67 Gy kg/GBq).
.. [Schneider2000] Schneider W, Bortfeld T, Schlegel W. Phys Med Biol 2000;45:459-78.
.. [ICRU46] ICRU Report 46 (1992), soft tissue density 1.03-1.06 g/cm3; 1.03 g/cm3 is the density used
   for liver by the MIRD schema and by the EANM 2022 SIRT guideline (Weber et al., EJNMMI 2022;49:1682-99).
"""

from __future__ import annotations

import math

# --- Y-90 decay (ICRP 107) -----------------------------------------------------------------------------
Y90_HALF_LIFE_H: float = 64.1
"""Y-90 physical half-life in hours [ICRP107]."""

Y90_HALF_LIFE_S: float = Y90_HALF_LIFE_H * 3600.0
Y90_DECAY_CONSTANT_PER_S: float = math.log(2.0) / Y90_HALF_LIFE_S
Y90_MEAN_LIFE_S: float = 1.0 / Y90_DECAY_CONSTANT_PER_S
"""Mean life tau = T1/2 / ln 2 (s): the cumulated activity of a permanent implant is A0 x tau."""

NUCLIDE_HALF_LIVES_S: dict[str, float] = {
    "Y-90": Y90_HALF_LIFE_S,
    "F-18": 109.77 * 60.0,
    "Ga-68": 67.629 * 60.0,
    "Cu-64": 12.700 * 3600.0,
    "Tc-99m": 6.015 * 3600.0,
    "Ho-166": 26.80 * 3600.0,
    "Lu-177": 6.647 * 86400.0,
    "I-131": 8.0207 * 86400.0,
    "Ge-68": 270.95 * 86400.0,
}
"""Half-lives (s) used only to name the nuclide a scanner was set to, from the Radionuclide Half Life of
a DICOM header (within 1%); dosimetry itself uses only :data:`Y90_HALF_LIFE_S` [ICRP107]."""

Y90_MEAN_BETA_ENERGY_MEV: float = 0.93290
"""Mean beta energy emitted per decay (MeV): 0.932991 x 0.999885 + 0.185079 x 1.15e-4 [ICRP107]."""

# --- unit conversions (exact, SI) ----------------------------------------------------------------------
JOULE_PER_MEV: float = 1.602176634e-13
"""1 MeV in J (exact since the 2019 SI redefinition) [CODATA2018]."""

# --- local deposition ----------------------------------------------------------------------------------
Y90_LDM_GY_KG_PER_GBQ: float = (
    Y90_MEAN_BETA_ENERGY_MEV * JOULE_PER_MEV * Y90_MEAN_LIFE_S * 1e9
)
"""Absorbed dose x mass per administered GBq for full local absorption (Gy kg/GBq), derived here
from [ICRP107] (= 49.76). This is the value the package uses, because it follows from the same decay data
as everything else we compute."""

Y90_LDM_CONVENTIONAL_GY_KG_PER_GBQ: float = 49.67
"""The conventional constant of the MIRD/manufacturer formulas [Gulec2006]; it is 0.2% below ours (it
used an older mean energy). Used only where a formula from the literature is reproduced as published
(the lung shunt estimate), and reported beside the voxel results."""

# --- densities -----------------------------------------------------------------------------------------
DEFAULT_SOFT_TISSUE_DENSITY_G_ML: float = 1.03
"""Density used when there is no CT (g/cm3) [ICRU46]; every output that uses it says so."""

DEFAULT_LUNG_MASS_KG: float = 1.0
"""Conventional lung mass for the lung-shunt dose estimate when it is not measured (kg) [Gulec2006]."""

SOURCES: dict[str, str] = {
    "Y90_HALF_LIFE_H": "ICRP Publication 107 (2008)",
    "Y90_MEAN_BETA_ENERGY_MEV": "ICRP Publication 107 (2008): 0.932991 MeV x 0.999885 + 0.185079 MeV x 1.15e-4",
    "JOULE_PER_MEV": "SI 2019 / CODATA 2018 (exact)",
    "Y90_LDM_GY_KG_PER_GBQ": "derived: E_mean x (T1/2 / ln 2), ICRP 107 data",
    "Y90_LDM_CONVENTIONAL_GY_KG_PER_GBQ": "Gulec, Mesoloras, Stabin, J Nucl Med 2006;47:1209 (MIRD formula)",
    "DEFAULT_SOFT_TISSUE_DENSITY_G_ML": "ICRU Report 46; MIRD and EANM 2022 SIRT guideline liver density",
    "DEFAULT_LUNG_MASS_KG": "conventional lung mass, Gulec 2006 / EANM 2022",
    "NUCLIDE_HALF_LIVES_S": "ICRP Publication 107 (2008); for naming a nuclide from a DICOM header only",
    "HU_TO_DENSITY": "Schneider, Bortfeld, Schlegel, Phys Med Biol 2000;45:459 (kernels/hu_to_density_schneider2000.txt)",
}

UNITS: dict[str, str] = {
    "Y90_HALF_LIFE_H": "h",
    "Y90_MEAN_BETA_ENERGY_MEV": "MeV",
    "JOULE_PER_MEV": "J/MeV",
    "Y90_LDM_GY_KG_PER_GBQ": "Gy kg/GBq",
    "Y90_LDM_CONVENTIONAL_GY_KG_PER_GBQ": "Gy kg/GBq",
    "DEFAULT_SOFT_TISSUE_DENSITY_G_ML": "g/mL",
    "DEFAULT_LUNG_MASS_KG": "kg",
}


def constants_record() -> dict[str, dict[str, object]]:
    """Every constant with its value, unit and source, as written to ``stats.json``."""
    values = {
        "Y90_HALF_LIFE_H": Y90_HALF_LIFE_H,
        "Y90_MEAN_BETA_ENERGY_MEV": Y90_MEAN_BETA_ENERGY_MEV,
        "JOULE_PER_MEV": JOULE_PER_MEV,
        "Y90_LDM_GY_KG_PER_GBQ": Y90_LDM_GY_KG_PER_GBQ,
        "Y90_LDM_CONVENTIONAL_GY_KG_PER_GBQ": Y90_LDM_CONVENTIONAL_GY_KG_PER_GBQ,
        "DEFAULT_SOFT_TISSUE_DENSITY_G_ML": DEFAULT_SOFT_TISSUE_DENSITY_G_ML,
        "DEFAULT_LUNG_MASS_KG": DEFAULT_LUNG_MASS_KG,
    }
    return {
        name: {"value": value, "unit": UNITS[name], "source": SOURCES[name]}
        for name, value in values.items()
    }
