"""The ``dosimetry`` command: a thin layer that turns options into a call of the Python API.

Exit codes are listed in :data:`dosimetry.errors.EXIT_CODES` (and README.md). Expected faults print one
line, ``error: ...``, and no traceback; only bugs print a traceback (exit code 1).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

from ._version import __version__
from .errors import EXIT_CODES, INTERRUPTED_EXIT_CODE, DosimetryError, OptionsError
from .option_ranges import BY_OPTION, OptionValueError, option_type
from .output_guard import OVERWRITE_HELP, check_cli_output, run_input_paths

# Only the standard library and small modules of our own above: numpy, SimpleITK, numba and matplotlib
# are imported inside main(), where Ctrl-C is answered with one line (see main).

log = logging.getLogger("dosimetry")

INTERRUPTED_MESSAGE = "error: interrupted; no output was written"


class _UsageError(Exception):
    """An argparse usage error, reported by :func:`main` as one line (exit code 2, or 7 for a bad value)."""

    def __init__(self, message: str, prog: str):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """argparse without its usage dump: errors go to :func:`main` as :class:`_UsageError`."""

    def error(self, message):
        raise _UsageError(message, self.prog)


def _bad_value(option: str, text: str, expected: str) -> OptionValueError:
    return OptionValueError(OptionsError(f"{option}: got {text!r}, expected {expected}"))


def _datetime_type(option: str):
    def parse(text: str) -> datetime:
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            raise _bad_value(option, text, "an ISO 8601 date-time like 2026-03-01T10:30") from None

    parse.__name__ = "datetime"
    return parse


def _key_value(text: str) -> tuple[str, str]:
    name, sep, role = text.rpartition("=")
    if not sep or not name.strip() or not role.strip():
        raise _bad_value("--segment-role", text, "SEGMENT=ROLE, e.g. 'Segment 7=tumor' or 'Vessels=ignore'")
    return name, role


def _range_checked(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give every numeric option of ``parser`` and its subcommands the type of :mod:`.option_ranges`.

    Options added by other modules (clinical, accumulate) are covered too, so one table decides every range.
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _range_checked(sub)
        for option in action.option_strings:
            if option in BY_OPTION:
                action.type = option_type(option)
    return parser


def build_parser() -> argparse.ArgumentParser:
    from .accumulate_cli import add_accumulate_parser
    from .clinical import add_clinical_arguments
    from .dose import METHODS
    from .quantify import UNITS

    parser = _Parser(
        prog="dosimetry", description="Voxel dosimetry of Y-90 radioembolization (SIRT/TARE).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="exit codes:\n" + "\n".join(f"  {k:>3}  {v}" for k, v in EXIT_CODES.items()))
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
    inp.add_argument("--spect-cps-per-mbq", type=option_type("--spect-cps-per-mbq"), metavar="CF",
                     help="with STUDY_DIR: SPECT calibration factor (counts per second per MBq) for absolute calibration")
    inp.add_argument("--activity-units", choices=UNITS, help="units of the activity image (default: Bq/mL, stated "
                                                             "as assumed in the output)")
    inp.add_argument("--emission-nuclide", metavar="NUCLIDE",
                     help="the nuclide the emission image shows (default: from the DICOM header; Y-90 assumed for "
                          "image files); Y-90 overrides a header naming another nuclide, Tc-99m gives a predictive run")
    inp.add_argument("--ct", metavar="IMG", help="CT in HU on any grid, for voxel densities (Schneider 2000)")
    inp.add_argument("--roi", action="append", default=[], metavar="ROLE[:NAME]=PATH",
                     help="an ROI mask; ROLE is liver, tumor, lung, perfused or other (repeat for each ROI)")
    inp.add_argument("--segmentation", action="append", default=[], metavar="FILE.seg.nrrd",
                     help="a 3D Slicer segmentation; roles are inferred from segment names")
    inp.add_argument("--segment-role", action="append", default=[], type=_key_value, metavar="SEGMENT=ROLE",
                     help="set the role of a segment of --segmentation or a structure of the study's RTSTRUCT/SEG "
                          "(overrides the role inferred from its name; ROLE 'ignore' leaves it out)")
    cal = run.add_argument_group("calibration and timing")
    cal.add_argument("--calibration", choices=("absolute", "relative"), default="absolute",
                     help="absolute: image values are Bq/mL; relative: scale the calibration ROI's activity to "
                          "administered x (1 - residual) x (1 - lung shunt)")
    cal.add_argument("--calibration-roi", metavar="NAME", help="ROI for relative calibration (default: the liver)")
    cal.add_argument("--administered-gbq", type=option_type("--administered-gbq"), metavar="GBQ", help="administered activity (GBq)")
    cal.add_argument("--residual-fraction", type=option_type("--residual-fraction"), metavar="F", help="fraction left in the vial/catheter")
    cal.add_argument("--lung-shunt", "--lung-shunt-fraction", dest="lung_shunt", type=option_type("--lung-shunt"), metavar="F",
                     help="lung shunt fraction (0..1)")
    cal.add_argument("--scan-delay-h", type=option_type("--scan-delay-h"), metavar="H",
                     help="hours from implant to the time the image values hold (0: already decay-corrected to implant)")
    cal.add_argument("--scan-time", type=_datetime_type("--scan-time"), metavar="ISO", help="date-time of the scan (with --implant-time)")
    cal.add_argument("--implant-time", type=_datetime_type("--implant-time"), metavar="ISO",
                     help="date-time of the implant (for DICOM: overrides the header; local scanner time)")
    dose = run.add_argument_group("dose")
    dose.add_argument("--method", choices=tuple(METHODS), default="ldm", help="dose method (default: ldm)")
    dose.add_argument("--density-g-ml", type=option_type("--density-g-ml"), default=None, metavar="RHO",
                      help="density where there is no CT (default 1.03 g/mL, ICRU 46)")
    dose.add_argument("--lung-mass-kg", type=option_type("--lung-mass-kg"), metavar="KG", help="lung mass for the lung-shunt estimate")
    add_clinical_arguments(run)
    out = run.add_argument_group("output")
    out.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist, unless --overwrite)")
    out.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    out.add_argument("--pdf", action="store_true", help="also print the report to report.pdf (needs Chromium)")
    out.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    run.add_argument("--allow-roi-outside", action="store_true",
                     help="accept ROIs more than 20%% outside the activity image (their statistics then cover "
                          "only the part inside, and stats.json says so)")

    inspect = sub.add_parser("inspect", help="list the DICOM series of a folder and what each is",
                             description="Scan a folder recursively and print its studies and series: kind, "
                                         "modality, date, number of images, description, nuclide and UID.")
    inspect.add_argument("folder", metavar="DIR")
    add_accumulate_parser(sub)
    from .nightly.command import register as add_nightly_parser  # nightly job (dosimetry/nightly/)
    add_nightly_parser(sub)
    return _range_checked(parser)


def load_roi_arguments(args) -> tuple[list, list[str]]:
    """ROIs of ``--roi`` and ``--segmentation`` (with ``--segment-role``), shared by run and accumulate.

    Without a DICOM study, every ``--segment-role`` name must be a segment of a ``--segmentation`` file
    (else OptionsError listing the segments), checked before anything is computed.
    """
    from .roi_io import parse_roi_spec, read_mask_roi, read_slicer_segmentation, slicer_segment_names

    overrides = dict(args.segment_role)
    if overrides and not getattr(args, "study", None):
        names = [name for seg in args.segmentation for name in slicer_segment_names(seg)]
        _check_override_names(overrides, names)
    rois, warnings = [], []
    for spec in args.roi:
        role, name, path = parse_roi_spec(spec)
        rois.append(read_mask_roi(path, role, name))
    for seg in args.segmentation:
        seg_rois, seg_warnings = read_slicer_segmentation(seg, role_overrides=overrides, warn_unknown=False)
        rois.extend(seg_rois)
        warnings.extend(seg_warnings)
    return rois, warnings


def _check_override_names(overrides: dict[str, str], names) -> None:
    known = {name.strip().lower() for name in names}
    unknown = sorted(k for k in overrides if k.strip().lower() not in known)
    if unknown:
        raise OptionsError(f"--segment-role names no segment or structure: {', '.join(map(repr, unknown))}; "
                           f"the names are: {', '.join(map(repr, sorted(set(names)))) or 'none'}")


def _check_overrides_used(overrides: dict[str, str], result, segmentations) -> None:
    """After a DICOM run: every --segment-role name is a ROI of the run, an ignored structure or a segment."""
    from .roi_io import slicer_segment_names

    names = [entry["name"] for entry in result.stats["inputs"]["rois"]]
    dicom = (result.stats["inputs"].get("dicom") or {}).get("structures") or {}
    names += list(dicom.get("rois", {}))
    names += [name for seg in segmentations for name in slicer_segment_names(seg)]
    ignored = {k for k, v in overrides.items() if v.strip().lower() == "ignore"}  # dropped DICOM structures
    _check_override_names({k: v for k, v in overrides.items() if k not in ignored}, names)


def _cmd_run(args) -> int:
    from .clinical import clinical_options_from_args
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
        lung_mass_kg=args.lung_mass_kg, allow_roi_outside=args.allow_roi_outside,
        clinical=clinical_options_from_args(args), emission_nuclide=args.emission_nuclide)
    log.info("running %s dosimetry", args.method)
    if args.study is not None:
        result = run_dicom_study(args.study, options=options, series_uid=args.series, extra_rois=rois,
                                 role_overrides=dict(args.segment_role), extra_warnings=warnings,
                                 calibration_factor_cps_per_mbq=args.spect_cps_per_mbq)
    else:
        result = run_dosimetry(args.activity, rois, ct=args.ct, options=options, extra_warnings=warnings)
    if args.study is not None:
        _check_overrides_used(dict(args.segment_role), result, args.segmentation)
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


def _folder_identity(path: Path | None):
    try:
        st = os.stat(path) if path is not None else None
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if st else None


def _main(argv: list[str] | None, state: dict) -> int:
    from .accumulate_cli import cmd_accumulate

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0)
    except OptionValueError as err:  # a value out of range or unparsable (option_ranges, _key_value, dates)
        print(f"error: {err.error}", file=sys.stderr)
        return err.error.exit_code
    except _UsageError as err:
        message = str(err)
        if message.startswith("argument ") and ": invalid choice: " in message:  # a value, not the usage
            print(f"error: {message[len('argument '):]}", file=sys.stderr)
            return OptionsError.exit_code
        print(f"error: {message}; see '{err.prog} --help'", file=sys.stderr)
        return 2
    out = getattr(args, "out", None)
    state["out"] = Path(out) if out else None
    state["out_before"] = _folder_identity(state["out"])
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s")
    try:
        from .nightly.command import cmd_nightly
        return {"run": _cmd_run, "inspect": _cmd_inspect, "accumulate": cmd_accumulate,
                "nightly": cmd_nightly}[args.command](args)
    except DosimetryError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


def _interrupted(state: dict) -> int:
    out = state.get("out")
    identity = _folder_identity(out)
    if identity is not None and identity != state.get("out_before"):  # renamed into place just before
        print(f"error: interrupted after the results were written to {out}; they are complete", file=sys.stderr)
    else:
        print(INTERRUPTED_MESSAGE, file=sys.stderr)
    return INTERRUPTED_EXIT_CODE


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (see :data:`~dosimetry.errors.EXIT_CODES`).

    Ctrl-C at any moment of the command, including while the scientific libraries are imported, prints
    one line and returns 130; the output folder appears only complete (written to a temporary folder and
    renamed). With ``argv`` None (the console command), a Ctrl-C after the command has finished is ignored.
    """
    console = argv is None
    state: dict = {}
    try:
        try:
            return _main(argv, state)
        finally:
            if console:  # done: a late Ctrl-C must not turn a finished command into a traceback
                signal.signal(signal.SIGINT, signal.SIG_IGN)
    except KeyboardInterrupt:
        if console:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        return _interrupted(state)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
