"""Bounded property-based fuzzing (hypothesis) of header parsing, units, slice geometry, image files and
the RTSTRUCT rasteriser.

The property everywhere: a call returns a valid result (finite geometry, masks in [0, 1], volumes that
match the polygon area for simple polygons) or raises a :class:`~dosimetry.errors.DosimetryError`
subclass; any other exception fails the test. The profile is derandomized (the same examples on every
run, so CI is repeatable), has no deadline and no example database, and bounds the number of examples
so that the whole file runs in well under 60 s on two cores.
"""

from __future__ import annotations

import math
import struct
from datetime import date, datetime

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from dosimetry.dicom import slices, timing
from dosimetry.dicom.rtstruct import (
    contour_problem,
    crosses_itself,
    rasterize_contours,
    read_rtstruct,
    rtstruct_to_rois,
)
from dosimetry.errors import DosimetryError
from dosimetry.image import Image
from dosimetry.io.images import LPS_TO_RAS, MAX_SPACING_MM, MIN_SPACING_MM, read_image
from dosimetry.quantify.activity import UNITS, parse_units

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*VR DS:UserWarning"
)  # pydicom on the invalid values written on purpose

FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
"""Repeatable, bounded examples (the same on every run)."""
FUZZ_SLOW = settings(FUZZ, max_examples=60)
"""For properties that write files."""
FUZZ_MANY = settings(FUZZ, max_examples=400)
"""For fast properties with a large input space."""


def outcome(fn, *args, **kwargs):
    """The result of ``fn``, or None when it raised a DosimetryError; anything else propagates."""
    try:
        return fn(*args, **kwargs)
    except DosimetryError as err:
        message = str(err)
        assert message and "\n" not in message, f"error messages are one line: {message!r}"
        event(
            f"{type(err).__name__}: {' '.join(message.rsplit('/', 1)[-1].split()[1:5])}"
        )  # seen with --hypothesis-show-statistics
        return None


def assert_valid_image(image: Image):
    assert image.array.ndim == 3 and min(image.shape) >= 1
    for value in (image.origin_mm, image.spacing_mm, image.direction):
        assert np.all(np.isfinite(value))
    assert np.all(image.spacing_mm > 0)
    assert np.allclose(image.direction.T @ image.direction, np.eye(3), atol=1e-3)


# --- header values ------------------------------------------------------------------------------------------
DIGITS = st.text(alphabet="0123456789", min_size=0, max_size=16)
HEADER_TEXT = st.one_of(
    DIGITS,
    st.text(max_size=24),
    st.text(alphabet="0123456789.:-+ &", max_size=26),
    st.builds(lambda a, b: f"{a}.{b}", DIGITS, st.text(alphabet="0123456789-+ ", max_size=8)),
    st.none(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True),
)


@FUZZ
@given(HEADER_TEXT)
@example("12.-1")  # found by this test: a negative fraction gave microsecond -10000 (ValueError in combine)
@example("20241301")
@example("235960.5")
def test_dicom_date_time_parsers(value):
    day = outcome(timing.parse_date, value)
    assert day is None or isinstance(day, date)
    tm = outcome(timing.parse_time, value)
    if tm is not None:
        hour, minute, second, micro = tm
        assert 0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 59 and 0 <= micro < 10**6
    dt = outcome(timing.parse_datetime, value)
    assert dt is None or isinstance(dt, datetime)
    if day is not None and tm is not None:
        assert isinstance(timing.combine(day, tm), datetime)


@FUZZ
@given(st.one_of(st.text(max_size=12), st.sampled_from([u.upper() for u in UNITS] + [" bq/ml ", "BQML", "kbq/ML"])))
def test_units_parsing(text):
    units = outcome(parse_units, text)
    assert units is None or units in UNITS


@FUZZ
@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(min_value=1e-300, max_value=1e300))
@example(-1e9, 1.0)  # found: OverflowError in timing.decay_factor
def test_decay_helpers(elapsed_s, half_life_s):
    from dosimetry.quantify.decay import decay_factor_to_implant

    factor = outcome(decay_factor_to_implant, elapsed_s)
    assert factor is None or (math.isfinite(factor) and factor > 0)
    left = outcome(timing.decay_factor, elapsed_s, half_life_s)
    assert left is None or 0 <= left < math.inf
    average = outcome(timing.frame_average_to_start, elapsed_s, half_life_s)
    assert average is None or math.isnan(elapsed_s) or average >= 1.0


# --- slice geometry ----------------------------------------------------------------------------------------
NUMBER_TEXT = st.one_of(
    st.floats(-1e6, 1e6).map(lambda v: f"{v:.6g}"), st.sampled_from(["0", "-0", "nan", "inf", "", "x", "1e400"])
)
UNIT_ROTATIONS = st.tuples(st.floats(-math.pi, math.pi), st.floats(-math.pi, math.pi), st.floats(-math.pi, math.pi))


def _rotation(angles) -> np.ndarray:
    a, b, c = angles
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    rx = np.array([[1, 0, 0], [0, math.cos(c), -math.sin(c)], [0, math.sin(c), math.cos(c)]])
    return rz @ ry @ rx


def _raw(ds: Dataset, keyword: str, value) -> None:
    """Set a DS attribute from header text as a file would hold it (pydicom converts it when read, and
    keeps text that is not a number as a string, with a warning)."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    text = value if isinstance(value, str) else "\\".join(value)
    data = text.encode("latin-1", "replace")
    data += b" " * (len(data) % 2)
    tag = Tag(keyword)
    ds[tag] = RawDataElement(tag, "DS", len(data), data, 0, True, True)


@st.composite
def slice_series(draw):
    """Classic single-frame datasets (in memory) of one series: a regular stack perturbed by random
    position noise, duplicate or dropped slices, tilt, odd spacings and unparseable header values."""
    n = draw(st.integers(1, 6))
    rows, cols = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    rot = _rotation(draw(UNIT_ROTATIONS))
    spacing = draw(st.tuples(st.floats(0.0, 20.0), st.floats(0.0, 20.0)))
    step = (
        draw(st.one_of(st.sampled_from([2.0, -3.0, 4.0]), st.floats(-10.0, 10.0))) * rot[:, 2]
        + draw(st.sampled_from([0.0, 0.0, 1.0, -3.0, 1e3, 1e5])) * rot[:, 1]
    )
    origin = np.array(draw(st.tuples(*[st.floats(-1e4, 1e4)] * 3)))
    noise = draw(st.lists(st.floats(-0.5, 0.5), min_size=n, max_size=n))
    datasets = []
    for k in range(n):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.Modality = draw(st.sampled_from(["PT", "CT", "NM"]))
        position = origin + k * step + noise[k] * draw(st.sampled_from([0.0, 0.001, 1.0])) * rot[:, 2]
        _raw(ds, "ImagePositionPatient", [f"{v:.6g}" for v in position])
        orientation = np.concatenate([rot[:, 0], rot[:, 1]])
        if draw(st.integers(0, 4 * n)) == 0:
            orientation = orientation + np.array(draw(st.lists(st.floats(-1, 1), min_size=6, max_size=6)))
        _raw(ds, "ImageOrientationPatient", [f"{v:.6g}" for v in orientation])
        _raw(ds, "PixelSpacing", [f"{v:.6g}" for v in spacing])
        if draw(st.integers(0, 4 * n)) == 0:
            _raw(
                ds,
                draw(st.sampled_from(["ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"])),
                draw(st.sampled_from(["", "nan\\1\\2", "1\\2", "a\\b\\c"])),
            )
        rare = draw(st.integers(0, 4 * n)) == 0  # a fault in about one series in four
        _raw(ds, "RescaleSlope", draw(NUMBER_TEXT) if rare else "1.5")
        _raw(ds, "RescaleIntercept", draw(NUMBER_TEXT) if rare and draw(st.booleans()) else "0")
        if rare and draw(st.booleans()):
            del ds.RescaleSlope
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = np.arange(rows * cols, dtype=np.int16).tobytes()
        datasets.append((f"f{k}.dcm", ds))
    return datasets, draw(st.sampled_from(["refuse", "resample"]))


@FUZZ_MANY
@given(slice_series())
def test_slice_stacking(series):
    import warnings

    datasets, tilt = series
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about invalid DS strings, which is the point
        frames = outcome(slices.frames_from_single_frame_files, datasets)
    if frames is None:
        event("refused: frame headers")
        return
    ordered = outcome(slices.sort_frames, frames, label="fuzz series")
    if ordered is None:
        event("refused: stack")
        return
    built = outcome(slices.build_image, ordered, [fr.values for fr in ordered.frames], label="fuzz series", tilt=tilt)
    event(
        "refused: build"
        if built is None
        else f"built ({'tilted' if ordered.tilted else 'straight'}, {len(frames)} frames)"
    )
    if built is not None:
        image, _ = built
        assert_valid_image(image)
        assert np.all(np.isfinite(image.array))


# --- images and NIfTI headers -------------------------------------------------------------------------------
@FUZZ
@given(
    st.tuples(*[st.floats(allow_nan=True, allow_infinity=True)] * 3),
    st.one_of(st.floats(allow_nan=True), st.tuples(*[st.floats(allow_nan=True, allow_infinity=True)] * 3)),
    st.lists(st.one_of(st.floats(-2, 2), st.just(math.nan)), min_size=9, max_size=9),
)
def test_image_construction(origin, spacing, direction):
    image = outcome(Image, np.zeros((2, 2, 2)), origin, spacing, np.reshape(direction, (3, 3)))
    if image is not None:
        assert_valid_image(image)


@st.composite
def nifti_headers(draw):
    rot = _rotation(draw(UNIT_ROTATIONS))
    scale = np.array(draw(st.tuples(*[st.sampled_from([1.0, 2.0, 4.0, 0.7, 1e-4, 150.0])] * 3)))
    scale = scale * draw(st.floats(0.5, 2.0))
    columns = rot * scale
    if draw(st.integers(0, 3)) == 0:
        columns = columns + np.array(draw(st.lists(st.floats(-1, 1), min_size=9, max_size=9))).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = columns
    affine[:3, 3] = draw(st.tuples(*[st.floats(-1e5, 1e5)] * 3))
    pixdim = draw(
        st.one_of(
            st.none(), st.none(), st.none(), st.tuples(*[st.floats(allow_nan=True, allow_infinity=True, width=32)] * 3)
        )
    )
    codes = draw(st.one_of(st.just((1, 1)), st.tuples(st.integers(-1, 5), st.integers(-1, 5))))
    shape = draw(st.sampled_from([(3, 2, 2)] * 4 + [(2, 2), (2, 2, 2, 1), (2, 2, 2, 2), (2, 2, 1, 1, 1)]))
    return affine, pixdim, codes, shape


@FUZZ_SLOW
@given(nifti_headers())
def test_nifti_headers_through_read_image(tmp_path, header):
    affine, pixdim, (qcode, scode), shape = header
    path = tmp_path / "fuzz.nii"
    with np.errstate(all="ignore"):
        image = nib.Nifti1Image(np.ones(shape, np.float32), LPS_TO_RAS @ affine)
        image.set_qform(image.affine, code=1)
        image.set_sform(image.affine, code=1)
    nib.save(image, path)
    raw = bytearray(path.read_bytes())
    if pixdim is not None:
        raw[80:92] = struct.pack("<3f", *pixdim)
    raw[252:256] = struct.pack("<2h", qcode, scode)
    path.write_bytes(bytes(raw))
    notes: list[str] = []
    result = outcome(read_image, path, notes=notes)
    event("refused" if result is None else "read")
    if result is not None:
        assert_valid_image(result)
        assert np.all((result.spacing_mm >= MIN_SPACING_MM) & (result.spacing_mm <= MAX_SPACING_MM))
        assert result.array.size == int(np.prod(shape))
        if len(shape) > 3:
            assert any("single volume" in n for n in notes)


# --- RTSTRUCT rasteriser ----------------------------------------------------------------------------------------
COORD = st.one_of(
    st.floats(-30, 30),
    st.floats(-30, 30),
    st.floats(-30, 30),
    st.sampled_from([0.0, 1e12, -1e12, 1e300, -1e300, 5e-324, math.nan, math.inf]),
)


@st.composite
def polygons(draw):
    """Anything a structure set may hold in the plane z = const: random points (degenerate, crossing,
    huge, NaN), a bow-tie, or nothing."""
    kind = draw(st.sampled_from(["random", "random", "bowtie", "empty", "line"]))
    z = draw(st.sampled_from([0.0, 1.0, 2.5, -4.0]))
    if kind == "empty":
        return np.zeros((0, 3))
    if kind == "bowtie":
        a = draw(st.floats(1, 20))
        return np.array([[-a, -a, z], [a, a, z], [a, -a, z], [-a, a, z]])
    if kind == "line":
        n = draw(st.integers(2, 6))
        t = np.linspace(0, draw(st.floats(0, 20)), n)
        return np.column_stack([t, 2 * t, np.full(n, z)])
    n = draw(st.integers(1, 12))
    coord = COORD if draw(st.integers(0, 2)) == 0 else st.floats(-30, 30)
    xy = draw(st.lists(st.tuples(coord, coord), min_size=n, max_size=n))
    return np.column_stack([np.asarray(xy, dtype=float).reshape(-1, 2), np.full(n, z)])


GRID = Image(np.zeros((16, 16, 5)), origin_mm=(-15.0, -15.0, -4.0), spacing_mm=(2.0, 2.0, 2.0))


@FUZZ_MANY
@given(st.lists(polygons(), min_size=1, max_size=3), st.sampled_from([None, 2.0, 0.5, 1e6]), st.sampled_from([1, 2, 4]))
@example(  # found by this test: the normal's length overflowed (np.linalg.norm squares 1e300)
    contours=[np.array([[0.0, 0.0, 0.0], [0.0, 1e300, 0.0], [0.0, 0.0, 0.0], [1e300, 0.0, 0.0]])],
    thickness=None,
    supersample=1,
)
def test_rasteriser_with_any_polygons(contours, thickness, supersample):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no silent overflow or NaN arithmetic either
        for c in contours:
            assert contour_problem(c) is None or isinstance(contour_problem(c), str)
            if contour_problem(c) is None:
                crosses_itself(c)
        mask = outcome(rasterize_contours, contours, GRID, slice_thickness_mm=thickness, supersample=supersample)
    event("refused" if mask is None else ("non-empty mask" if mask.any() else "empty mask"))
    if mask is not None:
        assert mask.shape == GRID.shape and mask.dtype == np.float32
        assert np.all(np.isfinite(mask)) and mask.min() >= 0 and mask.max() <= 1


@st.composite
def star_polygons(draw):
    """Simple (non-crossing) polygons: vertices at increasing angles around a centre (every angular gap
    below pi, so the polygon is star-shaped about the centre), random radii."""
    n = draw(st.integers(3, 24))
    gaps = np.array(draw(st.lists(st.floats(1.0, 1.4), min_size=n, max_size=n)))
    angles = draw(st.floats(0, 2 * math.pi)) + 2 * math.pi * np.cumsum(gaps) / gaps.sum()
    radii = np.array(draw(st.lists(st.floats(4.0, 12.0), min_size=n, max_size=n)))
    centre = np.array(draw(st.tuples(st.floats(-2, 2), st.floats(-2, 2))))
    return np.column_stack([centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles), np.zeros(n)])


def _area_perimeter(polygon):
    x, y = polygon[:, 0], polygon[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    return area, float(np.sum(np.linalg.norm(polygon - np.roll(polygon, -1, axis=0), axis=1)))


@FUZZ
@given(star_polygons())
def test_rasterised_volume_matches_a_simple_polygon(polygon):
    assert not crosses_itself(polygon)
    mask = rasterize_contours([polygon], GRID, slice_thickness_mm=2.0, supersample=4)
    area, perimeter = _area_perimeter(polygon)
    volume = float(mask.sum()) * np.prod(GRID.spacing_mm)
    # the slab z in [-1, 1] is exactly one voxel layer; each boundary voxel (2 mm) is sampled 4 x 4 in plane,
    # so the area error is below about one sub-sample row along the boundary: perimeter x 2 mm / 4
    assert abs(volume / 2.0 - area) <= perimeter * 2.0 / 4 + 1.0


@FUZZ_SLOW
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["Liver", "Tumour 1", "Lung", "X"]),
            st.lists(polygons(), min_size=0, max_size=3),
            st.sampled_from(["CLOSED_PLANAR", "CLOSED_PLANAR", "POINT", "OPEN_PLANAR"]),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_rtstruct_files_with_any_contours(tmp_path, structures):
    import dicom_builders as b
    import pydicom

    path = b.write_rtstruct(
        tmp_path / "rs.dcm",
        [(name, contours) for name, contours, _ in structures],
        study_uid="1.2.3",
        for_uid="1.2.3.4",
        referenced_series_uid="1.2.3.5",
    )
    ds = pydicom.dcmread(path)
    for roi, (_, _, kind) in zip(ds.ROIContourSequence, structures):
        for item in roi.ContourSequence:
            item.ContourGeometricType = kind
    ds.save_as(path)
    read = outcome(read_rtstruct, path)
    if read is not None:
        for st_ in read[0]:
            assert all(contour_problem(c) is None for c in st_.contours)
    rois = outcome(rtstruct_to_rois, path, GRID, supersample=2)
    event("refused" if rois is None else f"{len(rois[0])} ROIs")
    if rois is not None:
        for roi in rois[0]:
            assert roi.mask.same_grid(GRID) and 0 <= roi.mask.array.min() and roi.mask.array.max() <= 1
            assert roi.mask.array.any()
