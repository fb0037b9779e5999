"""The Image type and its conversions keep world geometry exactly (LPS inside, RAS only in NIfTI)."""

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from dosimetry.errors import GeometryError, InputFileError
from dosimetry.image import Image
from dosimetry.io.images import LPS_TO_RAS, from_sitk, read_image, to_sitk, write_nifti
from helpers import oblique_direction


@pytest.fixture
def oblique_image():
    rng = np.random.default_rng(1)
    return Image(rng.random((7, 5, 4)).astype(np.float32), (12.5, -30.25, 101.0), (1.5, 2.25, 3.0), oblique_direction())


def test_index_world_round_trip(oblique_image):
    ijk = np.array([[0, 0, 0], [6, 4, 3], [2.5, 1.25, 0.75]])
    assert np.allclose(oblique_image.world_to_index(oblique_image.index_to_world(ijk)), ijk)


def test_sitk_round_trip_and_physical_points_agree(oblique_image):
    s = to_sitk(oblique_image)
    for ijk in [(0, 0, 0), (6, 4, 3), (3, 1, 2)]:
        assert np.allclose(s.TransformIndexToPhysicalPoint(ijk), oblique_image.index_to_world(ijk))
        # SimpleITK arrays are [k, j, i]: the same voxel holds the same value
        assert sitk.GetArrayViewFromImage(s)[ijk[::-1]] == oblique_image.array[ijk]
    back = from_sitk(s)
    assert np.array_equal(back.array, oblique_image.array)
    assert np.allclose(back.affine_lps, oblique_image.affine_lps)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_file_round_trip(tmp_path, oblique_image, suffix):
    path = tmp_path / f"img{suffix}"
    if suffix.startswith(".nii"):
        write_nifti(oblique_image, path)
    else:
        sitk.WriteImage(to_sitk(oblique_image), str(path))
    back = read_image(path)
    assert np.array_equal(back.array, oblique_image.array)
    assert np.allclose(back.affine_lps, oblique_image.affine_lps, atol=1e-5)


def test_nifti_is_ras_and_sitk_reads_it_the_same(tmp_path, oblique_image):
    path = write_nifti(oblique_image, tmp_path / "x.nii.gz")
    affine_ras = nib.load(str(path)).affine
    assert np.allclose(affine_ras, LPS_TO_RAS @ oblique_image.affine_lps, atol=1e-5)
    # an independent reader (ITK) places voxel (1, 2, 3) at the same LPS point
    s = sitk.ReadImage(str(path))
    assert np.allclose(s.TransformIndexToPhysicalPoint((1, 2, 3)), oblique_image.index_to_world([1, 2, 3]), atol=1e-4)


def test_crop_keeps_world_positions(oblique_image):
    sub = oblique_image.crop((2, 1, 1), (6, 4, 3))
    assert sub.array[0, 0, 0] == oblique_image.array[2, 1, 1]
    assert np.allclose(sub.index_to_world([1, 1, 1]), oblique_image.index_to_world([3, 2, 2]))


def test_bad_geometry_is_refused():
    with pytest.raises(GeometryError, match="orthonormal"):
        Image(np.zeros((2, 2, 2)), direction=[[1, 0.3, 0], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(GeometryError, match="positive"):
        Image(np.zeros((2, 2, 2)), spacing_mm=(1, 0, 1))
    with pytest.raises(GeometryError, match="3-D"):
        Image(np.zeros((2, 2)))


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        read_image(tmp_path / "absent.nii.gz")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(InputFileError, match="unknown image format"):
        read_image(tmp_path / "x.txt")
    (tmp_path / "bad.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(InputFileError, match="cannot read"):
        read_image(tmp_path / "bad.nii.gz")
