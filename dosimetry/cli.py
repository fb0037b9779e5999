"""The ``dosimetry`` command: a thin layer that turns options into a call of the Python API.

Exit codes are listed in :data:`dosimetry.errors.EXIT_CODES` (and README.md). Expected faults print one
line, ``error: ...``, and no traceback; only bugs print a traceback (exit code 1).
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime
from pathlib import Path

from ._version import __version__
from .accumulate_cli import add_accumulate_parser, cmd_accumulate
from .clinical import add_clinical_arguments, clinical_options_from_args
from .dose import METHODS
from .errors import EXIT_CODES, DosimetryError, OptionsError
from .output_guard import OVERWRITE_HELP, check_cli_output, run_input_paths
from .quantify import UNITS

log = logging.getLogger("dosimetry")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {value} (a percentage? divide by 100)")
    return value


def _number(minimum: float, *, inclusive: bool):
    """An argparse type for a float above ``minimum`` (or at least it, when ``inclusive``)."""
    words = f">= {minimum:g}" if inclusive else f"> {minimum:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (value >= minimum if inclusive else value > minimum):
            raise argparse.ArgumentTypeError(f"expected a number {words}, got {value}")
        return value

    return parse


_positive = _number(0.0, inclusive=False)
_non_negative = _number(0.0, inclusive=True)


def _datetime(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 date-time like 2026-03-01T10:30, got {text!r}") from None


def _key_value(text: str) -> tuple[str, str]:
    name, sep, role = text.rpartition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=ROLE, got {text!r}")
    return name, role


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dosimetry", description="Voxel dosimetry of Y-90 radioembolization (SIRT/TARE).",
        epilog="Exit codes: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()))
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v for progress, -vv for debugging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="compute dose maps and ROI statistics of one study",
                         description="Compute the absorbed dose of one study (a DICOM folder, or image files "
                                     "given with --activity) and write the results into --out.")
    inp = run.add_argument_group("inputs")
    inp.add_argument("study", nargs="?", metavar="STUDY_DIR",
                     help="folder of DICOM files (PET or SPECT, CT, RTSTRUCT/SEG), searched recursively")
    inp.add_argument("--activity", metavar="IMG",
                     help="instead of STUDY_DIR: activity image (NIfTI/NRRD/MHA), Bq/mL at scan time unless "
                          "--activity-units says otherwise")
    inp.add_argument("--series", action="append", default=[], metavar="UID",
                     help="with STUDY_DIR: the Series Instance UID to use where the choice is ambiguous (repeatable)")
    inp.add_argument("--spect-cps-per-mbq", type=_positive, metavar="CF",
                     help="with STUDY_DIR: SPECT calibration factor (counts per second per MBq) for absolute calibration")
    inp.add_argument("--activity-units", choices=UNITS, help="units of the activity image (default: Bq/mL, stated "
                                                             "as assumed in the output)")
    inp.add_argument("--ct", metavar="IMG", help="CT in HU on any grid, for voxel densities (Schneider 2000)")
    inp.add_argument("--roi", action="append", default=[], metavar="ROLE[:NAME]=PATH",
                     help="an ROI mask; ROLE is liver, tumor, lung, perfused or other (repeat for each ROI)")
    inp.add_argument("--segmentation", action="append", default=[], metavar="FILE.seg.nrrd",
                     help="a 3D Slicer segmentation; roles are inferred from segment names")
    inp.add_argument("--segment-role", action="append", default=[], type=_key_value, metavar="SEGMENT=ROLE",
                     help="set the role of a segment of --segmentation or a structure of the study's RTSTRUCT/SEG "
                          "(overrides the role inferred from its name; 'ignore' drops a DICOM structure)")
    cal = run.add_argument_group("calibration and timing")
    cal.add_argument("--calibration", choices=("absolute", "relative"), default="absolute",
                     help="absolute: image values are Bq/mL; relative: scale the calibration ROI's activity to "
                          "administered x (1 - residual) x (1 - lung shunt)")
    cal.add_argument("--calibration-roi", metavar="NAME", help="ROI for relative calibration (default: the liver)")
    cal.add_argument("--administered-gbq", type=_positive, metavar="GBQ", help="administered activity (GBq)")
    cal.add_argument("--residual-fraction", type=_fraction, metavar="F", help="fraction left in the vial/catheter")
    cal.add_argument("--lung-shunt", "--lung-shunt-fraction", dest="lung_shunt", type=_fraction, metavar="F",
                     help="lung shunt fraction (0..1)")
    cal.add_argument("--scan-delay-h", type=_non_negative, metavar="H",
                     help="hours from implant to the time the image values hold (0: already decay-corrected to implant)")
    cal.add_argument("--scan-time", type=_datetime, metavar="ISO", help="date-time of the scan (with --implant-time)")
    cal.add_argument("--implant-time", type=_datetime, metavar="ISO",
                     help="date-time of the implant (for DICOM: overrides the header; local scanner time)")
    dose = run.add_argument_group("dose")
    dose.add_argument("--method", choices=tuple(METHODS), default="ldm", help="dose method (default: ldm)")
    dose.add_argument("--density-g-ml", type=_positive, default=None, metavar="RHO",
                      help="density where there is no CT (default 1.03 g/mL, ICRU 46)")
    dose.add_argument("--lung-mass-kg", type=_positive, metavar="KG", help="lung mass for the lung-shunt estimate")
    add_clinical_arguments(run)
    out = run.add_argument_group("output")
    out.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist, unless --overwrite)")
    out.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    out.add_argument("--pdf", action="store_true", help="also print the report to report.pdf (needs Chromium)")
    out.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")

    inspect = sub.add_parser("inspect", help="list the DICOM series of a folder and what each is",
                             description="Scan a folder recursively and print its studies and series: kind, "
                                         "modality, date, number of images, description, nuclide and UID.")
    inspect.add_argument("folder", metavar="DIR")
    add_accumulate_parser(sub)
    return parser


def load_roi_arguments(args) -> tuple[list, list[str]]:
    """ROIs of ``--roi`` and ``--segmentation`` (with ``--segment-role``), shared by run and accumulate."""
    from .roi_io import parse_roi_spec, read_mask_roi, read_slicer_segmentation

    rois, warnings = [], []
    for spec in args.roi:
        role, name, path = parse_roi_spec(spec)
        rois.append(read_mask_roi(path, role, name))
    for seg in args.segmentation:
        seg_rois, seg_warnings = read_slicer_segmentation(seg, role_overrides=dict(args.segment_role))
        rois.extend(seg_rois)
        warnings.extend(seg_warnings)
    return rois, warnings


def _check_overrides_used(overrides: dict[str, str], result) -> None:
    names = {entry["name"].lower() for entry in result.stats["inputs"]["rois"]}
    dicom = (result.stats["inputs"].get("dicom") or {}).get("structures") or {}
    names |= {name.lower() for name in dicom.get("rois", {})}
    unused = sorted({k.lower() for k in overrides if overrides[k] != "ignore"} - names)
    if unused:
        raise OptionsError(f"--segment-role names no segment or structure: {', '.join(unused)}; "
                           f"the ROIs are: {', '.join(sorted(names))}")


def _cmd_run(args) -> int:
    from .constants import DEFAULT_SOFT_TISSUE_DENSITY_G_ML
    from .outputs import write_results
    from .pipeline import DosimetryOptions, run_dicom_study, run_dosimetry

    if (args.study is None) == (args.activity is None):
        raise OptionsError("give either a DICOM study folder (STUDY_DIR) or an image (--activity IMG), not both or neither")
    if args.study is None and (args.series or args.spect_cps_per_mbq):
        raise OptionsError("--series and --spect-cps-per-mbq apply to a DICOM STUDY_DIR only")
    out_dir = Path(args.out)
    check_cli_output(args, run_input_paths(args))
    if out_dir.exists() and not args.overwrite:
        raise OptionsError(f"{out_dir} exists already; choose another --out or add --overwrite")
    if args.segment_role and not (args.segmentation or args.study):
        raise OptionsError("--segment-role needs --segmentation or a DICOM STUDY_DIR")
    rois, warnings = load_roi_arguments(args)
    options = DosimetryOptions(
        method=args.method, calibration=args.calibration, activity_units=args.activity_units,
        administered_activity_gbq=args.administered_gbq, residual_fraction=args.residual_fraction,
        lung_shunt_fraction=args.lung_shunt, calibration_roi=args.calibration_roi,
        scan_delay_h=args.scan_delay_h, scan_time=args.scan_time, implant_time=args.implant_time,
        default_density_g_ml=args.density_g_ml or DEFAULT_SOFT_TISSUE_DENSITY_G_ML,
        lung_mass_kg=args.lung_mass_kg, clinical=clinical_options_from_args(args))
    log.info("running %s dosimetry", args.method)
    if args.study is not None:
        result = run_dicom_study(args.study, options=options, series_uid=args.series, extra_rois=rois,
                                 role_overrides=dict(args.segment_role), extra_warnings=warnings,
                                 calibration_factor_cps_per_mbq=args.spect_cps_per_mbq)
    else:
        result = run_dosimetry(args.activity, rois, ct=args.ct, options=options, extra_warnings=warnings)
    _check_overrides_used(dict(args.segment_role), result)
    write_results(result, out_dir, overwrite=args.overwrite, pdf=args.pdf)
    if not args.quiet:
        print(format_summary(result.stats))
        print(f"results: {out_dir.resolve()}")
    return 0


def _cmd_inspect(args) -> int:
    from .dicom import format_inventory, inventory

    print(format_inventory(inventory(args.folder)))
    return 0


def format_summary(stats: dict) -> str:
    """A short plain-text table of the ROI results for the terminal, below every value assumed."""
    from .defaults import format_assumption

    lines = [f"ASSUMED: {format_assumption(a)}" for a in stats.get("assumptions", [])]
    lines.append(f"{'ROI':<24}{'role':<14}{'volume mL':>10}{'mean Gy':>10}{'D70 Gy':>10}{'V100 %':>9}")
    for e in stats["rois"]:
        lines.append(f"{e['name'][:23]:<24}{e['role']:<14}{e['volume_ml']:>10.1f}{e['mean_gy']:>10.1f}"
                     f"{e['D70']:>10.1f}{e['V100']:>9.1f}")
    tn = stats["tumor_to_normal"]
    if tn["dose_ratio"] is not None:
        lines.append(f"T:N dose ratio {tn['dose_ratio']:.2f}, activity ratio {tn['activity_ratio']:.2f}")
    lung = stats["lung"]
    if lung["voxel_mean_gy"] is not None:
        lines.append(f"lung voxel mean {lung['voxel_mean_gy']:.1f} Gy")
    if lung["lsf_estimate_gy"] is not None:
        lines.append(f"lung dose from shunt fraction {lung['lsf_estimate_gy']:.1f} Gy")
    lines.extend((stats.get("flags") or {}).get("notes", []))
    for w in stats["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (see :data:`~dosimetry.errors.EXIT_CODES`)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help/--version
        return int(exc.code or 0)
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s")
    try:
        return {"run": _cmd_run, "inspect": _cmd_inspect, "accumulate": cmd_accumulate}[args.command](args)
    except DosimetryError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("error: interrupted; no output was written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
