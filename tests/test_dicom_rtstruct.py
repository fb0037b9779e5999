"""RTSTRUCT contours to occupancy masks: volumes, holes, any target grid, roles, Frame of Reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

import dicom_builders as b
from dosimetry.dicom.rtstruct import rasterize_contours, read_rtstruct, rtstruct_to_rois
from dosimetry.errors import GeometryError
from dosimetry.image import Image
from dosimetry.roi import Role

SPHERE_ML = 4 / 3 * math.pi * 15**3 / 1000


@pytest.mark.parametrize("centre", [(0.0, 0.0, 0.0), (1.3, -0.7, 2.1), (-2.0, 1.9, -1.0)])
def test_sphere_r15_on_4mm_grid_keeps_its_volume(centre):
    grid = b.symmetric_grid((16, 16, 16), 4.0)
    mask = rasterize_contours(b.sphere_contours(centre, 15.0, 2.0), grid)
    assert 0 <= mask.min() and mask.max() <= 1
    assert mask.sum() * grid.voxel_volume_ml == pytest.approx(SPHERE_ML, rel=0.03)
    assert np.any((mask > 0) & (mask < 1))  # fractional occupancy at the edges


def test_sphere_on_an_oblique_grid_keeps_its_volume():
    angle = math.radians(30)
    rot = np.array([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]])
    tilt = np.array([[1, 0, 0], [0, math.cos(0.3), -math.sin(0.3)], [0, math.sin(0.3), math.cos(0.3)]])
    grid = b.symmetric_grid((18, 18, 18), (4.0, 3.5, 4.5), rot @ tilt)
    mask = rasterize_contours(b.sphere_contours((0.5, 0.5, 0.5), 15.0, 2.0), grid)
    assert mask.sum() * grid.voxel_volume_ml == pytest.approx(SPHERE_ML, rel=0.03)


def test_small_tumour_smaller_than_a_voxel_is_not_lost():
    grid = b.symmetric_grid((8, 8, 8), 4.0)
    mask = rasterize_contours(b.sphere_contours((1.0, 1.0, 1.0), 3.0, 1.0), grid, supersample=8)
    assert mask.sum() * grid.voxel_volume_ml * 1000 == pytest.approx(4 / 3 * math.pi * 27, rel=0.15)


def test_contour_with_a_hole_keeps_the_hole():
    contours = []
    for z in np.arange(-10.0, 10.1, 2.0):
        contours.append(b.circle((0, 0, z), 20.0))
        contours.append(b.circle((0, 0, z), 8.0)[::-1])  # inner contour: a hole (either winding)
    grid = b.symmetric_grid((15, 15, 8), 4.0)
    mask = rasterize_contours(contours, grid)
    expected_ml = math.pi * (20**2 - 8**2) * 22.0 / 1000  # 11 planes x 2 mm slabs
    assert mask.sum() * grid.voxel_volume_ml == pytest.approx(expected_ml, rel=0.03)
    centre = np.round(grid.world_to_index([0, 0, 0])).astype(int)
    assert mask[tuple(centre)] == 0.0
    ring = np.round(grid.world_to_index([14, 0, 0])).astype(int)
    assert mask[tuple(ring)] == 1.0


def test_planes_are_matched_within_half_a_slice():
    contours = [b.circle((0, 0, z), 10.0) for z in (0.0, 3.0, 6.0)]  # 3 mm slabs: z from -1.5 to 7.5
    grid = Image(np.zeros((1, 1, 12)), origin_mm=(0, 0, -3.0), spacing_mm=(1, 1, 1))
    mask = rasterize_contours(contours, grid, supersample=1)
    z = grid.index_to_world(np.column_stack([np.zeros(12), np.zeros(12), np.arange(12)]))[:, 2]
    assert np.array_equal(mask[0, 0] > 0, (z >= -1.5) & (z <= 7.5))


def test_single_plane_needs_a_thickness():
    grid = b.symmetric_grid((8, 8, 4), 4.0)
    with pytest.raises(GeometryError, match="slice_thickness_mm"):
        rasterize_contours([b.circle((0, 0, 0), 10.0)], grid)
    assert rasterize_contours([b.circle((0, 0, 0), 10.0)], grid, slice_thickness_mm=4.0).sum() > 0


def _file(tmp_path, **kwargs):
    return b.write_rtstruct(
        tmp_path / "rs.dcm",
        b.phantom_structures() + [("Spleen", b.sphere_contours((25, 25, 0), 5, 2))],
        study_uid="1.2.3",
        for_uid="1.2.3.4",
        referenced_series_uid="1.2.3.5",
        **kwargs,
    )


def test_roles_from_names_and_overrides(tmp_path):
    path = _file(tmp_path)
    structures, warnings = read_rtstruct(path)
    assert [s.name for s in structures] == ["Liver", "Tumour 1", "Spleen"] and warnings == []
    grid = b.symmetric_grid((20, 20, 12), 4.0)
    rois, _ = rtstruct_to_rois(path, grid)
    assert {r.name: r.role for r in rois} == {"Liver": Role.LIVER, "Tumour 1": Role.TUMOR, "Spleen": Role.OTHER}
    rois, _ = rtstruct_to_rois(path, grid, role_overrides={"spleen": "ignore", "LIVER": "perfused"})
    assert {r.name: r.role for r in rois} == {"Liver": Role.PERFUSED, "Tumour 1": Role.TUMOR}
    liver = rois[0].mask.array.sum() * grid.voxel_volume_ml
    assert liver == pytest.approx(4 / 3 * math.pi * np.prod(b.LIVER_RADII) / 1000, rel=0.03)


def test_structures_on_another_frame_of_reference_are_refused(tmp_path):
    path = _file(tmp_path)
    with pytest.raises(GeometryError, match="Frame of Reference"):
        rtstruct_to_rois(path, b.symmetric_grid((20, 20, 12), 4.0), frame_of_reference_uid="9.9.9")


def test_mask_to_contours_round_trip_keeps_holes_and_diagonal_touches():
    from dosimetry.dicom.rtstruct import mask_to_contours

    array = np.zeros((12, 10, 4), dtype=np.float32)
    array[2:9, 2:8, 1:3] = 1
    array[4:6, 4:6, 1:3] = 0  # a hole
    array[9, 8, 1] = 1  # touches the block only at a corner
    array[0, 0, 3] = 1  # a single voxel on its own slice
    grid = Image(array, origin_mm=(5.0, -3.0, 2.0), spacing_mm=(4.0, 3.0, 5.0))
    contours = mask_to_contours(grid)
    back = rasterize_contours(contours, grid, slice_thickness_mm=5.0)
    assert np.array_equal(back, array)
