"""dose.nii.gz is compressed by ISA-L (issue 10): the same NIfTI bytes as nibabel's own writer, and nothing
partial left when writing fails."""

import gzip

import nibabel as nib
import numpy as np
import pytest

from dosimetry.image import Image
from dosimetry.io.images import read_image, to_nibabel, write_nifti


def _image():
    values = np.random.default_rng(1).normal(5.0, 2.0, (33, 28, 19)).astype(np.float32)
    return Image(values, (1.5, -2.0, 3.25), (2.0, 2.5, 3.0))


def test_gzip_output_holds_the_bytes_nibabel_writes(tmp_path):
    image = _image()
    ours = write_nifti(image, tmp_path / "dose.nii.gz")
    nib.save(to_nibabel(image), str(tmp_path / "plain.nii.gz"))
    with gzip.open(ours) as a, gzip.open(tmp_path / "plain.nii.gz") as b:  # a standard gzip stream
        assert a.read() == b.read()
    assert ours.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime 0: the same image gives the same file
    assert write_nifti(image, tmp_path / "again.nii.gz").read_bytes() == ours.read_bytes()
    back = read_image(ours)
    assert np.array_equal(back.array, image.array) and np.allclose(back.origin_mm, image.origin_mm)


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    def fail(self, file_map):
        file_map["image"].fileobj.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(nib.Nifti1Image, "to_file_map", fail)
    with pytest.raises(KeyboardInterrupt):
        write_nifti(_image(), tmp_path / "dose.nii.gz")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("klass", [nib.Nifti1Image, nib.Nifti2Image])
@pytest.mark.parametrize("slope", [1.0, 0.5])
def test_gzip_input_read_as_nibabel_reads_it(tmp_path, klass, slope):
    """.nii.gz inputs are decompressed by ISA-L: the same array (scaling applied) and affine as nib.load."""
    values = np.random.default_rng(3).integers(0, 1000, (12, 10, 8)).astype(np.int16)
    affine = np.diag([2.0, 2.5, 3.0, 1.0])
    affine[:3, 3] = (10.0, -4.0, 7.5)
    nifti = klass(values, affine)
    nifti.header.set_slope_inter(slope, 0.0)
    path = tmp_path / "act.nii.gz"
    nib.save(nifti, str(path))
    reference = nib.load(str(path))
    ours = read_image(path)
    assert np.array_equal(ours.array, np.asanyarray(reference.dataobj))
    assert np.allclose(ours.spacing_mm, (2.0, 2.5, 3.0))
    assert np.allclose(ours.origin_mm, (-10.0, 4.0, 7.5))  # RAS on disk, LPS in memory
