"""Faulty data through the library and the command line: a one-line error with its exit code and no
output folder, or a run whose stats.json carries a warning with the number. Every input is built on disk.

Faults: an activity image that is all zero, non-positive, of negative or tiny total; RescaleSlope 0,
negative, NaN or missing; NIfTI/MHA/NRRD voxel size 0/negative/NaN/absurd, singular or sheared axes,
qform/sform codes 0, 2-D and 4-D images; scan delays that overflow the decay factor; RTSTRUCT contours
that are empty, degenerate, self-crossing, not areas, or outside the image; empty SEG segments.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

import dicom_builders as b
from dosimetry.cli import main
from dosimetry.quantify.decay import MAX_SCAN_DELAY_S, decay_factor_to_implant
from dosimetry.dicom.pet import load_pet
from dosimetry.dicom.rtstruct import crosses_itself, rasterize_contours
from dosimetry.errors import OptionsError, GeometryError, InputFileError, RoiError, UnitsError
from dosimetry.image import Image
from dosimetry.io.images import LPS_TO_RAS, read_image, write_nifti
from dosimetry.pipeline import DosimetryOptions

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "phantom"
ROIS = [
    "--roi",
    f"liver={SAMPLE / 'rois' / 'liver.nii.gz'}",
    "--roi",
    f"tumor:T1={SAMPLE / 'rois' / 'tumor_T1.nii.gz'}",
]


def run_cli(args, out: Path, capsys):
    """Run the CLI; return (exit code, stderr lines, stats or None)."""
    code = main([*args, "--out", str(out), "-q"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    stats = json.loads((out / "stats.json").read_text()) if (out / "stats.json").exists() else None
    return code, err, stats


def assert_refused(code, err, out: Path, expected_code, *words):
    assert code == expected_code, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    for word in words:
        assert word.lower() in err[0].lower(), err[0]
    assert not out.exists()
    assert not any(p.name.startswith(f".{out.name}") for p in out.parent.iterdir()), "partial output left behind"


def image_run(activity: Path, *extra):
    return [
        "run",
        "--activity",
        str(activity),
        "--ct",
        str(SAMPLE / "ct_hu.nii.gz"),
        *ROIS,
        "--scan-delay-h",
        "20",
        "--activity-units",
        "Bq/mL",
        *extra,
    ]


def sample_activity() -> Image:
    return read_image(SAMPLE / "activity_bqml.nii.gz")


def patch_nifti(path: Path, *, pixdim=None, qform_code=None, sform_code=None) -> Path:
    """Overwrite header fields of an uncompressed NIfTI-1 file in place (nibabel would repair them on save)."""
    raw = bytearray(path.read_bytes())
    if pixdim is not None:
        raw[80:92] = struct.pack("<3f", *pixdim)
    if qform_code is not None:
        raw[252:254] = struct.pack("<h", qform_code)
    if sform_code is not None:
        raw[254:256] = struct.pack("<h", sform_code)
    path.write_bytes(bytes(raw))
    return path


# --- (a) activity that cannot be a dose ------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind, words",
    [
        ("zero", "all zero"),
        ("negative", "positive voxel"),
        ("negative_total", "sums to"),
        ("noise", "noise around zero"),
    ],
)
def test_activity_without_positive_total_is_refused(tmp_path, capsys, kind, words):
    image = sample_activity()
    values = image.array.astype(np.float64)
    noise = np.where(np.indices(values.shape).sum(axis=0) % 2, 1e3, -1e3)  # +-1000 checkerboard
    noise.flat[0] += 1e3 if noise.sum() <= 0 else 0.0  # net +1000 (or more) against 3e8 gross
    array = {
        "zero": np.zeros_like(values),
        "negative": -values,
        "negative_total": values - 2 * values.mean(),
        "noise": noise,
    }[kind]
    path = write_nifti(image.with_array(array.astype(np.float32)), tmp_path / f"{kind}.nii.gz")
    code, err, _ = run_cli(image_run(path), tmp_path / "out", capsys)
    assert_refused(code, err, tmp_path / "out", UnitsError.exit_code, words, f"{kind}.nii.gz", "scaling")


def test_tiny_total_is_refused_and_a_small_one_warned_with_its_number(tmp_path, capsys):
    image = sample_activity()
    total_bq = float(image.array.sum(dtype=np.float64)) * image.voxel_volume_ml
    tiny = write_nifti(image.with_array(image.array * (100.0 / total_bq)), tmp_path / "tiny.nii.gz")
    code, err, _ = run_cli(image_run(tiny), tmp_path / "out", capsys)
    assert_refused(code, err, tmp_path / "out", UnitsError.exit_code, "tiny.nii.gz", "Bq in total", "units")
    small = write_nifti(image.with_array(image.array * (2e6 / total_bq)), tmp_path / "small.nii.gz")
    code, err, stats = run_cli(image_run(small), tmp_path / "ok", capsys)
    assert code == 0, err
    expected_mbq = 2.0 * decay_factor_to_implant(20 * 3600)
    hits = [w for w in stats["warnings"] if "below any Y-90 treatment" in w]
    assert len(hits) == 1 and f"{expected_mbq:.3g} MBq" in hits[0]


def _dicom_study(folder: Path, activity_scale: float = 1.0, structures=None, **pet_kwargs):
    """The phantom PET/CT/RTSTRUCT; no RadionuclideTotalDose unless given (the phantom holds about 1 MBq, and a
    2.1 GBq header would fail the recovered-activity check, which has tests of its own)."""
    pet_kwargs.setdefault("total_dose", None)
    study_uid, for_uid = b.uid("bad", folder.name), b.uid("bad", folder.name, "for")
    truth = b.phantom_activity(b.symmetric_grid((20, 18, 12), 4.0))
    pet = b.write_pet_series(
        folder / "pet",
        truth.with_array(truth.array * activity_scale),
        study_uid=study_uid,
        for_uid=for_uid,
        **pet_kwargs,
    )
    ct_uid = b.uid(study_uid, "ct")
    b.write_ct_series(
        folder / "ct",
        b.phantom_ct(b.symmetric_grid((44, 38, 32), 2.0)),
        study_uid=study_uid,
        for_uid=for_uid,
        series_uid=ct_uid,
    )
    b.write_rtstruct(
        folder / "rtstruct.dcm",
        structures or b.phantom_structures(),
        study_uid=study_uid,
        for_uid=for_uid,
        referenced_series_uid=ct_uid,
    )
    return pet, pydicom.dcmread(pet[0]).SeriesInstanceUID


def test_dicom_all_zero_pet_names_the_series(tmp_path, capsys):
    _, series_uid = _dicom_study(tmp_path / "s", activity_scale=0.0)
    code, err, _ = run_cli(["run", str(tmp_path / "s")], tmp_path / "out", capsys)
    assert_refused(code, err, tmp_path / "out", UnitsError.exit_code, series_uid, "all zero")


# --- (b) rescale --------------------------------------------------------------------------------------------
def _set_slope(path: Path, value):
    ds = pydicom.dcmread(path)
    if value is None:
        del ds.RescaleSlope
    else:
        ds.RescaleSlope = value
    ds.save_as(path)


@pytest.mark.parametrize(
    "value, words", [("0", "RescaleSlope 0"), ("-0.5", "RescaleSlope -0.5"), ("NaN", "not a number"), (None, "missing")]
)
def test_bad_rescale_slope_names_the_file_and_slice(tmp_path, value, words):
    files, _ = _dicom_study(tmp_path / "s")
    _set_slope(files[5], value)
    with pytest.raises(InputFileError, match="1 of 12 slices") as info:
        load_pet(files, label="PET series X")
    message = str(info.value)
    assert files[5].name in message and "instance 6" in message and words in message and "\n" not in message


def test_cli_rescale_slope_zero(tmp_path, capsys):
    files, _ = _dicom_study(tmp_path / "s")
    for f in files[3:8]:
        _set_slope(f, "0")
    code, err, _ = run_cli(["run", str(tmp_path / "s")], tmp_path / "out", capsys)
    assert_refused(
        code, err, tmp_path / "out", InputFileError.exit_code, "5 of 12 slices", files[3].name, "RescaleSlope 0"
    )


def test_nm_rescale_slope_zero_is_not_read_as_one(tmp_path):
    from dosimetry.dicom.spect import load_spect

    counts = b.phantom_activity(b.symmetric_grid((16, 16, 10), 4.8))
    path = b.write_nm_recon(
        tmp_path / "nm.dcm", counts.with_array(counts.array / 100), study_uid="1.2", for_uid="1.2.3"
    )
    ds = pydicom.dcmread(path)
    ds.RescaleSlope = "0"
    ds.save_as(path)
    with pytest.raises(InputFileError, match="RescaleSlope 0"):
        load_spect([path], calibration_factor_cps_per_mbq=None, label="SPECT series Y")


# --- (c) image geometry from files --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "pixdim, words",
    [
        ((0, 0, 0), "pixdim"),
        ((-4, 4, 4), "pixdim"),
        ((math.nan, 4, 4), "pixdim"),
        ((400, 4, 4), "outside 0.01-100 mm"),
        ((0.001, 4, 4), "outside 0.01-100 mm"),
    ],
)
def test_nifti_voxel_size_is_checked_for_every_image(tmp_path, capsys, pixdim, words):
    bad = patch_nifti(write_nifti(sample_activity(), tmp_path / "act.nii"), pixdim=pixdim, sform_code=0)
    with pytest.raises(GeometryError, match=words):
        read_image(bad)
    code, err, _ = run_cli(image_run(bad), tmp_path / "out", capsys)
    assert_refused(code, err, tmp_path / "out", GeometryError.exit_code, "act.nii", "voxel size")
    # the CT and a mask go through the same reader
    ct = patch_nifti(write_nifti(read_image(SAMPLE / "ct_hu.nii.gz"), tmp_path / "ct.nii"), pixdim=pixdim, sform_code=0)
    args = image_run(SAMPLE / "activity_bqml.nii.gz")
    args[args.index("--ct") + 1] = str(ct)
    code, err, _ = run_cli(args, tmp_path / "out", capsys)
    assert_refused(code, err, tmp_path / "out", GeometryError.exit_code, "ct.nii")
    mask = patch_nifti(
        write_nifti(read_image(SAMPLE / "rois" / "liver.nii.gz"), tmp_path / "liver.nii"), pixdim=pixdim, sform_code=0
    )
    args = image_run(SAMPLE / "activity_bqml.nii.gz")
    args[args.index(ROIS[1])] = f"liver={mask}"
    code, err, _ = run_cli(args, tmp_path / "out", capsys)
    assert_refused(code, err, tmp_path / "out", GeometryError.exit_code, "liver.nii")


def test_pixdim_zero_with_an_sform_is_still_refused(tmp_path):
    bad = patch_nifti(write_nifti(sample_activity(), tmp_path / "a.nii"), pixdim=(0, 0, 0))
    with pytest.raises(GeometryError, match="nibabel would read 0 as 1 mm"):
        read_image(bad)


def test_qform_and_sform_codes_zero_are_reported_in_stats(tmp_path, capsys):
    # the sample activity resampled (a flip of j) onto the grid that nibabel's pixdim-only fallback gives,
    # so that the run still lines up with the ROIs and its only difference is the note
    sample = nib.load(SAMPLE / "activity_bqml.nii.gz")
    base = sample.header.get_base_affine()
    flip = np.linalg.inv(sample.affine) @ base
    assert np.allclose(flip[:3, :3], np.diag([1, -1, 1]))
    image = Image.from_affine(np.asanyarray(sample.dataobj)[:, ::-1, :], LPS_TO_RAS @ base)
    path = patch_nifti(write_nifti(image, tmp_path / "act.nii"), qform_code=0, sform_code=0)
    notes: list[str] = []
    assert np.allclose(read_image(path, notes=notes).affine_lps, image.affine_lps)
    assert len(notes) == 1 and "fallback affine from pixdim only" in notes[0]
    code, err, stats = run_cli(image_run(path), tmp_path / "out", capsys)
    assert code == 0, err
    assert sum("qform_code and sform_code are both 0" in w and "act.nii" in w for w in stats["warnings"]) == 1


def test_4d_images(tmp_path, capsys):
    image = sample_activity()
    one = tmp_path / "one.nii.gz"
    nib.save(nib.Nifti1Image(image.array[..., None], LPS_TO_RAS @ image.affine_lps), one)
    notes: list[str] = []
    back = read_image(one, notes=notes)
    assert back.shape == image.shape and np.allclose(back.affine_lps, image.affine_lps)
    assert len(notes) == 1 and "single volume" in notes[0]
    code, err, stats = run_cli(image_run(one), tmp_path / "ok", capsys)
    assert code == 0, err
    assert any("single volume" in w and "one.nii.gz" in w for w in stats["warnings"])
    many = tmp_path / "many.nii.gz"
    nib.save(nib.Nifti1Image(np.stack([image.array] * 3, axis=-1), np.eye(4)), many)
    code, err, _ = run_cli(image_run(many), tmp_path / "out", capsys)
    assert_refused(code, err, tmp_path / "out", GeometryError.exit_code, "many.nii.gz", "3 volumes", "extract")
    flat = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(image.array[:, :, 0], np.eye(4)), flat)
    with pytest.raises(GeometryError, match="2-D"):
        read_image(flat)


def _mha(path: Path, *, spacing="4 4 4", matrix="1 0 0 0 1 0 0 0 1") -> Path:
    header = (
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
        f"TransformMatrix = {matrix}\nOffset = 0 0 0\nElementSpacing = {spacing}\nDimSize = 4 4 4\n"
        "ElementType = MET_FLOAT\nElementDataFile = LOCAL\n"
    )
    path.write_bytes(header.encode() + np.ones(64, np.float32).tobytes())
    return path


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"spacing": "0 4 4"}, "spacing"),
        ({"spacing": "nan 4 4"}, "spacing"),
        ({"spacing": "1000 4 4"}, "outside"),
        ({"matrix": "1 0 0 1 0 0 0 0 1"}, "direction"),
        ({"matrix": "1 0 0 0.2 1 0 0 0 1"}, "sheared"),
    ],
)
def test_metaimage_geometry_one_line_errors(tmp_path, kwargs, words):
    with pytest.raises(GeometryError, match=words) as info:
        read_image(_mha(tmp_path / "x.mha", **kwargs))
    assert "\n" not in str(info.value) and "x.mha" in str(info.value)


def test_slicer_segmentation_with_singular_directions_is_refused(tmp_path):
    import nrrd

    from dosimetry.io.roi_files import read_slicer_segmentation

    data = np.zeros((4, 4, 4), np.uint8)
    data[1:3, 1:3, 1:3] = 1
    header = {
        "space": "left-posterior-superior",
        "space directions": np.array([[2.0, 0, 0], [2.0, 0, 0], [0, 0, 2.0]]),
        "space origin": np.zeros(3),
        "Segment0_Name": "Liver",
        "Segment0_LabelValue": "1",
        "Segment0_Layer": "0",
    }
    path = tmp_path / "s.seg.nrrd"
    nrrd.write(str(path), data, header, index_order="F")
    with pytest.raises(GeometryError, match="s.seg.nrrd.*singular"):
        read_slicer_segmentation(path)


# --- (d) decay ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("delay_s", [1e6 * 3600, 1e300, math.inf, -math.inf, math.nan, -3600, MAX_SCAN_DELAY_S * 1.01])
def test_decay_factor_never_overflows(delay_s):
    with pytest.raises(UnitsError):
        decay_factor_to_implant(delay_s)


@pytest.mark.parametrize("delay_s", [0.0, 1e-300, 5e-324, -30.0, MAX_SCAN_DELAY_S])
def test_decay_factor_small_and_limit_delays(delay_s):
    factor = decay_factor_to_implant(delay_s)
    assert math.isfinite(factor) and factor == pytest.approx(2.0 ** (delay_s / b.Y90_HALF_LIFE_S), rel=1e-12)


@pytest.mark.parametrize("hours", ["1e6", "1200"])
def test_cli_absurd_scan_delay(tmp_path, capsys, hours):
    args = image_run(SAMPLE / "activity_bqml.nii.gz")
    args[args.index("--scan-delay-h") + 1] = hours
    code, err, _ = run_cli(args, tmp_path / "out", capsys)
    # the CLI range check (exit 7) or the library (exit 5): either way one line, no traceback
    assert code in (5, 7)
    assert_refused(code, err, tmp_path / "out", code, "scan-delay-h")


def test_library_absurd_scan_delay():
    # the API options refuse it first (one range table with the CLI); decay itself is checked above
    with pytest.raises(OptionsError, match="scan_delay_h: got 1e\\+06"):
        DosimetryOptions(activity_units="Bq/mL", scan_delay_h=1e6)


# --- (e) RTSTRUCT and SEG -----------------------------------------------------------------------------------
BOWTIE = np.array([[-8.0, -8.0, 0.0], [8.0, 8.0, 0.0], [8.0, -8.0, 0.0], [-8.0, 8.0, 0.0]])


def _edit_contour(path: Path, roi_index: int, contour_index: int, **attributes):
    ds = pydicom.dcmread(path)
    item = ds.ROIContourSequence[roi_index].ContourSequence[contour_index]
    for key, value in attributes.items():
        if value is None:
            delattr(item, key)
        else:
            setattr(item, key, value)
    ds.save_as(path)


def test_empty_and_degenerate_contours_are_skipped_and_counted(tmp_path, capsys):
    _dicom_study(tmp_path / "s")
    rs = tmp_path / "s" / "rtstruct.dcm"
    _edit_contour(rs, 0, 0, ContourData=None)  # the liver's first contour: no points
    _edit_contour(rs, 0, 1, ContourData=["1.0"] * 8)  # not triplets
    _edit_contour(rs, 0, 2, ContourData=["1.0", "2.0", "nan"] * 4)  # NaN
    _edit_contour(rs, 0, 3, ContourData=["1.0", "2.0", "3.0"] * 2)  # two points
    _edit_contour(rs, 1, 0, ContourGeometricType="POINT", ContourData=["10", "-6", "4"])
    n_liver = len(b.phantom_structures()[0][1])
    code, err, stats = run_cli(["run", str(tmp_path / "s")], tmp_path / "out", capsys)
    assert code == 0, err
    liver = [w for w in stats["warnings"] if "'Liver'" in w]
    assert len(liver) == 1 and f"4 of {n_liver} closed contours skipped" in liver[0]
    assert "NaN" in liver[0] and "fewer than 3" in liver[0] and "no ContourData" in liver[0]
    assert any("'Tumour 1'" in w and "1 POINT" in w for w in stats["warnings"])


def test_self_crossing_contour_is_filled_even_odd_and_warned(tmp_path, capsys):
    structures = b.phantom_structures() + [("Lesion 2", [BOWTIE + [0, 0, z] for z in (-2.0, 0.0, 2.0)])]
    _dicom_study(tmp_path / "s", structures=structures)
    code, err, stats = run_cli(["run", str(tmp_path / "s")], tmp_path / "out", capsys)
    assert code == 0, err
    hits = [w for w in stats["warnings"] if "'Lesion 2'" in w and "contour" in w]
    assert len(hits) == 1 and "3 of 3 contours cross themselves" in hits[0] and "even-odd" in hits[0]
    volume = next(r for r in stats["rois"] if r["name"] == "Lesion 2")["volume_ml"]
    # two triangles of 64 mm2 each, 3 planes x 2 mm: 0.384 mL (supersampled on 4 mm voxels)
    assert volume == pytest.approx(2 * 64 * 6 / 1000, rel=0.25)


def test_structure_with_no_usable_contour_is_refused_with_the_ignore_fix(tmp_path, capsys):
    structures = b.phantom_structures() + [("Lesion 2", [np.zeros((2, 3)) + [0, 0, 0.0]])]
    _dicom_study(tmp_path / "s", structures=structures)
    code, err, _ = run_cli(["run", str(tmp_path / "s")], tmp_path / "out", capsys)
    assert_refused(code, err, tmp_path / "out", RoiError.exit_code, "'Lesion 2'", "--segment-role 'Lesion 2=ignore'")
    code, err, stats = run_cli(
        ["run", str(tmp_path / "s"), "--segment-role", "Lesion 2=ignore"], tmp_path / "ok", capsys
    )
    assert code == 0, err
    assert "Lesion 2" not in [r["name"] for r in stats["rois"]]


def test_structure_outside_the_image_is_refused(tmp_path, capsys):
    structures = b.phantom_structures() + [("Lesion 9", b.sphere_contours((0, 0, 400.0), 8.0, 2.0))]
    _dicom_study(tmp_path / "s", structures=structures)
    code, err, _ = run_cli(["run", str(tmp_path / "s")], tmp_path / "out", capsys)
    assert_refused(code, err, tmp_path / "out", RoiError.exit_code, "'Lesion 9'", "covers no voxel", "=ignore")


def test_rasteriser_contracts():
    grid = b.symmetric_grid((10, 10, 6), 4.0)
    assert crosses_itself(BOWTIE) and not crosses_itself(b.circle((0, 0, 0), 10.0))
    square = np.array([[-8, -8, 0], [8, -8, 0], [8, 8, 0], [-8, 8, 0.0]])
    keyhole = np.array(
        [
            [-8, -8, 0],
            [8, -8, 0],
            [8, 8, 0],
            [-8, 8, 0],
            [-8, 0, 0],
            [-2, 0, 0],
            [-2, 2, 0],
            [2, 2, 0],
            [2, -2, 0],
            [-2, -2, 0],
            [-2, 0, 0],
            [-8, 0, 0.0],
        ]
    )
    assert not crosses_itself(keyhole)
    with pytest.raises(GeometryError, match="NaN"):
        rasterize_contours([square, square * np.nan], grid, slice_thickness_mm=4)
    with pytest.raises(GeometryError, match="encloses an area"):
        rasterize_contours([square[:2]], grid, slice_thickness_mm=4)
    huge = rasterize_contours([square * 1e12], grid, slice_thickness_mm=8)  # covers the grid from z = -4 to 4 mm
    assert huge[:, :, 2:4].min() == 1.0 and huge.sum() == 10 * 10 * 2
    far = rasterize_contours([square + [0, 0, 1e305]], grid, slice_thickness_mm=1e305)  # slab from 5e304 mm
    assert far.shape == grid.shape and not far.any()
    with pytest.raises(GeometryError):
        rasterize_contours([square + [0, 0, 1.5e308]], grid, slice_thickness_mm=1e308)


def test_empty_seg_segment_is_refused_with_the_ignore_fix(tmp_path):
    import highdicom as hd

    from dosimetry.dicom.seg import seg_to_rois

    files, _ = _dicom_study(tmp_path / "s")
    sources = [pydicom.dcmread(f) for f in files]
    mask = np.zeros((len(sources), sources[0].Rows, sources[0].Columns), dtype=bool)
    mask[5, 5:9, 5:9] = True

    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=label,
            segmented_property_category=hd.sr.CodedConcept("91723000", "SCT", "Anatomical structure"),
            segmented_property_type=hd.sr.CodedConcept("10200004", "SCT", "Liver"),
            algorithm_type="MANUAL",
        )
        for n, label in ((1, "Liver"), (2, "Tumour 5"))
    ]
    pixels = np.stack([mask, np.zeros_like(mask)], axis=-1)
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixels,
        segmentation_type="BINARY",
        segment_descriptions=descriptions,
        series_instance_uid=b.uid("seg"),
        series_number=5,
        sop_instance_uid=b.uid("seg", 1),
        instance_number=1,
        manufacturer="t",
        manufacturer_model_name="t",
        software_versions="1",
        device_serial_number="1",
        omit_empty_frames=False,
    )
    seg.save_as(tmp_path / "seg.dcm")
    with pytest.raises(RoiError, match=r"'Tumour 5' is empty.*--segment-role 'Tumour 5=ignore'"):
        seg_to_rois(tmp_path / "seg.dcm")
    rois, _ = seg_to_rois(tmp_path / "seg.dcm", role_overrides={"tumour 5": "ignore"})
    assert [r.name for r in rois] == ["Liver"]
    with pytest.raises(GeometryError, match="seg.dcm.*Frame of Reference"):
        seg_to_rois(tmp_path / "seg.dcm", frame_of_reference_uid="1.2.9", role_overrides={"tumour 5": "ignore"})


def test_activity_with_nan_keeps_its_own_message(tmp_path, capsys):
    image = sample_activity()
    array = image.array.copy()
    array[0, 0, 0] = np.nan
    path = write_nifti(image.with_array(array), tmp_path / "nan.nii.gz")
    code, err, _ = run_cli(image_run(path), tmp_path / "out", capsys)
    assert_refused(code, err, tmp_path / "out", UnitsError.exit_code, "NaN")


# --- slice stacks the fuzz found ------------------------------------------------------------------------------
def _frames(step_mm, pixel_spacing_mm=(1.0, 1.0), n=6):
    from dosimetry.dicom import slices

    return [
        slices.Frame(
            k * np.asarray(step_mm, float),
            np.array([1.0, 0, 0, 0, 1, 0]),
            np.asarray(pixel_spacing_mm),
            np.ones((3, 3)),
            source=f"f{k}.dcm",
        )
        for k in range(n)
    ]


@pytest.mark.parametrize(
    "step, spacing, words",
    [
        ((0, 1, 2), (0, 1), "PixelSpacing"),  # was LinAlgError (singular matrix) in the tilt resampling
        ((0, 1, 2), (1.0, 5e-324), "PixelSpacing"),  # subnormal: was NaN corners, ValueError (found by the fuzz)
        ((0, 1, 2), (1e-3, 1e-3), "PixelSpacing"),  # 1 micrometre pixels: a header in metres, or broken
        ((0, 1e5, 2), (1e-2, 1e-2), "sheared"),  # was MemoryError (67 GiB) in the tilt resampling
        ((0, 10000, 40000), (1e-2, 1e-2), "would need"),  # a tilt under 45 deg whose grid would still explode
    ],
)
def test_stacks_that_cannot_be_resampled_are_refused(step, spacing, words):
    from dosimetry.dicom import slices

    with pytest.raises(GeometryError, match=words):
        ordered = slices.sort_frames(_frames(step, spacing), label="CT series Z")
        slices.build_image(ordered, [fr.values for fr in ordered.frames], label="CT series Z", tilt="resample")


def test_emission_checks_over_slabs_see_every_slab(monkeypatch):
    """The plausibility checks run slab by slab (no float64 copy): a fault anywhere is still found, in any
    memory order."""
    import dosimetry.quantify.checks as checks
    from dosimetry.errors import UnitsError

    monkeypatch.setattr(checks, "_SLAB_VOXELS", 50)  # many slabs
    for order in ("C", "F"):
        i, j, k = np.indices((9, 8, 7))
        noise = np.asarray(np.where((i + j + k) % 2 == 0, 1.0, -1.0), order=order)  # sums to 0
        noise[8, 7, 6] += 1e-2  # a small positive net sum, in the last slab of either order
        assert 0 < noise.sum() < checks.NET_TO_GROSS_MIN * np.abs(noise).sum()
        with pytest.raises(UnitsError, match="noise around zero"):
            checks.check_emission_values(noise, source="noise.nii")
        negative = -np.abs(noise)
        negative[8, 7, 6] = 1.0  # one positive voxel, in the last slab of either order
        with pytest.raises(UnitsError, match="sums to"):
            checks.check_emission_values(negative, source="neg.nii")
        zeros = np.zeros((9, 8, 7), order=order)
        with pytest.raises(UnitsError, match="all zero"):
            checks.check_emission_values(zeros, source="zero.nii")
        good = np.abs(noise) + 1.0
        good[0, 0, 0] = np.nan  # NaN is the caller's to refuse
        checks.check_emission_values(good, source="nan.nii")
        checks.check_emission_values(np.abs(noise), source="ok.nii")
