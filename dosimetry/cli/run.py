"""``dosimetry run``: the dose of one study, a thin layer over :func:`~dosimetry.pipeline.run_dosimetry`.

The parser is built from plain data (:mod:`.choices`, :mod:`dosimetry.option_ranges`); the API is
imported inside :func:`command`, as the ``start-up`` stage of the progress display.
"""

from __future__ import annotations

import math

import argparse
import logging

from dosimetry.errors import OptionsError
from dosimetry.option_ranges import option_type
from dosimetry.export.output_guard import OVERWRITE_HELP, check_cli_output, run_input_paths
from dosimetry.progress import stage
from dosimetry.cli.choices import ACTIVITY_UNITS, CALIBRATIONS, METHODS
from dosimetry.cli.clinical_options import add_clinical_arguments, clinical_options_from_args
from dosimetry.cli.common import (
    add_roi_options,
    check_override_names,
    datetime_type,
    load_roi_arguments,
    refuse_existing_out,
)

log = logging.getLogger("dosimetry")


def add_parser(subparsers, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``run`` subcommand to ``subparsers``."""
    run = subparsers.add_parser(
        "run",
        parents=parents,
        help="compute dose maps and ROI statistics of one study",
        description="Compute the absorbed dose of one study (a DICOM folder, or image files given with "
        "--activity) and write the results into --out.",
    )
    inp = run.add_argument_group("inputs")
    inp.add_argument(
        "study",
        nargs="?",
        metavar="STUDY_DIR",
        help="folder of DICOM files (PET or SPECT, CT, RTSTRUCT/SEG), searched recursively",
    )
    inp.add_argument(
        "--activity",
        metavar="IMG",
        help="instead of STUDY_DIR: activity image (NIfTI/NRRD/MHA), Bq/mL at scan time unless "
        "--activity-units says otherwise",
    )
    inp.add_argument(
        "--series",
        action="append",
        default=[],
        metavar="UID",
        help="with STUDY_DIR: the Series Instance UID to use where the choice is ambiguous (repeatable)",
    )
    inp.add_argument(
        "--spect-cps-per-mbq",
        type=option_type("--spect-cps-per-mbq"),
        metavar="CF",
        help="with STUDY_DIR: SPECT calibration factor (counts per second per MBq) for absolute calibration",
    )
    inp.add_argument(
        "--activity-units",
        choices=ACTIVITY_UNITS,
        help="units of the activity image (default: Bq/mL, stated as assumed in the output)",
    )
    inp.add_argument(
        "--emission-nuclide",
        metavar="NUCLIDE",
        help="the nuclide the emission image shows (default: from the DICOM header; Y-90 assumed for "
        "image files); Y-90 overrides a header naming another nuclide, Tc-99m gives a predictive run",
    )
    inp.add_argument("--ct", metavar="IMG", help="CT in HU on any grid, for voxel densities (Schneider 2000)")
    add_roi_options(
        inp,
        of="the study",
        segment_role_help="set the role of a segment of --segmentation or a structure of the study's RTSTRUCT/SEG "
        "(overrides the role inferred from its name; ROLE 'ignore' leaves it out)",
    )
    cal = run.add_argument_group("calibration and timing")
    cal.add_argument(
        "--calibration",
        choices=CALIBRATIONS,
        default="absolute",
        help="absolute: image values are Bq/mL; relative: scale the calibration ROI's activity to "
        "administered x (1 - residual) x (1 - lung shunt)",
    )
    cal.add_argument("--calibration-roi", metavar="NAME", help="ROI for relative calibration (default: the liver)")
    cal.add_argument("--administered-gbq", metavar="GBQ", help="administered activity (GBq)")
    cal.add_argument("--residual-fraction", metavar="F", help="fraction left in the vial/catheter")
    cal.add_argument(
        "--lung-shunt", "--lung-shunt-fraction", dest="lung_shunt", metavar="F", help="lung shunt fraction (0..1)"
    )
    cal.add_argument(
        "--scan-delay-h",
        metavar="H",
        help="hours from implant to the time the image values hold (0: already decay-corrected to implant)",
    )
    cal.add_argument(
        "--scan-time",
        type=datetime_type("--scan-time"),
        metavar="ISO",
        help="date-time of the scan (with --implant-time)",
    )
    cal.add_argument(
        "--implant-time",
        type=datetime_type("--implant-time"),
        metavar="ISO",
        help="date-time of the implant (for DICOM: overrides the header; local scanner time)",
    )
    dose = run.add_argument_group("dose")
    dose.add_argument("--method", choices=METHODS, default="ldm", help="dose method (default: ldm)")
    dose.add_argument(
        "--density-g-ml", default=None, metavar="RHO", help="density where there is no CT (default 1.03 g/mL, ICRU 46)"
    )
    dose.add_argument("--lung-mass-kg", metavar="KG", help="lung mass for the lung-shunt estimate")
    add_clinical_arguments(run)
    out = run.add_argument_group("output")
    out.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist, unless --overwrite)")
    out.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    out.add_argument("--pdf", action="store_true", help="also print the report to report.pdf (needs Chromium)")
    out.add_argument(
        "--isodose-gy",
        metavar="GY[,GY...]",
        help="isodose lines of the report's images (default: the thresholds of the evaluated threshold sets, "
        "else 40,70,100,205 Gy, EANM 2022)",
    )
    run.add_argument(
        "--allow-roi-outside",
        action="store_true",
        help="accept ROIs more than 20%% outside the activity image (their statistics then cover "
        "only the part inside, and stats.json says so)",
    )
    run.set_defaults(command_function=command)
    return run


def _check_options(args) -> None:
    if (args.study is None) == (args.activity is None):
        raise OptionsError(
            "give either a DICOM study folder (STUDY_DIR) or an image (--activity IMG), not both or neither"
        )
    if args.study is None and (args.series or args.spect_cps_per_mbq):
        raise OptionsError("--series and --spect-cps-per-mbq apply to a DICOM STUDY_DIR only")
    if args.segment_role and not (args.segmentation or args.study):
        raise OptionsError("--segment-role needs --segmentation or a DICOM STUDY_DIR")
    isodose_levels(args)


def isodose_levels(args) -> tuple[float, ...] | None:
    """``--isodose-gy`` as a tuple of Gy (None when not given); one line naming the option when malformed."""
    text = getattr(args, "isodose_gy", None)
    if text is None:
        return None
    try:
        levels = tuple(float(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        levels = ()
    if not levels or not all(math.isfinite(v) and 0 < v <= 10_000 for v in levels):
        raise OptionsError(
            f"--isodose-gy {text!r}: expected comma-separated doses in Gy, each above 0 and at most 10000 "
            "(e.g. --isodose-gy 40,70,100,205)"
        )
    return tuple(sorted(set(levels)))


def dosimetry_options(args):
    """:class:`~dosimetry.pipeline.DosimetryOptions` from parsed ``run`` arguments: the one translation of the
    run options, used by ``dosimetry run`` and by the nightly job (which parses its ``[run]`` table with the
    run parser)."""
    from dosimetry.constants import DEFAULT_SOFT_TISSUE_DENSITY_G_ML
    from dosimetry.pipeline import DosimetryOptions

    return DosimetryOptions(
        method=args.method,
        calibration=args.calibration,
        activity_units=args.activity_units,
        administered_activity_gbq=args.administered_gbq,
        residual_fraction=args.residual_fraction,
        lung_shunt_fraction=args.lung_shunt,
        calibration_roi=args.calibration_roi,
        scan_delay_h=args.scan_delay_h,
        scan_time=args.scan_time,
        implant_time=args.implant_time,
        default_density_g_ml=args.density_g_ml or DEFAULT_SOFT_TISSUE_DENSITY_G_ML,
        lung_mass_kg=args.lung_mass_kg,
        allow_roi_outside=args.allow_roi_outside,
        clinical=clinical_options_from_args(args),
        emission_nuclide=args.emission_nuclide,
    )


def command(args) -> int:
    """Run ``dosimetry run`` with parsed ``args``; returns the exit code (expected faults are raised)."""
    _check_options(args)
    check_cli_output(args, run_input_paths(args))
    out_dir = refuse_existing_out(args)
    with stage("start-up"):
        import dosimetry.export.results  # noqa: F401  (the API: the start-up of the progress display)
        import dosimetry.pipeline  # noqa: F401
    # started after the imports above: both processes importing at once slowed this one's by ~0.15 s, and the
    # export process is ready long before its first task even so
    with _export_process(args) as exporter:
        return _run(args, out_dir, exporter)


def _export_process(args):
    """The DICOM exports' own process (:mod:`dosimetry.export.background`) for a DICOM study run by the command
    line in a process of its own, started now so that it prepares while the ROIs and the study load; else
    nothing."""
    from contextlib import nullcontext

    if args.study is None or not getattr(args, "own_process", False):
        return nullcontext()
    from dosimetry.export import background

    return background.start() or nullcontext()


def _run(args, out_dir, exporter) -> int:
    from dosimetry.export.results import write_results  # (imported by command's start-up stage)
    from dosimetry.pipeline import run_dicom_study, run_dosimetry

    with stage("read ROIs"):
        rois, notes = load_roi_arguments(args)
    options = dosimetry_options(args)
    log.info("running %s dosimetry", args.method)
    if args.study is not None:
        result = run_dicom_study(
            args.study,
            options=options,
            series_uid=args.series,
            extra_rois=rois,
            role_overrides=dict(args.segment_role),
            extra_warnings=notes,
            calibration_factor_cps_per_mbq=args.spect_cps_per_mbq,
            rois_resampled=exporter.prepare if exporter is not None else None,
        )
        _check_overrides_used(dict(args.segment_role), result, args.segmentation)
    else:
        result = run_dosimetry(args.activity, rois, ct=args.ct, options=options, extra_warnings=notes)
    with stage("write results"):
        write_results(
            result,
            out_dir,
            overwrite=args.overwrite,
            pdf=args.pdf,
            isodose_gy=isodose_levels(args),
            export_process=exporter,
        )
    if not args.quiet:
        print(format_summary(result.stats))
        print(f"results: {out_dir.resolve()}")
    return 0


def _check_overrides_used(overrides: dict[str, str], result, segmentations) -> None:
    """After a DICOM run: every --segment-role name is a ROI of the run, an ignored structure or a segment."""
    from dosimetry.io.roi_files import slicer_segment_names

    names = [entry["name"] for entry in result.stats["inputs"]["rois"]]
    dicom = (result.stats["inputs"].get("dicom") or {}).get("structures") or {}
    names += list(dicom.get("rois", {}))
    names += [name for seg in segmentations for name in slicer_segment_names(seg)]
    ignored = {k for k, v in overrides.items() if v.strip().lower() == "ignore"}  # dropped DICOM structures
    check_override_names({k: v for k, v in overrides.items() if k not in ignored}, names)


def format_summary(stats: dict) -> str:
    """A short plain-text table of the ROI results for the terminal, below every value assumed."""
    from dosimetry.defaults import format_assumption

    lines = [f"ASSUMED: {format_assumption(a)}" for a in stats.get("assumptions", [])]
    lines.append(f"{'ROI':<24}{'role':<14}{'volume mL':>10}{'mean Gy':>10}{'D70 Gy':>10}{'V100 %':>9}")
    for e in stats["rois"]:
        lines.append(
            f"{e['name'][:23]:<24}{e['role']:<14}{e['volume_ml']:>10.1f}{e['mean_gy']:>10.1f}"
            f"{e['D70']:>10.1f}{e['V100']:>9.1f}"
        )
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


__all__ = ["add_parser", "command", "format_summary"]
