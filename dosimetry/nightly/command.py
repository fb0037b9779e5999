"""``dosimetry nightly --config FILE.toml [--dry-run] [--since YYYY-MM-DD] [--log-phi]``: one pass, then exit.

Exit codes: 0 the pass ran to its end (studies that failed are listed and kept in the ledger); 7 the
configuration is wrong (every fault in one line); 12 the PACS cannot be reached or stopped answering
(the ledger keeps the work for the next run); others as for ``dosimetry run``.
"""

from __future__ import annotations

import argparse
import logging
from datetime import date

from dosimetry.errors import OptionsError


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        from dosimetry.option_ranges import OptionValueError

        raise OptionValueError(OptionsError(f"--since: got {text!r}, expected a date like 2026-03-01")) from None


def register(subparsers, parents=()) -> argparse.ArgumentParser:
    """Add the ``nightly`` subcommand to the ``dosimetry`` command's subparsers (``parents``: -v/-q)."""
    parser = subparsers.add_parser(
        "nightly",
        parents=list(parents),
        help="one pass of the hospital's nightly job: PACS -> dosimetry -> PACS",
        description="Query the PACS (or an export folder) for new Y-90 studies, fetch them, compute them as "
        "'dosimetry run' does and store the RT Dose, SR, SEG and PDF report back into each study. "
        "One pass, then exit; run it from a systemd timer or cron (README: Nightly job).",
    )
    parser.add_argument("--config", required=True, metavar="FILE.toml", help="the job's configuration")
    parser.add_argument("--dry-run", action="store_true", help="query and print what would be done; change nothing")
    parser.add_argument(
        "--since",
        type=_date,
        metavar="YYYY-MM-DD",
        help="study dates from this day to today (default: [query] lookback_days)",
    )
    parser.add_argument(
        "--log-phi",
        action="store_true",
        help="name studies in the output by patient ID and name too (default: by a hash of the StudyInstanceUID only)",
    )
    return parser


def cmd_nightly(args) -> int:
    from dosimetry.nightly.config import load_config
    from dosimetry.nightly.job import NightlyPass

    # pynetdicom reports each network fault itself (our error line says it once) and its DEBUG output dumps
    # identifiers (patient name, ID): silent by default, warnings with -v/-vv, DEBUG only with --log-phi
    verbose = logging.getLogger().level < logging.WARNING
    logging.getLogger("pynetdicom").setLevel(
        logging.CRITICAL if not verbose else logging.NOTSET if args.log_phi else logging.WARNING
    )
    config = load_config(args.config)
    NightlyPass(config, log_phi=args.log_phi, say=lambda line: print(line, flush=True)).run(
        since=args.since, dry_run=args.dry_run
    )
    return 0
