"""The ``dosimetry accumulate`` command: cumulative dose of the current and earlier treatments.

A thin layer over :func:`dosimetry.accumulate.accumulate_doses`; the API is imported inside
:func:`command`. pydicom and highdicom warnings met while reading (RT Dose, DICOM CT folders, the
structures of a DICOM run) become lines of ``warnings`` in ``accumulate.json``
(:func:`~dosimetry.libwarnings.library_warnings`), as in ``run``.

Outputs (in ``--out``, written to a temporary folder and renamed when complete):

=================================  ==================================================================
``cumulative_dose.nii.gz``         cumulative dose (Gy, float32) on the current dose grid
``previous_<n>_on_current.nii.gz`` each earlier dose after alignment, on the current grid (for review)
``accumulate.json``                treatments, alignment and registration checks, per-ROI statistics
``accumulate.csv``                 one row per ROI: current, earlier and cumulative mean doses, D70, V100
``accumulate.html``                the report (:mod:`dosimetry.report.accumulate_page`): first page with the
                                   three doses, cumulative dose over the current CT, per-ROI table, and the
                                   treatment course (dose and BED) when there is one
``course.csv``, ``course.html``    with ``--course`` or radiobiology options: per treatment and region the
                                   dose and BED, and the cumulative rows (``course`` in accumulate.json)
=================================  ==================================================================

Treatment course: ``--course COURSE.csv`` lists earlier treatments of any supported nuclide (Y-90, Lu-177),
one row per treatment (columns :data:`dosimetry.course.COURSE_CSV_COLUMNS`): a dose map (aligned like
``--previous``) or stated mean doses, with the Lu-177 effective half-life. Structural faults of the CSV (a
missing file, an unknown column, a number that does not parse) exit with 3; a row that is not a valid
treatment (unknown nuclide, Lu-177 without an effective half-life, no normal-liver dose) with 7.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
from pathlib import Path

from dosimetry.constants import ALPHA_BETA_LIVER_GY, ALPHA_BETA_TUMOR_GY, Y90_REPAIR_HALF_TIME_H
from dosimetry.errors import InputFileError, OptionsError
from dosimetry.export.output_guard import OVERWRITE_HELP, accumulate_input_paths, check_cli_output
from dosimetry.progress import stage
from dosimetry.cli.common import add_roi_options, date_type, load_roi_arguments, refuse_existing_out

_RADIOBIOLOGY_OPTIONS = {
    "alpha_beta_liver_gy": "alpha_beta_normal_liver_gy",
    "alpha_beta_tumor_gy": "alpha_beta_tumor_gy",
    "alpha_beta_lung_gy": "alpha_beta_lung_gy",
    "repair_half_time_h": ("repair_half_time_normal_liver_h", "repair_half_time_tumor_h"),
    "repair_half_time_lung_h": "repair_half_time_lung_h",
}


def _course_wanted(args) -> bool:
    return bool(args.course or args.current_date or args.radiobiology_source) or any(
        getattr(args, name) is not None for name in _RADIOBIOLOGY_OPTIONS
    )


def _radiobiology(args):
    from dosimetry.course import radiobiology_parameters

    values = {}
    for option, fields in _RADIOBIOLOGY_OPTIONS.items():
        value = getattr(args, option)
        for field in (fields,) if isinstance(fields, str) else fields:
            values[field] = value
    return radiobiology_parameters(**values, source=args.radiobiology_source)


OUTPUT_FILES = ("cumulative_dose.nii.gz", "accumulate.json", "accumulate.csv", "accumulate.html")


def add_parser(subparsers, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``accumulate`` subcommand to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    parser = subparsers.add_parser(
        "accumulate",
        parents=parents,
        help="add the doses of earlier treatments to the current dose",
        description="Bring earlier dose maps onto the current dose grid (rigid registration of their CTs to "
        "the current CT, checked), add them and report cumulative normal-liver and lung doses. "
        "The sum is of physical dose; --course (earlier treatments of other nuclides, e.g. Lu-177 PRRT) adds "
        "the BED of each treatment and the cumulative BED.",
    )
    inp = parser.add_argument_group("inputs")
    inp.add_argument(
        "--current",
        required=True,
        metavar="RUN_DIR|DOSE",
        help="the current dose: a 'dosimetry run' output folder (its dose.nii.gz) or a dose image "
        "(NIfTI/NRRD/MHA, or DICOM RT Dose .dcm), in Gy",
    )
    inp.add_argument(
        "--ct",
        metavar="CT",
        help="the current CT in HU (NIfTI/NRRD/MHA, or a DICOM folder with one CT "
        "series); default for a run folder: "
        "the CT recorded in its stats.json",
    )
    inp.add_argument(
        "--previous",
        action="append",
        default=[],
        metavar="DOSE[:CT]",
        help="an earlier Y-90 dose map (Gy; image or RT Dose), optionally with its CT for registration "
        "to the current CT (repeat for each earlier treatment); other nuclides: --course",
    )
    add_roi_options(inp, of="the current study")
    course = parser.add_argument_group(
        "treatment course and BED (earlier treatments of other nuclides, e.g. Lu-177 PRRT)",
        description="Any of these options adds the course: BED per treatment (decaying source) and "
        "cumulative dose and BED of normal liver, tumour and lung, summed with complete repair between "
        "treatments. --previous maps count as Y-90.",
    )
    course.add_argument(
        "--course",
        metavar="COURSE.csv",
        help="earlier treatments, one row each: label,nuclide,date,dose_map,ct,normal_liver_gy,tumor_gy,"
        "lung_gy,effective_half_life_h,effective_half_life_{normal_liver,tumor,lung}_h,half_life_source,cycles "
        "(nuclide and date required; a dose map or normal_liver_gy; Lu-177 needs effective_half_life_h; paths "
        "relative to the CSV; '#' lines are comments)",
    )
    course.add_argument(
        "--current-date", type=date_type("--current-date"), metavar="YYYY-MM-DD", help="day of the current treatment"
    )
    course.add_argument(
        "--alpha-beta-liver-gy",
        metavar="GY",
        help=f"alpha/beta of normal liver (default {ALPHA_BETA_LIVER_GY} Gy: Strigari 2010, Cremonesi 2014)",
    )
    course.add_argument(
        "--alpha-beta-tumor-gy",
        metavar="GY",
        help=f"alpha/beta of tumours (default {ALPHA_BETA_TUMOR_GY} Gy: Cremonesi 2014)",
    )
    course.add_argument(
        "--alpha-beta-lung-gy", metavar="GY", help="alpha/beta of lung (no default: no lung BED without it)"
    )
    course.add_argument(
        "--repair-half-time-h",
        metavar="H",
        help=f"repair half-time of normal liver and tumours (default {Y90_REPAIR_HALF_TIME_H} h: Strigari 2010, "
        "Cremonesi 2014)",
    )
    course.add_argument(
        "--repair-half-time-lung-h",
        metavar="H",
        help="repair half-time of lung (no default; with --alpha-beta-lung-gy)",
    )
    course.add_argument(
        "--radiobiology-source",
        metavar="TEXT",
        help="where the radiobiology values given here come from (recorded with each of them)",
    )
    reg = parser.add_argument_group("registration check")
    reg.add_argument(
        "--min-ncc",
        default=0.7,
        metavar="R",
        help="smallest accepted HU cross-correlation in the body after registration (default 0.7)",
    )
    reg.add_argument(
        "--min-overlap",
        default=0.5,
        metavar="F",
        help="smallest accepted fraction of the current body covered by the earlier CT (default 0.5)",
    )
    out = parser.add_argument_group("output")
    out.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist, unless --overwrite)")
    out.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    parser.set_defaults(command_function=command)
    return parser


def _split_previous(text: str) -> tuple[Path, Path | None]:
    """``DOSE[:CT]``; a path that exists as written is taken whole (it may contain ':')."""
    if Path(text).exists():
        return Path(text), None
    dose, sep, ct = text.rpartition(":")
    if not sep or not dose or not ct:
        raise InputFileError(f"--previous {text!r}: no such file; give an existing DOSE or DOSE:CT")
    return Path(dose), Path(ct)


def _current_inputs(args) -> tuple[Path, Path | None, list[str]]:
    current = Path(args.current)
    notes: list[str] = []
    ct = Path(args.ct) if args.ct else None
    if current.is_dir():
        dose = current / "dose.nii.gz"
        if not dose.is_file():
            raise InputFileError(
                f"{current}: no dose.nii.gz in this folder; give a 'dosimetry run' output folder or a dose file"
            )
        if ct is None and (current / "stats.json").is_file():
            try:
                inputs = json.loads((current / "stats.json").read_text())["inputs"]
            except (ValueError, KeyError, TypeError):
                inputs = {}
            recorded = (inputs.get("ct") or {}).get("file")
            dicom_folder = (inputs.get("dicom") or {}).get("folder")
            if recorded and Path(recorded).is_file():
                ct = Path(recorded)
                notes.append("current CT taken from the run's stats.json")
            elif dicom_folder and Path(dicom_folder).is_dir() and (inputs.get("dicom") or {}).get("ct"):
                ct = Path(dicom_folder)
                notes.append("current CT: the CT series of the DICOM study recorded in the run's stats.json")
        return dose, ct, notes
    return current, ct, notes


def _load_rois(args):
    if args.segment_role and not args.segmentation:
        raise OptionsError("--segment-role needs --segmentation")
    return load_roi_arguments(args)


def _write_csv(stats: dict, labels: list[str], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["name", "role", "volume_ml", "current_mean_gy"]
            + [f"{label}_mean_gy" for label in labels]
            + ["cumulative_mean_gy", "cumulative_D70", "cumulative_V100", "cumulative_max_gy"]
        )
        for e in stats["rois"]:
            c = e["cumulative"]
            writer.writerow(
                [e["name"], e["role"], f"{e['volume_ml']:.6g}", f"{e['current_mean_gy']:.6g}"]
                + [f"{v:.6g}" for v in e["previous_mean_gy"]]
                + [f"{c['mean_gy']:.6g}", f"{c['D70']:.6g}", f"{c['V100']:.6g}", f"{c['max_gy']:.6g}"]
            )


def write_accumulation(
    result,
    out_dir: str | os.PathLike,
    *,
    labels: list[str],
    inputs: dict,
    overwrite: bool = False,
    report_html: str | None = None,
) -> Path:
    """Write the files of an :class:`~dosimetry.accumulate.AccumulationResult` atomically (see module doc).

    Raises
    ------
    OutputError
        ``out_dir`` exists (without ``overwrite``) or cannot be written.
    """
    from dosimetry.io.images import write_nifti
    from dosimetry.export.output_guard import recorded_input_paths
    from dosimetry.export.results import json_safe, atomic_output_dir

    with atomic_output_dir(out_dir, overwrite=overwrite, inputs=recorded_input_paths(inputs)) as tmp:
        write_nifti(result.dose_gy, tmp / "cumulative_dose.nii.gz")
        for label, dose in zip(labels, result.previous_on_current):
            write_nifti(dose, tmp / f"{label}_on_current.nii.gz")
        record = {**result.stats, "inputs": inputs}
        (tmp / "accumulate.json").write_text(json.dumps(json_safe(record), indent=2) + "\n")
        _write_csv(result.stats, labels, tmp / "accumulate.csv")
        if "course" in result.stats:
            from dosimetry.course import write_course_csv
            from dosimetry.report.course_section import write_course_page

            write_course_csv(result.stats["course"], tmp / "course.csv")
            write_course_page(result.stats["course"], tmp / "course.html")
        if report_html is not None:
            (tmp / "accumulate.html").write_text(report_html, encoding="utf-8")
    return Path(out_dir)


def format_accumulation(stats: dict) -> str:
    """A short plain-text table of the cumulative ROI doses."""
    lines = [f"{'ROI':<24}{'role':<14}{'current Gy':>11}{'earlier Gy':>11}{'total Gy':>10}{'total D70':>10}"]
    for e in stats["rois"]:
        earlier = sum(e["previous_mean_gy"])
        lines.append(
            f"{e['name'][:23]:<24}{e['role']:<14}{e['current_mean_gy']:>11.1f}{earlier:>11.1f}"
            f"{e['cumulative']['mean_gy']:>10.1f}{e['cumulative']['D70']:>10.1f}"
        )
    for t in stats["treatments"][1:]:
        reg = t.get("registration")
        if reg:
            lines.append(
                f"{t['label']}: registered (NCC {reg['ncc']:.2f}, rotation {reg['rotation_deg']:.1f} deg, "
                f"translation {math.hypot(*reg['translation_mm']):.1f} mm)"
            )
        else:
            lines.append(f"{t['label']}: {t['alignment']}")
    lines.append(f"note: {stats['note']}")
    for w in stats["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def command(args) -> int:
    """Run ``dosimetry accumulate`` with parsed ``args``; returns the exit code (expected faults are raised)."""
    if not args.previous and not args.course:
        raise OptionsError("no earlier treatment given; give --previous DOSE[:CT] (Y-90 maps) or --course COURSE.csv")
    check_cli_output(args, [*accumulate_input_paths(args), args.course])
    out_dir = refuse_existing_out(args)
    with stage("start-up"):
        from dosimetry.accumulate import PreviousDose, accumulate_doses
        from dosimetry.io.run_folder import read_ct, read_dose, rois_of_dicom_run
        from dosimetry.libwarnings import library_warnings
    library_notes: list[str] = []
    with stage("load"), library_warnings(library_notes, during="reading the doses, CTs and ROIs"):
        # the course and its parameters first: a bad row or option stops the run before the images are read
        radiobiology = _radiobiology(args) if _course_wanted(args) else None
        course, course_records = [], []
        if args.course:
            from dosimetry.course import read_course_csv

            course, course_records = read_course_csv(args.course)
        dose_path, ct_path, notes = _current_inputs(args)
        current = read_dose(dose_path)
        current_ct = read_ct(ct_path) if ct_path is not None else None
        previous, labels, inputs_previous = [], [], []
        for n, text in enumerate(args.previous, start=1):
            dose_file, ct_file = _split_previous(text)
            label = f"previous_{n}"
            previous.append(PreviousDose(read_dose(dose_file), read_ct(ct_file) if ct_file else None, None, label))
            labels.append(label)
            inputs_previous.append({"label": label, "dose": str(dose_file), "ct": str(ct_file) if ct_file else None})
        labels += [t.label for t in course if t.dose_gy is not None]
        rois, warnings = _load_rois(args)
        if not rois:
            rois, study_notes = rois_of_dicom_run(Path(args.current))
            notes += study_notes
    with stage("accumulate"):
        result = accumulate_doses(
            current,
            previous,
            current_ct=current_ct,
            rois=rois,
            min_ncc=args.min_ncc,
            min_overlap=args.min_overlap,
            course=course,
            radiobiology=radiobiology,
            current_date=args.current_date,
        )
    result.stats["warnings"] = warnings + notes + library_notes + result.stats["warnings"]
    inputs = {
        "current_dose": str(dose_path),
        "current_ct": str(ct_path) if ct_path else None,
        "previous": inputs_previous,
        "rois": [{"name": r.name, "role": r.role.value, "source": r.source} for r in rois],
    }
    if args.course:
        inputs["course"] = {"file": str(args.course), "treatments": course_records}
    with stage("report"):
        from dosimetry.report.accumulate_page import accumulate_report_html

        run_stats = None
        if (Path(args.current) / "stats.json").is_file():
            try:
                run_stats = json.loads((Path(args.current) / "stats.json").read_text())
            except ValueError:
                run_stats = None
        report = accumulate_report_html(result, rois=rois, ct_hu=current_ct, run_stats=run_stats)
    with stage("write results"):
        write_accumulation(result, out_dir, labels=labels, inputs=inputs, overwrite=args.overwrite, report_html=report)
    if not args.quiet:
        print(format_accumulation(result.stats))
        if "course" in result.stats:
            from dosimetry.course import format_course

            print(format_course(result.stats["course"]))
        print(f"results: {out_dir.resolve()}")
    return 0


__all__ = ["OUTPUT_FILES", "add_parser", "command", "format_accumulation", "write_accumulation"]
