"""Reading and checking the two inputs of a cohort analysis: COHORT.csv (doses) and RESPONSES.csv (sizes).

COHORT.csv is the ``cohort.csv`` that ``dosimetry batch`` writes (:mod:`dosimetry.batch.tables`): one row
per case and ROI with ``case_id, roi, role, volume_ml, mean_gy``, the DVH metrics (``D70`` among them) and
case columns. The lesions are its rows of role ``tumor`` except the derived union ``tumors_all``. A column
``mean_bed_gy`` (mean BED of the lesion), when present, is used as the BED.

RESPONSES.csv has one row per lesion and time point:

====================================  ==============================================================
``case_id``                            as in COHORT.csv
``roi``                                the lesion's ROI name, as in COHORT.csv
``timepoint``                          ``baseline`` or ``follow-up``
``longest_diameter_mm``                RECIST 1.1
``viable_diameter_mm``                 mRECIST (diameter of the arterially enhancing tumour)
``bidimensional_product_mm2``          WHO (longest diameter x greatest perpendicular diameter)
``enhancing_area_mm2``                 EASL (bidimensional product of the enhancing tumour)
``response``                           optional: a category (CR, PR, SD, PD; NC = SD) given by the reader,
                                       used for a lesion without the criterion's measurements
``target``                             optional: ``no`` for a lesion measured but not a target lesion
                                       (default ``yes``): it is analysed for dose-response, left out of
                                       the patient's sums
``new_lesions``                        optional, on follow-up rows: ``yes`` when new lesions appeared in
                                       that patient (or ``no``, empty); makes the patient PD
====================================  ==============================================================

Only the column of the chosen criterion (or ``response``) is needed. Faults are not guessed around: every
one is collected (lesions of RESPONSES missing from COHORT, ROIs that are not lesions, missing or repeated
time points, negative, non-numeric or zero-baseline sizes, unknown categories) and reported together in
one :class:`CohortInputError`. Lesions of COHORT without responses are not an error (not every lesion is a
target lesion) but are listed in the analysis' warnings.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from dosimetry.cohort.criteria import CATEGORIES, Criterion
from dosimetry.errors import InputFileError

__all__ = [
    "CohortInputError",
    "DoseRow",
    "LesionResponse",
    "TIMEPOINTS",
    "match_lesions",
    "read_cohort",
    "read_responses",
]

DERIVED_TUMOUR_ROI = "tumors_all"
"""The union of all tumour ROIs that ``dosimetry run`` adds (role tumor): not a lesion."""

TIMEPOINTS = ("baseline", "follow-up")
_TIMEPOINT_WORDS = {
    "baseline": "baseline",
    "base": "baseline",
    "pre": "baseline",
    "follow-up": "follow-up",
    "followup": "follow-up",
    "follow_up": "follow-up",
    "follow up": "follow-up",
    "fu": "follow-up",
}
_CATEGORY_WORDS = {"CR": "CR", "PR": "PR", "SD": "SD", "NC": "SD", "PD": "PD"}
_YES_NO = {
    "yes": True,
    "y": True,
    "true": True,
    "1": True,
    "no": False,
    "n": False,
    "false": False,
    "0": False,
    "": False,
}
_MAX_LISTED = 12


class CohortInputError(InputFileError):
    """RESPONSES.csv or COHORT.csv holds faults; ``problems`` lists every one of them."""

    def __init__(self, path, problems: list[str], fix: str):
        self.problems = list(problems)
        shown = "; ".join(self.problems[:_MAX_LISTED])
        more = f"; and {len(self.problems) - _MAX_LISTED} more" if len(self.problems) > _MAX_LISTED else ""
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        super().__init__(f"{path}: {count}: {shown}{more}; {fix}")


@dataclass(frozen=True)
class DoseRow:
    """One lesion of COHORT.csv: its doses (Gy) and volume (mL); None where the file has no value."""

    case_id: str
    roi: str
    role: str
    mean_gy: float | None
    d70_gy: float | None
    mean_bed_gy: float | None
    volume_ml: float | None


@dataclass(frozen=True)
class LesionResponse:
    """One lesion of RESPONSES.csv: its measurements (criterion's unit) and any given category."""

    case_id: str
    roi: str
    baseline: float | None
    follow_up: float | None
    given: str | None
    rows: tuple[int, ...] = field(default=())
    new_lesions: bool = False
    target: bool = True


def _read_csv(path: Path, what: str) -> tuple[list[str], list[dict]]:
    if not path.is_file():
        raise InputFileError(f"{path}: no such file; give the path of {what}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = [c.strip() for c in (reader.fieldnames or [])]
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputFileError(f"{path}: cannot be read as CSV ({err}); give {what} as a UTF-8 CSV file") from err
    rows = [{(k or "").strip(): (v or "").strip() if isinstance(v, str) else v for k, v in r.items()} for r in rows]
    return columns, rows


def _number(text: str | None) -> float | None:
    """A finite float, None for an empty cell; ValueError for text or non-finite values."""
    if text is None or text == "":
        return None
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def read_cohort(path: str | os.PathLike) -> dict[tuple[str, str], DoseRow]:
    """The ROIs of a ``cohort.csv`` keyed by ``(case_id, roi)``, lesions and other roles alike.

    Raises
    ------
    InputFileError
        A missing file or column; CohortInputError listing repeated ROIs and non-numeric doses.
    """
    path = Path(path)
    columns, rows = _read_csv(path, "COHORT.csv (the cohort.csv of 'dosimetry batch')")
    missing = [c for c in ("case_id", "roi", "role", "mean_gy") if c not in columns]
    if missing:
        raise InputFileError(
            f"{path}: no column {', '.join(missing)}; give the cohort.csv written by 'dosimetry batch' "
            "(columns case_id, roi, role, volume_ml, mean_gy, D70, ...)"
        )
    found: dict[tuple[str, str], DoseRow] = {}
    problems: list[str] = []
    for line, row in enumerate(rows, start=2):
        key = (row["case_id"], row["roi"])
        if key in found:
            problems.append(f"line {line}: {key[0]}/{key[1]} appears twice")
            continue
        values = {}
        for name, column in (("mean_gy", "mean_gy"), ("d70_gy", "D70"), ("bed", "mean_bed_gy"), ("vol", "volume_ml")):
            try:
                values[name] = _number(row.get(column))
            except ValueError:
                problems.append(f"line {line}: {column} {row.get(column)!r} of {key[0]}/{key[1]} is not a number")
                values[name] = None
        found[key] = DoseRow(
            key[0], key[1], row["role"], values["mean_gy"], values["d70_gy"], values["bed"], values["vol"]
        )
    if problems:
        raise CohortInputError(path, problems, "correct COHORT.csv (or run the batch again)")
    return found


def _parse_category(text: str) -> str | None:
    return _CATEGORY_WORDS.get(text.strip().upper()) if text else None


def read_responses(path: str | os.PathLike, crit: Criterion) -> dict[tuple[str, str], LesionResponse]:
    """The lesions of RESPONSES.csv with the measurements that ``crit`` needs, keyed by ``(case_id, roi)``.

    Raises
    ------
    InputFileError
        A missing file or column.
    CohortInputError
        Every fault in the rows (see the module docstring), listed.
    """
    path = Path(path)
    columns, rows = _read_csv(path, "RESPONSES.csv")
    missing = [c for c in ("case_id", "roi", "timepoint") if c not in columns]
    if crit.column not in columns and "response" not in columns:
        missing.append(f"{crit.column} (or response)")
    if missing:
        raise InputFileError(
            f"{path}: no column {', '.join(missing)}; RESPONSES.csv needs case_id, roi, timepoint and, for "
            f"{crit.name}, {crit.column} ({crit.unit}) or a given category in 'response'"
        )
    problems: list[str] = []
    measured: dict[tuple[str, str], dict[str, float | None]] = {}
    given: dict[tuple[str, str], str] = {}
    lines: dict[tuple[str, str], list[int]] = {}
    faulty: set[tuple[str, str]] = set()  # lesions with a bad row: already listed, not checked further
    new_cases: set[str] = set()
    not_target: dict[tuple[str, str], bool] = {}
    for line, row in enumerate(rows, start=2):
        key = (row["case_id"], row["roi"])
        if not key[0] or not key[1]:
            problems.append(f"line {line}: empty case_id or roi")
            continue
        name = f"{key[0]}/{key[1]}"
        lines.setdefault(key, []).append(line)
        tp = _TIMEPOINT_WORDS.get(row["timepoint"].strip().lower())
        if tp is None:
            problems.append(f"line {line}: {name} has timepoint {row['timepoint']!r}, not baseline or follow-up")
            faulty.add(key)
            continue
        new_text = (row.get("new_lesions") or "").strip().lower()
        if new_text not in _YES_NO:
            problems.append(f"line {line}: {name} new_lesions {row.get('new_lesions')!r} is not yes or no")
        elif _YES_NO[new_text]:
            if tp != "follow-up":
                problems.append(f"line {line}: {name} has new_lesions yes at baseline; new lesions appear at follow-up")
            new_cases.add(key[0])
        target_text = (row.get("target") or "").strip().lower()
        if target_text not in _YES_NO:
            problems.append(f"line {line}: {name} target {row.get('target')!r} is not yes or no")
        elif target_text:
            is_target = _YES_NO[target_text]
            if not_target.get(key, not is_target) != (not is_target):
                problems.append(f"line {line}: {name} is a target lesion on one row and not on another")
            not_target[key] = not is_target
        category_text = row.get("response") or ""
        if category_text:
            category = _parse_category(category_text)
            if category is None:
                problems.append(f"line {line}: {name} response {category_text!r} is not one of {', '.join(CATEGORIES)}")
            elif key in given and given[key] != category:
                problems.append(f"line {line}: {name} is given two categories ({given[key]}, {category})")
            else:
                given[key] = category
        entry = measured.setdefault(key, {})
        if tp in entry:
            problems.append(f"line {line}: {name} has a second {tp} row")
            continue
        try:
            value = _number(row.get(crit.column))
        except ValueError:
            problems.append(f"line {line}: {name} {crit.column} {row.get(crit.column)!r} is not a number")
            faulty.add(key)
            continue
        if value is not None and value < 0:
            problems.append(f"line {line}: {name} {crit.column} is negative ({value:g} {crit.unit})")
            faulty.add(key)
            continue
        entry[tp] = value
    lesions: dict[tuple[str, str], LesionResponse] = {}
    for key, entry in measured.items():
        if key in faulty:
            continue
        name = f"{key[0]}/{key[1]}"
        base, follow = entry.get("baseline"), entry.get("follow-up")
        if key not in given:
            absent = [tp for tp in TIMEPOINTS if tp not in entry]
            empty = [tp for tp in TIMEPOINTS if tp in entry and entry[tp] is None]
            if absent:
                problems.append(f"{name} has no {' and no '.join(absent)} row")
                continue
            if empty:
                problems.append(f"{name} has no {crit.column} at {' and '.join(empty)} (and no given response)")
                continue
        if base is not None and base == 0 and follow is not None:
            problems.append(f"{name} has a baseline {crit.column} of 0: not a measurable target lesion")
            continue
        if (base is None) != (follow is None):
            base = follow = None  # a given category decides; half a measurement is not used
        lesions[key] = LesionResponse(
            key[0],
            key[1],
            base,
            follow,
            given.get(key),
            tuple(lines[key]),
            new_lesions=key[0] in new_cases,
            target=not not_target.get(key, False),
        )
    if problems:
        raise CohortInputError(path, problems, "correct RESPONSES.csv")
    if not lesions:
        raise InputFileError(f"{path}: no lesion rows; add one row per lesion and time point")
    return lesions


def match_lesions(
    responses: dict[tuple[str, str], LesionResponse],
    cohort: dict[tuple[str, str], DoseRow],
    *,
    responses_path,
    cohort_path,
) -> tuple[list[tuple[LesionResponse, DoseRow]], list[str]]:
    """Each lesion of RESPONSES with its dose row of COHORT, and the warnings (COHORT lesions left out).

    Raises
    ------
    CohortInputError
        A lesion of RESPONSES that is not in COHORT, is not a tumour ROI there, or has no mean dose.
    """
    problems: list[str] = []
    pairs = []
    cases = {case for case, _ in cohort}
    for key, lesion in responses.items():
        name = f"{key[0]}/{key[1]}"
        row = cohort.get(key)
        if row is None:
            if key[0] not in cases:
                problems.append(f"{name}: case {key[0]} is not in {cohort_path}")
            else:
                known = sorted(roi for case, roi in cohort if case == key[0])
                problems.append(f"{name}: no ROI {key[1]} in {cohort_path} (case {key[0]} has {', '.join(known)})")
        elif row.role != "tumor" or key[1] == DERIVED_TUMOUR_ROI:
            what = "the derived union of all tumours" if key[1] == DERIVED_TUMOUR_ROI else f"a {row.role} ROI"
            problems.append(f"{name} is {what} in {cohort_path}, not a lesion")
        elif row.mean_gy is None:
            problems.append(f"{name} has no mean_gy in {cohort_path}")
        else:
            pairs.append((lesion, row))
    if problems:
        raise CohortInputError(
            responses_path, problems, "make case_id and roi of RESPONSES.csv match the lesions of COHORT.csv"
        )
    warnings = []
    left = sorted(
        f"{case}/{roi}"
        for (case, roi), row in cohort.items()
        if row.role == "tumor" and roi != DERIVED_TUMOUR_ROI and (case, roi) not in responses
    )
    if left:
        warnings.append(
            f"{len(left)} lesion(s) of {cohort_path} have no rows in {responses_path} and are not analysed: "
            + ", ".join(left)
        )
    return pairs, warnings
