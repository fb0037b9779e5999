"""Regions of interest: a named mask with a clinical role, and how roles are read from names.

A mask is an :class:`~dosimetry.image.Image` of occupancy fractions in [0, 1] on its own grid (binary
masks are 0/1). Statistics never assume the mask shares the activity grid: :mod:`dosimetry.geometry.resample`
maps it onto the activity grid through world coordinates (see ARCHITECTURE.md).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

import numpy as np

from dosimetry.errors import RoiError
from dosimetry.image import Image


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
            raise RoiError(f"unknown ROI role {text!r}; use one of {', '.join(r.value for r in cls)}") from None


def _words(name: str) -> str:
    """Lower-case name with separators as spaces and camelCase split ('NormalLiver' -> 'normal liver')."""
    name = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    return re.sub(r"[_\-.,;/]+", " ", name).lower()


_LIVER_WORD = r"(liver|hepa|parenchym)"
_NORMAL_LIVER = re.compile(
    rf"\b(normal|healthy|non ?tumou?r\w*|background)\b.*{_LIVER_WORD}"
    rf"|{_LIVER_WORD}.*\b(normal|healthy|non ?tumou?r\w*|background)\b"
)
_ROLE_RULES: tuple[tuple[Role | None, str, re.Pattern[str]], ...] = (
    # (role, why, pattern), the first match wins. Order matters: names of perfused volumes, normal liver,
    # lesions and vessels often contain 'liver' ("perfused liver", "normal liver", "liver lesion").
    (Role.OTHER, "non-perfused", re.compile(r"\b(non|un) ?perfus")),
    (Role.PERFUSED, "", re.compile(r"perfus")),
    (Role.OTHER, "normal liver", _NORMAL_LIVER),
    (Role.LIVER, "", re.compile(r"liver ?(\+|&|and|incl\w*|with|plus) ?(the )?(tumou?rs?|lesions?)")),
    (Role.TUMOR, "", re.compile(r"tumou?r|lesion|metast|\bmet(s|\d+)?\b|\bhcc\b|\bgtv|nodul")),
    (Role.OTHER, "vessels", re.compile(r"vessel|\bveins?\b|\bvena\b|venous|arter|portal|\bcava\b|\bivc\b|aort|vascul")),
    (Role.LUNG, "", re.compile(r"lung|pulmo")),
    (Role.LIVER, "", re.compile(_LIVER_WORD)),
)


def infer_role(name: str) -> Role | None:
    """The role suggested by an ROI or segment name, or None when the name suggests none.

    Names of normal liver ("normal liver", "whole liver normal", "non-tumoral liver", "healthy liver")
    give ``other``, not ``liver``: normal liver is derived as liver minus tumours, and such an ROI is
    not the whole liver (:func:`role_warnings` says so in the run's warnings). Liver vessels and
    non-perfused volumes are ``other`` too; "liver+tumour" is the whole liver.

    >>> infer_role("Liver"), infer_role("Tumour 2"), infer_role("lesion_a"), infer_role("Lung left")
    (<Role.LIVER: 'liver'>, <Role.TUMOR: 'tumor'>, <Role.TUMOR: 'tumor'>, <Role.LUNG: 'lung'>)
    >>> infer_role("whole liver normal"), infer_role("Liver-Vessels")
    (<Role.OTHER: 'other'>, <Role.OTHER: 'other'>)
    >>> infer_role("spleen") is None
    True
    """
    words = _words(name)
    for role, _, pattern in _ROLE_RULES:
        if pattern.search(words):
            return role
    return None


def looks_like_normal_liver(name: str) -> bool:
    """True for names of a normal-liver (liver minus tumours) ROI, e.g. 'normal liver', 'NonTumoral liver'."""
    return bool(_NORMAL_LIVER.search(_words(name))) and infer_role(name) is Role.OTHER


def role_warnings(rois) -> list[str]:
    """Warnings for ROIs whose name reads as normal liver and whose role is 'other' (see :func:`infer_role`)."""
    return [
        f"ROI {roi.name!r} reads as a normal-liver ROI: it was given the role 'other' (normal liver is "
        f"derived as liver minus tumours); if it is the whole liver, set --segment-role '{roi.name}=liver'"
        for roi in rois
        if roi.role is Role.OTHER and looks_like_normal_liver(roi.name)
    ]


@dataclass(frozen=True, eq=False)
class Roi:
    """A named region with a role and an occupancy mask (values in [0, 1]) on its own grid.

    Parameters
    ----------
    name : str
        Unique name, used as the key in every output.
    role : Role
    mask : Image
        Occupancy fraction per voxel. Boolean and integer 0/1 masks are stored as uint8 (a fine CT-grid
        segmentation holds several of them: a quarter of the memory of float32), fractions as float32.
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
        lowest = highest = None
        if array.dtype == bool:
            array = array.view(np.uint8)
        elif array.dtype.kind in "iu":
            lowest, highest = (array.min(), array.max()) if array.size else (0, 0)
            if lowest >= 0 and highest <= 1:
                array = array.astype(np.uint8, copy=False)
        elif array.dtype != np.float32:
            array = array.astype(np.float32)
        if array.dtype == np.uint8:  # 0/1 by construction (bool, or an integer mask checked above)
            empty = not array.any()
        else:  # two passes, no temporaries: NaN fails both comparisons and +-inf one of them
            lowest, highest = (array.min(), array.max()) if array.size else (0, 0)
            if not (lowest >= 0 and highest <= 1):
                raise RoiError(
                    f"ROI {self.name!r} ({self.source or 'mask'}): mask values must be 0/1 or fractions in [0, 1]; "
                    f"found range [{float(np.nanmin(array))}, {float(np.nanmax(array))}] (a label map? give one "
                    "segment per file, or use --segmentation for Slicer files)"
                )
            empty = not highest > 0
        object.__setattr__(self, "mask", self.mask.with_array(array))
        if empty:
            raise RoiError(f"ROI {self.name!r} ({self.source or 'mask'}) is empty: the mask has no voxel set")
