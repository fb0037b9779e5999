"""The options of the clinical sections (radiobiology, planning models, threshold flags) on the command line.

:func:`add_clinical_arguments` adds them to the ``run`` parser without importing numpy (the parser is
built for ``--help`` too); :func:`clinical_options_from_args` turns them into the API's
:class:`~dosimetry.stats.clinical.ClinicalOptions`. Numeric options in :mod:`dosimetry.option_ranges` get their
range-checked type from :func:`dosimetry.cli.common.range_checked`.
"""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING

from dosimetry.constants import ALPHA_BETA_LIVER_GY, ALPHA_BETA_TUMOR_GY, Y90_REPAIR_HALF_TIME_H
from dosimetry.stats.thresholds import DEVICES, INDICATIONS

if TYPE_CHECKING:
    from dosimetry.stats.clinical import ClinicalOptions


def _number(kind: str, check, message: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (math.isfinite(value) and check(value)):
            raise argparse.ArgumentTypeError(f"expected {message}, got {value}")
        return value

    parse.__name__ = kind
    return parse


_pos = _number("positive", lambda v: v > 0, "a positive number")
_nonneg = _number("non_negative", lambda v: v >= 0, "a number >= 0")


def _target(text: str) -> tuple[str, float]:
    """ROI=GY, e.g. 'Right lobe=120'."""
    name, sep, dose = text.rpartition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected ROI=GY (e.g. 'Liver=120'), got {text!r}")
    return name.strip(), _pos(dose.strip())


_target.__name__ = "ROI=GY"


def add_clinical_arguments(parser) -> None:
    """Add the clinical options (radiobiology, planning, thresholds) to an argparse parser, in a group."""
    group = parser.add_argument_group("radiobiology, planning models and threshold flags")
    group.add_argument(
        "--alpha-beta-tumor-gy",
        type=_pos,
        default=ALPHA_BETA_TUMOR_GY,
        metavar="GY",
        help=f"alpha/beta of tumours for BED (default {ALPHA_BETA_TUMOR_GY} Gy, Cremonesi 2014)",
    )
    group.add_argument(
        "--alpha-beta-liver-gy",
        type=_pos,
        default=ALPHA_BETA_LIVER_GY,
        metavar="GY",
        help=f"alpha/beta of liver for BED (default {ALPHA_BETA_LIVER_GY} Gy, Strigari 2010)",
    )
    group.add_argument(
        "--alpha-beta-lung-gy", type=_pos, metavar="GY", help="alpha/beta of lung (default: no lung BED)"
    )
    group.add_argument(
        "--alpha-beta-other-gy", type=_pos, metavar="GY", help="alpha/beta of 'other' ROIs (default: no BED)"
    )
    group.add_argument(
        "--repair-half-time-h",
        type=_pos,
        default=Y90_REPAIR_HALF_TIME_H,
        metavar="H",
        help=f"repair half-time for BED (default {Y90_REPAIR_HALF_TIME_H} h)",
    )
    group.add_argument(
        "--eud-alpha-per-gy",
        type=_pos,
        metavar="ALPHA",
        help="radiosensitivity alpha (1/Gy) for the EUD (default: no EUD; no consensus value)",
    )
    group.add_argument(
        "--indication",
        choices=INDICATIONS,
        help="the patient's disease: hcc, crc (colorectal metastases), net (neuroendocrine "
        "metastases) or other; needed for threshold flags (selects the sets)",
    )
    group.add_argument(
        "--threshold-set",
        action="append",
        dest="threshold_sets",
        metavar="NAME|FILE.toml",
        help="threshold set to evaluate (repeat); default: the bundled sets for --indication and --device",
    )
    group.add_argument("--device", choices=DEVICES, help="microsphere type (selects threshold sets)")
    group.add_argument(
        "--resolution-mm",
        type=_pos,
        metavar="FWHM",
        help="resolution (FWHM, mm) of the emission image, for the partial-volume check of "
        "lesions (default: the largest voxel spacing, a lower bound)",
    )
    group.add_argument(
        "--recovery-curve",
        metavar="FILE.csv",
        help="recovery curve measured on a NEMA/IEC sphere phantom (columns volume_ml,recovery_coefficient): each "
        "lesion also gets mean_gy_pvc = mean_gy / RC(volume), beside mean_gy; 'darienzo2017-endpoints' is a "
        "published example (two spheres), not a calibration: measure your own",
    )
    group.add_argument("--height-cm", type=_pos, metavar="CM", help="patient height, for the BSA method")
    group.add_argument("--weight-kg", type=_pos, metavar="KG", help="patient weight, for the BSA method")
    group.add_argument(
        "--planning-tn",
        type=_pos,
        metavar="RATIO",
        help="pre-treatment T:N (e.g. MAA) for the partition model (default: the measured ratio)",
    )
    group.add_argument(
        "--mird-target-gy", type=_pos, metavar="GY", help="target dose for the MIRD single-compartment prescription"
    )
    group.add_argument(
        "--target",
        type=_target,
        action="append",
        dest="targets",
        metavar="ROI=GY",
        help="predictive (Tc-99m MAA) runs: the Y-90 activity that gives ROI this dose, from the predictive dose "
        "map, checked against the lung limits; repeat for several perfused volumes (non-overlapping, inside the "
        "liver; one activity each)",
    )
    group.add_argument(
        "--target-metric",
        choices=("mean", "d70"),
        default="mean",
        help="what --target sets: the ROI's mean dose (default) or its D70",
    )
    group.add_argument(
        "--previous-lung-dose-gy",
        type=_nonneg,
        metavar="GY",
        help="lung dose of earlier treatments, for the cumulative lung limit",
    )


def clinical_options_from_args(args: argparse.Namespace) -> ClinicalOptions:
    """The :class:`ClinicalOptions` of parsed command-line arguments (see :func:`add_clinical_arguments`)."""
    from dosimetry.stats.clinical import ClinicalOptions

    return ClinicalOptions(
        alpha_beta_tumor_gy=args.alpha_beta_tumor_gy,
        alpha_beta_liver_gy=args.alpha_beta_liver_gy,
        alpha_beta_lung_gy=args.alpha_beta_lung_gy,
        alpha_beta_other_gy=args.alpha_beta_other_gy,
        repair_half_time_h=args.repair_half_time_h,
        eud_alpha_per_gy=args.eud_alpha_per_gy,
        threshold_sets=tuple(args.threshold_sets) if args.threshold_sets else None,
        device=args.device,
        indication=args.indication,
        resolution_mm=args.resolution_mm,
        height_cm=args.height_cm,
        weight_kg=args.weight_kg,
        planning_tn_ratio=args.planning_tn,
        mird_target_gy=args.mird_target_gy,
        previous_lung_dose_gy=args.previous_lung_dose_gy,
        recovery_curve=args.recovery_curve,
        targets=tuple(args.targets) if args.targets else None,
        target_metric=args.target_metric,
    )


__all__ = ["add_clinical_arguments", "clinical_options_from_args"]
