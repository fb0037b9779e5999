"""Regions of interest: a named mask with a clinical role, and how roles are read from names.

A mask is an :class:`~dosimetry.image.Image` of occupancy fractions in [0, 1] on its own grid (binary
masks are 0/1). Statistics never assume the mask shares the activity grid: :mod:`dosimetry.resample`
maps it onto the activity grid through world coordinates (see ARCHITECTURE.md).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

import numpy as np

from .errors import RoiError
from .image import Image


class Role(str, enum.Enum):
    """Clinical role of an ROI; the value is the name used on the command line and in outputs."""

    LIVER = "liver"
    TUMOR = "tumor"
    LUNG = "lung"
    PERFUSED = "perfused"
    OTHER = "other"

    @classmethod
    def parse(cls, text: str) -> "Role":
        """The role named ``text`` (case-insensitive; 'tumour' and 'lesion' mean tumor)."""
        key = text.strip().lower()
        key = {"tumour": "tumor", "lesion": "tumor", "lungs": "lung"}.get(key, key)
        try:
            return cls(key)
        except ValueError:
            raise RoiError(
                f"unknown ROI role {text!r}; use one of {', '.join(r.value for r in cls)}"
            ) from None


# Order matters: 'perfused' and 'tumour' names often contain 'liver' ("perfused liver", "liver lesion").
_ROLE_PATTERNS: tuple[tuple[Role, re.Pattern[str]], ...] = (
    (Role.PERFUSED, re.compile(r"perfus", re.I)),
    (Role.TUMOR, re.compile(r"tumou?r|lesion|metast|\bmets?\b|\bhcc\b|\bgtv", re.I)),
    (Role.LUNG, re.compile(r"lung", re.I)),
    (Role.LIVER, re.compile(r"liver|hepa", re.I)),
)


def infer_role(name: str) -> Role | None:
    """The role suggested by an ROI or segment name, or None when the name suggests none.

    >>> infer_role("Liver"), infer_role("Tumour 2"), infer_role("lesion_a"), infer_role("Lung left")
    (<Role.LIVER: 'liver'>, <Role.TUMOR: 'tumor'>, <Role.TUMOR: 'tumor'>, <Role.LUNG: 'lung'>)
    >>> infer_role("spleen") is None
    True
    """
    for role, pattern in _ROLE_PATTERNS:
        if pattern.search(name.replace("_", " ")):
            return role
    return None


@dataclass(frozen=True, eq=False)
class Roi:
    """A named region with a role and an occupancy mask (values in [0, 1]) on its own grid.

    Parameters
    ----------
    name : str
        Unique name, used as the key in every output.
    role : Role
    mask : Image
        Occupancy fraction per voxel; boolean or 0/1 masks are accepted and stored as float32.
    source : str
        Where the mask came from (file and segment), for the run record.
    """

    name: str
    role: Role
    mask: Image
    source: str = ""

    def __post_init__(self):
        if not self.name or not self.name.strip():
            raise RoiError("an ROI needs a non-empty name")
        if not isinstance(self.role, Role):
            object.__setattr__(self, "role", Role.parse(str(self.role)))
        array = np.asarray(self.mask.array)
        if array.dtype != np.float32:
            array = array.astype(np.float32)
        if not np.all(np.isfinite(array)) or array.min(initial=0) < 0 or array.max(initial=0) > 1:
            raise RoiError(
                f"ROI {self.name!r} ({self.source or 'mask'}): mask values must be 0/1 or fractions in [0, 1]; "
                f"found range [{float(np.nanmin(array))}, {float(np.nanmax(array))}] (a label map? give one "
                "segment per file, or use --segmentation for Slicer files)"
            )
        object.__setattr__(self, "mask", self.mask.with_array(array))
        if not np.any(array > 0):
            raise RoiError(f"ROI {self.name!r} ({self.source or 'mask'}) is empty: the mask has no voxel set")
