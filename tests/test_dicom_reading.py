"""A study's files are read once: the loaders complete the headers the inventory kept (dosimetry.dicom.reading),
with the same volumes as reading every file again; a file changed since is read again; a damaged one is named."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest

import dicom_builders as b
import dosimetry.dicom.discovery as discovery
import dosimetry.dicom.reading as reading
from dosimetry.dicom import inventory, load_study
from dosimetry.dicom.ct import load_ct
from dosimetry.dicom.pet import load_pet
from dosimetry.errors import InputFileError


def _count_reads(monkeypatch) -> Counter:
    """Full reads (pixel data included) per file, through every module that calls pydicom.dcmread."""
    counts: Counter = Counter()
    real = pydicom.dcmread

    def counting(path, *args, **kwargs):
        if not kwargs.get("stop_before_pixels"):
            counts[Path(str(path)).name if not hasattr(path, "read") else "<buffer>"] += 1
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", counting)
    return counts


def test_each_image_file_is_read_once_and_the_volumes_are_those_of_separate_reads(tmp_path, monkeypatch):
    _study_with_large_ct_slices(tmp_path / "study")
    pet_files = sorted((tmp_path / "study" / "pet").iterdir())
    ct_files = sorted((tmp_path / "study" / "ct").iterdir())
    separate_pet = load_pet(pet_files).image.array  # each file read by the loader
    separate_ct = load_ct(ct_files).image.array
    counts = _count_reads(monkeypatch)
    study = load_study(tmp_path / "study")
    np.testing.assert_array_equal(study.activity.array, separate_pet)  # activity at scan time, as loaded
    np.testing.assert_array_equal(study.ct.array, separate_ct)
    images = {p.name for p in pet_files + ct_files}
    assert set(counts) == images
    assert max(counts.values()) == 1, counts.most_common(3)


def test_a_file_changed_after_the_inventory_is_read_again(tmp_path):
    _study_with_large_ct_slices(tmp_path / "study")
    (record,) = [r for r in inventory(tmp_path / "study", keep_headers=True) if r.modality == "CT"]
    assert len(record.headers) == len(record.files)
    changed = record.files[3]
    ds = pydicom.dcmread(changed)
    plane = ds.pixel_array.copy()
    plane[:] = 123
    ds.PixelData = plane.tobytes()
    ds.ImageComments = "re-exported " * 40  # a longer header: the pixel data moved in the file
    ds.save_as(changed)
    st = os.stat(changed)
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # a later version
    datasets = dict(reading.read_series(record.files, record.headers))
    assert np.all(datasets[Path(changed).name].pixel_array == 123)
    assert datasets[Path(changed).name].ImageComments.startswith("re-exported")
    untouched = datasets[Path(record.files[2]).name]
    assert untouched is next(h.dataset for h in record.headers if h.path == Path(record.files[2]))


def _study_with_large_ct_slices(folder: Path):
    """PET (small slices, read with the header) and a CT of 100 x 100 int16 slices (20 kB: pixel data deferred)."""
    b.write_phantom_study(folder, total_dose=2.1e9, with_rtstruct=False, ct_shape=(100, 100, 10), ct_spacing_mm=1.0)


def test_a_file_damaged_behind_a_kept_header_is_one_clear_error(tmp_path):
    _study_with_large_ct_slices(tmp_path / "study")
    (record,) = [r for r in inventory(tmp_path / "study", keep_headers=True) if r.modality == "CT"]
    broken = Path(record.files[5])
    header = next(h for h in record.headers if h.path == broken)
    assert header.dataset.get_item("PixelData", keep_deferred=True).value is None  # deferred
    broken.write_bytes(b"\x5a" * header.size)  # same size and time, other content: the deferred read fails
    os.utime(broken, ns=(header.mtime_ns, header.mtime_ns))
    with pytest.raises(InputFileError, match=rf"{broken.name}: cannot read as DICOM") as err:
        load_ct(record.files, headers=record.headers, label="CT series x")
    assert "\n" not in str(err.value)
    broken.unlink()  # gone: read again, and named
    with pytest.raises(InputFileError, match=rf"{broken.name}: cannot read as DICOM"):
        load_ct(record.files, headers=record.headers)


def test_the_inventory_keeps_no_header_unless_asked(tmp_path):
    _study_with_large_ct_slices(tmp_path / "study")
    assert all(r.headers == () for r in inventory(tmp_path / "study"))
    kept = inventory(tmp_path / "study", keep_headers=True)
    assert all(len(r.headers) == r.n_files for r in kept)
    # deferred: the CT's pixel data is located, not read, until a loader asks for it
    (ct,) = [r for r in kept if r.modality == "CT"]
    raw = ct.headers[0].dataset.get_item("PixelData", keep_deferred=True)
    assert raw.value is None and raw.length > reading.DEFER_BYTES
    assert discovery.SeriesRecord.__dataclass_fields__["headers"].compare is False
