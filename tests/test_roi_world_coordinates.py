"""ROIs on other grids give the same statistics; outputs land where the input was, in world coordinates."""

import json

import nibabel as nib
import numpy as np
import pytest

from dosimetry.cli import main
from dosimetry.errors import GeometryError
from dosimetry.image import Image
from dosimetry.io.images import write_nifti
from dosimetry.pipeline import DosimetryOptions, run_dosimetry
from dosimetry.geometry.resample import occupancy_on_grid
from dosimetry.roi import Roi
from helpers import oblique_direction, roi_on, sphere_mask_supersampled, world_grid

CENTRE_MM = np.array([3.0, -11.0, 17.0])


def smooth_activity() -> Image:
    grid = Image(np.zeros((40, 36, 32), np.float32), (-80.0, -75.0, -45.0), (4.0, 4.0, 4.0))
    xyz = world_grid(grid)
    r2 = np.sum((xyz - CENTRE_MM) ** 2, axis=-1)
    values = 1e5 * (1.0 + 2.0 * np.exp(-r2 / (2 * 18.0**2))) + 500.0 * xyz[..., 0]  # asymmetric gradient
    return grid.with_array(values.astype(np.float32))


def test_occupancy_keeps_volume_of_a_rotated_fine_mask():
    target = smooth_activity()
    fine = Image(np.zeros((50, 50, 50), np.float32), CENTRE_MM - 49.0 * 0.0, (2.0, 2.0, 2.0), oblique_direction())
    # put the fine grid's centre on the sphere centre
    fine = Image(fine.array, CENTRE_MM - fine.direction @ (fine.spacing_mm * 24.5), fine.spacing_mm, fine.direction)
    mask = sphere_mask_supersampled(fine, CENTRE_MM, 20.0, n=3)
    occ = occupancy_on_grid(fine.with_array(mask), target)
    analytic_ml = 4 / 3 * np.pi * 20.0**3 / 1000
    assert occ.array.sum() * target.voxel_volume_ml == pytest.approx(analytic_ml, rel=0.01)
    # and its centre of mass is where the sphere is
    com = (world_grid(target) * occ.array[..., None]).sum(axis=(0, 1, 2)) / occ.array.sum()
    assert np.allclose(com, CENTRE_MM, atol=0.3)


def test_same_roi_on_finer_oblique_grid_gives_same_mean_dose():
    """The same ROI given on a 2x finer grid with another direction matrix: mean dose within 1%."""
    activity = smooth_activity()
    on_grid = sphere_mask_supersampled(activity, CENTRE_MM, 20.0, n=5)
    fine = Image(np.zeros((30, 30, 30), np.float32), (0, 0, 0), (2.0, 2.0, 2.0), oblique_direction())
    fine = Image(fine.array, CENTRE_MM - fine.direction @ (fine.spacing_mm * 14.5), fine.spacing_mm, fine.direction)
    fine_mask = sphere_mask_supersampled(fine, CENTRE_MM, 20.0, n=1)  # binary, as a segmentation would be
    opts = DosimetryOptions(scan_delay_h=0, activity_units="Bq/mL")
    a = run_dosimetry(activity, [roi_on(activity, on_grid, "t", "tumor")], options=opts).roi("t")
    b = run_dosimetry(activity, [Roi("t", "tumor", fine.with_array(fine_mask))], options=opts).roi("t")
    assert b["mean_gy"] == pytest.approx(a["mean_gy"], rel=0.01)
    assert b["volume_ml"] == pytest.approx(a["volume_ml"], rel=0.02)
    assert b["D70"] == pytest.approx(a["D70"], rel=0.02)


def test_roi_outside_the_image_is_an_error():
    activity = smooth_activity()
    far = Image(np.ones((5, 5, 5), np.float32), (900.0, 900.0, 900.0), (2.0, 2.0, 2.0))
    with pytest.raises(GeometryError, match="does not overlap"):
        run_dosimetry(activity, [Roi("far", "tumor", far)], options=DosimetryOptions(scan_delay_h=0))


@pytest.mark.parametrize("direction", ["axial", "oblique"])
def test_marker_voxel_lands_at_same_world_position_in_dose_nifti(tmp_path, direction):
    shape = (21, 17, 13)
    d = np.eye(3) if direction == "axial" else oblique_direction()
    activity = Image(np.full(shape, 10.0, np.float32), (-37.0, 12.5, 88.0), (3.9, 4.1, 3.3), d)
    marker = (15, 4, 9)  # off-centre in every axis
    arr = activity.array.copy()
    arr[marker] = 1e7
    write_nifti(activity.with_array(arr), tmp_path / "act.nii.gz")
    write_nifti(activity.with_array(np.ones(shape, np.uint8)), tmp_path / "body.nii.gz")
    code = main(
        [
            "run",
            "--activity",
            str(tmp_path / "act.nii.gz"),
            "--roi",
            "other=" + str(tmp_path / "body.nii.gz"),
            "--scan-delay-h",
            "0",
            "--activity-units",
            "Bq/mL",
            "--out",
            str(tmp_path / "out"),
            "-q",
        ]
    )
    assert code == 0
    src = nib.load(str(tmp_path / "act.nii.gz"))
    out = nib.load(str(tmp_path / "out" / "dose.nii.gz"))
    src_ijk = np.unravel_index(np.argmax(np.asarray(src.dataobj)), src.shape)
    out_ijk = np.unravel_index(np.argmax(np.asarray(out.dataobj)), out.shape)
    src_ras = src.affine @ np.r_[src_ijk, 1]
    out_ras = out.affine @ np.r_[out_ijk, 1]
    assert np.allclose(src_ras, out_ras, atol=1e-3)
    assert tuple(int(v) for v in src_ijk) == marker
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["rois"][0]["max_gy"] == pytest.approx(float(np.max(np.asarray(out.dataobj))), rel=1e-5)
