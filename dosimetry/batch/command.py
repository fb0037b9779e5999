"""``dosimetry batch ROOT --out OUT [batch options] [run options ...]``: the command, a thin layer over
:func:`dosimetry.batch.run_batch`.

The CLI calls :func:`register` (adds the subcommand) and :func:`cmd_batch` (runs it, returns the exit code).
Everything after ROOT is parsed here: the batch options below, and the rest as options of ``dosimetry run``,
validated by the run command's own parser before any work.
"""

from __future__ import annotations

import argparse
import math
import sys

from dosimetry.errors import INTERRUPTED_EXIT_CODE, OptionsError
from dosimetry.option_ranges import OptionValueError

INTERRUPTED_MESSAGE = (
    "error: interrupted; the finished cases are kept in OUT and no case is half-written: "
    "run the same command again to resume"
)

DESCRIPTION = """\
Run 'dosimetry run' on every case of a cohort: every DICOM study (StudyInstanceUID) under ROOT, or the rows of
--cases CASES.csv. Each case is written to OUT/<case_id>/ (exactly what 'dosimetry run' writes), with
OUT/summary.csv, OUT/cohort.csv and OUT/batch.json. A rerun skips the cases done with the same inputs, options
and version, recomputes changed ones, and retries failed ones only when their inputs changed or with
--retry-failed. Any option of 'dosimetry run' (e.g. --residual-fraction 0.03 --method kernel) applies to every
case; a column of the CSV overrides it for its case. Exit code 11: some cases failed (see OUT/summary.csv)."""


def _positive_int(option: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if not 1 <= value <= 1024:
            raise OptionValueError(OptionsError(f"{option}: got {text!r}, expected a whole number from 1 to 1024"))
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise OptionValueError(OptionsError(f"--case-timeout-s: got {text!r}, expected a number of seconds > 0"))
    return value


def _add_batch_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="OUT", help="output folder of the batch (created; reused to resume)")
    parser.add_argument(
        "--cases",
        metavar="CASES.csv",
        help="cases as CSV rows: case_id, study or activity (+ ct, roi, segmentation), run options",
    )
    parser.add_argument(
        "--workers",
        type=_positive_int("--workers"),
        default=1,
        metavar="N",
        help="cases at once on this machine (default 1); numba threads per case = cores / N",
    )
    parser.add_argument(
        "--dask-scheduler",
        metavar="ADDRESS",
        help="run each case as a task on this Dask distributed scheduler (tcp://HOST:PORT); "
        "inputs and OUT on a filesystem the workers share",
    )
    parser.add_argument("--retry-failed", action="store_true", help="run again the cases that failed before")
    parser.add_argument("--case-timeout-s", type=_seconds, metavar="S", help="kill a case running longer (failed)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar, only errors")


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``batch`` subcommand to the ``dosimetry`` command's subparsers."""
    parser = subparsers.add_parser(
        "batch",
        help="run every study of a folder (or a cases CSV), resumably",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("root", metavar="ROOT", help="folder of the studies (searched recursively)")
    _add_batch_options(parser)
    parser.add_argument(
        "run_options",
        nargs=argparse.REMAINDER,
        metavar="[run options ...]",
        help="options of 'dosimetry run' for every case",
    )
    return parser


class _Usage(Exception):
    pass


class _TailParser(argparse.ArgumentParser):
    def error(self, message):
        raise _Usage(message)


def _parse_tail(args) -> argparse.Namespace:
    """Batch options given after ROOT (argparse leaves them, with the run options, in ``run_options``)."""
    tail = _TailParser(prog="dosimetry batch", add_help=False, allow_abbrev=False)
    _add_batch_options(tail)
    rest = list(args.run_options)
    args.run_options = []
    namespace, unknown = tail.parse_known_args(rest, namespace=args)
    namespace.run_options = unknown
    return namespace


class _Display:
    """The progress bar (cases done, failed, ETA) on stderr, and a line per finished case (case ids only)."""

    def __init__(self, quiet: bool):
        from rich.console import Console

        self.quiet = quiet
        self.console = Console(stderr=True)
        self.progress = None
        self.failed = 0

    def start(self, total: int, to_compute: int) -> None:
        if self.quiet:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        kept = total - to_compute
        self.console.print(f"{total} case(s): {to_compute} to compute, {kept} done or failed before")
        if to_compute:
            self.progress = Progress(
                TextColumn("batch"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("failed {task.fields[failed]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self.task = self.progress.add_task("batch", total=to_compute, failed=0)
            self.progress.start()

    def case_finished(self, case_id: str, status: str, error: str) -> None:
        self.failed += status == "failed"
        if self.progress is not None:
            self.progress.update(self.task, advance=1, failed=self.failed)
            self.progress.console.print(f"{case_id}: {status}")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def _print_result(result, quiet: bool) -> None:
    failed = [row for row in result.summary if row["status"] == "failed"]
    if failed:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="failed cases", show_lines=False)
        for column in ("case", "exit", "error"):
            table.add_column(column, overflow="fold")
        for row in failed:
            table.add_row(row["case_id"], str(row["exit_code"]), row["error"])
        Console(stderr=True).print(table)
    if not quiet:
        c = result.counts
        print(
            f"{c['cases']} cases: {c['ok']} ok, {c['skipped']} skipped (done before), {c['failed']} failed; "
            f"summary: {result.out / 'summary.csv'}, cohort: {result.out / 'cohort.csv'}"
        )


def cmd_batch(args) -> int:
    """Run ``dosimetry batch`` from parsed arguments; returns the exit code (0, 11, or a batch fault's)."""
    from dosimetry.batch.api import run_batch

    try:
        args = _parse_tail(args)
    except OptionValueError as err:
        print(f"error: {err.error}", file=sys.stderr)
        return err.error.exit_code
    except _Usage as err:
        print(f"error: {err}; see 'dosimetry batch --help'", file=sys.stderr)
        return 2
    if not args.out:
        print("error: the following arguments are required: --out; see 'dosimetry batch --help'", file=sys.stderr)
        return 2
    display = _Display(args.quiet)
    try:
        result = run_batch(
            args.root,
            args.out,
            cases=args.cases,
            run_options=args.run_options,
            workers=args.workers,
            dask_scheduler=args.dask_scheduler,
            retry_failed=args.retry_failed,
            case_timeout_s=args.case_timeout_s,
            progress=display,
        )
    except KeyboardInterrupt:
        display.close()
        print(INTERRUPTED_MESSAGE, file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
    _print_result(result, args.quiet)
    return result.exit_code
