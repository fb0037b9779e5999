"""The synthetic sample study (data/samples/phantom) and its generator (scripts/make_sample_phantom.py)."""

from __future__ import annotations

import json
import math
import runpy
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest
from scipy import ndimage

from dosimetry.constants import Y90_HALF_LIFE_H, Y90_LDM_GY_KG_PER_GBQ
from dosimetry.io.data_files import hu_to_density_table
from dosimetry.io.images import LPS_TO_RAS, read_image

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "samples" / "phantom"
SCRIPT = REPO / "scripts" / "make_sample_phantom.py"
TUMORS = ("T1", "T2", "T3")
NIFTI_FILES = (
    "activity_bqml.nii.gz",
    "ct_hu.nii.gz",
    "rois/liver.nii.gz",
    "rois/tumor_T1.nii.gz",
    "rois/tumor_T2.nii.gz",
    "rois/tumor_T3.nii.gz",
    "rois/lung.nii.gz",
)
GENERATED_FILES = (*NIFTI_FILES, "rois.seg.nrrd", "truth.json")
# (segment index, layer, label, name, NIfTI mask(s) it belongs to)
SEGMENTS = (
    (0, 0, 1, "Liver", "rois/liver.nii.gz"),
    (1, 0, 2, "Lung left", "rois/lung.nii.gz"),
    (2, 0, 3, "Lung right", "rois/lung.nii.gz"),
    (3, 1, 1, "Tumor 1", "rois/tumor_T1.nii.gz"),
    (4, 1, 2, "Tumor 2", "rois/tumor_T2.nii.gz"),
    (5, 1, 3, "Tumor 3", "rois/tumor_T3.nii.gz"),
)


@pytest.fixture(scope="module")
def generator():
    return runpy.run_path(str(SCRIPT), run_name="make_sample_phantom")


@pytest.fixture(scope="module")
def regenerated(generator, tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom") / "nested" / "out"  # the folder is created as needed
    assert generator["main"](["--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def truth():
    return json.loads((SAMPLE / "truth.json").read_text())


@pytest.fixture(scope="module")
def masks():
    return {name: read_image(SAMPLE / name) for name in NIFTI_FILES if name.startswith("rois/")}


def _assert_same_json(expected, actual, where="truth"):
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and expected.keys() == actual.keys(), where
        for key in expected:
            _assert_same_json(expected[key], actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(expected) == len(actual), where
        for n, (e, a) in enumerate(zip(expected, actual)):
            _assert_same_json(e, a, f"{where}[{n}]")
    elif isinstance(expected, bool) or expected is None or isinstance(expected, str):
        assert actual == expected, where
    else:
        assert actual == pytest.approx(expected, rel=1e-12, abs=1e-12), where


# --- (1) the generator reproduces the committed sample --------------------------------------------------------
def test_committed_sample_has_exactly_the_generated_files_and_is_small():
    found = sorted(str(p.relative_to(SAMPLE)) for p in SAMPLE.rglob("*") if p.is_file())
    assert found == sorted([*GENERATED_FILES, "README.md"])
    total = sum((SAMPLE / name).stat().st_size for name in found)
    assert total < 1_000_000, f"sample is {total} bytes; keep it well under 3 MB"


def test_generator_reproduces_committed_arrays_and_truth(regenerated):
    for name in NIFTI_FILES:
        committed, fresh = read_image(SAMPLE / name), read_image(regenerated / name)
        assert fresh.array.dtype == committed.array.dtype, name
        assert fresh.same_grid(committed, tol_mm=0.0), name
        np.testing.assert_array_equal(fresh.array, committed.array, err_msg=name)
    committed_seg, committed_header = nrrd.read(str(SAMPLE / "rois.seg.nrrd"), index_order="F")
    fresh_seg, fresh_header = nrrd.read(str(regenerated / "rois.seg.nrrd"), index_order="F")
    np.testing.assert_array_equal(fresh_seg, committed_seg)
    assert committed_header.keys() == fresh_header.keys()
    for key, value in committed_header.items():
        np.testing.assert_array_equal(np.asarray(fresh_header[key]), np.asarray(value), err_msg=key)
    _assert_same_json(
        json.loads((SAMPLE / "truth.json").read_text()), json.loads((regenerated / "truth.json").read_text())
    )


def test_generator_is_deterministic_and_gzip_has_no_timestamp(generator, regenerated, tmp_path):
    assert generator["main"](["--out", str(tmp_path)]) == 0
    for name in GENERATED_FILES:
        assert (tmp_path / name).read_bytes() == (regenerated / name).read_bytes(), name
    for name in NIFTI_FILES:
        header = (SAMPLE / name).read_bytes()[:10]
        assert header[:2] == b"\x1f\x8b" and header[4:8] == b"\0\0\0\0", f"{name}: gzip mtime is set"
    assert b"(GMT)" not in (SAMPLE / "rois.seg.nrrd").read_bytes()[:2000]
    assert not list(tmp_path.rglob("*.partial*")), "temporary files left behind"


def test_blur_and_noise_change_only_the_activity_image(generator, regenerated, tmp_path):
    assert (
        generator["main"](["--out", str(tmp_path), "--blur-fwhm-mm", "8", "--noise-fraction", "0.05", "--seed", "3"])
        == 0
    )
    ideal = read_image(regenerated / "activity_bqml.nii.gz")
    degraded = read_image(tmp_path / "activity_bqml.nii.gz")
    assert degraded.same_grid(ideal) and degraded.array.dtype == np.float32
    assert not np.array_equal(degraded.array, ideal.array)
    total_ideal, total_degraded = float(ideal.array.sum(dtype=float)), float(degraded.array.sum(dtype=float))
    assert total_degraded == pytest.approx(total_ideal, rel=0.01)  # blur keeps activity; noise is zero-mean
    np.testing.assert_array_equal(
        read_image(tmp_path / "rois/liver.nii.gz").array, read_image(regenerated / "rois/liver.nii.gz").array
    )
    truth_ideal = json.loads((regenerated / "truth.json").read_text())
    truth_degraded = json.loads((tmp_path / "truth.json").read_text())
    assert truth_degraded["image_degradation"]["blur_fwhm_mm"] == 8.0
    assert truth_degraded["image_degradation"]["noise_fraction"] == 0.05
    assert truth_degraded["image_degradation"]["noise_seed"] == 3
    _assert_same_json(truth_ideal["compartments"], truth_degraded["compartments"])


# --- (2) the committed truth is self-consistent and matches the images ----------------------------------------
def test_truth_is_self_consistent(truth):
    assert truth["synthetic"] is True
    a, r, lsf = truth["administered_activity_gbq"], truth["residual_fraction"], truth["lung_shunt_fraction"]
    assert (a, r, lsf, truth["scan_delay_h"]) == (2.0, 0.03, 0.05, 20.0)
    assert truth["half_life_h"] == Y90_HALF_LIFE_H
    assert truth["decay_factor_implant_to_scan"] == pytest.approx(
        math.exp(-math.log(2) * truth["scan_delay_h"] / truth["half_life_h"]), rel=1e-14
    )
    comps = truth["compartments"]
    liver_mbq = comps["normal_liver"]["activity_implant_mbq"] + sum(comps[t]["activity_implant_mbq"] for t in TUMORS)
    assert liver_mbq == pytest.approx(a * (1 - r) * (1 - lsf) * 1e3, rel=1e-6)
    assert comps["whole_liver"]["activity_implant_mbq"] == pytest.approx(a * (1 - r) * (1 - lsf) * 1e3, rel=1e-6)
    assert comps["lung"]["activity_implant_mbq"] == pytest.approx(a * (1 - r) * lsf * 1e3, rel=1e-6)

    hu_nodes, rho_nodes = hu_to_density_table()
    for key, comp in comps.items():
        assert comp["activity_implant_mbq"] == pytest.approx(
            comp["concentration_implant_bq_ml"] * comp["volume_ml"] / 1e6, rel=1e-9
        ), key
        assert comp["concentration_scan_bq_ml"] == pytest.approx(
            comp["concentration_implant_bq_ml"] * truth["decay_factor_implant_to_scan"], rel=1e-12
        ), key
        assert comp["mass_g"] == pytest.approx(comp["density_g_ml"] * comp["volume_ml"], rel=1e-12), key
        assert comp["mean_dose_ldm_gy"] == pytest.approx(
            Y90_LDM_GY_KG_PER_GBQ * comp["activity_implant_mbq"] / 1e3 / (comp["mass_g"] / 1e3), rel=1e-9
        ), key
        if comp["hu"] is not None:
            assert comp["density_g_ml"] == pytest.approx(float(np.interp(comp["hu"], hu_nodes, rho_nodes)), rel=1e-12)
        assert comp["volume_ml"] == pytest.approx(comp["volume_ml_analytic"], rel=0.06), key  # T1 is the worst
    # Aggregates are sums (total activity / total mass).
    for key, parts in (("all_tumors", TUMORS), ("whole_liver", ("normal_liver", *TUMORS))):
        for field in ("volume_ml", "mass_g", "activity_implant_mbq"):
            assert comps[key][field] == pytest.approx(sum(comps[p][field] for p in parts), rel=1e-12), (key, field)
    # Uptake ratios 5, 4, 6 and tumour-to-normal ratios within 4-6.
    c_normal = comps["normal_liver"]["concentration_implant_bq_ml"]
    for key, ratio in zip(TUMORS, (5.0, 4.0, 6.0)):
        assert comps[key]["concentration_implant_bq_ml"] / c_normal == pytest.approx(ratio, rel=1e-12)
    tn = truth["tumor_to_normal"]
    assert tn["activity_ratio"] == pytest.approx(comps["all_tumors"]["concentration_implant_bq_ml"] / c_normal)
    assert tn["dose_ratio"] == pytest.approx(
        comps["all_tumors"]["mean_dose_ldm_gy"] / comps["normal_liver"]["mean_dose_ldm_gy"]
    )
    assert 4.0 <= tn["activity_ratio"] <= 6.0 and 4.0 <= tn["dose_ratio"] <= 6.0
    assert 1500.0 <= comps["whole_liver"]["volume_ml"] <= 1800.0


def test_images_hold_the_truth(truth, masks):
    comps = truth["compartments"]
    activity = read_image(SAMPLE / "activity_bqml.nii.gz")
    ct = read_image(SAMPLE / "ct_hu.nii.gz")
    assert activity.array.dtype == np.float32 and ct.array.dtype == np.int16
    for image, grid in ((activity, truth["grids"]["activity"]), (ct, truth["grids"]["ct"])):
        assert list(image.shape) == grid["shape"]
        np.testing.assert_array_equal(image.origin_mm, grid["origin_mm"])
        np.testing.assert_array_equal(image.spacing_mm, grid["spacing_mm"])
        np.testing.assert_array_equal(image.direction, np.eye(3))
    np.testing.assert_array_equal(activity.spacing_mm, [4.0, 4.0, 4.0])
    np.testing.assert_array_equal(ct.spacing_mm, [2.0, 2.0, 3.0])
    offset = (ct.origin_mm - activity.origin_mm) / activity.spacing_mm
    assert np.all(np.abs(offset - np.round(offset)) > 0.05), "CT grid must be shifted off the activity grid"

    liver = masks["rois/liver.nii.gz"].array.astype(bool)
    lung = masks["rois/lung.nii.gz"].array.astype(bool)
    tumors = {t: masks[f"rois/tumor_{t}.nii.gz"].array.astype(bool) for t in TUMORS}
    for image in masks.values():
        assert image.array.dtype == np.uint8 and image.same_grid(activity, tol_mm=0.0)
        assert set(np.unique(image.array)) == {0, 1}
    normal = liver & ~np.logical_or.reduce(list(tumors.values()))
    regions = {"normal_liver": normal, **tumors, "lung": lung}
    for key, mask in regions.items():
        assert int(mask.sum()) == comps[key]["n_voxels"], key
        assert comps[key]["volume_ml"] == pytest.approx(mask.sum() * activity.voxel_volume_ml, rel=1e-12), key
        np.testing.assert_allclose(activity.array[mask], comps[key]["concentration_scan_bq_ml"], rtol=1e-7)
    assert not np.any(activity.array[~(liver | lung)])
    total_mbq = float(activity.array.sum(dtype=float)) * activity.voxel_volume_ml / 1e6
    assert total_mbq == pytest.approx(truth["activity_scan_total_mbq"], rel=1e-6)
    assert set(np.unique(ct.array)) == {-1000, -750, 40, 50, 60}


def test_design_margins_and_asymmetry(masks):
    """Tumours inside >= 8 mm of liver; no activity-grid liver voxel contains lung or air; no mirror symmetry."""
    activity = read_image(SAMPLE / "activity_bqml.nii.gz")
    ct = read_image(SAMPLE / "ct_hu.nii.gz")
    liver = masks["rois/liver.nii.gz"].array.astype(bool)
    lung = masks["rois/lung.nii.gz"].array.astype(bool)
    ball = np.linalg.norm(np.indices((5, 5, 5)) - 2, axis=0) <= 2.0  # 8 mm on the 4 mm grid
    for t in TUMORS:
        grown = ndimage.binary_dilation(masks[f"rois/tumor_{t}.nii.gz"].array.astype(bool), structure=ball)
        assert np.all(liver[grown]), f"{t} has less than 8 mm of liver around it"
    assert not np.any(ndimage.binary_dilation(liver, iterations=2) & lung)
    # Map every CT voxel centre to the activity voxel that contains it.
    i, j, k = np.indices(ct.shape).reshape(3, -1)
    index = np.rint(activity.world_to_index(ct.index_to_world(np.stack([i, j, k], axis=1)))).astype(int)
    inside = np.all((index >= 0) & (index < activity.shape), axis=1)
    in_liver = np.zeros(inside.shape, bool)
    in_liver[inside] = liver[tuple(index[inside].T)]
    hu_in_liver_voxels = ct.array[i[in_liver], j[in_liver], k[in_liver]]
    assert set(np.unique(hu_in_liver_voxels)) <= {40, 50, 60}
    assert np.mean(hu_in_liver_voxels == 60) > 0.9
    for array in (activity.array, ct.array, liver):
        for axis in range(3):
            assert not np.array_equal(array, np.flip(array, axis=axis)), f"symmetric under a flip of axis {axis}"
    # Liver on the patient's right (-x in LPS), lungs superior (+z) to the liver.
    liver_centre = activity.index_to_world(np.argwhere(liver).mean(axis=0))
    lung_centre = activity.index_to_world(np.argwhere(lung).mean(axis=0))
    assert liver_centre[0] < -20 and lung_centre[2] > liver_centre[2] + 50


# --- (3) the Slicer segmentation and the NIfTI masks agree in world coordinates -------------------------------
def _seg_affine_lps(header) -> np.ndarray:
    assert header["space"] == "left-posterior-superior"
    assert list(header["kinds"]) == ["list", "domain", "domain", "domain"]
    directions = np.asarray(header["space directions"], dtype=float)
    assert np.all(np.isnan(directions[0])), "the list axis must have 'none' space direction"
    affine = np.eye(4)
    affine[:3, :3] = directions[1:].T
    affine[:3, 3] = header["space origin"]
    return affine


def test_seg_nrrd_metadata():
    data, header = nrrd.read(str(SAMPLE / "rois.seg.nrrd"), index_order="F")
    assert data.dtype == np.uint8 and data.ndim == 4 and data.shape[0] == 2
    assert header["Segmentation_MasterRepresentation"] == "Binary labelmap"
    assert "Binary labelmap" in header["Segmentation_ContainedRepresentationNames"].split("|")
    assert header["Segmentation_ReferenceImageExtentOffset"] == "0 0 0"
    assert not any(key.startswith("Segment6_") for key in header)
    for index, layer, label, name, _ in SEGMENTS:
        prefix = f"Segment{index}_"
        assert header[prefix + "Name"] == name
        assert int(header[prefix + "Layer"]) == layer and int(header[prefix + "LabelValue"]) == label
        for key in ("ID", "Color", "ColorAutoGenerated", "Extent", "NameAutoGenerated", "Tags"):
            assert header[prefix + key] != "" or key == "Tags", prefix + key
        assert len(header[prefix + "Color"].split()) == 3
        assert header[prefix + "Tags"].startswith("TerminologyEntry:")
        mask = data[layer] == label
        lo_hi = [int(v) for v in header[prefix + "Extent"].split()]
        nonzero = np.nonzero(mask)
        assert lo_hi == [v for axis in nonzero for v in (int(axis.min()), int(axis.max()))], prefix + "Extent"
    assert len({header[f"Segment{s[0]}_ID"] for s in SEGMENTS}) == len(SEGMENTS)
    assert set(np.unique(data[0])) == {0, 1, 2, 3} and set(np.unique(data[1])) == {0, 1, 2, 3}


def test_seg_nrrd_and_nifti_masks_agree_voxel_for_voxel_in_world_coordinates(masks):
    data, header = nrrd.read(str(SAMPLE / "rois.seg.nrrd"), index_order="F")
    affine = _seg_affine_lps(header)
    # The NIfTI files store RAS: their affine is the LPS one with x and y negated.
    nifti_affine = nib.load(str(SAMPLE / "rois/liver.nii.gz")).affine
    np.testing.assert_allclose(nifti_affine, LPS_TO_RAS @ affine, atol=1e-9)
    from_seg: dict[str, int] = {}
    for _, layer, label, name, nifti_name in SEGMENTS:
        voxels = np.argwhere(data[layer] == label)
        world = voxels @ affine[:3, :3].T + affine[:3, 3]
        mask = masks[nifti_name]
        index = mask.world_to_index(world)
        np.testing.assert_allclose(index, np.rint(index), atol=1e-6, err_msg=name)
        index = np.rint(index).astype(int)
        assert np.all((index >= 0) & (index < mask.shape)), name
        assert np.all(mask.array[tuple(index.T)] == 1), f"segment {name!r} has voxels outside {nifti_name}"
        from_seg[nifti_name] = from_seg.get(nifti_name, 0) + len(voxels)
    for nifti_name, count in from_seg.items():  # ... and the NIfTI masks have no voxel the segments lack
        assert int(masks[nifti_name].array.sum()) == count, nifti_name
