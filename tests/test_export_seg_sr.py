"""DICOM SEG and TID 1500 SR export: read back with highdicom, the masks and numbers are those written."""

from __future__ import annotations

import shutil
import subprocess

import highdicom as hd
import numpy as np
import pytest

from dosimetry.errors import GeometryError, RoiError
from dosimetry.export import (
    PRIVATE_CODING_SCHEME,
    build_segmentation,
    read_measurement_report,
    write_measurement_report,
    write_segmentation,
)
from dosimetry.export.seg import source_grid
from dosimetry.image import Image
from dosimetry.pipeline import DosimetryOptions, run_dosimetry
from dosimetry.geometry.resample import occupancy_on_grid
from helpers import roi_on, rotation, sphere_mask_supersampled, world_grid
from test_export_rtdose import build_ct_series

LIVER_CENTRE, LIVER_RADIUS = np.array([2.0, -4.0, 1.0]), 16.0
TUMOUR_CENTRE, TUMOUR_RADIUS = np.array([8.0, -2.0, 3.0]), 6.0


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """An oblique CT series, ROIs on their own (finer, axial) grid, and a dosimetry result."""
    folder = tmp_path_factory.mktemp("study")
    direction = rotation("z", 20) @ rotation("x", 10)
    ct = build_ct_series(
        folder / "ct",
        shape=(24, 22, 12),
        spacing_mm=(2.0, 2.0, 3.0),
        direction=direction,
        origin_mm=(-18.0, -30.0, -16.0),
    )
    mask_grid = Image(np.zeros((40, 40, 30), np.float32), (-20.0, -24.0, -14.0), (1.0, 1.0, 1.0))
    rois = [
        roi_on(mask_grid, sphere_mask_supersampled(mask_grid, LIVER_CENTRE, LIVER_RADIUS), "Liver", "liver"),
        roi_on(mask_grid, sphere_mask_supersampled(mask_grid, TUMOUR_CENTRE, TUMOUR_RADIUS), "Tumor 1", "tumor"),
    ]
    activity_grid = Image(np.zeros((16, 16, 12), np.float32), (-22.0, -26.0, -16.0), (3.0, 3.0, 3.0))
    xyz = world_grid(activity_grid)
    activity = np.where(np.linalg.norm(xyz - TUMOUR_CENTRE, axis=-1) < TUMOUR_RADIUS, 8.0e5, 1.0e5)
    result = run_dosimetry(
        activity_grid.with_array(activity.astype(np.float32)),
        rois,
        options=DosimetryOptions(activity_units="Bq/mL", scan_delay_h=0.0),
    )
    return {"ct": ct, "rois": rois, "result": result, "folder": folder}


def _dciodvfy_errors(path) -> tuple[list[str], str]:
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    output = run.stdout + run.stderr
    return [line for line in output.splitlines() if line.startswith("Error")], output


def test_seg_round_trip(study, tmp_path):
    ct, rois = study["ct"], study["rois"]
    shuffled = ct[::-1]  # any order of the source images
    path = write_segmentation(rois, shuffled, tmp_path / "rois.seg.dcm")
    seg = hd.seg.segread(path)
    assert seg.SegmentationType == "BINARY"
    assert seg.StudyInstanceUID == ct[0].StudyInstanceUID and seg.FrameOfReferenceUID == ct[0].FrameOfReferenceUID
    labels = {int(item.SegmentNumber): item.SegmentLabel for item in seg.SegmentSequence}
    assert labels == {1: "Liver", 2: "Tumor 1"}
    types = {
        int(item.SegmentNumber): item.SegmentedPropertyTypeCodeSequence[0].CodeValue for item in seg.SegmentSequence
    }
    assert types == {1: "10200004", 2: "108369006"}

    grid, order = source_grid(ct)
    uids = [ct[index].SOPInstanceUID for index in order]  # k order
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, segment_numbers=[1, 2], combine_segments=False
    )
    assert pixels.shape == (len(ct), grid.shape[1], grid.shape[0], 2)
    for number, roi in enumerate(rois, start=1):
        expected = occupancy_on_grid(roi.mask, grid).array >= 0.5  # (i, j, k)
        got = pixels[..., number - 1].transpose(2, 1, 0).astype(bool)
        assert np.array_equal(got, expected), roi.name
        # the mask is where the ROI is in the world: its centre of mass matches the sphere centre
        centre = grid.index_to_world(np.argwhere(got).mean(axis=0))
        assert np.linalg.norm(centre - (LIVER_CENTRE if number == 1 else TUMOUR_CENTRE)) < 1.5

    if shutil.which("dciodvfy"):
        errors, output = _dciodvfy_errors(path)
        assert not errors, output


def test_seg_refuses_roi_outside_source(study):
    far = Image(np.ones((3, 3, 3), np.float32), (500.0, 500.0, 500.0), (1.0, 1.0, 1.0))
    with pytest.raises(GeometryError, match="'Far'"):
        build_segmentation([roi_on(far, far.array, "Far", "other")], study["ct"])
    grid, _ = source_grid(study["ct"])
    speck = Image(np.ones((2, 2, 2), np.float32), grid.index_to_world([3.0, 3.0, 3.0]) - 0.4, (0.8, 0.8, 0.8))
    with pytest.raises(RoiError, match="no voxel"):
        build_segmentation([roi_on(speck, speck.array, "Speck", "other")], study["ct"])


@pytest.mark.parametrize("with_seg", [True, False])
def test_sr_round_trip(study, tmp_path, with_seg):
    ct, result = study["ct"], study["result"]
    stats = result.stats
    seg = build_segmentation(study["rois"], ct) if with_seg else None
    evidence = list(ct) + ([seg] if seg is not None else [])
    path = write_measurement_report(stats, evidence, tmp_path / "results.sr.dcm", segmentation=seg)

    sr = hd.sr.srread(path)
    assert sr.StudyInstanceUID == ct[0].StudyInstanceUID
    assert any(item.CodingSchemeDesignator == PRIVATE_CODING_SCHEME for item in sr.CodingSchemeIdentificationSequence)
    volumetric = sr.content.get_volumetric_roi_measurement_groups()
    other = sr.content.get_image_measurement_groups()
    assert len(volumetric) == (2 if with_seg else 0)
    groups = {str(g.tracking_identifier): g for g in list(volumetric) + list(other)}
    assert set(groups) == {entry["name"] for entry in stats["rois"]}
    for entry in stats["rois"]:
        group = groups[entry["name"]]
        (mean,) = group.get_measurements(name=hd.sr.CodedConcept("128513", "DCM", "Absorbed Dose"))
        assert mean.value == pytest.approx(entry["mean_gy"], rel=1e-12)
        assert mean.unit.value == "Gy" and mean.derivation.value == "373098007"
        (volume,) = group.get_measurements(name=hd.sr.CodedConcept("118565006", "SCT", "Volume"))
        assert volume.value == pytest.approx(entry["volume_ml"], rel=1e-12) and volume.unit.value == "ml"
        (d70,) = group.get_measurements(name=hd.sr.CodedConcept("D70", PRIVATE_CODING_SCHEME, "D70"))
        assert d70.value == pytest.approx(entry["D70"], rel=1e-12)
        (v100,) = group.get_measurements(name=hd.sr.CodedConcept("V100", PRIVATE_CODING_SCHEME, "V100"))
        assert v100.value == pytest.approx(entry["V100"], rel=1e-12) and v100.unit.value == "%"
    tn = stats["tumor_to_normal"]
    assert tn["dose_ratio"] is not None
    numbers = read_measurement_report(path)
    assert numbers[tn["tumor"]]["tn_dose_ratio"] == pytest.approx(tn["dose_ratio"], rel=1e-12)
    assert numbers["normal_liver"]["mean_gy"] == pytest.approx(result.roi("normal_liver")["mean_gy"], rel=1e-12)
    if with_seg:  # the given ROIs point at their segments
        for name, number in (("Liver", 1), ("Tumor 1", 2)):
            reference = groups[name].referenced_segment
            assert reference.referenced_sop_instance_uid == seg.SOPInstanceUID
            assert list(reference.referenced_segment_numbers) == [number]
            # the segment's source is its series (TID 1411), not each source image again
            assert not reference.has_source_images()
            assert reference.source_series_for_segmentation.value == ct[0].SeriesInstanceUID

    if shutil.which("dciodvfy"):
        errors, output = _dciodvfy_errors(path)
        assert not errors, output
