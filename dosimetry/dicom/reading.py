"""Reading DICOM files once: the header the folder's inventory read is the one the loader uses (issue 10).

A study is found by reading the header of every file (:func:`dosimetry.dicom.discovery.inventory`), then its
series are loaded. Parsing a header is most of the cost of reading an uncompressed image file, so reading each
file twice (the header, then everything) cost a real-size PET/CT study about 0.1 s of its 0.5 s of loading.
When asked (``inventory(folder, keep_headers=True)``: :func:`dosimetry.dicom.study.load_study`), the
inventory reads each file with its large values deferred (pydicom's ``defer_size``: the pixel data is located,
not read) and keeps these headers; the loaders then read only the deferred values, from the same file.

A file that changed after its header was read (size or modification time) is read again in full, so a header
and pixel data always come from one version of a file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pydicom

from dosimetry.errors import InputFileError

DEFER_BYTES = 16 * 1024
"""Values longer than this are located but not read with the header (pixel data of any image of 64 x 64 or
more; sequences and the other header values are read)."""


_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass(frozen=True)
class Header:
    """A file's dataset read with its large values deferred, and the file's size and modification time then."""

    path: Path
    dataset: pydicom.Dataset
    size: int
    mtime_ns: int

    def unchanged(self) -> bool:
        """Whether the file is still the one read (same size and modification time)."""
        try:
            st = os.stat(self.path)
        except OSError:
            return False
        return st.st_size == self.size and st.st_mtime_ns == self.mtime_ns


def read_header(path: str | os.PathLike) -> Header:
    """The dataset of ``path`` with values over :data:`DEFER_BYTES` deferred (pydicom errors propagate)."""
    path = Path(path)
    st = os.stat(path)
    dataset = pydicom.dcmread(path, defer_size=DEFER_BYTES)
    return Header(path, dataset, st.st_size, st.st_mtime_ns)


def read_series(files, headers=(), *, label: str | None = None) -> list[tuple[str, pydicom.Dataset]]:
    """``(file name, dataset with its pixel data)`` of every file of a series, in the order of ``files``.

    ``headers`` are the series' :class:`Header` records from the inventory (any order; may be empty): a file
    with one, unchanged since, is completed from it (its deferred values read); the others are read in full.

    Raises
    ------
    InputFileError
        A file that cannot be read as DICOM (the message names it, and ``label``).
    """
    by_path = {Path(h.path): h for h in headers}
    out = []
    suffix = f"; {label}" if label else ""
    for path in files:
        header = by_path.get(Path(path))
        try:
            if header is not None and header.unchanged():
                dataset = header.dataset
                for keyword in _PIXEL_KEYWORDS:  # read the deferred pixel data now: a read error is named here
                    if keyword in dataset:
                        dataset[keyword]  # noqa: B018  (reads the deferred value)
            else:
                dataset = pydicom.dcmread(path)
        except Exception as err:
            raise InputFileError(f"{path}: cannot read as DICOM ({type(err).__name__}: {err}){suffix}") from err
        out.append((Path(path).name, dataset))
    return out
