"""The options of ``dosimetry run`` as a batch sees them: tokens grouped by option, CSV columns, validation.

A batch forwards run options to every case as command-line tokens, so a case runs exactly what
``dosimetry run`` runs. The tokens are grouped by option (:func:`group_tokens`) so that a column of the
cases CSV can replace one option for one case (:func:`merge`); the run command's own parser (``build_parser``
of :mod:`dosimetry.cli`, the only name used from there with ``main``) decides what is valid.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from functools import lru_cache

from dosimetry.errors import OptionsError
from dosimetry.option_ranges import OptionValueError

BATCH_MANAGED = frozenset({"study", "out", "overwrite", "quiet", "help"})
"""Dests of ``run`` that the batch sets itself for each case (the input folder, ``--out``)."""

INPUT_DESTS = frozenset({"activity", "ct", "roi", "segmentation"})
"""Dests of ``run`` that name input files: per case only (CSV columns), never for the whole batch."""


class UsageError(OptionsError):
    """A token that is no option of the batch or of ``dosimetry run`` (exit 2, as any usage error)."""

    exit_code = 2


Groups = list[tuple[str, list[str]]]
"""Run options as ``[(dest, tokens), ...]``, e.g. ``[("method", ["--method", "kernel"])]``."""


@lru_cache(maxsize=1)
def run_parser() -> argparse.ArgumentParser:
    """The ``run`` subcommand's parser of the ``dosimetry`` command."""
    from dosimetry.cli import build_parser

    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices["run"]
    raise RuntimeError("the dosimetry command has no 'run' subcommand")  # pragma: no cover


def _actions() -> dict[str, argparse.Action]:
    """Option string -> action of every run option the batch may forward (inputs included)."""
    return {
        opt: action
        for action in run_parser()._actions
        for opt in action.option_strings
        if action.dest not in BATCH_MANAGED
    }


def _takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0


def column_actions() -> dict[str, argparse.Action]:
    """CSV column name -> run action: each long option without its dashes, ``-`` as ``_``."""
    return {opt[2:].replace("-", "_"): action for opt, action in _actions().items() if opt.startswith("--")}


def group_tokens(tokens: Sequence[str], *, where: str = "the command line") -> Groups:
    """Split run-option tokens into one group per occurrence of an option.

    Raises
    ------
    OptionsError
        A token that is no run option, a value without its option, an option without its value, or an
        input option (``--activity``, ``--ct``, ``--roi``, ``--segmentation``) given to the whole batch.
    """
    actions = _actions()
    groups: Groups = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        name, eq, inline = token.partition("=") if token.startswith("--") else (token, "", "")
        action = actions.get(name)
        if action is None:
            if token in ("--out", "--overwrite", "-q", "--quiet"):
                raise OptionsError(
                    f"{token} is not a batch option: each case is written to OUT/<case_id>; "
                    "see 'dosimetry batch --help'"
                )
            what = "option" if token.startswith("-") else "argument"
            raise UsageError(
                f"{where}: unknown {what} {token!r}: give batch options and options of "
                "'dosimetry run'; see 'dosimetry batch --help' and 'dosimetry run --help'"
            )
        if action.dest in INPUT_DESTS:
            raise OptionsError(
                f"{name} names an input file: give inputs per case, in the columns of --cases "
                "CASES.csv (study, activity, ct, roi, segmentation)"
            )
        if not _takes_value(action):
            if eq:
                raise OptionsError(f"{where}: {name} takes no value (got {token!r})")
            groups.append((action.dest, [name]))
            i += 1
        elif eq:
            groups.append((action.dest, [name, inline]))
            i += 1
        elif i + 1 < len(tokens):
            groups.append((action.dest, [name, tokens[i + 1]]))
            i += 2
        else:
            raise UsageError(f"{where}: {name} needs a value; see 'dosimetry run --help'")
    return groups


TRUE_WORDS = frozenset({"1", "true", "yes", "y", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "n", "off"})


def cell_tokens(column: str, cell: str) -> tuple[str, list[str]] | None:
    """The run tokens of one non-empty CSV cell (``None`` for a false flag).

    Repeatable options (``series``, ``segment_role``, ``threshold_set``, ...) take several values separated
    by ``;``. A flag (``allow_roi_outside``, ``pdf``) takes true/false, yes/no or 1/0.

    Raises
    ------
    OptionsError
        ``column`` names no run option, or a flag's value is not a truth value.
    """
    action = column_actions()[column]
    option = "--" + column.replace("_", "-")
    if not _takes_value(action):
        word = cell.strip().lower()
        if word in TRUE_WORDS:
            return action.dest, [option]
        if word in FALSE_WORDS:
            return None
        raise OptionsError(f"column {column}: got {cell!r}, expected true or false")
    values = [v.strip() for v in cell.split(";")] if isinstance(action, argparse._AppendAction) else [cell.strip()]
    tokens: list[str] = []
    for value in values:
        if value:
            tokens += [option, value]
    return action.dest, tokens


def merge(base: Groups, overrides: dict[str, list[str] | None]) -> Groups:
    """``base`` with every option named in ``overrides`` replaced (``None``: removed) for one case."""
    merged = [(dest, tokens) for dest, tokens in base if dest not in overrides]
    merged += [(dest, tokens) for dest, tokens in overrides.items() if tokens]
    return merged


def flatten(groups: Iterable[tuple[str, list[str]]]) -> list[str]:
    return [token for _, tokens in groups for token in tokens]


def validate(argv: Sequence[str]) -> None:
    """Parse ``dosimetry run <argv> --out X`` with the run command's parser, without running anything.

    Raises
    ------
    OptionsError
        An option value out of range or unparsable, or a usage error, with the parser's message.
    """
    try:
        run_parser().parse_args([*argv, "--out", "_batch_validation_"])
    except OptionValueError as err:
        raise OptionsError(str(err.error)) from None
    except SystemExit as err:  # --help inside the run options
        raise OptionsError("--help is not a run option of a batch; see 'dosimetry batch --help'") from err
    except Exception as err:  # the run parser's usage error (its own class, private to the CLI)
        if isinstance(err, OptionsError):
            raise
        message = str(err)
        if message.startswith("argument "):
            message = message[len("argument ") :]
        raise OptionsError(message) from None
