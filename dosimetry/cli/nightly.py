"""``dosimetry nightly``: the command line of :mod:`dosimetry.nightly` (its parser and command live in
:mod:`dosimetry.nightly.command`, next to the job they drive; this module plugs them into the CLI)."""

from __future__ import annotations

import argparse


def add_parser(subparsers, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``nightly`` subcommand to ``subparsers``."""
    from dosimetry.nightly.command import register  # light: argparse only

    parser = register(subparsers, parents)
    parser.set_defaults(command_function=command)
    return parser


def command(args) -> int:
    """Run one pass of ``dosimetry nightly`` with parsed ``args``; returns the exit code."""
    from dosimetry.nightly.command import cmd_nightly

    return cmd_nightly(args)
