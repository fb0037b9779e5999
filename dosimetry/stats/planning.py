"""Activity prescription models of Y-90 radioembolization, and the doses they predict beside the voxel doses.

Post-treatment dosimetry answers "what was delivered"; the models below are what was (or could have been)
used to choose the activity. Given the administered activity, the lung shunt fraction (LSF), the T:N
ratio and the masses of the result's ROIs, each model's prediction is reported next to the delivered
(voxel) dose, so a user sees predicted against delivered.

All three models use the conventional constant 49.67 Gy kg/GBq (full local absorption of Y-90,
:data:`~dosimetry.constants.Y90_LDM_CONVENTIONAL_GY_KG_PER_GBQ`) because they are reproduced as published.
Masses are the ROI masses of the result (CT density where there is a CT; see ``stats['density_source']``).

MIRD single compartment [Gulec2006]_ (glass, TheraSphere)
    ``D_target = 49.67 A (1 - R) (1 - LSF) / M_target``; prescription ``A = D M / (49.67 (1 - LSF))``.
    Target = the perfused ROI(s) when given, else the whole liver (tumours included).
BSA method [SirtexIFU]_ (resin, SIR-Spheres)
    ``A[GBq] = (BSA - 0.2) + V_T / (V_T + V_N)``, BSA by Du Bois ``0.007184 W^0.425 H^0.725`` [DuBois1916]_,
    times the perfused fraction of the liver volume for a partial-liver treatment, times the LSF
    reduction factor (1, 0.8, 0.6 below 10, 15, 20 %; not recommended above). It needs the patient's
    height and weight: they are never guessed, and without them the model is "not computable".
Partition model [Ho1996]_
    Tumour (T), normal liver (N) and lung (L) compartments: ``A_L = A (1 - R) LSF``,
    ``A_N = A (1 - R)(1 - LSF) M_N / (TN M_T + M_N)``, ``A_T = ... TN M_T / (TN M_T + M_N)``, each
    ``D = 49.67 A_x / M_x`` (so ``D_T = TN D_N``). The maximum activity keeps ``D_N`` and ``D_L`` within
    the limits (70 Gy and 30 Gy by default, [Ho1996]_, [Lau1994]_). T:N is the pre-treatment (e.g.
    Tc-99m MAA) value when given, otherwise the post-treatment activity-concentration ratio of the result,
    which says so.

References
----------
.. [Gulec2006] Gulec SA, Mesoloras G, Stabin M. Dosimetric techniques in 90Y-microsphere therapy of liver
   cancer: the MIRD equations for dose calculations. J Nucl Med 2006;47:1209-11.
.. [SirtexIFU] SIR-Spheres microspheres Instructions for Use, Sirtex Medical; Kao YH, Tan EH, Ng CE, Goh
   SW. Clinical implications of the body surface area method versus partition model dosimetry for
   yttrium-90 radioembolization using resin microspheres. Ann Nucl Med 2011;25:455-61.
.. [DuBois1916] Du Bois D, Du Bois EF. Arch Intern Med 1916;17:863-71.
.. [Ho1996] Ho S, Lau WY, Leung TWT, et al. Partition model for estimating radiation doses from
   yttrium-90 microspheres in treating hepatic tumours. Eur J Nucl Med 1996;23:947-52.
.. [Lau1994] Lau WY, Leung WT, Ho S, et al. Treatment of inoperable hepatocellular carcinoma with
   intrahepatic arterial yttrium-90 microspheres. Br J Cancer 1994;70:994-9.
"""

from __future__ import annotations

import math

from dosimetry.constants import (
    DEFAULT_LUNG_MASS_KG,
    DU_BOIS_BSA_COEFFICIENT,
    DU_BOIS_HEIGHT_EXPONENT,
    DU_BOIS_WEIGHT_EXPONENT,
    PARTITION_LUNG_LIMIT_GY,
    PARTITION_NORMAL_LIVER_LIMIT_GY,
    RESIN_BSA_OFFSET_M2,
    RESIN_LSF_ACTIVITY_REDUCTION,
    Y90_LDM_CONVENTIONAL_GY_KG_PER_GBQ,
)
from dosimetry.errors import OptionsError

__all__ = [
    "bsa_du_bois_m2",
    "bsa_activity_gbq",
    "resin_lsf_factor",
    "mird_dose_gy",
    "mird_activity_gbq",
    "partition_doses_gy",
    "partition_max_activity_gbq",
    "planning_section",
]

K_GY_KG_PER_GBQ = Y90_LDM_CONVENTIONAL_GY_KG_PER_GBQ


def _positive(value: float, name: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise OptionsError(f"{name} must be a positive number, got {value}")
    return value


def _fraction(value: float, name: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        raise OptionsError(f"{name} must be a fraction in [0, 1), got {value}")
    return value


def bsa_du_bois_m2(height_cm: float, weight_kg: float) -> float:
    """Body surface area (m2) by Du Bois: ``0.007184 W[kg]^0.425 H[cm]^0.725`` [DuBois1916]_.

    >>> round(bsa_du_bois_m2(175.0, 75.0), 3)
    1.903
    """
    height_cm = _positive(height_cm, "height (cm)")
    weight_kg = _positive(weight_kg, "weight (kg)")
    return DU_BOIS_BSA_COEFFICIENT * weight_kg**DU_BOIS_WEIGHT_EXPONENT * height_cm**DU_BOIS_HEIGHT_EXPONENT


def resin_lsf_factor(lung_shunt_fraction: float) -> float | None:
    """Activity factor of the BSA method for a lung shunt fraction; None when resin is not recommended."""
    lsf = _fraction(lung_shunt_fraction, "lung shunt fraction")
    for upper, factor in RESIN_LSF_ACTIVITY_REDUCTION:
        if lsf < upper:
            return factor
    return None


def bsa_activity_gbq(
    bsa_m2: float, tumour_volume_ml: float, normal_liver_volume_ml: float, *, perfused_fraction: float = 1.0
) -> float:
    """BSA-method activity before any lung-shunt reduction (GBq) [SirtexIFU]_.

    ``A = ((BSA - 0.2) + V_T / (V_T + V_N)) x perfused_fraction``.

    >>> round(bsa_activity_gbq(1.9, 100.0, 1400.0), 4)
    1.7667
    """
    bsa_m2 = _positive(bsa_m2, "BSA (m2)")
    total = tumour_volume_ml + normal_liver_volume_ml
    if not total > 0 or tumour_volume_ml < 0 or normal_liver_volume_ml < 0:
        raise OptionsError(
            f"liver volumes must be >= 0 with a positive sum, got T={tumour_volume_ml} N={normal_liver_volume_ml} mL"
        )
    if not 0 < perfused_fraction <= 1:
        raise OptionsError(f"perfused fraction must be in (0, 1], got {perfused_fraction}")
    return ((bsa_m2 - RESIN_BSA_OFFSET_M2) + tumour_volume_ml / total) * perfused_fraction


def mird_dose_gy(
    activity_gbq: float, target_mass_kg: float, *, lung_shunt_fraction: float = 0.0, residual_fraction: float = 0.0
) -> float:
    """Mean target dose of the MIRD single-compartment model (Gy) [Gulec2006]_.

    ``D = 49.67 A (1 - R)(1 - LSF) / M``.

    >>> round(mird_dose_gy(2.0, 1.5, lung_shunt_fraction=0.1), 2)
    59.6
    """
    activity_gbq = _positive(activity_gbq, "activity (GBq)")
    target_mass_kg = _positive(target_mass_kg, "target mass (kg)")
    lsf = _fraction(lung_shunt_fraction, "lung shunt fraction")
    r = _fraction(residual_fraction, "residual fraction")
    return K_GY_KG_PER_GBQ * activity_gbq * (1 - r) * (1 - lsf) / target_mass_kg


def mird_activity_gbq(target_dose_gy: float, target_mass_kg: float, *, lung_shunt_fraction: float = 0.0) -> float:
    """Activity prescribed by the MIRD single-compartment model (GBq): ``D M / (49.67 (1 - LSF))``."""
    target_dose_gy = _positive(target_dose_gy, "target dose (Gy)")
    target_mass_kg = _positive(target_mass_kg, "target mass (kg)")
    lsf = _fraction(lung_shunt_fraction, "lung shunt fraction")
    return target_dose_gy * target_mass_kg / (K_GY_KG_PER_GBQ * (1 - lsf))


def partition_doses_gy(
    activity_gbq: float,
    *,
    lung_shunt_fraction: float,
    tn_ratio: float,
    tumour_mass_kg: float,
    normal_mass_kg: float,
    lung_mass_kg: float,
    residual_fraction: float = 0.0,
) -> dict[str, float]:
    """Tumour, normal-liver and lung doses of the partition model (Gy) [Ho1996]_.

    Returns
    -------
    dict
        ``tumor_gy``, ``normal_liver_gy``, ``lung_gy`` and the compartment activities
        ``tumor_gbq``, ``normal_liver_gbq``, ``lung_gbq``.

    Examples
    --------
    >>> d = partition_doses_gy(2.0, lung_shunt_fraction=0.1, tn_ratio=4.0, tumour_mass_kg=0.1,
    ...                        normal_mass_kg=1.4, lung_mass_kg=1.0)
    >>> round(d["normal_liver_gy"], 2), round(d["tumor_gy"] / d["normal_liver_gy"], 6)
    (49.67, 4.0)
    """
    activity_gbq = _positive(activity_gbq, "activity (GBq)")
    lsf = _fraction(lung_shunt_fraction, "lung shunt fraction")
    r = _fraction(residual_fraction, "residual fraction")
    tn = _positive(tn_ratio, "T:N ratio")
    mt = _positive(tumour_mass_kg, "tumour mass (kg)")
    mn = _positive(normal_mass_kg, "normal liver mass (kg)")
    ml = _positive(lung_mass_kg, "lung mass (kg)")
    delivered = activity_gbq * (1 - r)
    liver = delivered * (1 - lsf)
    a_n = liver * mn / (tn * mt + mn)
    a_t = liver - a_n
    a_l = delivered * lsf
    return {
        "tumor_gy": K_GY_KG_PER_GBQ * a_t / mt,
        "normal_liver_gy": K_GY_KG_PER_GBQ * a_n / mn,
        "lung_gy": K_GY_KG_PER_GBQ * a_l / ml,
        "tumor_gbq": a_t,
        "normal_liver_gbq": a_n,
        "lung_gbq": a_l,
    }


def partition_max_activity_gbq(
    *,
    lung_shunt_fraction: float,
    tn_ratio: float,
    tumour_mass_kg: float,
    normal_mass_kg: float,
    lung_mass_kg: float,
    normal_liver_limit_gy: float = PARTITION_NORMAL_LIVER_LIMIT_GY,
    lung_limit_gy: float = PARTITION_LUNG_LIMIT_GY,
) -> tuple[float, str]:
    """Largest activity (GBq) that keeps normal liver and lung within their limits, and which limit binds."""
    lsf = _fraction(lung_shunt_fraction, "lung shunt fraction")
    per_gbq = partition_doses_gy(
        1.0,
        lung_shunt_fraction=lsf,
        tn_ratio=tn_ratio,
        tumour_mass_kg=tumour_mass_kg,
        normal_mass_kg=normal_mass_kg,
        lung_mass_kg=lung_mass_kg,
    )
    by_normal = normal_liver_limit_gy / per_gbq["normal_liver_gy"]
    by_lung = lung_limit_gy / per_gbq["lung_gy"] if per_gbq["lung_gy"] > 0 else math.inf
    return (by_normal, "normal liver") if by_normal <= by_lung else (by_lung, "lung")


# --- the stats.json section --------------------------------------------------------------------------


def _by_name(stats: dict) -> dict[str, dict]:
    return {e["name"]: e for e in stats["rois"]}


def _ratio(predicted, delivered):
    return predicted / delivered if predicted is not None and delivered else None


def planning_section(
    stats: dict,
    *,
    height_cm: float | None = None,
    weight_kg: float | None = None,
    planning_tn_ratio: float | None = None,
    mird_target_gy: float | None = None,
    normal_liver_limit_gy: float = PARTITION_NORMAL_LIVER_LIMIT_GY,
    lung_limit_gy: float = PARTITION_LUNG_LIMIT_GY,
    lung_shunt: dict | None = None,
) -> dict:
    """The ``planning`` section of ``stats.json``: the three models and predicted-vs-delivered rows.

    Parameters
    ----------
    stats : dict
        The statistics of a run (``rois``, ``tumor_to_normal``, ``lung``, ``inputs['options']``).
    height_cm, weight_kg : float, optional
        The patient's height and weight, for the BSA method; None = not given (BSA not computable).
    planning_tn_ratio : float, optional
        Pre-treatment T:N (e.g. Tc-99m MAA); None = use the measured post-treatment activity ratio.
    mird_target_gy : float, optional
        Target dose for the MIRD prescription; None = no prescribed activity, only the predicted dose.
    normal_liver_limit_gy, lung_limit_gy : float
        Limits of the partition model's maximum activity.
    lung_shunt : dict, optional
        The run's :func:`~dosimetry.stats.lung_shunt.lung_shunt_section` record: the models use the LSF it
        uses (the typed value, else the image value of a predictive run: the MAA lung and liver counts).
        None: the typed value only.
    """
    opts = stats["inputs"]["options"]
    a_admin = opts.get("administered_activity_gbq")
    residual = opts.get("residual_fraction") or 0.0
    lsf = opts.get("lung_shunt_fraction")
    lsf_source = "typed (--lung-shunt)" if lsf is not None else None
    if lung_shunt is not None and lung_shunt.get("lung_shunt_fraction") is not None:
        lsf, lsf_source = lung_shunt["lung_shunt_fraction"], lung_shunt.get("used")
    rois = _by_name(stats)
    notes: list[str] = []

    def first(*names):
        return next((rois[n] for n in names if n in rois), None)

    livers = [e for e in stats["rois"] if e["role"] == "liver" and "derived" not in e]
    perfused = [e for e in stats["rois"] if e["role"] == "perfused" and "derived" not in e]
    tumours = first("tumors_all") or next((e for e in stats["rois"] if e["role"] == "tumor"), None)
    normal = first("perfused_normal_liver", "normal_liver")
    lung_record = stats.get("lung") or {}
    lung_mass_kg, lung_mass_source = lung_record.get("lung_mass_kg"), lung_record.get("lung_mass_source")
    if lung_mass_kg is None:  # statistics without the pipeline's lung record
        lung_mass_kg, lung_mass_source = opts.get("lung_mass_kg"), "given"
    if lung_mass_kg is None:
        lung_mass_kg, lung_mass_source = DEFAULT_LUNG_MASS_KG, f"default {DEFAULT_LUNG_MASS_KG:g} kg (conventional)"

    # target of the single-compartment model
    if perfused:
        target_name = perfused[0]["name"] if len(perfused) == 1 else "+".join(e["name"] for e in perfused)
        target_mass_g = sum(e["mass_g"] for e in perfused)
        target_delivered = sum(e["mean_gy"] * e["mass_g"] for e in perfused) / target_mass_g
    elif livers:
        target_name = livers[0]["name"] if len(livers) == 1 else "+".join(e["name"] for e in livers)
        target_mass_g = sum(e["mass_g"] for e in livers)
        target_delivered = sum(e["mean_gy"] * e["mass_g"] for e in livers) / target_mass_g
    else:
        target_name, target_mass_g, target_delivered = None, None, None

    missing = [
        label for label, value in (("administered activity", a_admin), ("lung shunt fraction", lsf)) if value is None
    ]

    # --- MIRD single compartment
    mird = {
        "model": "mird",
        "title": "MIRD single compartment (glass)",
        "source": "Gulec et al., J Nucl Med 2006;47:1209 (TheraSphere)",
        "formula": "D = 49.67 A (1 - R)(1 - LSF) / M_target; A = D M / (49.67 (1 - LSF))",
        "target_roi": target_name,
        "target_mass_kg": target_mass_g / 1000 if target_mass_g else None,
        "target_dose_gy": mird_target_gy,
        "prescribed_activity_gbq": None,
        "predicted_target_gy": None,
        "delivered_target_gy": target_delivered,
    }
    if target_mass_g is None:
        mird["status"] = "not computable: no liver or perfused ROI"
    elif missing:
        mird["status"] = f"not computable: {' and '.join(missing)} not given"
    else:
        mird["status"] = "computed"
        mird["predicted_target_gy"] = mird_dose_gy(
            a_admin, target_mass_g / 1000, lung_shunt_fraction=lsf, residual_fraction=residual
        )
    if mird_target_gy is not None and target_mass_g and lsf is not None:
        mird["prescribed_activity_gbq"] = mird_activity_gbq(
            mird_target_gy, target_mass_g / 1000, lung_shunt_fraction=lsf
        )

    # --- T:N for the partition model (and the BSA doses)
    if planning_tn_ratio is not None:
        tn, tn_source = planning_tn_ratio, "given (pre-treatment)"
    else:
        tn = stats.get("tumor_to_normal", {}).get("activity_ratio")
        tn_source = "measured on the post-treatment image (no pre-treatment T:N given)" if tn else None

    # --- BSA (resin)
    bsa = {
        "model": "bsa",
        "title": "Body surface area (resin)",
        "source": "SIR-Spheres IFU (Sirtex); Du Bois 1916; Kao et al., Ann Nucl Med 2011;25:455",
        "formula": "A = ((BSA - 0.2) + V_T / (V_T + V_N)) x "
        "perfused fraction x LSF factor; BSA = 0.007184 W^0.425 H^0.725",
        "height_cm": height_cm,
        "weight_kg": weight_kg,
        "bsa_m2": None,
        "perfused_fraction": None,
        "lsf_factor": None,
        "prescribed_activity_gbq": None,
        "administered_over_prescribed": None,
        "predicted_at_prescribed": None,
    }
    tumour_v = tumours["volume_ml"] if tumours else 0.0
    normal_all = rois.get("normal_liver")
    if height_cm is None or weight_kg is None:
        bsa["status"] = "not computable: patient height and weight not given (--height-cm, --weight-kg)"
    elif normal_all is None:
        bsa["status"] = "not computable: no normal liver (liver ROI) to give V_T / (V_T + V_N)"
    else:
        bsa["bsa_m2"] = bsa_du_bois_m2(height_cm, weight_kg)
        liver_v = sum(e["volume_ml"] for e in livers)
        fraction = 1.0
        if perfused and liver_v > 0:
            fraction = min(1.0, sum(e["volume_ml"] for e in perfused) / liver_v)
        bsa["perfused_fraction"] = fraction
        base = bsa_activity_gbq(bsa["bsa_m2"], tumour_v, normal_all["volume_ml"], perfused_fraction=fraction)
        factor = 1.0 if lsf is None else resin_lsf_factor(lsf)
        if lsf is None:
            notes.append("BSA method: lung shunt fraction not given, no lung-shunt reduction applied")
        bsa["lsf_factor"] = factor
        if factor is None:
            bsa["status"] = "not recommended: lung shunt fraction >= 20 % (SIR-Spheres IFU)"
        else:
            bsa["status"] = "computed"
            bsa["prescribed_activity_gbq"] = base * factor
            if a_admin is not None:
                bsa["administered_over_prescribed"] = a_admin / bsa["prescribed_activity_gbq"]
            if tn and tumours and normal and lsf is not None:
                bsa["predicted_at_prescribed"] = partition_doses_gy(
                    bsa["prescribed_activity_gbq"],
                    lung_shunt_fraction=lsf,
                    tn_ratio=tn,
                    tumour_mass_kg=tumours["mass_g"] / 1000,
                    normal_mass_kg=normal["mass_g"] / 1000,
                    lung_mass_kg=lung_mass_kg,
                )

    # --- partition
    part = {
        "model": "partition",
        "title": "Partition model",
        "source": "Ho et al., Eur J Nucl Med 1996;23:947",
        "formula": "A_L = A(1-R) LSF; A_N = A(1-R)(1-LSF) M_N/(TN M_T + M_N); A_T = rest; D_x = 49.67 A_x / M_x",
        "tn_ratio": tn,
        "tn_source": tn_source,
        "tumor_roi": tumours["name"] if tumours else None,
        "normal_liver_roi": normal["name"] if normal else None,
        "tumor_mass_kg": tumours["mass_g"] / 1000 if tumours else None,
        "normal_liver_mass_kg": normal["mass_g"] / 1000 if normal else None,
        "lung_mass_kg": lung_mass_kg,
        "lung_mass_source": lung_mass_source,
        "normal_liver_limit_gy": normal_liver_limit_gy,
        "lung_limit_gy": lung_limit_gy,
        "predicted": None,
        "max_activity_gbq": None,
        "limited_by": None,
    }
    if not tumours or not normal:
        part["status"] = "not computable: needs tumour and liver ROIs"
    elif not tn:
        part["status"] = "not computable: no T:N ratio (give --planning-tn)"
    elif missing:
        part["status"] = f"not computable: {' and '.join(missing)} not given"
    else:
        part["status"] = "computed"
        part["predicted"] = partition_doses_gy(
            a_admin,
            lung_shunt_fraction=lsf,
            tn_ratio=tn,
            tumour_mass_kg=part["tumor_mass_kg"],
            normal_mass_kg=part["normal_liver_mass_kg"],
            lung_mass_kg=lung_mass_kg,
            residual_fraction=residual,
        )
        part["max_activity_gbq"], part["limited_by"] = partition_max_activity_gbq(
            lung_shunt_fraction=lsf,
            tn_ratio=tn,
            tumour_mass_kg=part["tumor_mass_kg"],
            normal_mass_kg=part["normal_liver_mass_kg"],
            lung_mass_kg=lung_mass_kg,
            normal_liver_limit_gy=normal_liver_limit_gy,
            lung_limit_gy=lung_limit_gy,
        )
        if lung_mass_source.startswith("default"):
            notes.append("partition model: lung mass not given, conventional 1 kg used")
        elif lung_mass_source != "given":
            notes.append(f"partition model: lung mass {lung_mass_kg:.3f} kg, {lung_mass_source}")

    # --- predicted against delivered
    lung = stats.get("lung", {})
    comparison = []
    if mird["predicted_target_gy"] is not None:
        comparison.append(
            {
                "model": "mird",
                "quantity": f"mean dose, {target_name}",
                "roi": target_name,
                "predicted_gy": mird["predicted_target_gy"],
                "delivered_gy": target_delivered,
                "predicted_over_delivered": _ratio(mird["predicted_target_gy"], target_delivered),
            }
        )
    if part["predicted"] is not None:
        for key, roi, delivered in (
            ("tumor_gy", part["tumor_roi"], rois[part["tumor_roi"]]["mean_gy"]),
            ("normal_liver_gy", part["normal_liver_roi"], rois[part["normal_liver_roi"]]["mean_gy"]),
            ("lung_gy", lung.get("roi"), lung.get("mean_gy")),
        ):
            comparison.append(
                {
                    "model": "partition",
                    "quantity": f"mean dose, {key[:-3].replace('_', ' ')}",
                    "roi": roi,
                    "predicted_gy": part["predicted"][key],
                    "delivered_gy": delivered,
                    "predicted_over_delivered": _ratio(part["predicted"][key], delivered),
                }
            )
    return {
        "inputs": {
            "administered_activity_gbq": a_admin,
            "residual_fraction": opts.get("residual_fraction"),
            "lung_shunt_fraction": lsf,
            "lung_shunt_source": lsf_source,
            "height_cm": height_cm,
            "weight_kg": weight_kg,
            "planning_tn_ratio": planning_tn_ratio,
            "mird_target_gy": mird_target_gy,
        },
        "constant_gy_kg_per_gbq": K_GY_KG_PER_GBQ,
        "models": {"mird": mird, "bsa": bsa, "partition": part},
        "comparison": comparison,
        "notes": notes,
    }
