"""The cases of a batch: every DICOM study under ROOT, or the rows of a cases CSV; their ids and run arguments.

Discovery (:func:`discover_cases`) uses :func:`dosimetry.dicom.inventory`, as ``dosimetry inspect`` does:
one case per StudyInstanceUID. A study's folder is the deepest folder holding all its files; the case id is
that folder relative to ROOT, sanitised (:func:`sanitise`), with ``-`` and a short hash of the
StudyInstanceUID appended when one folder holds several studies (or two folders sanitise alike).

The CSV (:func:`read_cases_csv`) has one row per case: ``case_id`` (required, unique), ``study`` (a DICOM
folder) or ``activity`` (+ ``ct``, ``roi`` as ``ROLE[:NAME]=PATH;...``, ``segmentation`` as ``PATH;...``),
paths relative to the CSV file, and any run option as a column (``administered_gbq``, ``method``, ...),
which replaces the command line's value for that case. Every faulty row is listed in one message, before
any work.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from dosimetry.errors import DosimetryError, InputFileError, OptionsError
from dosimetry.batch import runopts

RESERVED_NAMES = frozenset(
    {"summary.csv", "cohort.csv", "batch.json", "ledger.sqlite", "ledger.sqlite-wal", "ledger.sqlite-shm"}
)
"""Files of OUT that no case id may take."""

INPUT_COLUMNS = ("study", "activity", "ct", "roi", "segmentation")
_ID_RE = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Case:
    """One case: its id, the arguments of ``dosimetry run`` (inputs absolute, no ``--out``), its inputs.

    ``input_files`` (label relative to ROOT or the CSV, path) are hashed for the ledger, with ``identity``
    (the study UID, or the CSV's input cells as written): no absolute path enters the hash, so a cohort moved
    elsewhere is still recognised. ``options`` are the run options grouped by option (:data:`runopts.Groups`).
    """

    case_id: str
    inputs: tuple[str, ...]
    options: tuple[tuple[str, tuple[str, ...]], ...]
    input_files: tuple[tuple[str, Path], ...] = field(repr=False)
    input_paths: tuple[Path, ...] = field(repr=False)
    identity: str = ""

    @property
    def run_argv(self) -> list[str]:
        return [*self.inputs, *runopts.flatten(self.options)]


def short_hash(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def sanitise(relative: str) -> str:
    """A case id from a folder relative to ROOT: ``/`` becomes ``__``, other characters than letters,
    digits, ``-``, ``_`` and ``.`` become ``_``; a leading ``.`` becomes ``_`` (no hidden case folders)."""
    parts = [re.sub(r"[^A-Za-z0-9_.-]", "_", part) for part in Path(relative).parts if part not in ("", ".")]
    text = "__".join(parts) or "_"
    return "_" + text[1:] if text.startswith(".") else text


def _common_folder(files) -> Path:
    return Path(os.path.commonpath([str(Path(f).parent) for f in files]))


def _files_under(path: Path):
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                yield Path(root) / name
    else:
        yield path


def discover_cases(root: str | os.PathLike, options: runopts.Groups) -> list[Case]:
    """One case per DICOM study under ``root``, in the order of their case ids.

    A study whose folder also holds (or contains) another study is run with ``--series`` set to its own
    emission series, when it has exactly one, so that each case sees only its own study.

    Raises
    ------
    InputFileError
        ``root`` is not a folder or holds no DICOM file.
    """
    from dosimetry.dicom import inventory
    from dosimetry.dicom.discovery import Kind

    root = Path(root)
    records = inventory(root)
    studies: dict[str, list] = defaultdict(list)
    for rec in records:
        studies[rec.study_uid].append(rec)
    folders = {uid: _common_folder([f for rec in recs for f in rec.files]) for uid, recs in studies.items()}
    base_ids = {uid: sanitise(os.path.relpath(folder, root)) for uid, folder in folders.items()}
    if base_ids and set(base_ids.values()) == {"_"}:
        base_ids = {uid: sanitise(root.resolve().name) for uid in base_ids}
    counts = defaultdict(int)
    for value in base_ids.values():
        counts[value] += 1
    cases = []
    for uid, recs in studies.items():
        case_id = base_ids[uid] if counts[base_ids[uid]] == 1 else f"{base_ids[uid]}-{short_hash(uid)}"
        if case_id in RESERVED_NAMES:
            case_id = f"{case_id}-{short_hash(uid)}"
        folder = folders[uid]
        shares = [other for other, f in folders.items() if other != uid and f.is_relative_to(folder)]
        inputs = [str(folder.resolve())]
        emission = [rec for rec in recs if rec.kind is Kind.EMISSION]
        if shares and len(emission) == 1 and not any(dest == "series" for dest, _ in options):
            inputs += ["--series", emission[0].series_uid]
        files = sorted(f for rec in recs for f in rec.files)
        cases.append(
            Case(
                case_id,
                tuple(inputs),
                tuple((d, tuple(t)) for d, t in options),
                tuple((os.path.relpath(f, root), Path(f)) for f in files),
                (folder,),
                identity=f"dicom {uid} {' '.join(inputs[1:])}",
            )
        )
    cases.sort(key=lambda c: c.case_id)
    return cases


class CasesCsvError(OptionsError):
    """Faulty rows of a cases CSV (exit 7; 3 when every fault is a missing file)."""

    def __init__(self, message: str, *, missing_only: bool):
        super().__init__(message)
        self.exit_code = InputFileError.exit_code if missing_only else OptionsError.exit_code


def _split_paths(cell: str) -> list[str]:
    return [p.strip() for p in cell.split(";") if p.strip()]


def read_cases_csv(path: str | os.PathLike, options: runopts.Groups) -> list[Case]:
    """The cases of a CSV file, in row order, each with the command line's options and its row's overrides.

    Raises
    ------
    CasesCsvError
        Unknown columns, no ``case_id`` column, empty, invalid or duplicate ids, no ``study``/``activity``
        (or both), missing input files or folders, option values the run command refuses: every faulty row
        in one message.
    InputFileError
        The CSV file cannot be read.
    """
    from dosimetry.io.roi_files import parse_roi_spec

    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            header = [name.strip() for name in reader.fieldnames or []]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputFileError(
            f"--cases {path}: cannot read the CSV file ({err}); give a UTF-8 CSV with a case_id column"
        ) from None
    base = path.parent
    columns = runopts.column_actions()
    faults: list[str] = []
    missing: list[str] = []
    unknown = [c for c in header if c not in ("case_id", *INPUT_COLUMNS) and c not in columns]
    if "case_id" not in header:
        faults.append("no case_id column")
    if unknown:
        faults.append(
            f"unknown column(s) {', '.join(map(repr, unknown))} (columns are case_id, study, activity, "
            "ct, roi, segmentation and run options like administered_gbq, method)"
        )
    if not rows and not faults:
        faults.append("no rows")
    if faults:
        raise CasesCsvError(f"--cases {path}: " + "; ".join(faults), missing_only=False)
    seen: dict[str, int] = {}
    cases = []
    for line, row in enumerate(rows, start=2):
        if row.get(None):
            faults.append(f"row {line}: more cells than columns")
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
        case_id = row.get("case_id", "")
        where = f"row {line}" + (f" ({case_id})" if case_id else "")
        row_faults: list[str] = []
        row_missing: list[str] = []
        if not case_id:
            row_faults.append("empty case_id")
        elif not _ID_RE.fullmatch(case_id) or case_id.startswith(".") or case_id in RESERVED_NAMES:
            row_faults.append(
                f"case_id {case_id!r} must be letters, digits, '-', '_' and '.' (not first) "
                f"and not one of {', '.join(sorted(RESERVED_NAMES))}"
            )
        elif case_id in seen:
            row_faults.append(f"duplicate case_id (also row {seen[case_id]})")
        else:
            seen[case_id] = line
        if bool(row.get("study")) == bool(row.get("activity")):
            row_faults.append("give either study (a DICOM folder) or activity (an image), not both or neither")
        inputs: list[str] = []
        files: list[tuple[str, Path]] = []
        paths: list[Path] = []

        def add(option: str | None, text: str, label: str, *, folder: bool = False, spec: str | None = None):
            full = (base / text) if not os.path.isabs(text) else Path(text)
            if not (full.is_dir() if folder else full.exists()):
                row_missing.append(f"{label} {text!r} not found" + (" (or not a folder)" if folder else ""))
                return
            paths.append(full)
            value = spec if spec is not None else str(full.resolve())
            inputs.extend([option, value] if option else [value])
            files.extend(
                (f"{label}:{os.path.relpath(f, full) if full.is_dir() else full.name}", f) for f in _files_under(full)
            )

        if row.get("study"):
            add(None, row["study"], "study", folder=True)
        if row.get("activity"):
            add("--activity", row["activity"], "activity")
        if row.get("ct"):
            add("--ct", row["ct"], "ct")
        for spec in _split_paths(row.get("roi", "")):
            try:
                parse_roi_spec(spec)  # ROLE[:NAME]=PATH, the role known
            except DosimetryError as err:  # a malformed spec is a fault of this row
                row_faults.append(f"roi {spec!r}: {err}")
                continue
            left, text = (part.strip() for part in spec.split("=", 1))
            full = base / text if not os.path.isabs(text) else Path(text)
            add("--roi", text, f"roi {left}", spec=f"{left}={full.resolve()}")
        for seg in _split_paths(row.get("segmentation", "")):
            add("--segmentation", seg, "segmentation")
        overrides: dict[str, list[str] | None] = {}
        for column, cell in row.items():
            if column in columns and column not in INPUT_COLUMNS and cell:
                try:
                    result = runopts.cell_tokens(column, cell)
                except OptionsError as err:
                    row_faults.append(str(err))
                    continue
                dest = columns[column].dest
                overrides[dest] = result[1] if result else None
        merged = runopts.merge(options, overrides)
        if not row_faults and not row_missing:
            try:
                runopts.validate([*inputs, *runopts.flatten(merged)])
            except OptionsError as err:
                row_faults.append(str(err))
        faults += [f"{where}: {f}" for f in row_faults]
        missing += [f"{where}: {m}" for m in row_missing]
        # the ROI/segmentation inputs stay in `inputs`: they are per case, never options of the batch
        identity = "csv " + repr([(c, row.get(c, "")) for c in INPUT_COLUMNS])
        cases.append(
            Case(
                case_id,
                tuple(inputs),
                tuple((d, tuple(t)) for d, t in merged),
                tuple(files),
                tuple(paths),
                identity=identity,
            )
        )
    if faults or missing:
        raise CasesCsvError(
            f"--cases {path}: {len(faults) + len(missing)} fault(s), nothing was run: " + "; ".join(faults + missing),
            missing_only=not faults,
        )
    return cases
