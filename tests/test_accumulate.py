"""Cumulative dose: a dose map accumulated with itself after a known rigid motion gives twice the dose."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dosimetry.accumulate import PreviousDose, accumulate_doses
from dosimetry.cli import main
from dosimetry.errors import GeometryError
from dosimetry.image import Image
from dosimetry.io.images import read_image, write_nifti
from dosimetry.geometry.registration import register_rigid
from helpers import roi_on, rotation, world_grid

# A patient in current-scan coordinates (LPS, mm): body, an off-centre liver, two unequal lungs, spine.
BODY = (np.zeros(3), np.array([120.0, 85.0, 95.0]))
LIVER = (np.array([-40.0, 5.0, -5.0]), np.array([55.0, 42.0, 38.0]))
LUNGS = [
    (np.array([-55.0, 10.0, 70.0]), np.array([40.0, 45.0, 35.0])),
    (np.array([60.0, 10.0, 65.0]), np.array([30.0, 40.0, 30.0])),
]
SPINE = (np.array([0.0, 62.0]), 13.0)
TUMOUR = (np.array([-30.0, -5.0, -10.0]), 16.0)

# the earlier scan: the same patient moved by q = R p + t (p earlier coordinates, q current coordinates)
MOTION_R = rotation("z", 4.0) @ rotation("x", -3.0)
MOTION_T = np.array([9.0, -6.0, 12.0])


def _inside(xyz, ellipsoid):
    centre, radii = ellipsoid
    return np.sum(((xyz - centre) / radii) ** 2, axis=-1) <= 1.0


def ct_hu(xyz):
    hu = np.full(xyz.shape[:-1], -1000.0)
    hu[_inside(xyz, BODY)] = 20.0
    hu[_inside(xyz, LIVER)] = 65.0
    for lung in LUNGS:
        hu[_inside(xyz, lung)] = -820.0
    hu[np.linalg.norm(xyz[..., :2] - SPINE[0], axis=-1) <= SPINE[1]] = 700.0
    return hu


def dose_gy(xyz):
    """A smooth, asymmetric dose: a tumour hot spot, a broad liver component and a little lung dose."""

    def blob(centre, sigma):
        return np.exp(-np.sum((xyz - centre) ** 2, axis=-1) / (2 * sigma**2))

    return 180.0 * blob(TUMOUR[0], 14.0) + 40.0 * blob(LIVER[0] + [10, 0, 0], 35.0) + 6.0 * blob(LUNGS[0][0], 40.0)


def sample(grid: Image, function, motion: bool) -> Image:
    xyz = world_grid(grid)
    if motion:  # an earlier-scan grid: its points p are at q = R p + t in current coordinates
        xyz = xyz @ MOTION_R.T + MOTION_T
    return grid.with_array(function(xyz).astype(np.float32))


@pytest.fixture(scope="module")
def phantom():
    current_ct = sample(Image(np.zeros((62, 46, 52)), (-122.0, -90.0, -100.0), (4.0, 4.0, 4.0)), ct_hu, False)
    current_dose = sample(Image(np.zeros((40, 30, 34)), (-118.0, -86.0, -96.0), (6.0, 6.0, 6.0)), dose_gy, False)
    previous_ct = sample(Image(np.zeros((66, 50, 46)), (-130.0, -95.0, -110.0), (3.8, 3.8, 4.5)), ct_hu, True)
    previous_dose = sample(Image(np.zeros((48, 36, 40)), (-125.0, -90.0, -105.0), (5.0, 5.0, 5.2)), dose_gy, True)
    roi_grid = current_ct
    xyz = world_grid(roi_grid)
    rois = [
        roi_on(roi_grid, _inside(xyz, LIVER), "Liver", "liver"),
        roi_on(roi_grid, np.linalg.norm(xyz - TUMOUR[0], axis=-1) <= TUMOUR[1], "Tumor", "tumor"),
        roi_on(roi_grid, _inside(xyz, LUNGS[0]), "Lung R", "lung"),
        roi_on(roi_grid, _inside(xyz, LUNGS[1]), "Lung L", "lung"),
    ]
    return {
        "current_ct": current_ct,
        "current_dose": current_dose,
        "previous_ct": previous_ct,
        "previous_dose": previous_dose,
        "rois": rois,
    }


def test_registration_recovers_the_motion(phantom):
    result = register_rigid(phantom["current_ct"], phantom["previous_ct"])
    assert result.ncc > 0.9 and result.overlap_fraction > 0.95
    points = np.array([[0.0, 0.0, 0.0], [-40.0, 5.0, -5.0], [60.0, 10.0, 65.0], [-80.0, -40.0, -60.0]])
    expected = (points - MOTION_T) @ MOTION_R  # p = R^T (q - t)
    found = np.array([result.transform.TransformPoint(tuple(p)) for p in points])
    assert np.max(np.linalg.norm(found - expected, axis=1)) < 1.0
    assert result.rotation_deg == pytest.approx(5.0, abs=0.5)


def test_dose_accumulated_with_itself_doubles(phantom):
    result = accumulate_doses(
        phantom["current_dose"],
        [PreviousDose(phantom["previous_dose"], phantom["previous_ct"])],
        current_ct=phantom["current_ct"],
        rois=phantom["rois"],
    )
    current = phantom["current_dose"].array
    total = result.dose_gy.array
    assert result.dose_gy.same_grid(phantom["current_dose"])
    hot = current > 0.1 * current.max()
    relative = np.abs(total[hot] - 2 * current[hot]) / (2 * current[hot])
    assert float(np.mean(relative)) < 0.02
    by_name = {e["name"]: e for e in result.stats["rois"]}
    for name in ("Liver", "Tumor", "normal_liver", "Lung R", "Lung L", "lungs_all"):
        entry = by_name[name]
        assert entry["cumulative"]["mean_gy"] == pytest.approx(2 * entry["current_mean_gy"], rel=0.02), name
        # the earlier dose alone: linear interpolation of a 5 mm grid flattens the tumour peak by ~2.5 %
        assert entry["previous_mean_gy"][0] == pytest.approx(entry["current_mean_gy"], rel=0.03), name
    assert result.stats["normal_liver"]["mean_gy"] == by_name["normal_liver"]["cumulative"]["mean_gy"]
    assert result.stats["lung"]["roi"] == "lungs_all"
    assert result.registrations[0] is not None and result.registrations[0].ncc > 0.9
    assert "no radiobiological correction" in result.stats["note"]


def test_failed_registration_is_refused(phantom):
    rng = np.random.default_rng(1)
    unrelated = phantom["previous_ct"].with_array(
        rng.normal(0.0, 300.0, phantom["previous_ct"].shape).astype(np.float32)
    )
    with pytest.raises(GeometryError, match="failed its check"):
        accumulate_doses(
            phantom["current_dose"],
            [(phantom["previous_dose"], unrelated)],
            current_ct=phantom["current_ct"],
            rois=phantom["rois"],
        )


def test_accumulate_command_line(phantom, tmp_path):
    paths = {}
    for key in ("current_ct", "current_dose", "previous_ct", "previous_dose"):
        paths[key] = write_nifti(phantom[key], tmp_path / f"{key}.nii.gz")
    roi_args = []
    for roi in phantom["rois"]:
        path = write_nifti(roi.mask.with_array(roi.mask.array.astype(np.uint8)), tmp_path / f"{roi.name}.nii.gz")
        roi_args += ["--roi", f"{roi.role.value}:{roi.name}={path}"]
    out = tmp_path / "cumulative"
    code = main(
        [
            "accumulate",
            "--current",
            str(paths["current_dose"]),
            "--ct",
            str(paths["current_ct"]),
            "--previous",
            f"{paths['previous_dose']}:{paths['previous_ct']}",
            *roi_args,
            "--out",
            str(out),
            "-q",
        ]
    )
    assert code == 0
    record = json.loads((out / "accumulate.json").read_text())
    normal = {e["name"]: e for e in record["rois"]}["normal_liver"]
    assert normal["cumulative"]["mean_gy"] == pytest.approx(2 * normal["current_mean_gy"], rel=0.02)
    assert record["treatments"][1]["registration"]["ncc"] > 0.9
    total = read_image(out / "cumulative_dose.nii.gz")
    assert total.same_grid(phantom["current_dose"])
    assert (out / "previous_1_on_current.nii.gz").is_file() and (out / "accumulate.csv").is_file()
    # the output folder exists now: refused without --overwrite, nothing changed
    assert (
        main(
            [
                "accumulate",
                "--current",
                str(paths["current_dose"]),
                "--previous",
                str(paths["previous_dose"]),
                "--out",
                str(out),
                "-q",
            ]
        )
        == 7
    )


def test_accumulate_a_dicom_run_with_its_own_rt_dose(tmp_path):
    """A run from a DICOM study: its CT comes from the study folder; RT Dose + DICOM CT folder as 'previous'."""
    import json

    import dicom_builders as b
    from dosimetry.cli import main

    b.write_phantom_study(tmp_path / "s", study_key="accumulate")
    assert main(["run", str(tmp_path / "s"), "--out", str(tmp_path / "run"), "-q"]) == 0
    assert (
        main(
            [
                "accumulate",
                "--current",
                str(tmp_path / "run"),
                "--previous",
                f"{tmp_path / 'run' / 'rtdose.dcm'}:{tmp_path / 's' / 'ct'}",
                "--out",
                str(tmp_path / "acc"),
                "-q",
            ]
        )
        == 0
    )
    run = {e["name"]: e for e in json.loads((tmp_path / "run" / "stats.json").read_text())["rois"]}
    acc = json.loads((tmp_path / "acc" / "accumulate.json").read_text())
    text = json.dumps(acc)
    assert "Liver" in text
    total = read_image(tmp_path / "acc" / "cumulative_dose.nii.gz").array
    single = read_image(tmp_path / "run" / "dose.nii.gz").array
    assert total.sum() == pytest.approx(2 * single.sum(), rel=0.02)
    assert run["Liver"]["mean_gy"] > 0
