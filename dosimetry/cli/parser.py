"""The parser of the ``dosimetry`` command: one subparser per subcommand module.

Building it imports no scientific library (numpy, scipy, SimpleITK, nibabel, numba, matplotlib,
pydicom, highdicom): ``dosimetry --help`` and ``dosimetry run --help`` answer at once, and each
subcommand imports what it needs when it runs (``tests/test_cli_package.py`` checks ``sys.modules``).
"""

from __future__ import annotations

import argparse

from dosimetry._version import __version__
from dosimetry.errors import EXIT_CODES
from dosimetry.cli import accumulate, batch, cohort, compare, inspect, nightly, run
from dosimetry.cli.common import QUIET_HELP, VERBOSE_HELP, Parser, range_checked, verbosity_parent

SUBCOMMANDS = (run, inspect, accumulate, compare, batch, cohort, nightly)
"""The modules of the subcommands, in the order of ``--help``; each has ``add_parser`` and ``command``."""


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``dosimetry`` and its subcommands; parsed args carry ``command_function``."""
    parser = Parser(
        prog="dosimetry",
        description="Voxel dosimetry of Y-90 radioembolization (SIRT/TARE).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="-v and -q may be given before or after the subcommand.\n\n"
        "exit codes:\n" + "\n".join(f"  {k:>3}  {v}" for k, v in EXIT_CODES.items()),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help=VERBOSE_HELP)
    parser.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parents = [verbosity_parent()]
    for module in SUBCOMMANDS:
        module.add_parser(sub, parents)
    return range_checked(parser)


__all__ = ["SUBCOMMANDS", "build_parser"]
