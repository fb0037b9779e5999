"""The ``dosimetry cohort`` command: tumour response of a cohort's lesions against their dose.

A thin layer over :func:`dosimetry.cohort.analyse_cohort` and :func:`dosimetry.cohort.write_cohort_analysis`
(imported inside :func:`command`). The criteria names are plain data here, checked against the API by a
test, so the parser imports no scientific library.
"""

from __future__ import annotations

import argparse

from dosimetry.export.output_guard import OVERWRITE_HELP, check_cli_output
from dosimetry.progress import stage
from dosimetry.cli.common import bad_value, refuse_existing_out

CRITERIA_CHOICES = ("recist11", "mrecist", "who", "easl")
"""The ``--criteria`` choices (:data:`dosimetry.cohort.criteria.CRITERIA`)."""
BOOTSTRAP_UNITS = ("patient", "lesion")
"""The ``--bootstrap-unit`` choices (:data:`dosimetry.cohort.dose_response.BOOTSTRAP_UNITS`)."""


def _count(option: str, low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise bad_value(option, text, f"a whole number >= {low}") from None
        if value < low:
            raise bad_value(option, text, f"a whole number >= {low}")
        return value

    parse.__name__ = "int"
    return parse


def _resamples(text: str) -> int:
    value = _count("--bootstrap", 0)(text)
    if 0 < value < 100:
        raise bad_value("--bootstrap", text, "0 (no confidence intervals) or at least 100 resamples")
    return value


def add_parser(subparsers, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``cohort`` subcommand to ``subparsers`` (from ``ArgumentParser.add_subparsers``)."""
    parser = subparsers.add_parser(
        "cohort",
        parents=parents,
        help="tumour response (RECIST 1.1, mRECIST, WHO, EASL) against lesion dose over a cohort",
        description="Classify each lesion and patient of RESPONSES.csv by the chosen response criteria and "
        "compare responders (CR, PR) with non-responders by lesion mean dose, D70 and BED from COHORT.csv "
        "(the cohort.csv of 'dosimetry batch'): ROC curve and AUC, Youden-optimal threshold with "
        "sensitivity/specificity, bootstrap 95% CIs, the doses below which no lesion and above which "
        "every lesion responded, a logistic fit. Writes lesions.csv, patients.csv, dose_response.json, "
        "PNG figures and cohort_analysis.html.",
    )
    parser.add_argument("cohort_csv", metavar="COHORT.csv", help="the cohort.csv written by 'dosimetry batch'")
    parser.add_argument(
        "--responses",
        required=True,
        metavar="RESPONSES.csv",
        help="one row per lesion and time point: case_id, roi, timepoint (baseline, follow-up) and the "
        "criteria's measurement (longest_diameter_mm, viable_diameter_mm, bidimensional_product_mm2 or "
        "enhancing_area_mm2) or a given category in 'response'",
    )
    parser.add_argument(
        "--criteria",
        required=True,
        choices=CRITERIA_CHOICES,
        help="response criteria: RECIST 1.1 (Eisenhauer 2009), mRECIST (Lencioni 2010), WHO (Miller 1981), "
        "EASL (Bruix 2001)",
    )
    stats = parser.add_argument_group("statistics")
    stats.add_argument(
        "--bootstrap",
        type=_resamples,
        default=1000,
        metavar="N",
        help="bootstrap resamples for the 95%% CIs of the AUC and the threshold (default 1000; 0: none)",
    )
    stats.add_argument(
        "--bootstrap-unit",
        choices=BOOTSTRAP_UNITS,
        default="patient",
        help="resample whole patients (default: their lesions are correlated) or single lesions",
    )
    stats.add_argument("--seed", type=_count("--seed", 0), default=0, metavar="N", help="bootstrap seed (default 0)")
    out = parser.add_argument_group("output")
    out.add_argument("--out", required=True, metavar="DIR", help="output folder (must not exist, unless --overwrite)")
    out.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    parser.set_defaults(command_function=command)
    return parser


def _ci(pair, fmt: str) -> str:
    return "" if pair is None else f" [{pair[0]:{fmt}}, {pair[1]:{fmt}}]"


def format_analysis(result) -> str:
    """A short plain-text summary of a :class:`~dosimetry.cohort.CohortAnalysis`."""
    summary = result.to_dict()
    cats = summary["lesions"]["categories"]
    pcats = summary["patients"]["categories"]
    lines = [
        f"{result.criterion.name}: {summary['lesions']['n']} lesions "
        + " ".join(f"{k} {v}" for k, v in cats.items())
        + f"; {summary['patients']['n']} patients "
        + " ".join(f"{k} {v}" for k, v in pcats.items()),
    ]
    for m in result.metrics.values():
        line = (
            f"{m.label}: AUC {m.auc:.3f}{_ci(m.auc_ci95, '.3f')}; Youden threshold {m.threshold_gy:.1f} Gy"
            f"{_ci(m.threshold_ci95_gy, '.1f')} (sensitivity {m.sensitivity:.2f}, specificity {m.specificity:.2f}); "
            f"none responded below {m.no_response_below_gy:.1f} Gy, all above {m.all_response_above_gy:.1f} Gy"
        )
        if m.logistic.d50_gy is not None:
            line += f"; logistic D50 {m.logistic.d50_gy:.1f} Gy{_ci(m.logistic.d50_ci95_gy, '.1f')}"
        lines.append(line)
    lines += [f"note: {n}" for n in result.notes]
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines)


def command(args) -> int:
    """Run ``dosimetry cohort`` with parsed ``args``; returns the exit code (expected faults are raised)."""
    check_cli_output(args, [args.cohort_csv, args.responses])
    out_dir = refuse_existing_out(args)
    with stage("start-up"):
        from dosimetry.cohort import analyse_cohort, write_cohort_analysis
    result = analyse_cohort(
        args.cohort_csv,
        args.responses,
        criteria=args.criteria,
        n_bootstrap=args.bootstrap,
        bootstrap_unit=args.bootstrap_unit,
        seed=args.seed,
    )
    with stage("write results"):
        write_cohort_analysis(result, out_dir, overwrite=args.overwrite)
    if not args.quiet:
        print(format_analysis(result))
        print(f"results: {out_dir.resolve()}")
    return 0


__all__ = ["BOOTSTRAP_UNITS", "CRITERIA_CHOICES", "add_parser", "command", "format_analysis"]
