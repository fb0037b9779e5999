"""The report's plane sampling and outline morphology without scipy.ndimage (issue 10) give scipy's values:
``sample_linear`` against ``scipy.ndimage.map_coordinates(order=1, mode="constant", prefilter=False)`` on
seeded random axis-aligned grids (flipped and permuted axes, any spacing ratio, planes touching and crossing
the array's edges, float32 / int16 / bool), on a linear volume against the analytic values, and
``erode_cross`` / ``dilate_cross`` against ``binary_erosion`` / ``binary_dilation`` bit for bit; and the
report's images with the fast paths equal, pixel for pixel, those drawn as before (map_coordinates,
scipy's morphology on the whole plane, the compositing and isodose lines as they were)."""

import io
import subprocess
import sys

import numpy as np
import pytest
from scipy.ndimage import binary_dilation, binary_erosion, map_coordinates

from dosimetry.image import Image
from dosimetry.report import overlay
from dosimetry.report.sampling import PlaneIndex, dilate_cross, erode_cross, sample_linear


def _reference(array, grid, cval, offset=(0, 0, 0)):
    source = array.astype(np.float32) if array.dtype == bool else array
    coords = grid.full() - np.asarray(offset)[:, None, None]
    return map_coordinates(source, coords, output=np.float32, order=1, mode="constant", cval=cval, prefilter=False)


def _random_case(rng):
    """A volume (float32, int16 or bool) and an axis-aligned grid whose rows, columns and normal are random
    array axes, in either direction, at random steps, starting anywhere from 3 voxels before to 2 after it."""
    shape = tuple(int(n) for n in rng.integers(1, 12, 3))
    kind = int(rng.integers(3))
    values = rng.normal(0.0, 500.0, shape)
    array = (values > 0) if kind == 2 else values.astype((np.float32, np.int16)[kind])
    rows_axis, cols_axis, normal_axis = (int(a) for a in rng.permutation(3))
    origin = rng.uniform(-3.0, np.asarray(shape) + 2.0)
    down, across = np.zeros(3), np.zeros(3)
    down[rows_axis] = rng.choice([-1.0, 1.0]) * rng.uniform(0.1, 2.0)
    across[cols_axis] = rng.choice([-1.0, 1.0]) * rng.uniform(0.1, 2.0)
    if rng.random() < 0.4:  # the plane on a voxel plane, the first, the last, or one outside
        origin[normal_axis] = float(rng.integers(-1, shape[normal_axis] + 1))
    if rng.random() < 0.3:  # rows on voxel centres, whole steps: points exactly on the edges
        origin[rows_axis] = float(rng.integers(-1, shape[rows_axis] + 1))
        down[rows_axis] = float(rng.choice([-2.0, -1.0, 1.0, 2.0]))
    grid = PlaneIndex(origin, down, across, (int(rng.integers(1, 30)), int(rng.integers(1, 30))))
    return array, grid, float(rng.choice([0.0, -1000.0, 7.5]))


def test_axis_aligned_planes_equal_map_coordinates_on_random_grids():
    rng = np.random.default_rng(20261203)
    seen_dtypes, exact, total = set(), 0, 0
    for _ in range(1500):
        array, grid, cval = _random_case(rng)
        assert grid.axes() is not None  # the separable path, not map_coordinates itself
        got, ref = sample_linear(array, grid, cval=cval), _reference(array, grid, cval)
        assert got.dtype == np.float32 and got.shape == grid.shape
        scale = max(float(np.abs(array.astype(np.float64)).max()), abs(cval), 1.0)
        np.testing.assert_allclose(got, ref, rtol=0, atol=2e-7 * scale)
        exact += int(np.sum(got == ref))
        total += got.size
        seen_dtypes.add(array.dtype)
    assert seen_dtypes == {np.dtype(np.float32), np.dtype(np.int16), np.dtype(bool)}
    assert exact >= 0.999 * total  # float64 blends in another order: at most a float32 ulp, rarely


def test_points_outside_the_voxel_centres_get_cval_and_inside_the_linear_values():
    """On a volume linear in its indices, trilinear interpolation is exact: 100 i + 10 j + k inside
    ``[0, n - 1]`` on every axis, ``cval`` outside, however little (scipy's ``mode="constant"``)."""
    shape = (4, 5, 6)
    i, j, k = np.indices(shape)
    array = (100.0 * i + 10.0 * j + k).astype(np.float32)
    eps = 1e-9
    rows = (-1.0, -eps, 0.0, 1.25, 3.0, 3.0 + eps, 3.5)  # along axis 0 (4 voxels)
    cols = (-0.5, 0.0, 2.75, 5.0, 5.0 + eps)  # along axis 2 (6 voxels)
    for normal in (2.5, 0.0, 4.0, -eps, 4.0 + eps):  # along axis 1 (5 voxels)
        for r in rows:
            for c in cols:
                grid = PlaneIndex(np.array([r, normal, c]), np.array([1.0, 0, 0]), np.array([0, 0, 1.0]), (1, 1))
                inside = 0 <= r <= 3 and 0 <= normal <= 4 and 0 <= c <= 5
                expected = 100 * r + 10 * normal + c if inside else -7.0
                assert sample_linear(array, grid, cval=-7.0)[0, 0] == pytest.approx(expected, abs=1e-4), (r, normal, c)
    # a regular grid over the same kind of points, in both paths
    grid = PlaneIndex(np.array([-1.0, 2.5, -0.5]), np.array([0.5, 0, 0]), np.array([0, 0, 0.25]), (10, 25))
    expected = _reference(array, grid, -7.0)
    np.testing.assert_allclose(sample_linear(array, grid, cval=-7.0), expected, rtol=0, atol=1e-4)
    assert np.sum(expected == -7.0) == 10 * 25 - 7 * 21  # rows 0..3 by 0.5, columns 0..5 by 0.25 inside


def test_a_crop_with_its_offset_samples_like_the_whole_volume():
    rng = np.random.default_rng(7)
    array = np.zeros((20, 18, 16), np.float32)
    array[5:12, 4:9, 6:14] = rng.random((7, 5, 8))
    lo, hi = np.array([4, 3, 5]), np.array([13, 10, 15])
    for normal in (4.0, 5.5, 11.0, 12.5, 2.0):
        grid = PlaneIndex(np.array([-1.3, normal, -0.7]), np.array([0.6, 0, 0]), np.array([0, 0, 0.45]), (40, 40))
        crop = array[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        got = sample_linear(crop, grid, cval=0.0, offset=lo)
        np.testing.assert_allclose(got, _reference(array, grid, 0.0), rtol=0, atol=1e-7)


def test_oblique_grids_go_through_map_coordinates():
    rng = np.random.default_rng(3)
    array = rng.normal(size=(9, 10, 11)).astype(np.float32)
    grid = PlaneIndex(np.array([0.5, 1.0, 2.0]), np.array([0.3, 0.2, 0.0]), np.array([0.0, 0.1, 0.4]), (20, 22))
    assert grid.axes() is None
    np.testing.assert_array_equal(sample_linear(array, grid, cval=-3.0), _reference(array, grid, -3.0))


def _random_masks(rng, count):
    for _ in range(count):
        shape = (int(rng.integers(0, 16)), int(rng.integers(0, 16)))
        mask = rng.random(shape) < rng.uniform(0.3, 1.0)
        if rng.random() < 0.2 and mask.size:
            mask[:] = True  # full: everything touches the border
        yield mask


def test_erosion_and_dilation_equal_scipy_bit_for_bit():
    rng = np.random.default_rng(11)
    for mask in _random_masks(rng, 1500):
        for n in (1, 2, 3):
            np.testing.assert_array_equal(erode_cross(mask, n), binary_erosion(mask, iterations=n, border_value=0))
            np.testing.assert_array_equal(dilate_cross(mask, n), binary_dilation(mask, iterations=n))


def _view():
    """A dose and a CT on different grids with permuted, flipped axes and unequal spacing, the CT covering
    part of the dose grid only; a liver, a tumour through the dose grid's top slice and a lung."""
    rng = np.random.default_rng(5)
    dose_dir = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # columns: the axes in LPS
    dose_shape = (40, 36, 30)
    world = Image(np.zeros(dose_shape, np.float32), (30.0, -40.0, -20.0), (2.5, 3.0, 4.0), dose_dir)
    ijk = np.moveaxis(np.indices(dose_shape, dtype=np.float64), 0, -1)
    xyz = world.index_to_world(ijk)
    centre = np.array([80.0, -90.0, 30.0])
    r_mm = np.linalg.norm(xyz - centre, axis=-1)
    liver = np.clip((45.0 - r_mm) / 3.0, 0.0, 1.0).astype(np.float32)
    r_tumour = np.linalg.norm(xyz - (centre + [12.0, -8.0, 55.0]), axis=-1)  # through the top slice
    tumour = np.clip((20.0 - r_tumour) / 3.0, 0.0, 1.0).astype(np.float32)
    lung = np.zeros(dose_shape, np.float32)
    lung[:8, :, 10:] = 1.0
    dose = (120.0 * np.exp(-(r_tumour**2) / 400.0) + 50.0 * liver + rng.random(dose_shape)).astype(np.float32)
    dose_img = Image(dose, world.origin_mm, world.spacing_mm, world.direction)
    ct_dir = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
    ct_shape = (70, 64, 40)
    ct = (rng.normal(40.0, 80.0, ct_shape) - 900.0 * (rng.random(ct_shape) < 0.1)).astype(np.int16)
    ct_img = Image(ct, (20.0, -30.0, 110.0), (1.5, 1.6, 3.3), ct_dir)
    weights = [("Liver", "liver", liver), ("Tumour", "tumor", tumour), ("Lung", "lung", lung)]
    return overlay.view_from_weights(dose_img, ct_img, weights, {"Liver", "Tumour", "Lung"})


def _images(view):
    from PIL import Image as PILImage

    colours = overlay.outline_colours(view.stats)
    centre, reason = overlay.slice_centre(view)
    planes = overlay.planes_png(view, centre, reason, colours=colours)
    lesion, _ = overlay.lesion_png(view, "Tumour", colours=colours)
    return [np.asarray(PILImage.open(io.BytesIO(png)).convert("RGB")) for png in (planes.png, lesion)]


def _sample_before(image, grid, *, cval):
    """``overlay._sample`` as it was: map_coordinates on every point."""
    return _reference(image.array, grid, cval)


def _sample_in_box_before(weights, box, grid):
    """``overlay._sample_in_box`` as it was: map_coordinates on the points near the box, from the box."""
    coords = grid.full()
    out = np.zeros(coords.shape[1:], np.float32)
    if box is None:
        return out
    lo = np.maximum(box[0] - 1, 0)
    hi = np.minimum(box[1] + 1, np.asarray(weights.shape))
    near = np.ones(coords.shape[1:], bool)
    for k in range(3):
        near &= (coords[k] >= lo[k] - 1) & (coords[k] <= hi[k])
    if near.any():
        sub = weights[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        out[near] = map_coordinates(
            sub, coords[:, near] - lo[:, None], output=np.float32, order=1, mode="constant", cval=0.0, prefilter=False
        )
    return out


def _composite_before(ct, dose_gy, scale=overlay.DOSE_SCALE):
    """``overlay._composite`` as it was (gathering the coloured pixels)."""
    if ct is None:
        grey = np.zeros(dose_gy.shape, np.float32)
    else:
        grey = np.clip((ct - overlay.CT_WINDOW_HU[0]) / (overlay.CT_WINDOW_HU[1] - overlay.CT_WINDOW_HU[0]), 0.0, 1.0)
        grey = grey * 255.0
    rgb = np.repeat(grey[..., None], 3, axis=2)
    band = scale.band_index(dose_gy)
    coloured = band > 0
    rgb[coloured] = (1.0 - overlay._WASH_ALPHA) * rgb[coloured] + overlay._WASH_ALPHA * scale.lut()[band[coloured] - 1]
    return rgb


def _draw_isodose_before(rgb, dose_gy, level, style):
    """``overlay._draw_isodose`` as it was (on the whole plane, scipy's erosion)."""
    mask = dose_gy >= level
    if not mask.any() or mask.all():
        return
    edge = mask & ~binary_erosion(mask, iterations=1, border_value=0)
    colour, on, off = style
    if off:
        i, j = np.indices(mask.shape)
        edge &= ((i + j) % (on + off)) < on
    rgb[edge] = overlay._rgb(colour)


def _outline_masks_before(mask, width):
    """``overlay._outline_masks`` on the whole plane with scipy's morphology."""
    if not mask.any() or mask.all():
        return np.zeros(mask.shape, bool), np.zeros(mask.shape, bool)
    halo = binary_dilation(mask, iterations=1) & ~binary_erosion(mask, iterations=width + 1, border_value=0)
    return halo, mask & ~binary_erosion(mask, iterations=width, border_value=0)


def test_the_wash_is_the_same_float32_values_as_before():
    rng = np.random.default_rng(13)
    signed = overlay.ColourScale((1.0, 5.0), ("#ff0000", "#00ff00", "#0000ff", "#ffffff"), signed=True)
    for _ in range(20):
        shape = (int(rng.integers(1, 60)), int(rng.integers(1, 60)))
        ct = rng.normal(0.0, 300.0, shape).astype(np.float32)
        dose = (rng.gamma(1.0, 60.0, shape) * (rng.random(shape) < 0.7)).astype(np.float32)
        for scale, values in ((overlay.DOSE_SCALE, dose), (signed, dose - 30.0)):
            for under in (ct, None):
                np.testing.assert_array_equal(
                    overlay._composite(under, values, scale), _composite_before(under, values, scale)
                )


def test_report_images_equal_those_drawn_through_scipy_ndimage(monkeypatch):
    view = _view()
    assert view.dose_gy.array.dtype == np.float32 and view.ct_hu.array.dtype == np.int16
    fast = _images(view)
    centre, _ = overlay.slice_centre(view)
    plane = overlay._plane(centre - 50, centre + 50, centre, *overlay._PLANES["Axial"][:2], 1.0)
    assert plane.coordinates(view.dose_gy).axes() is not None and plane.coordinates(view.ct_hu).axes() is not None
    monkeypatch.setattr(overlay, "_sample", _sample_before)
    monkeypatch.setattr(overlay, "_sample_in_box", _sample_in_box_before)
    monkeypatch.setattr(overlay, "_outline_masks", _outline_masks_before)
    monkeypatch.setattr(overlay, "_composite", _composite_before)
    monkeypatch.setattr(overlay, "_draw_isodose", _draw_isodose_before)
    slow = _images(view)
    for a, b in zip(fast, slow, strict=True):
        assert a.shape == b.shape
        assert a.std() > 10  # something drawn: CT, wash, lines
        np.testing.assert_array_equal(a, b)


def test_the_report_does_not_import_scipy_ndimage():
    code = (
        "import sys; import dosimetry.report.html; import dosimetry.report.overlay; "
        "print('scipy.ndimage' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_plane_indices_are_the_points_of_the_plane_in_each_image():
    """Pixel (j, i) of a plane is the world point ``start + j v + i u``, in the dose's and the CT's indices."""
    view = _view()
    centre, _ = overlay.slice_centre(view)
    for u, v, _, _ in overlay._PLANES.values():
        plane = overlay._plane(centre - 40.0, centre + 30.0, centre, u, v, 1.5)
        j, i = np.indices(plane.shape)
        world = plane.start + j[..., None] * plane.v_mm + i[..., None] * plane.u_mm
        for image in (view.dose_gy, view.ct_hu):
            grid = plane.coordinates(image)
            np.testing.assert_allclose(np.moveaxis(grid.full(), 0, -1), image.world_to_index(world), atol=1e-9)
            assert grid.axes() is not None  # axis-aligned images: the separable path
