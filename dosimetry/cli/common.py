"""What the subcommands share: the parser class, option types (dates, NAME=ROLE), -v/-q, ROI options.

Only the standard library and small modules of the package are imported here: the parser of every
subcommand is built without numpy, SimpleITK, numba or matplotlib (see :mod:`dosimetry.cli`).
"""

from __future__ import annotations

import argparse
from datetime import date, datetime
from pathlib import Path

from dosimetry.errors import OptionsError
from dosimetry.option_ranges import BY_OPTION, OptionValueError, option_type


class UsageError(Exception):
    """An argparse usage error, reported by :func:`dosimetry.cli.main` as one line (exit 2, or 7 for a value)."""

    def __init__(self, message: str, prog: str):
        super().__init__(message)
        self.prog = prog


class Parser(argparse.ArgumentParser):
    """argparse without its usage dump: errors go to :func:`dosimetry.cli.main` as :class:`UsageError`."""

    def error(self, message):
        raise UsageError(message, self.prog)


def bad_value(option: str, text: str, expected: str) -> OptionValueError:
    """The error of an unparsable value: one line, exit code 7 (see :mod:`dosimetry.option_ranges`)."""
    return OptionValueError(OptionsError(f"{option}: got {text!r}, expected {expected}"))


def _iso_type(option: str, convert, name: str, expected: str):
    """argparse ``type`` that converts with ``convert`` (a ``fromisoformat``); one line naming ``option``."""

    def parse(text: str):
        try:
            return convert(text)
        except ValueError:
            raise bad_value(option, text, expected) from None

    parse.__name__ = name
    return parse


def date_type(option: str):
    """argparse ``type`` of a day ``YYYY-MM-DD``."""
    return _iso_type(option, date.fromisoformat, "date", "a date YYYY-MM-DD, e.g. 2026-03-01")


def datetime_type(option: str):
    """argparse ``type`` of an ISO 8601 date-time option."""
    return _iso_type(option, datetime.fromisoformat, "datetime", "an ISO 8601 date-time like 2026-03-01T10:30")


def name_role(text: str) -> tuple[str, str]:
    """argparse ``type`` of ``--segment-role NAME=ROLE`` (the last '=' splits, so names may contain '=')."""
    name, sep, role = text.rpartition("=")
    if not sep or not name.strip() or not role.strip():
        raise bad_value("--segment-role", text, "SEGMENT=ROLE, e.g. 'Segment 7=tumor' or 'Vessels=ignore'")
    return name, role


def range_checked(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give every numeric option of ``parser`` and its subcommands the type of :mod:`..option_ranges`.

    Options added anywhere (clinical, accumulate) are covered, so one table decides every range.
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                range_checked(sub)
        for option in action.option_strings:
            if option in BY_OPTION:
                action.type = option_type(option)
    return parser


VERBOSE_HELP = (
    "-v: one line per stage on stderr when it is not a terminal (a terminal shows progress bars "
    "anyway) and INFO messages; -vv: debugging messages"
)
QUIET_HELP = "print nothing but errors: no progress display, no summary"


def verbosity_parent() -> argparse.ArgumentParser:
    """-v/-q as accepted after a subcommand (``dosimetry run -v``).

    The main parser has the same options (``dosimetry -v run``) with the destinations ``verbose`` and
    ``quiet``; these have their own (``sub_verbose``, ``sub_quiet``) so that neither overwrites the other,
    and :func:`merge_verbosity` adds them up.
    """
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("messages")
    group.add_argument("-v", "--verbose", dest="sub_verbose", action="count", default=0, help=VERBOSE_HELP)
    group.add_argument("-q", "--quiet", dest="sub_quiet", action="store_true", help=QUIET_HELP)
    return parent


def merge_verbosity(args: argparse.Namespace) -> argparse.Namespace:
    """-v/-q given before and after the subcommand count together; -q with -v is refused (exit 7)."""
    args.verbose = getattr(args, "verbose", 0) + getattr(args, "sub_verbose", 0)
    args.quiet = bool(getattr(args, "quiet", False) or getattr(args, "sub_quiet", False))
    for name in ("sub_verbose", "sub_quiet"):
        if hasattr(args, name):
            delattr(args, name)
    if args.quiet and args.verbose:
        raise OptionsError("-q and -v contradict each other; give one of them")
    return args


def add_roi_options(group, *, of: str, segment_role_help: str = "set the role of a segment of --segmentation") -> None:
    """``--roi``, ``--segmentation`` and ``--segment-role`` (``of``: whose ROIs, for the help)."""
    group.add_argument(
        "--roi",
        action="append",
        default=[],
        metavar="ROLE[:NAME]=PATH",
        help=f"an ROI mask of {of}; ROLE is liver, tumor, lung, perfused or other (repeat for each ROI)",
    )
    group.add_argument(
        "--segmentation",
        action="append",
        default=[],
        metavar="FILE.seg.nrrd",
        help=f"a 3D Slicer segmentation of {of}; roles are inferred from segment names",
    )
    group.add_argument(
        "--segment-role",
        action="append",
        default=[],
        type=name_role,
        metavar="SEGMENT=ROLE",
        help=segment_role_help,
    )


def refuse_existing_out(args) -> Path:
    """``--out`` as a Path; an existing one without ``--overwrite`` is refused (exit 7) before any work."""
    out_dir = Path(args.out)
    if out_dir.exists() and not args.overwrite:
        raise OptionsError(f"{out_dir} exists already; choose another --out or add --overwrite")
    return out_dir


def load_roi_arguments(args) -> tuple[list, list[str]]:
    """ROIs of ``--roi`` and ``--segmentation`` (with ``--segment-role``), and the notes of reading them.

    The notes (e.g. a 4-D mask read as 3-D, unknown segment names) belong in the run's warnings: the
    commands pass them on as ``extra_warnings``. Without a DICOM study, every ``--segment-role`` name must
    be a segment of a ``--segmentation`` file (else OptionsError listing the segments), checked before
    anything is computed.
    """
    from dosimetry.io.roi_files import parse_roi_spec, read_mask_roi, read_slicer_segmentation, slicer_segment_names

    overrides = dict(args.segment_role)
    if overrides and not getattr(args, "study", None):
        names = [name for seg in args.segmentation for name in slicer_segment_names(seg)]
        check_override_names(overrides, names)
    rois: list = []
    notes: list[str] = []
    for spec in args.roi:
        role, name, path = parse_roi_spec(spec)
        rois.append(read_mask_roi(path, role, name, notes=notes))
    for seg in args.segmentation:
        seg_rois, seg_warnings = read_slicer_segmentation(seg, role_overrides=overrides, warn_unknown=False)
        rois.extend(seg_rois)
        notes.extend(seg_warnings)
    return rois, notes


def check_override_names(overrides: dict[str, str], names) -> None:
    """Every ``--segment-role`` name is one of ``names`` (case and spaces aside), else OptionsError."""
    known = {name.strip().lower() for name in names}
    unknown = sorted(k for k in overrides if k.strip().lower() not in known)
    if unknown:
        raise OptionsError(
            f"--segment-role names no segment or structure: {', '.join(map(repr, unknown))}; "
            f"the names are: {', '.join(map(repr, sorted(set(names)))) or 'none'}"
        )


__all__ = [
    "Parser",
    "UsageError",
    "add_roi_options",
    "date_type",
    "bad_value",
    "check_override_names",
    "datetime_type",
    "load_roi_arguments",
    "merge_verbosity",
    "name_role",
    "range_checked",
    "refuse_existing_out",
    "verbosity_parent",
]
