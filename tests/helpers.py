"""Small builders shared by the tests: images with non-trivial geometry, ROIs, rotations."""

from __future__ import annotations

import numpy as np

from dosimetry.image import Image
from dosimetry.roi import Roi


def rotation(axis: str, degrees: float) -> np.ndarray:
    """Right-handed rotation matrix about the world x, y or z axis."""
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    return {
        "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def oblique_direction() -> np.ndarray:
    """A non-axial direction matrix (rotations about all three axes, one axis flipped)."""
    return rotation("z", 30) @ rotation("x", 20) @ rotation("y", -15) @ np.diag([1.0, -1.0, 1.0])


def world_grid(image: Image) -> np.ndarray:
    """World (LPS, mm) coordinates of every voxel centre, shape image.shape + (3,)."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in image.shape], indexing="ij"), axis=-1)
    return image.index_to_world(idx.reshape(-1, 3)).reshape(image.shape + (3,))


def sphere_mask_supersampled(image: Image, centre_mm, radius_mm: float, n: int = 4) -> np.ndarray:
    """Occupancy (0..1) of a world-space sphere in each voxel of ``image``, by n**3 supersampling."""
    offsets = (np.arange(n) + 0.5) / n - 0.5
    sub = np.stack(np.meshgrid(offsets, offsets, offsets, indexing="ij"), axis=-1).reshape(-1, 3)
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in image.shape], indexing="ij"), axis=-1).reshape(-1, 1, 3)
    world = image.index_to_world((idx + sub).reshape(-1, 3)).reshape(-1, n**3, 3)
    inside = np.linalg.norm(world - np.asarray(centre_mm), axis=-1) <= radius_mm
    return inside.mean(axis=1).reshape(image.shape).astype(np.float32)


def roi_on(image: Image, mask, name: str, role: str) -> Roi:
    return Roi(name, role, image.with_array(np.asarray(mask, dtype=np.float32)))
