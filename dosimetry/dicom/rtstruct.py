"""RT Structure Set contours to occupancy masks on any voxel grid.

Contours are planar polygons in LPS world coordinates. A target voxel grid (any orientation and
spacing) is sampled in world coordinates: a sample point belongs to the contour plane nearest to it
along the plane normal when it lies within half a contour-slice thickness of it, and is inside the
structure when an even-odd (crossing number) test over all contours of that structure on that plane
says so: a contour inside another is a hole, whether the exporter wrote it as a separate contour or as a
keyhole. Voxel centres are tested first; voxels near the surface (and those holding contour vertices,
so that lesions smaller than a voxel are not lost) are then supersampled ``supersample**3`` times, giving
occupancy fractions in [0, 1].

References
----------
.. [PS3.3-C.8.8.5] DICOM PS3.3 C.8.8.5 Structure Set Module (Structure Set ROI Sequence: ROI Number, ROI
   Name, Referenced Frame of Reference UID) and C.8.8.6 ROI Contour Module (Contour Sequence, Contour
   Geometric Type CLOSED_PLANAR, Contour Data as x/y/z triplets in mm, patient coordinates).
.. [Haines1994] Haines E. Point in polygon strategies. Graphics Gems IV, 1994: the crossing-number
   (even-odd) test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom

from dosimetry.errors import GeometryError, InputFileError, RoiError
from dosimetry.image import Image
from dosimetry.roi import Role, Roi, infer_role

PLANE_TOL_MM: float = 0.05
"""Contours whose plane positions differ by less than this (mm) share one plane."""

PARALLEL_TOL: float = 1e-3
"""1 - |cos| above which a contour is taken as not parallel to the first one."""

IGNORE = "ignore"
"""Role override value that drops a structure."""


@dataclass(frozen=True)
class Structure:
    """One ROI of a structure set: its closed planar contours in LPS mm."""

    number: int
    name: str
    interpreted_type: str
    frame_of_reference_uid: str
    contours: tuple[np.ndarray, ...]
    n_unusable: int = 0
    """Closed planar contours that were skipped (no points, fewer than 3, NaN, no area)."""


SELF_CROSSING_TOL_MM: float = 1e-3
"""Two contour edges cross only when each has its end points farther than this (mm) on both sides of the
other: edges that merely touch or overlap (a keyhole's cut, rounding of exported coordinates) do not."""


def _contour_points(item) -> tuple[np.ndarray | None, str | None]:
    """The (n, 3) points of a Contour Sequence item, or None and why they cannot be used."""
    raw = item.get("ContourData")
    if raw is None or raw == "":
        return None, "no ContourData"
    values = (
        list(raw) if isinstance(raw, (list, tuple)) or hasattr(raw, "__len__") and not isinstance(raw, str) else [raw]
    )
    try:
        data = np.asarray([float(v) for v in values], dtype=float)
    except (TypeError, ValueError):
        return None, "ContourData that is not numbers"
    if data.size % 3:
        return None, f"{data.size} coordinates (not x/y/z triplets)"
    points = data.reshape(-1, 3)
    problem = contour_problem(points)
    return (None, problem) if problem else (points, None)


def contour_problem(points: np.ndarray) -> str | None:
    """Why a closed planar contour (n, 3) encloses no area, or None: fewer than 3 distinct points,
    coordinates that are not finite, or all points on one line."""
    points = np.asarray(points, dtype=float)
    if points.ndim != 2 or points.shape[1] != 3:
        return f"points of shape {list(points.shape)} (expected x/y/z triplets)"
    if not np.all(np.isfinite(points)):
        return "NaN or infinite coordinates"
    if len(np.unique(points, axis=0)) < 3:
        return "fewer than 3 distinct points"
    if not np.any(_plane_normal(points)):
        return "no area (all points on one line)"
    return None


def crosses_itself(points: np.ndarray) -> bool:
    """True when two non-adjacent edges of the closed planar contour (n, 3) cross (a figure-eight or
    bow-tie), by the orientation test in the contour's plane with :data:`SELF_CROSSING_TOL_MM`."""
    points = np.asarray(points, dtype=float)
    normal = _plane_normal(points)
    norm = _length(normal)
    if norm == 0 or len(points) < 4:
        return False
    e1, e2 = _plane_axes(normal / norm)
    centred = points - points.mean(axis=0)
    from dosimetry.dicom.contour_kernels import _self_crossing  # numba: imported when a contour is checked

    return bool(
        _self_crossing(np.ascontiguousarray(centred @ e1), np.ascontiguousarray(centred @ e2), SELF_CROSSING_TOL_MM)
    )


def read_rtstruct(path) -> tuple[list[Structure], list[str]]:
    """Read the structures of an RTSTRUCT file.

    Contours that enclose no area are skipped with a warning that names the structure and counts them:
    POINT and OPEN_PLANAR contours, CLOSED_PLANAR contours without ContourData, with fewer than 3 points,
    with a coordinate count that is not a multiple of 3, NaN coordinates, or all points on a line.
    Contours that cross themselves (figure-eight, bow-tie) are kept and counted in a warning: they are
    filled by the even-odd rule like every contour (see :func:`rasterize_contours`).

    Returns
    -------
    structures : list of Structure
        In Structure Set ROI Sequence order. A structure with CLOSED_PLANAR contours none of which is
        usable is kept with no contours (``n_unusable`` > 0): :func:`rtstruct_to_rois` refuses it unless
        it is ignored. Structures with no closed contour at all (none drawn, or points only) are left out.
    warnings : list of str

    Raises
    ------
    InputFileError
        Unreadable file or not an RT Structure Set.
    """
    path = Path(path)
    try:
        ds = pydicom.dcmread(path)
    except Exception as err:
        raise InputFileError(f"{path}: cannot read as DICOM ({type(err).__name__}: {err})") from err
    if ds.get("Modality") != "RTSTRUCT":
        raise InputFileError(f"{path}: Modality is {ds.get('Modality')!r}; expected RTSTRUCT")
    warnings: list[str] = []

    def _number(item, keyword):
        try:
            return int(item.get(keyword))
        except (TypeError, ValueError):
            return None

    types = {
        _number(obs, "ReferencedROINumber"): str(obs.get("RTROIInterpretedType", "") or "")
        for obs in ds.get("RTROIObservationsSequence", [])
        if _number(obs, "ReferencedROINumber") is not None
    }
    contours: dict[int, list[np.ndarray]] = {}
    not_area: dict[int, dict[str, int]] = {}
    unusable: dict[int, dict[str, int]] = {}
    crossing: dict[int, int] = {}
    for roi_contour in ds.get("ROIContourSequence", []):
        number = _number(roi_contour, "ReferencedROINumber")
        if number is None:
            warnings.append(f"{path.name}: an ROI Contour item without ReferencedROINumber was skipped")
            continue
        for item in roi_contour.get("ContourSequence", None) or []:
            kind = str(item.get("ContourGeometricType", "CLOSED_PLANAR") or "CLOSED_PLANAR").strip().upper()
            if kind != "CLOSED_PLANAR":
                counts = not_area.setdefault(number, {})
                counts[kind] = counts.get(kind, 0) + 1
                continue
            points, problem = _contour_points(item)
            if points is None:
                counts = unusable.setdefault(number, {})
                counts[problem] = counts.get(problem, 0) + 1
                continue
            contours.setdefault(number, []).append(points)
            if crosses_itself(points):
                crossing[number] = crossing.get(number, 0) + 1
    structures = []
    for item in ds.get("StructureSetROISequence", []):
        number = _number(item, "ROINumber")
        name = str(item.get("ROIName", "") or f"ROI {number}").strip()
        kept = contours.get(number, [])
        if number in not_area:
            what = ", ".join(f"{n} {kind}" for kind, n in sorted(not_area[number].items()))
            warnings.append(f"{path.name}: structure {name!r}: {what} contour(s) are not areas and were skipped")
        if number in unusable:
            total = sum(unusable[number].values())
            why = ", ".join(f"{n} with {problem}" for problem, n in sorted(unusable[number].items()))
            warnings.append(
                f"{path.name}: structure {name!r}: {total} of {total + len(kept)} closed contours skipped ({why})"
            )
        if number in crossing:
            warnings.append(
                f"{path.name}: structure {name!r}: {crossing[number]} of {len(kept)} contours cross themselves "
                "(figure-eight or bow-tie); filled by the even-odd rule (each enclosed lobe is inside, a region "
                "enclosed twice is a hole); check the contour"
            )
        if not kept and number not in unusable:
            warnings.append(f"{path.name}: structure {name!r} has no closed contour and was skipped")
            continue
        structures.append(
            Structure(
                number,
                name,
                types.get(number, ""),
                str(item.get("ReferencedFrameOfReferenceUID", "")),
                tuple(kept),
                sum(unusable.get(number, {}).values()),
            )
        )
    return structures, warnings


# --- geometry of contour planes ------------------------------------------------------------------------------
def _newell_normal(points: np.ndarray) -> np.ndarray:
    nxt = np.roll(points, -1, axis=0)
    normal = np.array(
        [
            np.sum((points[:, 1] - nxt[:, 1]) * (points[:, 2] + nxt[:, 2])),
            np.sum((points[:, 2] - nxt[:, 2]) * (points[:, 0] + nxt[:, 0])),
            np.sum((points[:, 0] - nxt[:, 0]) * (points[:, 1] + nxt[:, 1])),
        ]
    )
    return normal


def _length(vector: np.ndarray) -> float:
    """Euclidean length without overflow (a normal of coordinates near 1e300 squares to inf)."""
    scale = float(np.max(np.abs(vector))) if np.size(vector) else 0.0
    if scale == 0.0 or not np.isfinite(scale):
        return scale
    return scale * float(np.linalg.norm(np.asarray(vector) / scale))


def _plane_normal(points: np.ndarray) -> np.ndarray:
    """Normal of a planar polygon: Newell's (length = twice the signed area), else for a polygon whose
    signed areas cancel (a symmetric figure-eight) the least-variance direction of its points (length =
    the spread in the plane, mm); zero when the points lie on a line."""
    with np.errstate(all="ignore"):  # coordinates near the float limit overflow to inf: no usable area
        return _plane_normal_unchecked(points)


def _plane_normal_unchecked(points: np.ndarray) -> np.ndarray:
    normal = _newell_normal(points)
    scale = float(np.max(np.abs(points - points.mean(axis=0)))) if len(points) else 0.0
    if not (np.isfinite(scale) and np.all(np.isfinite(normal))):
        return np.zeros(3)
    if np.linalg.norm(normal) > 1e-9 * scale * scale:  # (** raises OverflowError on Python floats)
        return normal
    centred = points - points.mean(axis=0)
    if scale == 0 or not np.isfinite(scale):
        return np.zeros(3)
    _, sv, vt = np.linalg.svd(centred / scale, full_matrices=False)
    if len(sv) < 2 or sv[1] <= 1e-9 * sv[0]:
        return np.zeros(3)
    return vt[-1] * sv[1] * scale


def _plane_axes(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors spanning the plane of the unit ``normal``."""
    helper = np.eye(3)[np.argmin(np.abs(normal))]
    e1 = np.cross(normal, helper)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(normal, e1)


def contour_normal(contours) -> np.ndarray:
    """Unit normal of the contour planes (from the contour of largest area; sign made positive on the
    largest component)."""
    best = max(contours, key=lambda c: _length(_plane_normal(c)))
    normal = _plane_normal(best)
    norm = _length(normal)
    if norm == 0:
        raise GeometryError("contours have no area (all points on a line); expected closed planar polygons")
    normal = normal / norm
    return normal if normal[np.argmax(np.abs(normal))] > 0 else -normal


def plane_spacing_mm(structures: list[Structure]) -> float | None:
    """Median distance between successive contour planes over all structures (the contour slice
    thickness), or None when no structure has two planes."""
    gaps = []
    for st in structures:
        if not st.contours:
            continue
        try:
            normal = contour_normal(st.contours)
        except GeometryError:
            continue
        depth = np.unique(np.round([c @ normal for c in (np.mean(c, axis=0) for c in st.contours)], 2))
        if depth.size > 1:
            gaps.extend(np.diff(depth))
    gaps = [g for g in gaps if g > PLANE_TOL_MM]
    return float(np.median(gaps)) if gaps else None


class _PlaneSet:
    """Contours of one structure grouped by plane, in 2-D plane coordinates, ready for the kernel."""

    def __init__(self, contours, normal: np.ndarray, half_thickness_mm: float):
        self.normal = normal
        self.e1, self.e2 = _plane_axes(normal)
        self.half_mm = half_thickness_mm
        kept = []
        for c in contours:
            n = _plane_normal(c)
            if _length(n) > 0 and 1 - abs((n / _length(n)) @ normal) > PARALLEL_TOL:
                raise GeometryError(
                    "a structure has contours in non-parallel planes; expected all contours of one structure "
                    "on parallel planes (axial, for example)"
                )
            kept.append(c)
        depth = np.array([float(np.mean(c @ normal)) for c in kept])
        order = np.argsort(depth)
        planes: list[list[np.ndarray]] = []
        positions: list[float] = []
        for idx in order:
            if positions and depth[idx] - positions[-1] <= PLANE_TOL_MM:
                planes[-1].append(kept[idx])
            else:
                planes.append([kept[idx]])
                positions.append(float(depth[idx]))
        self.positions = np.asarray(positions)
        x1, y1, x2, y2, offsets = [], [], [], [], [0]
        for group in planes:
            for c in group:
                u, v = c @ self.e1, c @ self.e2
                x1.append(u)
                y1.append(v)
                x2.append(np.roll(u, -1))
                y2.append(np.roll(v, -1))
            offsets.append(offsets[-1] + sum(len(c) for c in group))
        self.x1, self.y1 = np.concatenate(x1), np.concatenate(y1)
        self.x2, self.y2 = np.concatenate(x2), np.concatenate(y2)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        all_points = np.concatenate(kept)
        self.points = all_points

    def contains(self, world: np.ndarray) -> np.ndarray:
        """Boolean inside test of world points (n, 3)."""
        depth = world @ self.normal
        idx = np.clip(np.searchsorted(self.positions, depth), 1, max(len(self.positions) - 1, 1))
        if len(self.positions) == 1:
            nearest = np.zeros(depth.shape, dtype=np.int64)
        else:
            left = self.positions[idx - 1]
            right = self.positions[idx]
            nearest = np.where(np.abs(depth - left) <= np.abs(depth - right), idx - 1, idx).astype(np.int64)
        far = np.abs(depth - self.positions[nearest]) > self.half_mm + 1e-6
        nearest[far] = -1
        out = np.zeros(depth.shape, dtype=np.bool_)
        from dosimetry.dicom.contour_kernels import _even_odd  # numba: imported when contours are filled

        _even_odd(world @ self.e1, world @ self.e2, nearest, self.offsets, self.x1, self.y1, self.x2, self.y2, out)
        return out


def rasterize_contours(
    contours,
    target: Image,
    *,
    slice_thickness_mm: float | None = None,
    supersample: int = 4,
) -> np.ndarray:
    """Occupancy fractions of the region bounded by closed planar contours on the grid of ``target``.

    Parameters
    ----------
    contours : sequence of ndarray (n, 3)
        Closed planar polygons in LPS mm (all on parallel planes).
    target : Image
        Grid to sample (its values are not used).
    slice_thickness_mm : float, optional
        Thickness of the slab each contour plane stands for; by default the median distance between
        the planes of these contours (required when there is a single plane).
    supersample : int
        Samples per axis in surface voxels (``supersample**3`` per voxel); 1 gives a centre-point mask.

    Returns
    -------
    ndarray, float32, shape of ``target``
        Fraction of each voxel inside the region.

    Raises
    ------
    GeometryError
        Non-parallel contour planes, or a single plane and no ``slice_thickness_mm``.
    """
    if not (isinstance(supersample, (int, np.integer)) and 1 <= supersample <= 16):
        raise GeometryError(f"supersample must be an integer from 1 to 16, got {supersample!r}")
    try:
        contours = [np.asarray(c, dtype=float) for c in contours]
    except (TypeError, ValueError) as err:
        raise GeometryError(f"contours must be arrays of x/y/z points in mm ({err})") from err
    for c in contours:
        if c.ndim != 2 or c.shape[1] != 3 or not np.all(np.isfinite(c)):
            raise GeometryError(
                f"a contour has {contour_problem(c) or 'unusable points'}; expected finite x/y/z points in mm"
            )
    contours = [c for c in contours if contour_problem(c) is None]  # no area: adds nothing to the region
    if not contours:
        raise GeometryError(
            "no contour encloses an area (fewer than 3 points or all on a line); expected closed planar polygons"
        )
    if slice_thickness_mm is not None and not (np.isfinite(slice_thickness_mm) and slice_thickness_mm > 0):
        raise GeometryError(f"slice_thickness_mm must be a positive number of mm, got {slice_thickness_mm!r}")
    normal = contour_normal(contours)
    depth = np.unique(np.round([float(np.mean(c @ normal)) for c in contours], 3))
    if slice_thickness_mm is None:
        gaps = np.diff(depth)
        gaps = gaps[gaps > PLANE_TOL_MM]
        if gaps.size == 0:
            raise GeometryError(
                "a structure with contours on a single plane needs the contour slice thickness; pass slice_thickness_mm"
            )
        slice_thickness_mm = float(np.median(gaps))
    planes = _PlaneSet(contours, normal, 0.5 * slice_thickness_mm)
    out = np.zeros(target.shape, dtype=np.float32)

    # candidate box: contour extent, plus half a slab along the normal, in target indices
    pts = planes.points
    ends = np.concatenate([pts + planes.half_mm * normal, pts - planes.half_mm * normal])
    with np.errstate(over="ignore", invalid="ignore"):
        idx = target.world_to_index(ends)
    if not np.all(np.isfinite(idx)):
        raise GeometryError("contour coordinates are too large to place on the grid; expected positions in mm")
    shape = np.asarray(target.shape)
    lo = np.clip(np.floor(idx.min(axis=0)) - 1, 0, shape).astype(int)
    hi = np.clip(np.ceil(idx.max(axis=0)) + 2, 0, shape).astype(int)
    if np.any(hi <= lo):
        return out
    grid = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi)], indexing="ij"), axis=-1)
    centres = grid.reshape(-1, 3).astype(float)
    inside = planes.contains(target.index_to_world(centres)).reshape(grid.shape[:3])
    occupancy = inside.astype(np.float32)
    if supersample > 1:
        from scipy import ndimage  # (here: the other inputs' runs need not import it; ~0.09 s)

        structure = np.ones((3, 3, 3), dtype=bool)
        surface = ndimage.binary_dilation(inside, structure) & ~ndimage.binary_erosion(
            inside, structure, border_value=0
        )
        vertex_idx = np.round(target.world_to_index(pts)) - lo
        ok = np.all((vertex_idx >= 0) & (vertex_idx < np.asarray(grid.shape[:3])), axis=1)
        marks = np.zeros(grid.shape[:3], dtype=bool)
        marks[tuple(vertex_idx[ok].astype(int).T)] = True
        surface |= ndimage.binary_dilation(marks, structure)
        voxels = np.argwhere(surface)
        if voxels.size:
            steps = (np.arange(supersample) + 0.5) / supersample - 0.5
            offsets = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), axis=-1).reshape(-1, 3)
            chunk = max(1, 2_000_000 // offsets.shape[0])
            for start in range(0, len(voxels), chunk):
                part = voxels[start : start + chunk]
                samples = (part[:, None, :] + lo + offsets[None, :, :]).reshape(-1, 3)
                hits = planes.contains(target.index_to_world(samples)).reshape(len(part), -1)
                occupancy[tuple(part.T)] = hits.mean(axis=1)
    out[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] = occupancy
    return out


def resolve_role(name: str, role_overrides: dict | None) -> Role | None:
    """Role of structure ``name``: the user's override (case-insensitive name match; 'ignore' drops the
    structure, returned as None), else the role inferred from the name, else Role.OTHER."""
    for key, value in (role_overrides or {}).items():
        if key.strip().lower() == name.strip().lower():
            if value is None or str(getattr(value, "value", value)).strip().lower() == IGNORE:
                return None
            return value if isinstance(value, Role) else Role.parse(str(value))
    return infer_role(name) or Role.OTHER


def rtstruct_to_rois(
    path,
    target: Image,
    *,
    frame_of_reference_uid: str | None = None,
    role_overrides: dict | None = None,
    supersample: int = 4,
) -> tuple[tuple[Roi, ...], list[str]]:
    """Every structure of an RTSTRUCT as an :class:`~dosimetry.roi.Roi` with an occupancy mask on
    the grid of ``target``.

    Parameters
    ----------
    path : path
        RTSTRUCT file.
    target : Image
        Grid of the masks (normally the emission image).
    frame_of_reference_uid : str, optional
        Frame of Reference of ``target``; structures on another one raise GeometryError.
    role_overrides : dict, optional
        ROI name -> role name (or 'ignore'); names match case-insensitively.
    supersample : int
        Samples per axis in surface voxels.

    Raises
    ------
    GeometryError
        A structure on another Frame of Reference; non-parallel contours.
    RoiError
        An unknown role in ``role_overrides``; duplicate names; a structure (not ignored) whose closed
        contours are all unusable or that covers no voxel of ``target`` (the message gives the
        ``--segment-role 'NAME=ignore'`` fix).
    """
    path = Path(path)
    structures, warnings = read_rtstruct(path)
    unknown = {k.strip().lower() for k in (role_overrides or {})} - {s.name.strip().lower() for s in structures}
    if unknown:
        warnings.append(f"{path.name}: role overrides name structures not in the file: {', '.join(sorted(unknown))}")
    thickness = plane_spacing_mm(structures)
    rois = []
    for st in structures:
        role = resolve_role(st.name, role_overrides)
        if role is None:
            continue
        if frame_of_reference_uid and st.frame_of_reference_uid and st.frame_of_reference_uid != frame_of_reference_uid:
            raise GeometryError(
                f"{path.name}: structure {st.name!r} is on Frame of Reference {st.frame_of_reference_uid}, the "
                f"image on {frame_of_reference_uid}; expected one Frame of Reference; register the structures "
                "to the emission image first"
            )
        ignore_fix = f"or leave it out with --segment-role '{st.name}=ignore'"
        if not st.contours:
            raise RoiError(
                f"{path.name}: structure {st.name!r} has no usable contour ({st.n_unusable} closed contours without "
                f"area or coordinates); redraw it, {ignore_fix}"
            )
        st_thickness = thickness
        if st_thickness is None:  # every structure on a single plane: one slice of the emission grid
            normal = contour_normal(st.contours)
            st_thickness = float(np.sum(np.abs(target.direction.T @ normal) * target.spacing_mm))
            warnings.append(
                f"{path.name}: structure {st.name!r} lies on a single contour plane; it was given the "
                f"image slice thickness {st_thickness:.3g} mm"
            )
        try:
            mask = rasterize_contours(st.contours, target, slice_thickness_mm=st_thickness, supersample=supersample)
        except GeometryError as err:
            raise GeometryError(f"{path.name}: structure {st.name!r}: {err}; fix the structure, {ignore_fix}") from err
        if not np.any(mask > 0):
            raise RoiError(
                f"{path.name}: structure {st.name!r} covers no voxel of the emission image (its contours lie outside "
                f"the image or between its slices); check that the structure set belongs to this scan, {ignore_fix}"
            )
        rois.append(Roi(st.name, role, target.with_array(mask), source=f"{path.name}:ROI {st.number}"))
    names = [r.name for r in rois]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RoiError(
            f"{path.name}: several structures named {duplicates[0]!r}; expected unique ROI names; rename them"
        )
    return tuple(rois), warnings


# --- masks to contours (for writing RTSTRUCTs) -----------------------------------------------------------------
def _trace_slice(inside: np.ndarray) -> list[np.ndarray]:
    """Closed loops (corner indices, (n, 2)) along the pixel edges of a 2-D boolean mask [i, j]."""
    padded = np.pad(inside, 1)
    core = padded[1:-1, 1:-1]
    ii, jj = np.nonzero(core & ~padded[1:-1, :-2])  # j-1 outside: bottom edge
    edges = [((i, j), (i + 1, j)) for i, j in zip(ii, jj)]
    ii, jj = np.nonzero(core & ~padded[2:, 1:-1])  # i+1 outside: right edge
    edges += [((i + 1, j), (i + 1, j + 1)) for i, j in zip(ii, jj)]
    ii, jj = np.nonzero(core & ~padded[1:-1, 2:])  # j+1 outside: top edge
    edges += [((i + 1, j + 1), (i, j + 1)) for i, j in zip(ii, jj)]
    ii, jj = np.nonzero(core & ~padded[:-2, 1:-1])  # i-1 outside: left edge
    edges += [((i, j + 1), (i, j)) for i, j in zip(ii, jj)]
    outgoing: dict[tuple, list[tuple]] = {}
    for start, end in edges:
        outgoing.setdefault((int(start[0]), int(start[1])), []).append((int(end[0]), int(end[1])))
    loops = []
    while outgoing:
        start = next(iter(outgoing))
        loop = [start]
        point = start
        while True:
            ends = outgoing[point]
            nxt = ends.pop()
            if not ends:
                del outgoing[point]
            if nxt == start:
                break
            loop.append(nxt)
            point = nxt
        pts = np.asarray(loop, dtype=float)
        prev, after = np.roll(pts, 1, axis=0), np.roll(pts, -1, axis=0)
        d_in, d_out = pts - prev, after - pts
        turn = d_in[:, 0] * d_out[:, 1] - d_in[:, 1] * d_out[:, 0] != 0
        loops.append(pts[turn])
    return loops


def mask_to_contours(mask: Image, *, threshold: float = 0.5) -> list[np.ndarray]:
    """Closed planar contours (LPS mm, one list entry per loop) along the voxel edges of a mask.

    Each slice ``k`` of ``mask.array > threshold`` is traced along its pixel edges; outer boundaries and
    holes are separate loops, which the even-odd rule of :func:`rasterize_contours` fills back to the
    same voxels on the same grid (with the contour planes on the slice centres).
    """
    binary = np.asarray(mask.array) > threshold
    contours = []
    for k in range(binary.shape[2]):
        if not binary[:, :, k].any():
            continue
        for loop in _trace_slice(binary[:, :, k]):
            idx = np.column_stack([loop - 0.5, np.full(len(loop), float(k))])
            contours.append(mask.index_to_world(idx))
    return contours
