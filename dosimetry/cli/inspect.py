"""``dosimetry inspect``: the studies and series of a DICOM folder, over :func:`dosimetry.dicom.inventory`.

pydicom and highdicom warnings met while scanning are not printed as they come (file names and line
numbers of site-packages): :func:`~dosimetry.libwarnings.library_warnings` turns the meaningful ones into
``warning: ...`` lines below the table, as ``run`` does in its summary.
"""

from __future__ import annotations

import argparse

from dosimetry.progress import stage


def add_parser(subparsers, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``inspect`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "inspect",
        parents=parents,
        help="list the DICOM series of a folder and what each is",
        description="Scan a folder recursively and print its studies and series: kind, modality, date, number "
        "of images, description, nuclide and UID. With -q, only the table (no warnings).",
    )
    parser.add_argument("folder", metavar="DIR")
    parser.set_defaults(command_function=command)
    return parser


def command(args) -> int:
    """Run ``dosimetry inspect`` with parsed ``args``; returns the exit code (expected faults are raised)."""
    with stage("start-up"):
        from dosimetry.dicom import format_inventory, inventory
        from dosimetry.libwarnings import library_warnings
    notes: list[str] = []
    with stage("scan"), library_warnings(notes, during="reading the DICOM folder"):
        records = inventory(args.folder)
    print(format_inventory(records))
    if not args.quiet:
        for note in notes:
            print(f"warning: {note}")
    return 0


__all__ = ["add_parser", "command"]
