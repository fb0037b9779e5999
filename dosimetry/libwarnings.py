"""pydicom and highdicom warnings turned into the run's own warnings, or silenced where harmless.

pydicom reports a header value that breaks its VR both with ``warnings.warn`` and on its logger
(``pydicom.misc.warn_and_log``), highdicom warns about the data it is given; printed as they are, these
reach the user as library noise with file names and line numbers of site-packages. Around reading and
each export, :func:`library_warnings` records them, drops the harmless ones (:data:`HARMLESS`, each
with the reason) to the debug log, and turns every other one into one line in the run's warnings.

The standard ``warnings`` machinery is process-wide: this context manager is not thread-safe (neither
is ``warnings.catch_warnings``); studies run in parallel in separate processes.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("dosimetry")

LIBRARY_LOGGERS = ("pydicom", "highdicom")

HARMLESS: tuple[tuple[re.Pattern, str], ...] = (
    (
        re.compile(r"The value length \(\d+\) exceeds the maximum length"),
        "a source value longer than its VR allows: reading keeps it as it is, and the exports fit every value "
        "they copy and say so (dosimetry.export.vr)",
    ),
    (
        re.compile(
            r"(Invalid value for VR|Value .* is not valid for VR|is an invalid value for|"
            r"contains characters not allowed)"
        ),
        "a source value that breaks its VR: the values used are parsed by our own code, which refuses or notes "
        "what it cannot use; the exports fit every value they copy",
    ),
    (
        re.compile(
            r"Expected explicit VR, but found implicit VR|The VR .* is unknown|"
            r"Unknown VR|VR of 'UN'"
        ),
        "an encoding irregularity pydicom has already recovered from (the values are read correctly)",
    ),
    (
        re.compile(r"Invalid value for (Specific Character Set|SpecificCharacterSet)|Unknown encoding"),
        "an unusual character set: pydicom falls back to its default encoding; names are not used in the dose",
    ),
)
"""(pattern, reason) of library messages that change nothing in the results."""


class _Collect(logging.Filter):
    """Keeps the WARNING records of a library logger in a list instead of passing them on."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        self.messages.append(record.getMessage())
        return False


def harmless_reason(message: str) -> str | None:
    """Why a library message can be dropped, or None when it must be reported."""
    for pattern, reason in HARMLESS:
        if pattern.search(message):
            return reason
    return None


@contextmanager
def library_warnings(notes: list[str], *, during: str) -> Iterator[None]:
    """Record library warnings and log records in the ``with`` block; append the meaningful ones to ``notes``.

    Parameters
    ----------
    notes : list of str
        The run's warnings; each meaningful library message is appended once, as
        ``"<during>: <first line of the message>"``.
    during : str
        What the block does ("reading the DICOM study", "rtdose.dcm export"), to start each note.
    """
    filters = [(logging.getLogger(name), _Collect()) for name in LIBRARY_LOGGERS]
    for logger, collect in filters:
        logger.addFilter(collect)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        for logger, collect in filters:
            logger.removeFilter(collect)
    messages = [str(w.message) for w in caught] + [m for _, collect in filters for m in collect.messages]
    seen = set(notes)
    for message in messages:
        line = " ".join(message.split())
        reason = harmless_reason(line)
        if reason is not None:
            log.debug("%s: library message dropped (%s): %s", during, reason, line)
            continue
        note = f"{during}: {line}"
        if note not in seen:
            seen.add(note)
            notes.append(note)


__all__ = ["HARMLESS", "harmless_reason", "library_warnings"]
