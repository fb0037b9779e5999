"""``dosimetry batch``: the command line of :mod:`dosimetry.batch` (its parser and command live there, in
:mod:`dosimetry.batch.command`, next to the engine they drive; this module plugs them into the CLI)."""

from __future__ import annotations

import argparse


def add_parser(subparsers, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``batch`` subcommand (its own ``-q``; ``-v``/``-q`` before the subcommand work as for any)."""
    from dosimetry.batch.command import register  # light: argparse and the option ranges only

    parser = register(subparsers)
    parser.set_defaults(command_function=command)
    return parser


def command(args) -> int:
    """Run ``dosimetry batch`` with parsed ``args``; returns the exit code (0, 11, or a batch fault's)."""
    from dosimetry.batch.command import cmd_batch

    return cmd_batch(args)
