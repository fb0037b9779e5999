"""Physical constants and published reference values: the only place numbers of physics live.

Every constant carries its unit in its name and its source in :data:`SOURCES`. Output files record the
values used (``stats.json`` -> ``constants``) through :func:`constants_record`.

References
----------
.. [ICRP107] ICRP Publication 107. Nuclear decay data for dosimetric calculations. Ann ICRP 2008;38(3).
.. [Selwyn2007] Selwyn RG, Nickles RJ, Thomadsen BR, DeWerd LA, Micka JA. A new internal pair production
   branching ratio of 90Y. Appl Radiat Isot 2007;65:318-27 (31.86 +- 0.47 x 1e-6 positrons per decay).
.. [DDEP] Decay Data Evaluation Project, LNHB recommended data (F-18, Ga-68, Cu-64 beta+ intensities).
.. [ENSDF177] ENSDF evaluation of A = 177 (Kondev FG, Nuclear Data Sheets 2019;159), as shown by NNDC NuDat 3
   (https://www.nndc.bnl.gov/nudat3/): Lu-177 ground-state half-life 6.647 (4) d.
.. [CODATA2018] CODATA 2018 recommended values; 1 eV = 1.602176634e-19 J exactly (SI 2019).
.. [MIRD17] Bolch WE et al. MIRD Pamphlet No. 17. J Nucl Med 1999;40:11S-36S.
.. [Gulec2006] Gulec SA, Mesoloras G, Stabin M. Dosimetric techniques in 90Y-microsphere therapy of liver
   cancer: the MIRD equations for dose calculations. J Nucl Med 2006;47:1209-11 (49.67 Gy kg/GBq).
.. [Schneider2000] Schneider W, Bortfeld T, Schlegel W. Phys Med Biol 2000;45:459-78.
.. [ICRU46] ICRU Report 46 (1992), soft tissue density 1.03-1.06 g/cm3; 1.03 g/cm3 is the density used
   for liver by the MIRD schema and by the EANM 2022 SIRT guideline (Weber et al., EJNMMI 2022;49:1682-99).
.. [Graves2019] Graves SA, Flynn RT, Hyer DE. Dose point kernels for 2,174 radionuclides. Med Phys
   2019;46:5284-93. doi:10.1002/mp.13789
.. [Dale1985] Dale RG. Br J Radiol 1985;58:515-28 (BED of protracted / permanent-implant irradiation).
.. [Strigari2010] Strigari L, Sciuto R, Rea S, et al. J Nucl Med 2010;51:1377-85 (Y-90 resin, HCC: BED,
   alpha/beta 2.5 Gy and repair half-time 2.5 h for liver).
.. [Cremonesi2014] Cremonesi M, Chiesa C, Strigari L, et al. Front Oncol 2014;4:210 (Y-90 radiobiology
   review: alpha/beta 10 Gy tumour, 2.5 Gy liver; Trep 2.5 h).
.. [DuBois1916] Du Bois D, Du Bois EF. A formula to estimate the approximate surface area if height and
   weight be known. Arch Intern Med 1916;17:863-71.
.. [SirtexIFU] SIR-Spheres microspheres Instructions for Use (Sirtex Medical), BSA method and lung-shunt
   activity reduction; reviewed by Kao YH et al., Ann Nucl Med 2011;25:455-61.
.. [Ho1996] Ho S, Lau WY, Leung TWT, et al. Partition model for estimating radiation doses from
   yttrium-90 microspheres in treating hepatic tumours. Eur J Nucl Med 1996;23:947-52.
.. [Lau1994] Lau WY, Leung WT, Ho S, et al. Br J Cancer 1994;70:994-9 (normal liver tolerance 70 Gy).
.. [Soret2007] Soret M, Bacharach SL, Buvat I. Partial-volume effect in PET tumor imaging. J Nucl Med
   2007;48(6):932-45. doi:10.2967/jnumed.106.035774 (recovery falls for objects under about 2-3 x FWHM).
.. [Cysouw2017] Cysouw MCF, Kramer GM, Schoonmade LJ, et al. Impact of partial-volume correction in
   oncological PET studies: a systematic review and meta-analysis. Eur J Nucl Med Mol Imaging
   2017;44:2105-16. doi:10.1007/s00259-017-3775-4 ("partial-volume effects hamper accurate quantification
   of lesions <2-3x the PET system's spatial resolution").
.. [Ho1997] Ho S, Lau WY, Leung TWT, et al. Clinical evaluation of the partition model for estimating
   radiation doses from yttrium-90 microspheres. Eur J Nucl Med 1997;24:293-8 (lung 30 Gy per
   treatment, 50 Gy cumulative).
.. [Salem2006] Salem R, Thurston KG. Radioembolization with 90yttrium microspheres: a state-of-the-art
   brachytherapy treatment for primary and secondary liver malignancies. Part 1: technical and
   methodologic considerations. J Vasc Interv Radiol 2006;17:1251-78.
   (patient selection: tumour burden over 70% of the liver, or over 50% with albumin under 3 g/dL, carries
   a high risk of liver failure). Not checked against the paper's own sentence: its full text was not
   reachable when the citations were reviewed (issue 14).
.. [Kennedy2007] Kennedy A, Nag S, Salem R, et al. Recommendations for radioembolization of hepatic
   malignancies using yttrium-90 microsphere brachytherapy: a consensus panel report from the
   Radioembolization Brachytherapy Oncology Consortium. Int J Radiat Oncol Biol Phys 2007;68:13-23.
   (excessive tumour burden with limited hepatic reserve a contraindication). Not checked against the
   paper's own sentence either (full text not reachable).
.. [ACR-SIR] The ACR practice parameter for radioembolization of liver malignancies: ACR-SIR Practice
   Parameter for Radioembolization with Microsphere Brachytherapy Device (RMBD) for Treatment of Liver
   Malignancies, revised 2014 (Resolution 17); revised as the ACR-ABS-ACNM-ASTRO-SIR-SNMMI Practice
   Parameter for Selective Internal Radiation Therapy (SIRT) or Radioembolization for Treatment of Liver
   Malignancies, Hong K, Akinwande O, Bodei L, et al., Brachytherapy 2021, doi:10.1016/j.brachy.2021.01.006.
   Contraindication, in these words: "Greater than 70% tumor replacement of liver unless synthetic function
   (prothrombin time and albumin) is maintained" (read in a reproduction of the contraindication list; the
   section of the practice parameter itself was not reachable, so which revision carries it is unchecked).
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

# --- Lu-177 decay (ENSDF): the physical half-life bounds the effective half-life of a PRRT course --------
LU177_HALF_LIFE_H: float = 6.647 * 24.0
"""Lu-177 physical half-life in hours, 6.647 d [ENSDF177]. Used by :mod:`dosimetry.course` only to refuse an
effective half-life longer than the physical one (the dose rate of a Lu-177 PRRT falls with the effective
half-life the user gives)."""

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

Y90_POSITRON_FRACTION: float = 3.186e-5
"""Y-90 internal pair production: positrons per decay (31.86 +- 0.47 ppm) [Selwyn2007]. A PET scanner that
does not apply it reports about 1 / 3.186e-5 = 31,000 times too little activity."""

NUCLIDE_POSITRON_FRACTIONS: dict[str, float] = {
    "Y-90": Y90_POSITRON_FRACTION,
    "F-18": 0.9686,
    "Ga-68": 0.8891,
    "Cu-64": 0.1752,
}
"""Positrons per decay, used only to name the nuclide a scanner's Radionuclide Positron Fraction was set to
(within 5%) [Selwyn2007] (Y-90), [DDEP] (the others)."""

Y90_MEAN_BETA_ENERGY_MEV: float = 0.93290
"""Mean beta energy emitted per decay (MeV): 0.932991 x 0.999885 + 0.185079 x 1.15e-4 [ICRP107]."""

# --- unit conversions (exact, SI) ----------------------------------------------------------------------
JOULE_PER_MEV: float = 1.602176634e-13
"""1 MeV in J (exact since the 2019 SI redefinition) [CODATA2018]."""

# --- local deposition ----------------------------------------------------------------------------------
Y90_LDM_GY_KG_PER_GBQ: float = Y90_MEAN_BETA_ENERGY_MEV * JOULE_PER_MEV * Y90_MEAN_LIFE_S * 1e9
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

LUNG_MASS_DISAGREEMENT_FRACTION: float = 0.20
"""A given lung mass that differs from the lung ROI's CT mass by more than this fraction is warned about
(choice of this package: beyond the uncertainty of a CT lung contour and of the HU -> density curve)."""

LUNG_MASS_PLAUSIBLE_FACTOR: float = 2.0
"""A lung ROI whose CT mass is outside DEFAULT_LUNG_MASS_KG / 2 .. x 2 is warned about: it probably does not
hold both whole lungs (e.g. only the lung bases in the emission field of view), and the lung-shunt
estimate, which spreads the shunted activity over the mass given, is then too high (choice of this
package)."""

# --- partial volume ------------------------------------------------------------------------------------
PARTIAL_VOLUME_MIN_DIAMETER_PER_FWHM: float = 3.0
"""A lesion whose equivalent-sphere diameter is below this multiple of the image resolution (FWHM) is
flagged for partial-volume effect: its recovered activity, and so its mean dose and D-values, are biased
low [Soret2007], [Cysouw2017] (both: under about 2-3 x FWHM; the upper end is used)."""

PARTIAL_VOLUME_MIN_VOLUME_ML: float = 5.0
"""A lesion under this volume (mL; equivalent-sphere diameter 21.2 mm, i.e. 3 x a 7 mm FWHM, a usual
Y-90 PET resolution) is flagged for partial-volume effect whatever the resolution given (choice of this
package, issue 9, from [Soret2007])."""

# --- hepatic tumour burden (issue 14) -----------------------------------------------------------------
TUMOR_BURDEN_CAUTION_PERCENT: float = 50.0
"""Hepatic tumour burden (total tumour volume / liver volume, %) above which radioembolization carries a
high risk of liver failure when hepatic reserve is limited (albumin < 3 g/dL): a relative contraindication
[Salem2006], [Kennedy2007]. The package cannot see the albumin, so it warns and says what to check."""

TUMOR_BURDEN_EXCLUSION_PERCENT: float = 70.0
"""Hepatic tumour burden (%) above which radioembolization is contraindicated unless liver synthetic
function is maintained [Salem2006], [ACR-SIR]."""

# --- dose voxel kernels (issue 4; see dosimetry/dose/kernels.py) -------------------------------------------
MGY_PER_MBQ_S_PER_MEV_PER_G: float = JOULE_PER_MEV * 1e3 * 1e6 * 1e3
"""1 MeV/g per decay expressed in mGy/(MBq s) (= 0.1602177): J/MeV x g/kg x decays per MBq s x mGy/Gy.
Exact [CODATA2018]. (Not 1.602e-4, which gives Gy/(MBq s).)"""

GY_PER_DECAY_PER_MGY_PER_MBQ_S: float = 1e-3 / 1e6
"""A voxel S value in mGy/(MBq s) times a number of decays gives Gy after this factor (exact)."""

DPK_WATER_DENSITY_G_CM3: float = 1.0
"""Density of the water in which the Graves 2019 kernel was computed (g/cm3): its shell masses are
4/3 pi r^3 x 1.0 g/cm3 [Graves2019]; the reference density of the range scaling rho^2 D_w(rho r)."""

Y90_DPK_MAX_RADIUS_WATER_MM: float = 12.0
"""Outer radius of the tabulated Y-90 dose point kernel in water (mm) [Graves2019]; beyond it only the
bremsstrahlung tail (0.32% of the energy) remains. The maximum Y-90 beta range in water is 11 mm."""

Y90_DPK_ENERGY_0_12MM_MEV: float = 0.92991
"""Energy per decay deposited within 12 mm in the published kernel file (MeV), the sum of its shells
[Graves2019]; 0.32% below the ICRP 107 mean beta energy. Checked against the file by the tests."""

Y90_KERNEL_ENERGY_PER_DECAY_MEV: float = Y90_MEAN_BETA_ENERGY_MEV
"""Energy per decay every voxel kernel deposits (MeV): the kernel shells are renormalised from
0.92991 to the ICRP 107 mean beta energy 0.93290 MeV, the LDM energy, so that all dose methods deposit
the same energy and equal LDM in charged-particle equilibrium; the 0.3% bremsstrahlung that would
escape is deposited within the beta range instead (EGSnrc: uniform-water dose 0.23% below LDM)."""

KERNEL_REFERENCE_DENSITY_G_CM3: float = DEFAULT_SOFT_TISSUE_DENSITY_G_ML
"""Density of the homogeneous medium of the ``kernel`` method and the reference density rho_ref of
``kernel-density`` (g/cm3): soft tissue as in [ICRU46] / EANM 2022."""

KERNEL_RANGE_MIN_DENSITY_G_CM3: float = 0.2
"""Lowest density used for range scaling by ``kernel-range`` (g/cm3): lower densities (air, gas, the
outside of the body) are treated as 0.2, which caps the kernel at 12 mm / 0.2 = 60 mm. Inflated lung is
0.26 g/cm3 (ICRU 46); dose reported in air voxels is not meaningful."""

KERNEL_RANGE_MAX_DENSITY_G_CM3: float = 3.0
"""Highest density used for range scaling by ``kernel-range`` (g/cm3); cortical bone is 1.92 (ICRU 46).
Denser voxels (metal, contrast artefacts) get the 3.0 g/cm3 kernel."""

KERNEL_RANGE_COARSE_MAX_DENSITY_G_CM3: float = 0.9
"""``kernel-range`` ray-traces a source on the 2x coarser grid only if its density is below this (g/cm3) and
its reach spans 12 voxels or more (:mod:`dosimetry.dose.coarse_range`): lung (0.26, ICRU 46) and the lung's
partial-volume edge, never soft tissue, liver, tumour or bone (fat, 0.95, is above), whose results stay those
of the image grid at any voxel size."""

MIRD17_Y90_S000_3MM_MGY_PER_MBQ_S: float = 1.61
"""Published Y-90 voxel S value S(0,0,0) for 3 mm voxels in soft tissue, mGy/(MBq s) [MIRD17]."""

MIRD17_Y90_S000_6MM_MGY_PER_MBQ_S: float = 0.346
"""Published Y-90 voxel S value S(0,0,0) for 6 mm voxels in soft tissue, mGy/(MBq s) [MIRD17]."""

# --- radiobiology of the permanent Y-90 implant (issue 5; dosimetry/stats/radiobiology.py) ---------------------
Y90_REPAIR_HALF_TIME_H: float = 2.5
"""Half-time of sublethal-damage repair used in the Y-90 BED (h), tumour and liver [Strigari2010],
[Cremonesi2014]; configurable (``--repair-half-time-h``)."""

ALPHA_BETA_TUMOR_GY: float = 10.0
"""alpha/beta of liver tumours for the BED (Gy) [Cremonesi2014]; configurable."""

ALPHA_BETA_LIVER_GY: float = 2.5
"""alpha/beta of (normal) liver for the BED (Gy) [Strigari2010], [Cremonesi2014]; configurable."""

# --- activity prescription models (issue 5; dosimetry/stats/planning.py) -------------------------------------
DU_BOIS_BSA_COEFFICIENT: float = 0.007184
"""Body surface area (m2) = 0.007184 x weight[kg]^0.425 x height[cm]^0.725 [DuBois1916]."""

DU_BOIS_WEIGHT_EXPONENT: float = 0.425
"""Exponent of weight (kg) in the Du Bois formula [DuBois1916]."""

DU_BOIS_HEIGHT_EXPONENT: float = 0.725
"""Exponent of height (cm) in the Du Bois formula [DuBois1916]."""

RESIN_BSA_OFFSET_M2: float = 0.2
"""BSA method for resin microspheres: A[GBq] = (BSA[m2] - 0.2) + V_tumour / (V_tumour + V_normal liver)
[SirtexIFU]."""

RESIN_LSF_ACTIVITY_REDUCTION: tuple[tuple[float, float], ...] = ((0.10, 1.0), (0.15, 0.8), (0.20, 0.6))
"""(upper lung shunt fraction, activity factor) of the BSA method: LSF < 10% full activity, 10-15% 80%,
15-20% 60%, >= 20% resin treatment not recommended [SirtexIFU]."""

PARTITION_NORMAL_LIVER_LIMIT_GY: float = 70.0
"""Normal-liver dose limit of the partition model's maximum activity (Gy) [Ho1996], [Lau1994]."""

PARTITION_LUNG_LIMIT_GY: float = 30.0
"""Lung dose limit of the partition model's maximum activity (Gy, one treatment) [Ho1996], [Ho1997]."""

LUNG_CUMULATIVE_LIMIT_GY: float = 50.0
"""Cumulative lung dose limit over repeated treatments (Gy) [Ho1997] (attribution unverified against the primary
text, as in the bundled threshold set ``lung-ho1997``; corroborated by secondary sources)."""

SOURCES: dict[str, str] = {
    "Y90_HALF_LIFE_H": "ICRP Publication 107 (2008)",
    "LU177_HALF_LIFE_H": "ENSDF (Kondev, Nucl Data Sheets 2019;159:1), NNDC NuDat 3: 6.647 d",
    "Y90_MEAN_BETA_ENERGY_MEV": "ICRP Publication 107 (2008): 0.932991 MeV x 0.999885 + 0.185079 MeV x 1.15e-4",
    "JOULE_PER_MEV": "SI 2019 / CODATA 2018 (exact)",
    "Y90_LDM_GY_KG_PER_GBQ": "derived: E_mean x (T1/2 / ln 2), ICRP 107 data",
    "Y90_LDM_CONVENTIONAL_GY_KG_PER_GBQ": "Gulec, Mesoloras, Stabin, J Nucl Med 2006;47:1209 (MIRD formula)",
    "DEFAULT_SOFT_TISSUE_DENSITY_G_ML": "ICRU Report 46; MIRD and EANM 2022 SIRT guideline liver density",
    "DEFAULT_LUNG_MASS_KG": "conventional lung mass, Gulec 2006 / EANM 2022",
    "LUNG_MASS_DISAGREEMENT_FRACTION": "choice of this package (warning level, given lung mass against the lung ROI's CT mass)",
    "LUNG_MASS_PLAUSIBLE_FACTOR": "choice of this package (warning level: a lung ROI far from the conventional 1 kg)",
    "PARTIAL_VOLUME_MIN_DIAMETER_PER_FWHM": "Soret, Bacharach, Buvat, J Nucl Med 2007;48:932-45; Cysouw et al., EJNMMI 2017;44:2105-16 (PVE under 2-3 x FWHM)",
    "PARTIAL_VOLUME_MIN_VOLUME_ML": "choice of this package: 5 mL = 21 mm sphere = 3 x 7 mm FWHM (Soret 2007)",
    "TUMOR_BURDEN_CAUTION_PERCENT": "Salem & Thurston, J Vasc Interv Radiol 2006;17:1251-78; Kennedy et al., "
    "Int J Radiat Oncol Biol Phys 2007;68:13-23 (>50% with albumin < 3 g/dL: relative contraindication)",
    "TUMOR_BURDEN_EXCLUSION_PERCENT": "Salem & Thurston, J Vasc Interv Radiol 2006;17:1251-78; ACR-SIR practice "
    "parameter for radioembolization (2014; ACR-ABS-ACNM-ASTRO-SIR-SNMMI revision, Brachytherapy 2021, "
    "doi:10.1016/j.brachy.2021.01.006): 'Greater than 70% tumor replacement of liver unless synthetic function "
    "(prothrombin time and albumin) is maintained'",
    "NUCLIDE_HALF_LIVES_S": "ICRP Publication 107 (2008); for naming a nuclide from a DICOM header only",
    "Y90_POSITRON_FRACTION": "Selwyn et al., Appl Radiat Isot 2007;65:318 (31.86 +- 0.47 ppm)",
    "NUCLIDE_POSITRON_FRACTIONS": "Selwyn 2007 (Y-90); DDEP/LNHB (F-18, Ga-68, Cu-64); for naming a nuclide from a DICOM header only",
    "MGY_PER_MBQ_S_PER_MEV_PER_G": "derived, exact: JOULE_PER_MEV x 1e3 g/kg x 1e6 decays/(MBq s) x 1e3 mGy/Gy",
    "GY_PER_DECAY_PER_MGY_PER_MBQ_S": "unit conversion (exact)",
    "DPK_WATER_DENSITY_G_CM3": "Graves, Flynn, Hyer, Med Phys 2019;46:5284 (shell masses of the kernel file)",
    "Y90_DPK_MAX_RADIUS_WATER_MM": "Graves, Flynn, Hyer, Med Phys 2019;46:5284 (kernels/y90_beta_dpk_water_graves2019_0-12mm.csv)",
    "Y90_DPK_ENERGY_0_12MM_MEV": "derived: sum of the shells of kernels/y90_beta_dpk_water_graves2019_0-12mm.csv (Graves 2019)",
    "Y90_KERNEL_ENERGY_PER_DECAY_MEV": "choice of this package: the ICRP 107 mean beta energy (kernel renormalised by 0.93290/0.92991)",
    "KERNEL_REFERENCE_DENSITY_G_CM3": "ICRU Report 46 soft tissue; EANM 2022 SIRT guideline liver density",
    "KERNEL_RANGE_MIN_DENSITY_G_CM3": "choice of this package (below ICRU 46 inflated lung, 0.26 g/cm3)",
    "KERNEL_RANGE_MAX_DENSITY_G_CM3": "choice of this package (above ICRU 46 cortical bone, 1.92 g/cm3)",
    "KERNEL_RANGE_COARSE_MAX_DENSITY_G_CM3": "choice of this package (between ICRU 46 lung 0.26 and adipose 0.95 g/cm3)",
    "MIRD17_Y90_S000_3MM_MGY_PER_MBQ_S": "Bolch et al., MIRD Pamphlet No. 17, J Nucl Med 1999;40:11S-36S",
    "MIRD17_Y90_S000_6MM_MGY_PER_MBQ_S": "Bolch et al., MIRD Pamphlet No. 17, J Nucl Med 1999;40:11S-36S",
    "HU_TO_DENSITY": "Schneider, Bortfeld, Schlegel, Phys Med Biol 2000;45:459 (kernels/hu_to_density_schneider2000.txt)",
    "Y90_REPAIR_HALF_TIME_H": "Strigari et al., J Nucl Med 2010;51:1377; Cremonesi et al., Front Oncol 2014;4:210",
    "ALPHA_BETA_TUMOR_GY": "Cremonesi et al., Front Oncol 2014;4:210 (Y-90 radioembolization radiobiology)",
    "ALPHA_BETA_LIVER_GY": "Strigari et al., J Nucl Med 2010;51:1377; Cremonesi et al., Front Oncol 2014;4:210",
    "DU_BOIS_BSA_COEFFICIENT": "Du Bois & Du Bois, Arch Intern Med 1916;17:863",
    "DU_BOIS_WEIGHT_EXPONENT": "Du Bois & Du Bois, Arch Intern Med 1916;17:863",
    "DU_BOIS_HEIGHT_EXPONENT": "Du Bois & Du Bois, Arch Intern Med 1916;17:863",
    "RESIN_BSA_OFFSET_M2": "SIR-Spheres Instructions for Use (Sirtex); Kao et al., Ann Nucl Med 2011;25:455",
    "RESIN_LSF_ACTIVITY_REDUCTION": "SIR-Spheres Instructions for Use (Sirtex); Kao et al., Ann Nucl Med 2011;25:455",
    "PARTITION_NORMAL_LIVER_LIMIT_GY": "Ho et al., Eur J Nucl Med 1996;23:947; Lau et al., Br J Cancer 1994;70:994",
    "PARTITION_LUNG_LIMIT_GY": "Ho et al., Eur J Nucl Med 1996;23:947 and 1997;24:293",
    "LUNG_CUMULATIVE_LIMIT_GY": "Ho et al., Eur J Nucl Med 1997;24:293 (unverified against the primary text; "
    "secondary: van Roekel PhD thesis, Utrecht, ch. 2 sec. 4.3)",
}

UNITS: dict[str, str] = {
    "Y90_HALF_LIFE_H": "h",
    "LU177_HALF_LIFE_H": "h",
    "Y90_MEAN_BETA_ENERGY_MEV": "MeV",
    "JOULE_PER_MEV": "J/MeV",
    "Y90_LDM_GY_KG_PER_GBQ": "Gy kg/GBq",
    "Y90_LDM_CONVENTIONAL_GY_KG_PER_GBQ": "Gy kg/GBq",
    "DEFAULT_SOFT_TISSUE_DENSITY_G_ML": "g/mL",
    "DEFAULT_LUNG_MASS_KG": "kg",
    "LUNG_MASS_DISAGREEMENT_FRACTION": "1",
    "LUNG_MASS_PLAUSIBLE_FACTOR": "1",
    "PARTIAL_VOLUME_MIN_DIAMETER_PER_FWHM": "1 (diameter / FWHM)",
    "PARTIAL_VOLUME_MIN_VOLUME_ML": "mL",
    "TUMOR_BURDEN_CAUTION_PERCENT": "% of liver volume",
    "TUMOR_BURDEN_EXCLUSION_PERCENT": "% of liver volume",
    "MGY_PER_MBQ_S_PER_MEV_PER_G": "mGy/(MBq s) per MeV/g",
    "GY_PER_DECAY_PER_MGY_PER_MBQ_S": "Gy per decay per mGy/(MBq s)",
    "DPK_WATER_DENSITY_G_CM3": "g/cm3",
    "Y90_DPK_MAX_RADIUS_WATER_MM": "mm",
    "Y90_DPK_ENERGY_0_12MM_MEV": "MeV",
    "Y90_KERNEL_ENERGY_PER_DECAY_MEV": "MeV",
    "KERNEL_REFERENCE_DENSITY_G_CM3": "g/cm3",
    "KERNEL_RANGE_MIN_DENSITY_G_CM3": "g/cm3",
    "KERNEL_RANGE_MAX_DENSITY_G_CM3": "g/cm3",
    "KERNEL_RANGE_COARSE_MAX_DENSITY_G_CM3": "g/cm3",
    "MIRD17_Y90_S000_3MM_MGY_PER_MBQ_S": "mGy/(MBq s)",
    "MIRD17_Y90_S000_6MM_MGY_PER_MBQ_S": "mGy/(MBq s)",
    "Y90_REPAIR_HALF_TIME_H": "h",
    "ALPHA_BETA_TUMOR_GY": "Gy",
    "ALPHA_BETA_LIVER_GY": "Gy",
    "DU_BOIS_BSA_COEFFICIENT": "m2 kg^-0.425 cm^-0.725",
    "DU_BOIS_WEIGHT_EXPONENT": "1",
    "DU_BOIS_HEIGHT_EXPONENT": "1",
    "RESIN_BSA_OFFSET_M2": "m2 (read as GBq)",
    "RESIN_LSF_ACTIVITY_REDUCTION": "(LSF upper bound, activity factor)",
    "PARTITION_NORMAL_LIVER_LIMIT_GY": "Gy",
    "PARTITION_LUNG_LIMIT_GY": "Gy",
    "LUNG_CUMULATIVE_LIMIT_GY": "Gy",
}


def constants_record() -> dict[str, dict[str, object]]:
    """Every constant with its value, unit and source, as written to ``stats.json``."""
    values = {
        "Y90_HALF_LIFE_H": Y90_HALF_LIFE_H,
        "LU177_HALF_LIFE_H": LU177_HALF_LIFE_H,
        "Y90_MEAN_BETA_ENERGY_MEV": Y90_MEAN_BETA_ENERGY_MEV,
        "JOULE_PER_MEV": JOULE_PER_MEV,
        "Y90_LDM_GY_KG_PER_GBQ": Y90_LDM_GY_KG_PER_GBQ,
        "Y90_LDM_CONVENTIONAL_GY_KG_PER_GBQ": Y90_LDM_CONVENTIONAL_GY_KG_PER_GBQ,
        "DEFAULT_SOFT_TISSUE_DENSITY_G_ML": DEFAULT_SOFT_TISSUE_DENSITY_G_ML,
        "DEFAULT_LUNG_MASS_KG": DEFAULT_LUNG_MASS_KG,
        "LUNG_MASS_DISAGREEMENT_FRACTION": LUNG_MASS_DISAGREEMENT_FRACTION,
        "LUNG_MASS_PLAUSIBLE_FACTOR": LUNG_MASS_PLAUSIBLE_FACTOR,
        "PARTIAL_VOLUME_MIN_DIAMETER_PER_FWHM": PARTIAL_VOLUME_MIN_DIAMETER_PER_FWHM,
        "PARTIAL_VOLUME_MIN_VOLUME_ML": PARTIAL_VOLUME_MIN_VOLUME_ML,
        "TUMOR_BURDEN_CAUTION_PERCENT": TUMOR_BURDEN_CAUTION_PERCENT,
        "TUMOR_BURDEN_EXCLUSION_PERCENT": TUMOR_BURDEN_EXCLUSION_PERCENT,
        "MGY_PER_MBQ_S_PER_MEV_PER_G": MGY_PER_MBQ_S_PER_MEV_PER_G,
        "GY_PER_DECAY_PER_MGY_PER_MBQ_S": GY_PER_DECAY_PER_MGY_PER_MBQ_S,
        "DPK_WATER_DENSITY_G_CM3": DPK_WATER_DENSITY_G_CM3,
        "Y90_DPK_MAX_RADIUS_WATER_MM": Y90_DPK_MAX_RADIUS_WATER_MM,
        "Y90_DPK_ENERGY_0_12MM_MEV": Y90_DPK_ENERGY_0_12MM_MEV,
        "Y90_KERNEL_ENERGY_PER_DECAY_MEV": Y90_KERNEL_ENERGY_PER_DECAY_MEV,
        "KERNEL_REFERENCE_DENSITY_G_CM3": KERNEL_REFERENCE_DENSITY_G_CM3,
        "KERNEL_RANGE_MIN_DENSITY_G_CM3": KERNEL_RANGE_MIN_DENSITY_G_CM3,
        "KERNEL_RANGE_MAX_DENSITY_G_CM3": KERNEL_RANGE_MAX_DENSITY_G_CM3,
        "KERNEL_RANGE_COARSE_MAX_DENSITY_G_CM3": KERNEL_RANGE_COARSE_MAX_DENSITY_G_CM3,
        "MIRD17_Y90_S000_3MM_MGY_PER_MBQ_S": MIRD17_Y90_S000_3MM_MGY_PER_MBQ_S,
        "MIRD17_Y90_S000_6MM_MGY_PER_MBQ_S": MIRD17_Y90_S000_6MM_MGY_PER_MBQ_S,
        "Y90_REPAIR_HALF_TIME_H": Y90_REPAIR_HALF_TIME_H,
        "ALPHA_BETA_TUMOR_GY": ALPHA_BETA_TUMOR_GY,
        "ALPHA_BETA_LIVER_GY": ALPHA_BETA_LIVER_GY,
        "DU_BOIS_BSA_COEFFICIENT": DU_BOIS_BSA_COEFFICIENT,
        "DU_BOIS_WEIGHT_EXPONENT": DU_BOIS_WEIGHT_EXPONENT,
        "DU_BOIS_HEIGHT_EXPONENT": DU_BOIS_HEIGHT_EXPONENT,
        "RESIN_BSA_OFFSET_M2": RESIN_BSA_OFFSET_M2,
        "RESIN_LSF_ACTIVITY_REDUCTION": [list(pair) for pair in RESIN_LSF_ACTIVITY_REDUCTION],
        "PARTITION_NORMAL_LIVER_LIMIT_GY": PARTITION_NORMAL_LIVER_LIMIT_GY,
        "PARTITION_LUNG_LIMIT_GY": PARTITION_LUNG_LIMIT_GY,
        "LUNG_CUMULATIVE_LIMIT_GY": LUNG_CUMULATIVE_LIMIT_GY,
    }
    return {name: {"value": value, "unit": UNITS[name], "source": SOURCES[name]} for name, value in values.items()}
