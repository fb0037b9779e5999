"""Errors raised for expected faults in the input, each with a distinct command-line exit code.

Every message says what was found, what was expected and how to fix it, on one line. The command line
prints ``error: <message>`` and exits with :attr:`DosimetryError.exit_code`; library users catch the class
(or the matching builtin it also inherits, e.g. ``ValueError``).
"""

from __future__ import annotations


class DosimetryError(Exception):
    """Base class of every expected fault (bad input, bad options).

    The package raises only the subclasses below; exit code 10 is kept for a ``DosimetryError`` raised
    as such (e.g. by code built on the package), an expected fault that fits none of them.
    """

    exit_code: int = 10


class InputFileError(DosimetryError, FileNotFoundError):
    """An input file is missing, unreadable or not of the expected format."""

    exit_code = 3


class GeometryError(DosimetryError, ValueError):
    """Grids that do not fit: an ROI outside the image, a bad affine, mismatched frames of reference."""

    exit_code = 4


class UnitsError(DosimetryError, ValueError):
    """Image units, calibration or timing that cannot give an absolute activity."""

    exit_code = 5


class RoiError(DosimetryError, ValueError):
    """An ROI specification that cannot be used: unknown role, empty mask, missing liver, ..."""

    exit_code = 6


class OptionsError(DosimetryError, ValueError):
    """Options that contradict each other or are out of range."""

    exit_code = 7


class OutputError(DosimetryError, OSError):
    """The output location cannot be written (exists already, no permission)."""

    exit_code = 8


class PacsUnreachableError(DosimetryError, ConnectionError):
    """The PACS does not answer (no association, aborted, timed out): the nightly job stops, work is kept."""

    exit_code = 12


PACS_UNREACHABLE_EXIT_CODE = PacsUnreachableError.exit_code
"""Exit code of ``dosimetry nightly`` when the PACS cannot be reached (at the start or in the middle of a run)."""

INTERRUPTED_EXIT_CODE = 130
"""Exit code after Ctrl-C (SIGINT), the shell's 128 + 2."""

CASES_FAILED_EXIT_CODE = 11
"""Exit code of ``dosimetry batch`` when the batch ran but some of its cases failed (see OUT/summary.csv)."""

TERMINATED_EXIT_CODE = 143
"""Exit code after SIGTERM (``kill``, a batch system's time limit), the shell's 128 + 15."""

EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "unexpected internal error (a bug: please report it with the traceback)",
    2: "command-line usage error (unknown option, missing argument; see --help)",
    InputFileError.exit_code: "input file missing, unreadable or of the wrong format",
    GeometryError.exit_code: "geometry: grids or ROIs that do not fit together (e.g. an ROI over 20% outside the image)",
    UnitsError.exit_code: "units, calibration, timing or the emission nuclide cannot give a Y-90 dose (e.g. a Lu-177 image)",
    RoiError.exit_code: "ROI specification (role, name, empty mask, missing liver)",
    OptionsError.exit_code: "options out of range, unparsable or contradicting each other; output folder exists",
    OutputError.exit_code: "output cannot be written",
    DosimetryError.exit_code: "other expected fault (not raised by the package itself; reserved for extensions)",
    CASES_FAILED_EXIT_CODE: "batch: some cases failed (the others are complete; see OUT/summary.csv)",
    PACS_UNREACHABLE_EXIT_CODE: "nightly: the PACS cannot be reached or stopped answering (the ledger keeps the work for the next run)",
    INTERRUPTED_EXIT_CODE: "interrupted (Ctrl-C); no output was written",
    TERMINATED_EXIT_CODE: "terminated (SIGTERM); no output was written",
}
"""Every exit code of the ``dosimetry`` command and its meaning (printed by ``--help`` and in README)."""
