"""DICOM date/time parsing, implant and scan times, decay helpers."""

from __future__ import annotations

import math
from datetime import datetime

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dosimetry.constants import Y90_HALF_LIFE_S
from dosimetry.dicom import timing


def test_parse_values():
    assert timing.parse_datetime("20240301235959.123456+0100") == datetime(2024, 3, 1, 23, 59, 59, 123456)
    assert timing.parse_datetime("202403011230") == datetime(2024, 3, 1, 12, 30)
    assert timing.parse_time("09:05:07.5") == (9, 5, 7, 500000)
    assert timing.parse_time("0905") == (9, 5, 0, 0)
    assert timing.parse_date("2024.03.01") == datetime(2024, 3, 1).date()
    assert timing.parse_time("") is None and timing.parse_datetime(None) is None
    # unusable values are None (a relative run never stops on a date); unusable_time_notes says which
    assert timing.parse_time("25x") is None and timing.parse_time("256000") is None
    assert timing.parse_date("00010101") is None and timing.parse_date("19000101") is None
    assert timing.parse_date("20241301") is None and timing.parse_datetime("00010101120000") is None


def _pet(**item):
    ds = Dataset()
    ds.StudyDate = "20240302"
    ds.RadiopharmaceuticalInformationSequence = Sequence([Dataset()])
    for key, value in item.items():
        setattr(ds.RadiopharmaceuticalInformationSequence[0], key, value)
    return ds


def test_implant_time_sources_and_midnight():
    scan = datetime(2024, 3, 2, 0, 30)
    full = timing.header_implant_time(_pet(RadiopharmaceuticalStartDateTime="20240301223000"), scan)
    assert full == timing.TimeSource(datetime(2024, 3, 1, 22, 30), "RadiopharmaceuticalStartDateTime")
    fallback = timing.header_implant_time(_pet(RadiopharmaceuticalStartTime="223000"), scan)
    assert fallback.time == datetime(2024, 3, 1, 22, 30) and "midnight" in fallback.source
    same_day = timing.header_implant_time(_pet(RadiopharmaceuticalStartTime="001000"), scan)
    assert same_day.time == datetime(2024, 3, 2, 0, 10)
    assert timing.header_implant_time(Dataset(), scan) is None


def test_scan_time_prefers_acquisition_over_series_time():
    a, b = Dataset(), Dataset()
    for ds, t in ((a, "120500"), (b, "120000")):
        ds.AcquisitionDate, ds.AcquisitionTime = "20240302", t
        ds.SeriesDate, ds.SeriesTime = "20240302", "150000"
    found = timing.acquisition_start([a, b])
    assert found.time == datetime(2024, 3, 2, 12, 0) and found.source == "AcquisitionDate+AcquisitionTime"
    c = Dataset()
    c.SeriesDate, c.SeriesTime = "20240302", "150000"
    assert "SeriesDate" in timing.acquisition_start([c]).source


def test_decay_helpers():
    assert timing.decay_factor(Y90_HALF_LIFE_S) == pytest.approx(0.5)
    lam = math.log(2) / Y90_HALF_LIFE_S
    t = 3600.0
    mean = (1 - math.exp(-lam * t)) / (lam * t)
    assert timing.frame_average_to_start(t) * mean == pytest.approx(1.0)
    assert timing.frame_average_to_start(0.0) == 1.0
    assert timing.identify_nuclide(230400.0) == "Y-90"  # 64.0 h, as some scanners write it
    assert timing.identify_nuclide(6586.2) == "F-18"
    assert timing.identify_nuclide(1.0) is None
