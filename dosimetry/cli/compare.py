"""The ``dosimetry compare`` command: predicted (Tc-99m MAA) against delivered (Y-90) dose, ROI by ROI.

A thin layer over :func:`dosimetry.compare.compare_runs` and :func:`~dosimetry.compare.compare_cohort`; the
API is imported inside :func:`command`. Outputs: see :mod:`dosimetry.compare.files`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dosimetry.errors import OptionsError
from dosimetry.export.output_guard import OVERWRITE_HELP, check_cli_output
from dosimetry.progress import stage
from dosimetry.cli.common import add_roi_options, bad_value, load_roi_arguments, refuse_existing_out


def match_pair(text: str) -> tuple[str, str]:
    """argparse ``type`` of ``--match PREDICTED=DELIVERED`` (the first '=' splits)."""
    a, sep, b = text.partition("=")
    if not sep or not a.strip() or not b.strip():
        raise bad_value("--match", text, "PREDICTED=DELIVERED ROI names, e.g. 'Lesion 1=tumor_T1'")
    return a.strip(), b.strip()


def add_parser(subparsers, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``compare`` subcommand to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    parser = subparsers.add_parser(
        "compare",
        parents=parents,
        help="compare a predictive Tc-99m MAA dose with the delivered Y-90 dose, ROI by ROI",
        description="Match the ROIs of a predictive run (Tc-99m MAA) and a delivered run (Y-90) by name and "
        "report per ROI the predicted and delivered mean dose and D70, T:N, lung dose and lung shunt, their "
        "differences (delivered - predicted), Bland-Altman limits of agreement and correlations. With "
        "--roi/--segmentation (the delivered study's ROIs) both doses are evaluated on the delivered grid, "
        "the predicted dose registered rigidly on the CTs when the frames of reference differ. With --pairs, "
        "a cohort of cases is pooled.",
    )
    inp = parser.add_argument_group("inputs")
    inp.add_argument("--predicted", metavar="RUN_DIR", help="output folder of 'dosimetry run' on the Tc-99m MAA study")
    inp.add_argument("--delivered", metavar="RUN_DIR", help="output folder of 'dosimetry run' on the Y-90 study")
    inp.add_argument(
        "--pairs",
        metavar="PAIRS.csv",
        help="a cohort: CSV with columns case_id,predicted,delivered (run folders, relative to the CSV) and "
        "optionally match ('A=B;C=D'); instead of --predicted/--delivered",
    )
    inp.add_argument(
        "--match",
        action="append",
        default=[],
        type=match_pair,
        metavar="PREDICTED=DELIVERED",
        help="compare the predicted ROI PREDICTED with the delivered ROI DELIVERED (ROIs named differently; repeat)",
    )
    add_roi_options(inp, of="the delivered study (both doses are then evaluated with these ROIs)")
    inp.add_argument(
        "--on-delivered-grid",
        action="store_true",
        help="evaluate both doses with the delivered run's own ROIs (its recorded mask files, segmentation "
        "or DICOM RTSTRUCT/SEG), as with --roi/--segmentation",
    )
    reg = parser.add_argument_group("alignment (with --roi/--segmentation or --on-delivered-grid)")
    reg.add_argument(
        "--predicted-ct", metavar="CT", help="CT of the predictive study (default: the one its stats.json records)"
    )
    reg.add_argument(
        "--delivered-ct", metavar="CT", help="CT of the delivered study (default: the one its stats.json records)"
    )
    reg.add_argument(
        "--same-frame",
        action="store_true",
        help="the two studies share patient coordinates (no registration), e.g. one SPECT/CT session",
    )
    reg.add_argument(
        "--min-ncc",
        default=0.7,
        metavar="R",
        help="smallest accepted HU cross-correlation after registration (default 0.7)",
    )
    reg.add_argument(
        "--min-overlap",
        default=0.5,
        metavar="F",
        help="smallest accepted body fraction covered after registration (default 0.5)",
    )
    chk = parser.add_argument_group("checks")
    chk.add_argument(
        "--accept-emission",
        action="store_true",
        help="compare even if --predicted is not a predictive Tc-99m MAA dose or --delivered not a Y-90 dose "
        "(recorded as a warning)",
    )
    out = parser.add_argument_group("output")
    out.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist, unless --overwrite)")
    out.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    parser.set_defaults(command_function=command)
    return parser


def _check_options(args) -> None:
    single = args.predicted or args.delivered
    if args.pairs and single:
        raise OptionsError("--pairs replaces --predicted/--delivered; give either --pairs or both run folders")
    if not args.pairs and not (args.predicted and args.delivered):
        raise OptionsError("give --predicted RUN_DIR and --delivered RUN_DIR (or --pairs PAIRS.csv for a cohort)")
    if args.on_delivered_grid and (args.roi or args.segmentation):
        raise OptionsError("--on-delivered-grid uses the delivered run's ROIs; leave out --roi/--segmentation")
    delivered_rois = args.roi or args.segmentation or args.on_delivered_grid
    if args.pairs and (delivered_rois or args.match):
        raise OptionsError(
            "--pairs compares each case's own ROIs (no --roi, --segmentation, --on-delivered-grid, --match): "
            "give the matches per case in the CSV's match column"
        )
    if args.match and delivered_rois:
        raise OptionsError("--match pairs the runs' own ROIs; with --roi/--segmentation both doses use the same ROIs")
    if (args.predicted_ct or args.delivered_ct or args.same_frame) and not delivered_rois:
        raise OptionsError("--predicted-ct, --delivered-ct and --same-frame apply with --roi/--segmentation only")
    if args.segment_role and not args.segmentation:
        raise OptionsError("--segment-role needs --segmentation")


def _input_paths(args) -> list:
    from dosimetry.export.output_guard import roi_spec_path

    return [
        args.predicted,
        args.delivered,
        args.pairs,
        args.predicted_ct,
        args.delivered_ct,
        *(roi_spec_path(s) for s in args.roi),
        *args.segmentation,
    ]


def command(args) -> int:
    """Run ``dosimetry compare`` with parsed ``args``; returns the exit code (expected faults are raised)."""
    _check_options(args)
    check_cli_output(args, _input_paths(args))
    out_dir = refuse_existing_out(args)
    with stage("start-up"):
        from dosimetry.compare import compare_cohort, compare_runs, read_pairs
        from dosimetry.compare.files import format_comparison, write_comparison
        from dosimetry.compare.runs import read_run, recorded_rois
        from dosimetry.libwarnings import library_warnings
        from dosimetry.io.run_folder import read_ct
    notes: list[str] = []
    if args.pairs:
        cases = read_pairs(args.pairs)
        check_cli_output(args, [p for c in cases for p in (c["predicted"], c["delivered"])])
        result = compare_cohort(cases, accept_emission=args.accept_emission)
    else:
        rois, predicted_ct, delivered_ct = None, None, None
        predicted, delivered = args.predicted, args.delivered
        if args.roi or args.segmentation or args.on_delivered_grid:
            with stage("load"), library_warnings(notes, during="reading the ROIs and CTs"):
                predicted = read_run(args.predicted, option="--predicted")
                delivered = read_run(args.delivered, option="--delivered")
                if args.on_delivered_grid:
                    rois, roi_notes = recorded_rois(delivered, option="--on-delivered-grid")
                else:
                    rois, roi_notes = load_roi_arguments(args)
                notes += roi_notes
                p_ct = Path(args.predicted_ct) if args.predicted_ct else predicted.recorded_ct()
                d_ct = Path(args.delivered_ct) if args.delivered_ct else delivered.recorded_ct()
                predicted_ct = read_ct(p_ct) if p_ct is not None and not args.same_frame else None
                delivered_ct = read_ct(d_ct) if d_ct is not None else None
        with stage("compare"):
            result = compare_runs(
                predicted,
                delivered,
                match=dict(args.match),
                rois=rois,
                predicted_ct=predicted_ct,
                delivered_ct=delivered_ct,
                same_frame=args.same_frame,
                accept_emission=args.accept_emission,
                min_ncc=args.min_ncc,
                min_overlap=args.min_overlap,
            )
    result.stats["warnings"] = notes + result.stats["warnings"]
    with stage("write results"):
        write_comparison(result, out_dir, overwrite=args.overwrite)
    if not args.quiet:
        print(format_comparison(result.stats))
        print(f"results: {out_dir.resolve()}")
    return 0


__all__ = ["add_parser", "command", "match_pair"]
