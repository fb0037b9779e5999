#!/usr/bin/env python
"""Generate the SYNTHETIC Y-90 radioembolization sample study (a digital torso phantom, not patient data).

The phantom is built from analytic shapes in LPS world coordinates (mm): an elliptic-cylinder body of soft
tissue in air, an ellipsoidal liver in the right upper abdomen holding three spherical tumours, and two
ellipsoidal lungs above the diaphragm. Every tissue label is voxelised by voxel centre (a voxel belongs to a
shape when its centre is inside it), separately on the activity ("PET") grid and on the finer, shifted CT grid.

Each label has a uniform activity concentration chosen so that, with the *voxelised* volumes,

* liver + tumours hold ``A (1 - residual) (1 - LSF)`` at implant and
* the lungs hold ``A (1 - residual) LSF``;

the stored activity image is that concentration decayed to the scan time. ``truth.json`` is the ground truth
(volumes, densities from the Schneider 2000 HU table, activities, local-deposition mean doses).

Usage::

    python scripts/make_sample_phantom.py --out data/samples/phantom
    python scripts/make_sample_phantom.py --out /tmp/blurred --blur-fwhm-mm 10 --noise-fraction 0.1 --seed 7

The committed sample (``data/samples/phantom``) is the ideal one (no blur, no noise). The generator is
deterministic: the same options give byte-identical files.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nrrd
import numpy as np
from scipy import ndimage

from dosimetry.constants import Y90_HALF_LIFE_H, Y90_LDM_GY_KG_PER_GBQ, constants_record
from dosimetry.io.data_files import hu_to_density_table
from dosimetry.image import Image
from dosimetry.io.images import read_image, write_nifti

# --- study parameters (the clinical scenario; not physics) ------------------------------------------------
ADMINISTERED_ACTIVITY_GBQ = 2.0
RESIDUAL_FRACTION = 0.03
LUNG_SHUNT_FRACTION = 0.05
SCAN_DELAY_H = 20.0

# --- CT numbers of the labels (HU) ------------------------------------------------------------------------
HU_AIR = -1000
HU_SOFT_TISSUE = 40
HU_LIVER = 60
HU_TUMOR = 50
HU_LUNG = -750

# --- grids (LPS, identity direction) ----------------------------------------------------------------------
PET_SPACING_MM = (4.0, 4.0, 4.0)
PET_ORIGIN_MM = (-170.0, -130.0, -110.0)
PET_SHAPE = (86, 66, 56)  # voxel edges at x -172..172, y -132..132, z -112..112 mm
CT_SPACING_MM = (2.0, 2.0, 3.0)
CT_OFFSET_MM = (0.75, -1.25, 0.5)  # CT origin = PET origin + offset: not a multiple of either spacing;
# dyadic fractions, so that the float32 NIfTI sform stores the CT origin exactly
CT_ORIGIN_MM = tuple(p + d for p, d in zip(PET_ORIGIN_MM, CT_OFFSET_MM))
CT_SHAPE = (171, 132, 74)  # voxel edges at x -170.25..171.75, y -132.25..131.75, z -111..111 mm

# --- design margins checked analytically (mm) --------------------------------------------------------------
DIAPHRAGM_MIN_MM = 10.0  # soft tissue between liver dome and lung bases
TUMOR_LIVER_MARGIN_MM = 8.0  # liver around every tumour
LIVER_BODY_MARGIN_MM = 10.0  # soft tissue between liver and skin
LUNG_BODY_MARGIN_MM = 5.0
BOUNDARY_TIE_TOL = 1e-9  # no voxel centre may lie this close (relative) to a shape boundary

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))  # 2.3548...

GENERATOR = "scripts/make_sample_phantom.py"
FORMAT_VERSION = 1


# --- analytic shapes -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ellipsoid:
    """Axis-aligned ellipsoid (LPS mm)."""

    centre_mm: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]

    def level(self, x, y, z):
        """(x/a)^2 + (y/b)^2 + (z/c)^2 about the centre: <= 1 inside."""
        (cx, cy, cz), (a, b, c) = self.centre_mm, self.semi_axes_mm
        return ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 + ((z - cz) / c) ** 2

    @property
    def volume_mm3(self) -> float:
        a, b, c = self.semi_axes_mm
        return 4.0 / 3.0 * math.pi * a * b * c

    def surface_points(self, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
        """Points on the surface and their outward unit normals (Fibonacci sampling), shape (n, 3)."""
        k = np.arange(n) + 0.5
        polar = np.arccos(1.0 - 2.0 * k / n)
        azimuth = math.pi * (1.0 + math.sqrt(5.0)) * k
        unit = np.stack([np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)], axis=1)
        axes = np.asarray(self.semi_axes_mm)
        points = unit * axes + np.asarray(self.centre_mm)
        normals = unit / axes
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        return points, normals

    def describe(self) -> dict:
        return {"shape": "ellipsoid", "centre_mm": list(self.centre_mm), "semi_axes_mm": list(self.semi_axes_mm)}


class Sphere(Ellipsoid):
    """Sphere (LPS mm)."""

    def __init__(self, centre_mm, radius_mm):
        object.__setattr__(self, "centre_mm", tuple(centre_mm))
        object.__setattr__(self, "semi_axes_mm", (radius_mm,) * 3)

    @property
    def radius_mm(self) -> float:
        return self.semi_axes_mm[0]

    def describe(self) -> dict:
        return {"shape": "sphere", "centre_mm": list(self.centre_mm), "radius_mm": self.radius_mm}


@dataclass(frozen=True)
class EllipticCylinder:
    """Elliptic cylinder along z (LPS mm): (x/a)^2 + (y/b)^2 <= 1 and |z - cz| <= half_length."""

    centre_mm: tuple[float, float, float]
    semi_axes_mm: tuple[float, float]
    half_length_mm: float

    def level(self, x, y, z):
        (cx, cy, cz), (a, b) = self.centre_mm, self.semi_axes_mm
        radial = ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2
        axial = (np.abs(z - cz) / self.half_length_mm) ** 2
        return np.maximum(radial, axial)

    @property
    def volume_mm3(self) -> float:
        a, b = self.semi_axes_mm
        return math.pi * a * b * 2.0 * self.half_length_mm

    def describe(self) -> dict:
        return {
            "shape": "elliptic_cylinder_along_z",
            "centre_mm": list(self.centre_mm),
            "semi_axes_mm": list(self.semi_axes_mm),
            "length_mm": 2.0 * self.half_length_mm,
        }


BODY = EllipticCylinder(centre_mm=(0.0, 0.0, 0.0), semi_axes_mm=(160.0, 120.0), half_length_mm=100.0)
LIVER = Ellipsoid(centre_mm=(-50.0, -15.0, -30.0), semi_axes_mm=(92.0, 72.0, 56.0))
# Patient's right = -x (LPS). The right lung is the larger one, as in patients.
LUNG_RIGHT = Ellipsoid(centre_mm=(-72.0, 8.0, 68.0), semi_axes_mm=(56.0, 70.0, 26.0))
LUNG_LEFT = Ellipsoid(centre_mm=(74.0, 12.0, 66.0), semi_axes_mm=(50.0, 64.0, 24.0))


@dataclass(frozen=True)
class Tumor:
    key: str
    name: str
    sphere: Sphere
    uptake_ratio: float  # concentration relative to normal liver


TUMORS = (
    Tumor("T1", "Tumor 1", Sphere((-17.3, -45.1, -9.4), 8.0), 5.0),
    Tumor("T2", "Tumor 2", Sphere((-92.6, 13.7, -40.8), 12.0), 4.0),
    Tumor("T3", "Tumor 3", Sphere((-51.4, -11.2, -27.3), 18.0), 6.0),
)


# --- grids and voxelisation --------------------------------------------------------------------------------------
def make_grid(shape, origin_mm, spacing_mm, dtype) -> Image:
    return Image(np.zeros(shape, dtype=dtype), origin_mm, spacing_mm)


def voxel_centres(grid: Image):
    """Open-mesh world coordinates (x[:,None,None], y[None,:,None], z[None,None,:]) of voxel centres."""
    if not np.allclose(grid.direction, np.eye(3)):
        raise ValueError("the phantom grids use the identity direction")
    axes = [grid.origin_mm[n] + grid.spacing_mm[n] * np.arange(grid.shape[n]) for n in range(3)]
    return axes[0][:, None, None], axes[1][None, :, None], axes[2][None, None, :]


def voxelise(shape, grid: Image, label: str) -> np.ndarray:
    """Boolean mask of voxels whose centre is inside ``shape``; refuses centres on the boundary (ties)."""
    level = shape.level(*voxel_centres(grid))
    closest = float(np.min(np.abs(level - 1.0)))
    if closest < BOUNDARY_TIE_TOL:
        raise ValueError(f"{label}: a voxel centre lies on the boundary (|level-1| = {closest:.2e}); move the shape")
    return level <= 1.0


def check_design() -> None:
    """Analytic checks of the geometry the sample promises (raises ValueError when violated)."""
    # Liver and lungs inside the body, with margins (offset surfaces of convex shapes inside the convex body).
    for label, organ, margin in (
        ("liver", LIVER, LIVER_BODY_MARGIN_MM),
        ("right lung", LUNG_RIGHT, LUNG_BODY_MARGIN_MM),
        ("left lung", LUNG_LEFT, LUNG_BODY_MARGIN_MM),
    ):
        points, normals = organ.surface_points()
        offset = points + margin * normals
        if np.any(BODY.level(offset[:, 0], offset[:, 1], offset[:, 2]) > 1.0):
            raise ValueError(f"{label} is closer than {margin} mm to the body surface")
    # Diaphragm: a horizontal slab of soft tissue between the liver dome and both lung bases.
    liver_top = LIVER.centre_mm[2] + LIVER.semi_axes_mm[2]
    for label, lung in (("right lung", LUNG_RIGHT), ("left lung", LUNG_LEFT)):
        gap = (lung.centre_mm[2] - lung.semi_axes_mm[2]) - liver_top
        if gap < DIAPHRAGM_MIN_MM:
            raise ValueError(f"{label} base is only {gap} mm above the liver dome")
    if LUNG_RIGHT.centre_mm[0] + LUNG_RIGHT.semi_axes_mm[0] >= LUNG_LEFT.centre_mm[0] - LUNG_LEFT.semi_axes_mm[0]:
        raise ValueError("the lungs overlap")
    # Tumours: the ball of radius r + margin must be inside the liver; tumours apart from each other.
    for tumor in TUMORS:
        grown = Sphere(tumor.sphere.centre_mm, tumor.sphere.radius_mm + TUMOR_LIVER_MARGIN_MM)
        points, _ = grown.surface_points()
        if np.any(LIVER.level(points[:, 0], points[:, 1], points[:, 2]) > 1.0):
            raise ValueError(f"{tumor.key} has less than {TUMOR_LIVER_MARGIN_MM} mm of liver around it")
    for n, first in enumerate(TUMORS):
        for second in TUMORS[n + 1 :]:
            distance = math.dist(first.sphere.centre_mm, second.sphere.centre_mm)
            if distance < first.sphere.radius_mm + second.sphere.radius_mm + TUMOR_LIVER_MARGIN_MM:
                raise ValueError(f"{first.key} and {second.key} are too close ({distance:.1f} mm apart)")


def build_labels(grid: Image) -> dict[str, np.ndarray]:
    """Boolean masks of every label on ``grid`` (voxel centre inside shape)."""
    masks = {
        "body": voxelise(BODY, grid, "body"),
        "liver": voxelise(LIVER, grid, "liver"),
        "lung_right": voxelise(LUNG_RIGHT, grid, "right lung"),
        "lung_left": voxelise(LUNG_LEFT, grid, "left lung"),
    }
    for tumor in TUMORS:
        masks[tumor.key] = voxelise(tumor.sphere, grid, tumor.key)
    masks["lung"] = masks["lung_right"] | masks["lung_left"]
    masks["all_tumors"] = np.logical_or.reduce([masks[t.key] for t in TUMORS])
    masks["normal_liver"] = masks["liver"] & ~masks["all_tumors"]
    # Voxelised consistency: organs inside the body, tumours inside the liver, nothing overlapping wrongly.
    for key in ("liver", "lung"):
        if np.any(masks[key] & ~masks["body"]):
            raise ValueError(f"voxelised {key} leaves the body")
    if np.any(masks["all_tumors"] & ~masks["liver"]) or np.any(masks["liver"] & masks["lung"]):
        raise ValueError("voxelised tumours leave the liver, or liver and lung overlap")
    if int(sum(masks[t.key].sum() for t in TUMORS)) != int(masks["all_tumors"].sum()):
        raise ValueError("voxelised tumours overlap")
    return masks


def ct_hu(masks: dict[str, np.ndarray]) -> np.ndarray:
    hu = np.full(masks["body"].shape, HU_AIR, dtype=np.int16)
    hu[masks["body"]] = HU_SOFT_TISSUE
    hu[masks["lung"]] = HU_LUNG
    hu[masks["liver"]] = HU_LIVER
    hu[masks["all_tumors"]] = HU_TUMOR
    return hu


def check_no_mixing(pet_masks, pet: Image, ct: Image, ct_values: np.ndarray) -> None:
    """No activity-grid liver voxel may contain a CT voxel centre of lung or air (partial-volume free)."""
    x, y, z = voxel_centres(ct)
    index = [np.floor((c - o) / s + 0.5).astype(int) for c, o, s in zip((x, y, z), pet.origin_mm, pet.spacing_mm)]
    inside = [(idx >= 0) & (idx < n) for idx, n in zip(index, pet.shape)]
    valid = inside[0] & inside[1] & inside[2]
    i, j, k = (np.clip(idx, 0, n - 1) for idx, n in zip(index, pet.shape))
    in_liver_voxel = pet_masks["liver"][np.broadcast_arrays(i, j, k)] & valid
    bad = in_liver_voxel & np.isin(ct_values, (HU_AIR, HU_LUNG))
    if np.any(bad):
        raise ValueError(f"{int(bad.sum())} CT voxels of lung/air fall inside activity-grid liver voxels")


# --- ground truth --------------------------------------------------------------------------------------------------
def density_g_ml(hu: float) -> float:
    hu_nodes, rho_nodes = hu_to_density_table()
    return float(np.interp(hu, hu_nodes, rho_nodes))


def compute_truth(pet: Image, masks: dict[str, np.ndarray]) -> dict:
    voxel_ml = pet.voxel_volume_ml
    to_liver_gbq = ADMINISTERED_ACTIVITY_GBQ * (1.0 - RESIDUAL_FRACTION) * (1.0 - LUNG_SHUNT_FRACTION)
    to_lung_gbq = ADMINISTERED_ACTIVITY_GBQ * (1.0 - RESIDUAL_FRACTION) * LUNG_SHUNT_FRACTION

    volume = {key: int(masks[key].sum()) * voxel_ml for key in ("normal_liver", "lung", *(t.key for t in TUMORS))}
    weighted_liver_ml = volume["normal_liver"] + sum(t.uptake_ratio * volume[t.key] for t in TUMORS)
    c_normal = to_liver_gbq * 1e9 / weighted_liver_ml  # Bq/mL at implant
    c_lung = to_lung_gbq * 1e9 / volume["lung"]
    decay_to_scan = math.exp(-math.log(2.0) * SCAN_DELAY_H / Y90_HALF_LIFE_H)

    def compartment(key, mask_key, volume_ml, analytic_ml, hu, density, concentration, extra=None):
        mass_g = density * volume_ml
        activity_gbq = concentration * volume_ml / 1e9
        entry = {
            "mask": mask_key,
            "n_voxels": int(round(volume_ml / voxel_ml)),
            "volume_ml": volume_ml,
            "volume_ml_analytic": analytic_ml,
            "hu": hu,
            "density_g_ml": density,
            "mass_g": mass_g,
            "concentration_implant_bq_ml": concentration,
            "concentration_scan_bq_ml": concentration * decay_to_scan,
            "activity_implant_mbq": activity_gbq * 1e3,
            "mean_dose_ldm_gy": Y90_LDM_GY_KG_PER_GBQ * activity_gbq / (mass_g / 1000.0),
        }
        entry.update(extra or {})
        return key, entry

    rho_liver, rho_tumor, rho_lung = density_g_ml(HU_LIVER), density_g_ml(HU_TUMOR), density_g_ml(HU_LUNG)
    tumor_analytic = {t.key: t.sphere.volume_mm3 / 1000.0 for t in TUMORS}
    comps = dict(
        [
            compartment(
                "normal_liver",
                "rois/liver.nii.gz minus rois/tumor_T*.nii.gz",
                volume["normal_liver"],
                LIVER.volume_mm3 / 1000.0 - sum(tumor_analytic.values()),
                HU_LIVER,
                rho_liver,
                c_normal,
                {"uptake_ratio_to_normal_liver": 1.0},
            )
        ]
        + [
            compartment(
                t.key,
                f"rois/tumor_{t.key}.nii.gz",
                volume[t.key],
                tumor_analytic[t.key],
                HU_TUMOR,
                rho_tumor,
                t.uptake_ratio * c_normal,
                {
                    "name": t.name,
                    "radius_mm": t.sphere.radius_mm,
                    "centre_mm": list(t.sphere.centre_mm),
                    "uptake_ratio_to_normal_liver": t.uptake_ratio,
                },
            )
            for t in TUMORS
        ]
    )

    # Aggregates: total activity / total volume and total mass (dose = total activity / total mass).
    def aggregate(key, mask_key, parts, analytic_ml, hu):
        volume_ml = sum(comps[p]["volume_ml"] for p in parts)
        mass_g = sum(comps[p]["mass_g"] for p in parts)
        activity_bq = sum(comps[p]["concentration_implant_bq_ml"] * comps[p]["volume_ml"] for p in parts)
        return compartment(
            key,
            mask_key,
            volume_ml,
            analytic_ml,
            hu,
            mass_g / volume_ml,
            activity_bq / volume_ml,
            {"parts": list(parts)},
        )

    tumor_keys = [t.key for t in TUMORS]
    comps.update(
        [aggregate("all_tumors", "union of rois/tumor_T*.nii.gz", tumor_keys, sum(tumor_analytic.values()), HU_TUMOR)]
    )
    comps.update(
        [aggregate("whole_liver", "rois/liver.nii.gz", ["normal_liver", *tumor_keys], LIVER.volume_mm3 / 1000.0, None)]
    )
    comps["whole_liver"]["density_note"] = "mass-weighted: total mass / total volume (liver HU 60, tumours HU 50)"
    comps.update(
        [
            compartment(
                "lung",
                "rois/lung.nii.gz",
                volume["lung"],
                (LUNG_LEFT.volume_mm3 + LUNG_RIGHT.volume_mm3) / 1000.0,
                HU_LUNG,
                rho_lung,
                c_lung,
            )
        ]
    )

    normal, tumors = comps["normal_liver"], comps["all_tumors"]
    return {
        "synthetic": True,
        "description": "SYNTHETIC digital phantom for Y-90 radioembolization dosimetry tests; not patient data.",
        "generator": GENERATOR,
        "format_version": FORMAT_VERSION,
        "administered_activity_gbq": ADMINISTERED_ACTIVITY_GBQ,
        "residual_fraction": RESIDUAL_FRACTION,
        "lung_shunt_fraction": LUNG_SHUNT_FRACTION,
        "scan_delay_h": SCAN_DELAY_H,
        "half_life_h": Y90_HALF_LIFE_H,
        "decay_factor_implant_to_scan": decay_to_scan,
        "ldm_gy_kg_per_gbq": Y90_LDM_GY_KG_PER_GBQ,
        "activity_implant_liver_and_tumors_mbq": to_liver_gbq * 1e3,
        "activity_implant_lung_mbq": to_lung_gbq * 1e3,
        "activity_scan_total_mbq": (to_liver_gbq + to_lung_gbq) * 1e3 * decay_to_scan,
        "tumor_to_normal": {
            "activity_ratio": tumors["concentration_implant_bq_ml"] / normal["concentration_implant_bq_ml"],
            "dose_ratio": tumors["mean_dose_ldm_gy"] / normal["mean_dose_ldm_gy"],
            "per_tumor_dose_ratio": {k: comps[k]["mean_dose_ldm_gy"] / normal["mean_dose_ldm_gy"] for k in tumor_keys},
        },
        "compartments": comps,
        "notes": [
            "Activity concentrations are uniform per label; volumes, activities and doses use the voxelised "
            "(activity-grid, voxel-centre) volumes, so they are exact for the stored images.",
            "Densities: Schneider 2000 HU->density table, linear interpolation (dosimetry.io.data_files).",
            "Mean dose = Y90_LDM_GY_KG_PER_GBQ x activity at implant [GBq] / mass [kg] (local deposition, "
            "permanent implant); aggregates use total activity / total mass.",
            "Concentration at scan = concentration at implant x exp(-ln2 x scan_delay_h / half_life_h).",
        ],
    }


# --- output ------------------------------------------------------------------------------------------------------
SEGMENTS = (
    # (layer, label, id, name, colour, terminology type ~ modifier, mask key)
    (
        0,
        1,
        "Liver",
        "Liver",
        (0.866667, 0.509804, 0.396078),
        "SCT^123037004^Anatomical Structure~SCT^10200004^Liver~^^",
        "liver",
    ),
    (
        0,
        2,
        "Lung_left",
        "Lung left",
        (0.772549, 0.647059, 0.568627),
        "SCT^123037004^Anatomical Structure~SCT^39607008^Lung~SCT^7771000^Left",
        "lung_left",
    ),
    (
        0,
        3,
        "Lung_right",
        "Lung right",
        (0.670588, 0.533333, 0.470588),
        "SCT^123037004^Anatomical Structure~SCT^39607008^Lung~SCT^24028007^Right",
        "lung_right",
    ),
    (
        1,
        1,
        "Tumor_1",
        "Tumor 1",
        (0.564706, 0.933333, 0.564706),
        "SCT^49755003^Morphologically Altered Structure~SCT^4147007^Mass~^^",
        "T1",
    ),
    (
        1,
        2,
        "Tumor_2",
        "Tumor 2",
        (0.945098, 0.839216, 0.568627),
        "SCT^49755003^Morphologically Altered Structure~SCT^4147007^Mass~^^",
        "T2",
    ),
    (
        1,
        3,
        "Tumor_3",
        "Tumor 3",
        (0.188235, 0.509804, 0.866667),
        "SCT^49755003^Morphologically Altered Structure~SCT^4147007^Mass~^^",
        "T3",
    ),
)
_TERMINOLOGY_CONTEXT = "Segmentation category and type - 3D Slicer General Anatomy list"
_ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"


def _extent(mask: np.ndarray) -> str:
    nonzero = np.nonzero(mask)
    return " ".join(f"{int(a.min())} {int(a.max())}" for a in nonzero)


def segmentation_nrrd(pet: Image, masks: dict[str, np.ndarray]) -> tuple[np.ndarray, dict]:
    """The layered (4-D, list axis first) Slicer segmentation array and header on the activity grid."""
    n_layers = 1 + max(s[0] for s in SEGMENTS)
    data = np.zeros((n_layers, *pet.shape), dtype=np.uint8)
    for layer, label, *_, key in SEGMENTS:
        target = data[layer]
        if np.any(target[masks[key]] != 0):
            raise ValueError(f"segment {key} overlaps another segment of layer {layer}")
        target[masks[key]] = label
    directions = np.full((4, 3), np.nan)
    directions[1:] = (pet.direction * pet.spacing_mm).T  # row n = world vector of array axis n
    header = {
        "type": "unsigned char",
        "dimension": 4,
        "space": "left-posterior-superior",
        "sizes": np.array(data.shape),
        "space directions": directions,
        "kinds": ["list", "domain", "domain", "domain"],
        "encoding": "gzip",
        "space origin": np.array(pet.origin_mm, dtype=float),
    }
    custom = {}
    for index, (layer, label, seg_id, name, colour, term, key) in enumerate(SEGMENTS):
        anatomic_region = "SCT^10200004^Liver~^^" if key.startswith("T") else "^^~^^"
        custom.update(
            {
                f"Segment{index}_Color": " ".join(f"{c:g}" for c in colour),
                f"Segment{index}_ColorAutoGenerated": "0",
                f"Segment{index}_Extent": _extent(masks[key]),
                f"Segment{index}_ID": seg_id,
                f"Segment{index}_LabelValue": str(label),
                f"Segment{index}_Layer": str(layer),
                f"Segment{index}_Name": name,
                f"Segment{index}_NameAutoGenerated": "0",
                f"Segment{index}_Tags": (
                    f"TerminologyEntry:{_TERMINOLOGY_CONTEXT}~{term}~{_ANATOMIC_CONTEXT}~{anatomic_region}|"
                ),
            }
        )
    custom.update(
        {
            "Segmentation_ContainedRepresentationNames": "Binary labelmap|",
            "Segmentation_MasterRepresentation": "Binary labelmap",
            "Segmentation_ReferenceImageExtentOffset": "0 0 0",
        }
    )
    header.update(dict(sorted(custom.items())))  # Slicer (ITK) writes custom keys sorted
    return data, header


def _replace_atomically(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: Path, payload: dict) -> None:
    text = json.dumps(payload, indent=2, allow_nan=False) + "\n"
    _replace_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_seg_nrrd(path: Path, data: np.ndarray, header: dict) -> None:
    """Write with pynrrd, minus the write-time comment pynrrd adds (so that the file is deterministic)."""
    buffer = io.BytesIO()
    # index_order "F": data[layer, i, j, k] with the list axis fastest, as Slicer writes it.
    nrrd.write(buffer, data, dict(header), index_order="F", compression_level=9)
    content = buffer.getvalue()
    head, sep, body = content.partition(b"\n\n")
    head = re.sub(rb"\n# on [^\n]*\(GMT\)\.(?=\n)", b"", head)
    _replace_atomically(path, lambda tmp: tmp.write_bytes(head + sep + body))


def seg_affine_lps(header: dict) -> np.ndarray:
    """4x4 index->LPS affine of the three domain axes of a (list-first) segmentation header."""
    if header.get("space") != "left-posterior-superior":
        raise ValueError(f"unexpected nrrd space {header.get('space')!r}")
    directions = np.asarray(header["space directions"], dtype=float)
    domain = [n for n, kind in enumerate(header["kinds"]) if kind == "domain"]
    affine = np.eye(4)
    affine[:3, :3] = directions[domain].T
    affine[:3, 3] = np.asarray(header["space origin"], dtype=float)
    return affine


def verify_outputs(out: Path, pet: Image, masks: dict[str, np.ndarray], data: np.ndarray, header: dict) -> None:
    """Read the written files back and check names, layers, labels and world geometry against the masks."""
    read_data, read_header = nrrd.read(str(out / "rois.seg.nrrd"), index_order="F")
    if not np.array_equal(read_data, data) or list(read_header["kinds"]) != ["list", "domain", "domain", "domain"]:
        raise RuntimeError("rois.seg.nrrd does not read back as written")
    custom = [key for key in header if key.startswith(("Segment", "Segmentation_"))]
    if any(read_header.get(key) != header[key] for key in custom):
        raise RuntimeError("rois.seg.nrrd custom fields do not read back as written")
    if not np.allclose(seg_affine_lps(read_header), pet.affine_lps, atol=1e-9):
        raise RuntimeError("rois.seg.nrrd geometry differs from the activity grid")
    for index, (layer, label, seg_id, name, *_rest, key) in enumerate(SEGMENTS):
        if (read_header[f"Segment{index}_Name"], read_header[f"Segment{index}_ID"]) != (name, seg_id) or (
            int(read_header[f"Segment{index}_Layer"]),
            int(read_header[f"Segment{index}_LabelValue"]),
        ) != (layer, label):
            raise RuntimeError(f"rois.seg.nrrd segment {index} metadata does not read back as written")
        if not np.array_equal(read_data[layer] == label, masks[key]):
            raise RuntimeError(f"rois.seg.nrrd segment {name!r} differs from its mask")
    nifti_keys = {"liver": "liver", "lung": "lung", **{f"tumor_{t.key}": t.key for t in TUMORS}}
    for file_key, key in nifti_keys.items():
        image = read_image(out / "rois" / f"{file_key}.nii.gz")  # RAS on disk -> LPS Image
        if not image.same_grid(pet, tol_mm=1e-6) or not np.array_equal(image.array.astype(bool), masks[key]):
            raise RuntimeError(f"rois/{file_key}.nii.gz does not read back on the activity grid")


def grid_record(image: Image) -> dict:
    return {
        "shape": list(image.shape),
        "origin_mm": image.origin_mm.tolist(),
        "spacing_mm": image.spacing_mm.tolist(),
        "direction": image.direction.tolist(),
        "coordinates": "LPS mm, centre of voxel (0,0,0); NIfTI files store the equivalent RAS affine",
    }


def degrade(activity: np.ndarray, spacing_mm, blur_fwhm_mm: float, noise_fraction: float, seed: int) -> np.ndarray:
    out = activity.astype(np.float64)
    if blur_fwhm_mm > 0:
        sigma = [blur_fwhm_mm / FWHM_PER_SIGMA / s for s in spacing_mm]
        out = ndimage.gaussian_filter(out, sigma=sigma, mode="constant", cval=0.0)
    if noise_fraction > 0:
        rng = np.random.default_rng(seed)
        out = out + rng.standard_normal(out.shape) * (noise_fraction * out)
    return out


def generate(out: Path, blur_fwhm_mm: float = 0.0, noise_fraction: float = 0.0, seed: int = 12345) -> dict:
    """Write the sample study into ``out`` and return its truth record."""
    if blur_fwhm_mm < 0 or noise_fraction < 0:
        raise ValueError("--blur-fwhm-mm and --noise-fraction must be >= 0")
    check_design()
    out.mkdir(parents=True, exist_ok=True)
    (out / "rois").mkdir(exist_ok=True)

    pet = make_grid(PET_SHAPE, PET_ORIGIN_MM, PET_SPACING_MM, np.float32)
    ct = make_grid(CT_SHAPE, CT_ORIGIN_MM, CT_SPACING_MM, np.int16)
    pet_masks = build_labels(pet)
    ct_values = ct_hu(build_labels(ct))
    check_no_mixing(pet_masks, pet, ct, ct_values)

    truth = compute_truth(pet, pet_masks)
    comps = truth["compartments"]
    implant = np.zeros(pet.shape, dtype=np.float64)
    implant[pet_masks["normal_liver"]] = comps["normal_liver"]["concentration_implant_bq_ml"]
    for tumor in TUMORS:
        implant[pet_masks[tumor.key]] = comps[tumor.key]["concentration_implant_bq_ml"]
    implant[pet_masks["lung"]] = comps["lung"]["concentration_implant_bq_ml"]
    scan = implant * truth["decay_factor_implant_to_scan"]
    scan = degrade(scan, pet.spacing_mm, blur_fwhm_mm, noise_fraction, seed)

    write_nifti(pet.with_array(scan.astype(np.float32)), out / "activity_bqml.nii.gz")
    write_nifti(ct.with_array(ct_values), out / "ct_hu.nii.gz")
    write_nifti(pet.with_array(pet_masks["liver"].astype(np.uint8)), out / "rois" / "liver.nii.gz")
    write_nifti(pet.with_array(pet_masks["lung"].astype(np.uint8)), out / "rois" / "lung.nii.gz")
    for tumor in TUMORS:
        write_nifti(pet.with_array(pet_masks[tumor.key].astype(np.uint8)), out / "rois" / f"tumor_{tumor.key}.nii.gz")
    data, header = segmentation_nrrd(pet, pet_masks)
    write_seg_nrrd(out / "rois.seg.nrrd", data, header)
    verify_outputs(out, pet, pet_masks, data, header)

    truth["image_degradation"] = {
        "blur_fwhm_mm": blur_fwhm_mm,
        "noise_fraction": noise_fraction,
        "noise_seed": seed,
        "applied_to": "activity_bqml.nii.gz only; this truth record describes the ideal phantom",
        "blur": "scipy.ndimage.gaussian_filter, sigma_voxels = FWHM / 2.3548 / spacing, mode constant (0)",
        "noise": "Gaussian, standard deviation = noise_fraction x voxel value, numpy default_rng(seed)",
    }
    truth["grids"] = {"activity": grid_record(pet), "ct": grid_record(ct)}
    truth["geometry"] = {
        "coordinate_system": "LPS (x to patient left, y to posterior, z to superior), mm",
        "voxelisation": "a voxel belongs to a shape when its centre is inside it",
        "body": {**BODY.describe(), "hu": HU_SOFT_TISSUE},
        "outside_body_hu": HU_AIR,
        "liver": {**LIVER.describe(), "hu": HU_LIVER},
        "lung_right": {**LUNG_RIGHT.describe(), "hu": HU_LUNG},
        "lung_left": {**LUNG_LEFT.describe(), "hu": HU_LUNG},
        "tumors": {t.key: {**t.sphere.describe(), "hu": HU_TUMOR, "name": t.name} for t in TUMORS},
    }
    truth["files"] = {
        "activity_bqml.nii.gz": "activity concentration at scan time, Bq/mL, float32, activity grid",
        "ct_hu.nii.gz": "CT, HU, int16, CT grid (finer and shifted)",
        "rois/liver.nii.gz": "whole liver including tumours, uint8 0/1, activity grid",
        **{f"rois/tumor_{t.key}.nii.gz": f"{t.name}, uint8 0/1, activity grid" for t in TUMORS},
        "rois/lung.nii.gz": "both lungs, uint8 0/1, activity grid",
        "rois.seg.nrrd": "3D Slicer segmentation (2 layers: Liver/Lung left/Lung right; Tumor 1-3), activity grid",
        "truth.json": "this file",
    }
    used = ("Y90_HALF_LIFE_H", "Y90_MEAN_BETA_ENERGY_MEV", "JOULE_PER_MEV", "Y90_LDM_GY_KG_PER_GBQ")
    truth["constants"] = {name: entry for name, entry in constants_record().items() if name in used}
    write_json(out / "truth.json", truth)
    return truth


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="output folder (created if needed)")
    parser.add_argument(
        "--blur-fwhm-mm",
        type=float,
        default=0.0,
        help="Gaussian blur of the activity image, FWHM in mm (default 0: none)",
    )
    parser.add_argument(
        "--noise-fraction",
        type=float,
        default=0.0,
        help="relative Gaussian noise on the activity: sd = fraction x value (default 0: none)",
    )
    parser.add_argument("--seed", type=int, default=12345, help="random seed of the noise (default 12345)")
    args = parser.parse_args(argv)
    truth = generate(args.out, args.blur_fwhm_mm, args.noise_fraction, args.seed)
    comps = truth["compartments"]
    print(f"wrote {args.out} (SYNTHETIC phantom)")
    for key in ("normal_liver", "T1", "T2", "T3", "all_tumors", "whole_liver", "lung"):
        c = comps[key]
        print(
            f"  {key:13s} {c['volume_ml']:9.3f} mL  {c['concentration_implant_bq_ml']:12.1f} Bq/mL at implant  "
            f"{c['activity_implant_mbq']:8.2f} MBq  {c['mean_dose_ldm_gy']:7.2f} Gy"
        )
    ratios = truth["tumor_to_normal"]
    print(f"  T:N activity {ratios['activity_ratio']:.4f}, dose {ratios['dose_ratio']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
