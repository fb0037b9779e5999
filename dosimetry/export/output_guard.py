"""Checks that an output folder can never destroy or pollute the inputs of a run.

Two rules, checked before any work and again when the results are written:

* ``--out`` must not be, contain or lie inside any input (study folder, image, mask, CT, segmentation),
  after resolving symbolic links (:func:`check_output_location`).
* An existing ``--out`` is replaced (with ``--overwrite``) only when it is a folder that this software
  wrote, recognised by the marker file :data:`MARKER_NAME` that every output folder holds
  (:func:`check_replaceable`). Any other folder or file is left alone.

Both raise :class:`~dosimetry.errors.OutputError` (exit code 8).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path

from dosimetry._version import __version__
from dosimetry.errors import DosimetryError, OutputError

MARKER_NAME = ".y90-dosimetry-output.json"
"""File written into every output folder; ``--overwrite`` replaces only folders holding it."""

SOFTWARE_NAME = "y90-dosimetry"

OVERWRITE_HELP = (
    f"replace --out if it exists, after the new results are complete, and only if it is a folder "
    f"written by this software (it holds {MARKER_NAME}); any other folder or file is never "
    "replaced or deleted"
)

# keys of a stats.json ``inputs`` record (and of accumulate.json) whose string values are input paths
_PATH_KEYS = frozenset({"file", "folder", "source", "dose", "ct", "current_dose", "current_ct"})


def marker_record() -> dict:
    """The content of the marker file: software and time only, nothing about the patient."""
    return {
        "software": SOFTWARE_NAME,
        "version": __version__,
        "written_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "note": "folder written by y90-dosimetry; 'dosimetry ... --overwrite' may replace it",
    }


def write_marker(folder: str | os.PathLike) -> None:
    """Write the marker file into ``folder`` (an output folder being written)."""
    (Path(folder) / MARKER_NAME).write_text(json.dumps(marker_record(), indent=2) + "\n")


def is_our_output(path: str | os.PathLike) -> bool:
    """True when ``path`` is a real folder (not a link) holding the marker file of this software."""
    path = Path(path)
    marker = path / MARKER_NAME
    if path.is_symlink() or not path.is_dir() or marker.is_symlink() or not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("software") == SOFTWARE_NAME
    except (OSError, ValueError, AttributeError):
        return False


def check_replaceable(out_dir: str | os.PathLike, *, overwrite: bool) -> None:
    """Refuse an existing ``out_dir`` unless ``overwrite`` is given and it is an output folder of ours.

    Raises
    ------
    OutputError
        ``out_dir`` exists and ``overwrite`` is false, or it exists and was not written by this software
        (no marker file, a file, or a symbolic link).
    """
    out_dir = Path(out_dir)
    if not os.path.lexists(out_dir):
        return
    if not overwrite:
        raise OutputError(f"--out {out_dir} exists already; choose another --out or add --overwrite")
    if not is_our_output(out_dir):
        kind = "a symbolic link" if out_dir.is_symlink() else "a folder" if out_dir.is_dir() else "a file"
        raise OutputError(
            f"--out {out_dir} is {kind} not written by y90-dosimetry (no {MARKER_NAME}), so "
            "--overwrite will not replace it: choose another --out or remove it yourself"
        )


def _variants(path: str | os.PathLike) -> set[Path]:
    """The fully resolved path, and the path with only its parent folders resolved (a link itself)."""
    path = Path(os.fspath(path))
    resolved = Path(os.path.realpath(path))
    if path.name in ("", ".", ".."):
        return {resolved}
    return {resolved, Path(os.path.realpath(path.parent)) / path.name}


def _relation(out: Path, inp: Path) -> str | None:
    if out == inp:
        return "is"
    if out.is_relative_to(inp):
        return "lies inside"
    if inp.is_relative_to(out):
        return "contains"
    return None


def check_output_location(out_dir: str | os.PathLike, inputs: Iterable[str | os.PathLike | None]) -> None:
    """Refuse an ``out_dir`` that is, contains or lies inside any of ``inputs`` (files or folders).

    Paths are compared after resolving symbolic links, both fully and up to the last component (the link
    itself), so a relative path, a path through ``..``, a symlinked parent folder, an ``--out`` that is a
    link to an input, and an input that is a link inside ``--out`` are all caught; an existing ``--out``
    that is the same file as an input (a hard link) too.
    ``None`` entries are ignored.

    Raises
    ------
    OutputError
        ``out_dir`` and an input overlap; the message names both and the fix.
    """
    out_forms = _variants(out_dir)
    for item in inputs:
        if item is None or os.fspath(item) == "":
            continue
        same = False
        try:
            same = os.path.exists(out_dir) and os.path.exists(item) and os.path.samefile(out_dir, item)
        except OSError:
            pass
        relation = "is" if same else None
        for out in out_forms:
            for inp in _variants(item):
                relation = relation or _relation(out, inp)
        if relation:
            raise OutputError(
                f"--out {out_dir} {relation} the input {item}: writing there could destroy or "
                "pollute the input; choose an --out outside the inputs"
            )


def recorded_input_paths(inputs: Mapping | None) -> list[str]:
    """The input files and folders recorded in a stats.json ``inputs`` record (or accumulate's).

    Collects the string values of the keys ``file``, ``folder``, ``source``, ``dose``, ``ct``,
    ``current_dose`` and ``current_ct`` at any depth; an ROI source ``PATH#SEGMENT`` gives ``PATH``. Only
    paths that exist are kept (some sources are descriptions, e.g. ``rs.dcm:ROI 3``, of files inside a
    recorded DICOM folder).
    """
    found: list[str] = []

    def walk(value, key=None):
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, key)
        elif isinstance(value, (str, os.PathLike)) and key in _PATH_KEYS:
            text = os.fspath(value)
            for candidate in (text, text.rpartition("#")[0]):
                if candidate and os.path.lexists(candidate) and candidate not in found:
                    found.append(candidate)

    walk(inputs or {})
    return found


def roi_spec_path(spec: str) -> str | None:
    from dosimetry.io.roi_files import parse_roi_spec

    try:
        return os.fspath(parse_roi_spec(spec)[2])
    except DosimetryError:  # a malformed --roi is reported when the ROIs are read
        return None


def run_input_paths(args) -> list[str | None]:
    """Every input path of ``dosimetry run``: STUDY_DIR, --activity, --ct, --roi masks, --segmentation,
    --recovery-curve."""
    curve = getattr(args, "recovery_curve", None)
    curve = curve if curve and os.path.exists(curve) else None  # else a bundled curve's name
    return [args.study, args.activity, args.ct, *(roi_spec_path(s) for s in args.roi), *args.segmentation, curve]


def accumulate_input_paths(args) -> list[str | None]:
    """Every input path of ``dosimetry accumulate``, with the inputs recorded in a --current run folder."""
    paths: list[str | None] = [args.current, args.ct, *(roi_spec_path(s) for s in args.roi), *args.segmentation]
    for text in args.previous:
        paths.append(text)
        if not os.path.exists(text):  # DOSE:CT
            dose, _, ct = text.rpartition(":")
            paths += [dose or None, ct or None]
    stats = Path(args.current) / "stats.json"
    if stats.is_file():
        try:
            paths += recorded_input_paths(json.loads(stats.read_text()).get("inputs"))
        except (OSError, ValueError, AttributeError):
            pass
    return paths


def check_cli_output(args, inputs: Iterable[str | os.PathLike | None]) -> None:
    """The command line's check before any work: ``--out`` apart from ``inputs``, and with ``--overwrite``
    an existing ``--out`` only if this software wrote it (without ``--overwrite`` the command refuses an
    existing ``--out`` itself)."""
    check_output_location(args.out, inputs)
    if args.overwrite:
        check_replaceable(args.out, overwrite=True)
