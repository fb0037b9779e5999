"""The ``dosimetry`` command: a thin layer that turns options into a call of the Python API.

One module per subcommand (:mod:`.run`, :mod:`.inspect`, :mod:`.accumulate`), each with ``add_parser``
and ``command``; :mod:`.parser` puts them together, :mod:`.common` holds what they share and
:mod:`.progress_display` shows the progress of the API's stages. Building the parser imports no
scientific library; each command imports the API when it runs.

Exit codes are listed in :data:`dosimetry.errors.EXIT_CODES` (and README.md). Expected faults print one
line, ``error: ...``, and no traceback; only bugs print a traceback (exit code 1). Ctrl-C (SIGINT) and
SIGTERM at any moment end the command with one line and exit code 130 or 143; the output folder appears
only complete (it is written to a temporary folder and renamed), so nothing partial is left.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path

from dosimetry import progress
from dosimetry.errors import INTERRUPTED_EXIT_CODE, TERMINATED_EXIT_CODE, DosimetryError, OptionsError
from dosimetry.option_ranges import OptionValueError
from dosimetry.option_names import command_line_vocabulary
from dosimetry.cli.common import UsageError, merge_verbosity
from dosimetry.cli.parser import build_parser

# Only the standard library and small modules of our own above: numpy, SimpleITK, numba and matplotlib
# are imported by the commands, where Ctrl-C is answered with one line (see main).

log = logging.getLogger("dosimetry")

INTERRUPTED_MESSAGE = "error: interrupted; no output was written"
TERMINATED_MESSAGE = "error: terminated (SIGTERM); no output was written"


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt so that every clean-up runs."""


def _on_signal(signum, frame):
    # one signal ends the command; a second one must not interrupt the clean-up of the first
    for other in (signal.SIGINT, signal.SIGTERM):
        signal.signal(other, signal.SIG_IGN)
    kind = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    progress.note_interrupt(kind)  # raised again between chunks if something swallows this one
    raise kind()


def _install_signal_handlers() -> dict | None:
    """SIGINT and SIGTERM raise in the main thread (a signal ignored by the parent stays ignored)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        handler = signal.signal(signum, _on_signal)
        previous[signum] = handler
        if handler == signal.SIG_IGN:
            signal.signal(signum, handler)
    return previous


class _StderrHandler(logging.Handler):
    """Log records to the current ``sys.stderr`` (which the live progress display redirects above itself)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never break the command
            self.handleError(record)


def _configure_logging(verbose: int) -> None:
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG)
    # pydicom's and highdicom's INFO records (each attribute module highdicom copies, with the SOP Instance
    # UID it copies from) are library detail, and UIDs identify a patient's images: shown with -vv only
    from dosimetry.libwarnings import LIBRARY_LOGGERS

    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if verbose < 2 else logging.DEBUG)


def _folder_identity(path: Path | None):
    try:
        st = os.stat(path) if path is not None else None
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if st else None


def _parse(argv: list[str] | None):
    """Parsed arguments, or the exit code of a usage error or of --help/--version (printed here)."""
    parser = build_parser()
    try:
        return merge_verbosity(parser.parse_args(argv))
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0)
    except OptionValueError as err:  # a value out of range or unparsable (option_ranges, NAME=ROLE, dates)
        print(f"error: {err.error}", file=sys.stderr)
        return err.error.exit_code
    except OptionsError as err:  # -q with -v
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except UsageError as err:
        message = str(err)
        if message.startswith("argument ") and ": invalid choice: " in message:  # a value, not the usage
            print(f"error: {message[len('argument ') :]}", file=sys.stderr)
            return OptionsError.exit_code
        print(f"error: {message}; see '{err.prog} --help'", file=sys.stderr)
        return 2


def _main(argv: list[str] | None, state: dict) -> int:
    args = _parse(argv)
    if isinstance(args, int):
        return args
    args.own_process = state.get("console", False)  # the process is this command's alone (see main)
    out = getattr(args, "out", None)
    state["out"] = Path(out) if out else None
    state["out_before"] = _folder_identity(state["out"])
    _configure_logging(args.verbose)
    from dosimetry.cli.progress_display import progress_display

    try:
        with progress_display(quiet=args.quiet, verbose=args.verbose), command_line_vocabulary():
            return args.command_function(args)
    except DosimetryError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


def _interrupted(state: dict, terminated: bool) -> int:
    out = state.get("out")
    identity = _folder_identity(out)
    what = "terminated (SIGTERM)" if terminated else "interrupted"
    if identity is not None and identity != state.get("out_before"):  # renamed into place just before
        print(f"error: {what} after the results were written to {out}; they are complete", file=sys.stderr)
    else:
        print(TERMINATED_MESSAGE if terminated else INTERRUPTED_MESSAGE, file=sys.stderr)
    return TERMINATED_EXIT_CODE if terminated else INTERRUPTED_EXIT_CODE


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (see :data:`~dosimetry.errors.EXIT_CODES`).

    Ctrl-C (SIGINT) or SIGTERM at any moment of the command, including while the scientific libraries are
    imported and inside the compiled dose loops (which return to Python between chunks), prints one line
    and returns 130 (SIGINT) or 143 (SIGTERM); temporary output is removed on the way out. A second signal
    during that clean-up is ignored. With ``argv`` None (the console command), a signal after the command
    has finished is ignored too, and an interrupted command ends the process at once (``os._exit``, after
    its clean-up) instead of returning; otherwise the previous handlers are restored.
    """
    console = argv is None
    state: dict = {"console": console}
    previous = None
    progress.clear_interrupt()
    try:
        try:
            previous = _install_signal_handlers()
            if console:  # a process of its own: large freed arrays are reused, not unmapped (see allocator.py)
                from dosimetry.allocator import keep_freed_memory

                keep_freed_memory()
            return _main(argv, state)
        finally:
            if previous is not None:
                for signum, handler in previous.items():
                    # done: in the console a late signal must not turn a finished command into a traceback
                    signal.signal(signum, signal.SIG_IGN if console else handler)
    except KeyboardInterrupt as exc:
        progress.clear_interrupt()
        code = _interrupted(state, terminated=isinstance(exc, Terminated))
        if console:
            _exit_now(code)
        return code


def _exit_now(code: int) -> None:
    """End the process at once: the clean-up of the run is done (temporary folders are removed as the
    interruption unwinds), and the interpreter's own shutdown (numba's and the FFT's thread pools, LLVM)
    can take over a second on a busy machine."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


__all__ = ["INTERRUPTED_MESSAGE", "TERMINATED_MESSAGE", "Terminated", "build_parser", "main"]
