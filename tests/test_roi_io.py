"""Reading ROIs: --roi specs, mask files, 3D Slicer segmentations (single and multi-layer, LPS and RAS)."""

import nrrd
import numpy as np
import pytest

from dosimetry.errors import InputFileError, RoiError
from dosimetry.image import Image
from dosimetry.io.images import write_nifti
from dosimetry.roi import Role
from dosimetry.io.roi_files import parse_roi_spec, read_mask_roi, read_slicer_segmentation


def test_parse_roi_spec():
    role, name, path = parse_roi_spec("tumour:T 1=a/b.nii.gz")
    assert role is Role.TUMOR and name == "T 1" and str(path) == "a/b.nii.gz"
    assert parse_roi_spec("liver=x.nrrd")[1] is None
    with pytest.raises(RoiError, match="ROLE"):
        parse_roi_spec("liver.nii.gz")
    with pytest.raises(RoiError, match="unknown ROI role"):
        parse_roi_spec("kidney=k.nii.gz")


def test_mask_values(tmp_path):
    image = Image(np.zeros((4, 4, 4), np.uint8), spacing_mm=2.0)
    arr = image.array.copy()
    arr[1:3, 1:3, 1:3] = 255
    write_nifti(image.with_array(arr), tmp_path / "m.nii.gz")
    roi = read_mask_roi(tmp_path / "m.nii.gz", "liver")
    assert roi.name == "m" and roi.mask.array.max() == 1.0 and roi.mask.array.sum() == 8
    arr[0, 0, 0] = 7
    write_nifti(image.with_array(arr), tmp_path / "labels.nii.gz")
    with pytest.raises(RoiError, match="2 different labels"):
        read_mask_roi(tmp_path / "labels.nii.gz", "liver")
    write_nifti(image, tmp_path / "empty.nii.gz")
    with pytest.raises(RoiError, match="empty"):
        read_mask_roi(tmp_path / "empty.nii.gz", "tumor")


def write_seg(
    path, data, segments, *, space="left-posterior-superior", origin=(10.0, -20.0, 30.0), spacing=(2.0, 3.0, 4.0)
):
    """A Slicer-style .seg.nrrd: data 3-D (one layer) or 4-D (layer axis first)."""
    directions = np.diag(spacing).tolist()
    header = {"space": space, "space origin": np.array(origin)}
    if data.ndim == 4:
        header["space directions"] = np.array([[np.nan] * 3] + directions)
        header["kinds"] = ["list", "domain", "domain", "domain"]
    else:
        header["space directions"] = np.array(directions)
        header["kinds"] = ["domain", "domain", "domain"]
    for i, (name, layer, label) in enumerate(segments):
        header[f"Segment{i}_Name"] = name
        header[f"Segment{i}_Layer"] = str(layer)
        header[f"Segment{i}_LabelValue"] = str(label)
        header[f"Segment{i}_ID"] = f"Segment_{i}"
    nrrd.write(str(path), data, header, index_order="F")


def test_multilayer_segmentation(tmp_path):
    data = np.zeros((2, 6, 5, 4), np.uint8)
    data[0, 1:5, 1:4, 1:3] = 1  # liver in layer 0
    data[0, 5, 0, 0] = 2  # a one-voxel lung
    data[1, 2, 2, 1] = 1  # tumour inside the liver, layer 1
    write_seg(tmp_path / "s.seg.nrrd", data, [("Liver", 0, 1), ("lung L", 0, 2), ("Lesion A", 1, 1)])
    rois, warnings = read_slicer_segmentation(tmp_path / "s.seg.nrrd")
    by_name = {r.name: r for r in rois}
    assert {n: r.role for n, r in by_name.items()} == {"Liver": Role.LIVER, "lung L": Role.LUNG, "Lesion A": Role.TUMOR}
    assert by_name["Liver"].mask.array.sum() == 24 and by_name["Lesion A"].mask.array.sum() == 1
    # geometry: voxel (2, 2, 1) of the tumour is at origin + (2*2, 2*3, 1*4) in LPS
    # (masks are stored cropped to their extent: the voxel is found by value, its place in world coordinates)
    tumour = by_name["Lesion A"].mask
    (ijk,) = np.argwhere(tumour.array)
    assert np.allclose(tumour.index_to_world(ijk), [14.0, -14.0, 34.0])
    assert warnings == []


def test_ras_space_is_converted_and_roles_overridden(tmp_path):
    data = np.zeros((3, 3, 3), np.uint8)
    data[1, 1, 1] = 1
    data[2, 2, 2] = 3
    write_seg(
        tmp_path / "r.seg.nrrd",
        data,
        [("Segment_1", 0, 1), ("Mets", 0, 3)],
        space="right-anterior-superior",
        spacing=(1.0, 1.0, 1.0),
    )
    rois, warnings = read_slicer_segmentation(tmp_path / "r.seg.nrrd", role_overrides={"segment_1": "perfused"})
    by_name = {r.name: r for r in rois}
    assert by_name["Segment_1"].role is Role.PERFUSED and by_name["Mets"].role is Role.TUMOR
    # RAS (10, -20, 30) + (1, 1, 1) = RAS (11, -19, 31) = LPS (-11, 19, 31)
    assert np.allclose(by_name["Segment_1"].mask.index_to_world([1, 1, 1]), [-11.0, 19.0, 31.0])
    rois, warnings = read_slicer_segmentation(tmp_path / "r.seg.nrrd")
    assert {r.name: r.role for r in rois}["Segment_1"] is Role.OTHER
    assert any("--segment-role" in w for w in warnings)


def test_not_a_segmentation(tmp_path):
    nrrd.write(str(tmp_path / "plain.nrrd"), np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(InputFileError, match="not a 3D Slicer segmentation"):
        read_slicer_segmentation(tmp_path / "plain.nrrd")
    with pytest.raises(InputFileError, match="no such file"):
        read_slicer_segmentation(tmp_path / "absent.seg.nrrd")


@pytest.mark.parametrize(
    "options",
    [
        {"encoding": "gzip"},  # what 3D Slicer writes: decompressed by ISA-L in one call
        {"encoding": "raw"},
        {"encoding": "bzip2"},
        {"encoding": "gzip", "detached_header": True},  # data in its own file: pynrrd reads it
    ],
    ids=["gzip", "raw", "bzip2", "detached"],
)
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_read_nrrd_gives_pynrrds_array_and_header(tmp_path, options, dtype):
    from dosimetry.io.roi_files import read_nrrd

    rng = np.random.default_rng(3)
    data = (rng.random((2, 7, 5, 6)) * 100).astype(dtype)
    header = {"kinds": ["list", "domain", "domain", "domain"], "space": "left-posterior-superior"}
    encoding = dict(options)
    detached = encoding.pop("detached_header", False)
    path = tmp_path / ("x.nhdr" if detached else "x.nrrd")
    nrrd.write(str(path), data, {**header, **encoding}, index_order="F", detached_header=detached)
    expected, expected_header = nrrd.read(str(path), index_order="F")
    got, got_header = read_nrrd(path)
    assert got.dtype == expected.dtype and got.shape == expected.shape == data.shape
    np.testing.assert_array_equal(got, data)
    assert str(got_header) == str(expected_header)


def test_truncated_gzip_segmentation_is_one_clear_error(tmp_path):
    labels = np.zeros((6, 6, 4), np.uint8)
    labels[1:4, 1:4, 1:3] = 1
    header = {
        "Segment0_Name": "liver",
        "Segment0_LabelValue": 1,
        "Segment0_Layer": 0,
        "space": "left-posterior-superior",
    }
    header["space directions"] = np.eye(3) * 2.0
    header["space origin"] = np.zeros(3)
    path = tmp_path / "rois.seg.nrrd"
    nrrd.write(str(path), labels, {**header, "encoding": "gzip"}, index_order="F")
    rois, _ = read_slicer_segmentation(path)
    assert [r.name for r in rois] == ["liver"] and rois[0].mask.array.sum() == 18
    content = path.read_bytes()
    path.write_bytes(content[: len(content) - 12])  # the gzip trailer and part of the stream cut off
    with pytest.raises(InputFileError, match=r"rois\.seg\.nrrd: cannot read as NRRD"):
        read_slicer_segmentation(path)
