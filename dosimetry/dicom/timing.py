"""DICOM dates and times, the implant and scan times, and decay arithmetic.

All datetimes are naive local times, as DICOM stores them in DA/TM pairs; a DT with a UTC offset is
converted to naive local time by dropping the offset (every time in one study comes from the same
scanner clock, so only differences matter).

References
----------
.. [PS3.5] DICOM PS3.5 section 6.2, value representations DA, TM and DT.
.. [PS3.3-C.8.9.1] DICOM PS3.3 section C.8.9.1 (PET Series Module: Series Date/Time as the reference of
   decay correction, Decay Correction, Units) and C.8.9.2 (PET Isotope Module:
   RadiopharmaceuticalInformationSequence, Radiopharmaceutical Start Date Time, Radionuclide Half Life,
   Radionuclide Total Dose in Bq).
.. [PS3.3-C.8.9.4] DICOM PS3.3 section C.8.9.4 (PET Image Module: Acquisition Date/Time, Actual Frame
   Duration, Frame Reference Time, Decay Factor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pydicom.dataset import Dataset

from dosimetry.constants import Y90_HALF_LIFE_S
from dosimetry.quantify.emission import UNKNOWN, half_life_nuclide
from dosimetry.errors import UnitsError

EARLIEST_SCAN_DATE: date = date(1970, 1, 1)
"""Dates before this are taken as placeholders (anonymisers write 00010101 or 19000101), not as times of a
Y-90 scan or implant (tomographic PET and SPECT date from the mid-1970s, Y-90 microspheres from the 1990s);
they are unusable, as unparsable and empty dates are."""


# --- parsing -------------------------------------------------------------------------------------------
def parse_date(value) -> date | None:
    """A DICOM DA value (``YYYYMMDD``, or the old ``YYYY.MM.DD``) as a date.

    None when empty, unparsable or before :data:`EARLIEST_SCAN_DATE` (an anonymised placeholder): an
    unusable date never stops a run here; :func:`unusable_time_notes` says which, and absolute
    calibration, which needs the times, refuses then (:func:`dosimetry.dicom.study.load_study`).
    """
    text = str(value or "").strip().replace(".", "").replace("-", "")
    if not text:
        return None
    try:
        day = datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return None
    return day if day >= EARLIEST_SCAN_DATE else None


def parse_time(value) -> tuple[int, int, int, int] | None:
    """A DICOM TM value (``HH``, ``HHMM``, ``HHMMSS``, ``HHMMSS.FFFFFF`` or ``HH:MM:SS``) as
    (hour, minute, second, microsecond); None when empty or unparsable (see :func:`parse_date`)."""
    text = str(value or "").strip().replace(":", "")
    if not text:
        return None
    whole, _, frac = text.partition(".")
    if len(whole) not in (2, 4, 6) or not whole.isdigit() or (frac and not frac.isdigit()):
        return None
    hour, minute, second = int(whole[0:2]), int(whole[2:4] or 0), int(whole[4:6] or 0)
    micro = int((frac + "000000")[:6]) if frac else 0
    if hour > 23 or minute > 59 or second > 60:
        return None
    return hour, minute, min(second, 59), micro


def combine(day: date | None, time_tuple) -> datetime | None:
    """A datetime from a date and a parsed TM tuple; None when either is missing."""
    if day is None or time_tuple is None:
        return None
    return datetime(day.year, day.month, day.day, *time_tuple)


def parse_datetime(value) -> datetime | None:
    """A DICOM DT value (``YYYYMMDDHHMMSS.FFFFFF&ZZXX``, any trailing part optional) as a naive datetime."""
    text = str(value or "").strip()
    if not text:
        return None
    for sign in "+-":
        if sign in text[8:]:
            text = text[: 8 + text[8:].index(sign)]
    day = parse_date(text[:8])
    rest = text[8:]
    return combine(day, parse_time(rest) if rest else (0, 0, 0, 0))


_TIMING_KEYWORDS = (
    ("AcquisitionDateTime", "DT"),
    ("AcquisitionDate", "DA"),
    ("AcquisitionTime", "TM"),
    ("SeriesDate", "DA"),
    ("SeriesTime", "TM"),
    ("StudyDate", "DA"),
    ("StudyTime", "TM"),
)
_RADIOPHARMACEUTICAL_KEYWORDS = (("RadiopharmaceuticalStartDateTime", "DT"), ("RadiopharmaceuticalStartTime", "TM"))
_PARSERS = {"DA": parse_date, "TM": parse_time, "DT": parse_datetime}


def unusable_time_notes(ds: Dataset, *, label: str) -> list[str]:
    """A note (a list of one, or empty) naming the date and time attributes of ``ds`` that are present but
    unusable (placeholder, unparsable): acquisition, series and study date/time, radiopharmaceutical start."""
    items = [(ds, _TIMING_KEYWORDS)]
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    if seq:
        items.append((seq[0], _RADIOPHARMACEUTICAL_KEYWORDS))
    unusable = []
    for item, keywords in items:
        for keyword, vr in keywords:
            value = str(item.get(keyword, "") or "").strip()
            if value and _PARSERS[vr](value) is None:
                unusable.append(f"{keyword} {value!r}")
    if not unusable:
        return []
    return [
        f"{label}: unusable date/time ({', '.join(unusable)}: anonymised or malformed; dates before "
        f"{EARLIEST_SCAN_DATE.year} are placeholders), not used"
    ]


def emission_time_notes(path, *, label: str) -> list[str]:
    """:func:`unusable_time_notes` of the header of the file ``path`` (its converted attributes included)."""
    import pydicom

    from dosimetry.dicom.slices import with_converted_attributes

    ds = pydicom.dcmread(str(path), stop_before_pixels=True)  # read by the loader already
    return unusable_time_notes(with_converted_attributes(ds), label=label)


def dataset_datetime(ds: Dataset, dt_keyword: str, date_keyword: str, time_keyword: str) -> datetime | None:
    """The datetime of a DT attribute, else of a DA + TM pair, from ``ds``; None when absent."""
    value = parse_datetime(ds.get(dt_keyword)) if dt_keyword else None
    if value is None:
        value = combine(parse_date(ds.get(date_keyword)), parse_time(ds.get(time_keyword)))
    return value


# --- times of a study ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimeSource:
    """A time with the header fields it came from (for the run record)."""

    time: datetime
    source: str


def acquisition_start(datasets) -> TimeSource | None:
    """Earliest acquisition start over the images of a series.

    AcquisitionDateTime, else AcquisitionDate + AcquisitionTime, per image; SeriesDate/SeriesTime are
    used only as a last resort (post-processing rewrites them) and the source then says so.
    """
    found: list[datetime] = []
    source = ""
    for ds in datasets:
        value = parse_datetime(ds.get("AcquisitionDateTime"))
        if value is not None:
            found.append(value)
            source = source or "AcquisitionDateTime"
            continue
        value = combine(parse_date(ds.get("AcquisitionDate")), parse_time(ds.get("AcquisitionTime")))
        if value is not None:
            found.append(value)
            source = source or "AcquisitionDate+AcquisitionTime"
    if found:
        return TimeSource(min(found), source)
    for ds in datasets:
        value = combine(parse_date(ds.get("SeriesDate")), parse_time(ds.get("SeriesTime")))
        if value is not None:
            return TimeSource(value, "SeriesDate+SeriesTime (no acquisition time in the header)")
    return None


def header_implant_time(ds: Dataset, scan_time: datetime | None) -> TimeSource | None:
    """Administration (implant) time from RadiopharmaceuticalInformationSequence [PS3.3-C.8.9.2].

    RadiopharmaceuticalStartDateTime when present; else RadiopharmaceuticalStartTime on the
    StudyDate (then SeriesDate, AcquisitionDate). When that gives a time after ``scan_time`` the scan
    ran past midnight, and the day before is taken. None when the sequence or its time is absent.
    """
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    if not seq:
        return None
    item = seq[0]
    value = parse_datetime(item.get("RadiopharmaceuticalStartDateTime"))
    if value is not None:
        return TimeSource(value, "RadiopharmaceuticalStartDateTime")
    start = parse_time(item.get("RadiopharmaceuticalStartTime"))
    if start is None:
        return None
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate"):
        day = parse_date(ds.get(keyword))
        if day is not None:
            value = combine(day, start)
            source = f"{keyword}+RadiopharmaceuticalStartTime"
            if scan_time is not None and value > scan_time:
                value -= timedelta(days=1)
                source += " (scan past midnight: day before)"
            return TimeSource(value, source)
    return None


# --- decay ---------------------------------------------------------------------------------------------
def decay_constant_per_s(half_life_s: float) -> float:
    """lambda = ln 2 / T1/2 in 1/s."""
    if not (half_life_s > 0 and math.isfinite(half_life_s)):
        raise UnitsError(f"half-life must be a positive number of seconds, got {half_life_s!r}")
    return math.log(2.0) / half_life_s


def decay_factor(elapsed_s: float, half_life_s: float = Y90_HALF_LIFE_S) -> float:
    """Fraction of activity left after ``elapsed_s`` seconds: exp(-lambda t)."""
    exponent = -decay_constant_per_s(half_life_s) * elapsed_s
    if not exponent < 700:  # exp would overflow (or the input is NaN)
        raise UnitsError(
            f"{elapsed_s!r} s with a half-life of {half_life_s!r} s gives no decay factor; check the times"
        )
    return math.exp(exponent)


def frame_average_to_start(duration_s: float, half_life_s: float = Y90_HALF_LIFE_S) -> float:
    """Factor from the mean activity over a frame of ``duration_s`` to the activity at its start.

    A(t0) = <A> * lambda T / (1 - exp(-lambda T)); 1 for T = 0.
    """
    x = decay_constant_per_s(half_life_s) * max(float(duration_s), 0.0)
    return 1.0 if x < 1e-12 else x / -math.expm1(-x)


def identify_nuclide(half_life_s: float | None) -> str | None:
    """Name of the nuclide whose half-life is within 1% of ``half_life_s`` ('Y-90', 'F-18', ...), else None
    (:func:`dosimetry.quantify.emission.half_life_nuclide`, which decides with the rest of the header's evidence)."""
    if half_life_s is None:
        return None
    name = half_life_nuclide(half_life_s)
    return None if name == UNKNOWN else name


def seconds_between(later: datetime, earlier: datetime) -> float:
    """``later - earlier`` in seconds (negative when ``later`` is earlier)."""
    return (later - earlier).total_seconds()


__all__ = [
    "EARLIEST_SCAN_DATE",
    "TimeSource",
    "acquisition_start",
    "combine",
    "dataset_datetime",
    "decay_constant_per_s",
    "decay_factor",
    "emission_time_notes",
    "frame_average_to_start",
    "header_implant_time",
    "identify_nuclide",
    "parse_date",
    "parse_datetime",
    "parse_time",
    "seconds_between",
    "unusable_time_notes",
]
