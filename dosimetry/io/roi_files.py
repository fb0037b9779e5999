"""Reading ROIs from files: single masks (NIfTI, NRRD, MHA) and 3D Slicer segmentations (.seg.nrrd)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from dosimetry.errors import InputFileError, RoiError
from dosimetry.image import Image
from dosimetry.io.images import check_affine, read_image
from dosimetry.roi import Role, Roi, infer_role

_SPACES_TO_LPS = {
    "left-posterior-superior": np.array([1.0, 1.0, 1.0]),
    "right-anterior-superior": np.array([-1.0, -1.0, 1.0]),
    "left-anterior-superior": np.array([1.0, -1.0, 1.0]),
}
"""NRRD 'space' values and the sign flips that take their world coordinates to LPS."""


def parse_roi_spec(spec: str) -> tuple[Role, str | None, Path]:
    """Parse ``ROLE[:NAME]=PATH`` (the ``--roi`` option) into role, name (or None) and path."""
    if "=" not in spec:
        raise RoiError(f"--roi {spec!r}: expected ROLE[:NAME]=PATH, e.g. liver=liver.nii.gz or tumor:T1=t1.nii.gz")
    left, path = spec.split("=", 1)
    role_text, _, name = left.partition(":")
    if not path:
        raise RoiError(f"--roi {spec!r}: the path after '=' is empty")
    return Role.parse(role_text), (name.strip() or None), Path(path)


def _default_name(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def read_mask_roi(
    path: str | os.PathLike, role: Role | str, name: str | None = None, *, notes: list[str] | None = None
) -> Roi:
    """An ROI from a single-mask image file (any nonzero value, or fractions in [0, 1]).

    A file holding several different nonzero values (a label map) is refused: it is ambiguous which label
    is meant. Use a Slicer segmentation (``--segmentation``) or one file per ROI. ``notes`` receives the
    notes of reading the file (see :func:`~dosimetry.io.images.read_image`; without it they are logged), for
    the run's warnings.
    """
    path = Path(path)
    # the mask is kept over its extent only (plus a zero voxel): the same mask in world coordinates, without a
    # scan-sized array per ROI for the rest of the run; the checks below read that box only (outside it
    # every value is 0)
    image = read_image(path, notes=notes).cropped_to_support()
    values = np.asarray(image.array)
    nonzero = np.unique(values[values != 0]) if values.dtype.kind in "iub" else None
    if values.dtype.kind == "f":
        if values.min(initial=0) >= 0 and values.max(initial=0) <= 1:
            mask = values.astype(np.float32)
        else:
            nonzero = np.unique(values[values != 0])
    if nonzero is not None:
        if nonzero.size > 1:
            raise RoiError(
                f"{path}: the mask holds {nonzero.size} different labels ({', '.join(map(str, nonzero[:6]))}); "
                "give one mask per ROI (or a Slicer .seg.nrrd with --segmentation)"
            )
        mask = (values != 0).view(np.uint8)  # binary: kept as uint8 (see Roi), a quarter of float32
    name = name or _default_name(path)
    mask_image = image.with_array(mask)
    return Roi(name, Role.parse(role) if isinstance(role, str) else role, mask_image, source=str(path))


def _nrrd_geometry(header: dict, spatial_axes: list[int], path: Path) -> tuple[np.ndarray, np.ndarray]:
    space = str(header.get("space", "left-posterior-superior")).lower()
    if space not in _SPACES_TO_LPS:
        raise InputFileError(f"{path}: NRRD space {space!r} is not supported; expected left-posterior-superior")
    flip = _SPACES_TO_LPS[space]
    directions = np.asarray(header["space directions"], dtype=object)
    columns = np.array([np.asarray(directions[a], dtype=float) for a in spatial_axes]).T  # 3x3, column per axis
    origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=float)
    affine = np.eye(4)
    affine[:3, :3] = flip[:, None] * columns
    affine[:3, 3] = flip * origin
    return affine, flip


IGNORE = "ignore"
"""The role override that leaves a segment or structure out of the run."""


def _segment_numbers(header: dict) -> list[int]:
    return sorted({int(m.group(1)) for key in header for m in [re.match(r"Segment(\d+)_", key)] if m})


def slicer_segment_names(path: str | os.PathLike) -> list[str]:
    """The segment names of a 3D Slicer ``.seg.nrrd`` file, from its header only (fast).

    Raises
    ------
    InputFileError
        Missing or unreadable file.
    """
    import nrrd

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file; check the path")
    try:
        header = nrrd.read_header(str(path))
    except Exception as err:
        raise InputFileError(f"{path}: cannot read as NRRD ({type(err).__name__}: {err})") from err
    return [str(header.get(f"Segment{n}_Name", f"Segment_{n}")) for n in _segment_numbers(header)]


_DETACHED_OR_SKIPPED = ("datafile", "data file", "lineskip", "line skip", "byteskip", "byte skip")


def read_nrrd(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """The array (index order F: x fastest, as ``nrrd.read(path, index_order="F")``) and header of a NRRD file.

    pynrrd parses the header and lays out the array. Gzip-encoded data in the file itself (what 3D Slicer
    writes) is decompressed by ISA-L in one call: pynrrd's own reading appends zlib's output chunk by chunk to a
    growing buffer, which on a 512 x 512 x 112 two-layer segmentation (56 MiB) takes twice as long (0.18 vs
    0.07 s). Detached data files, line or byte skips and other encodings are read by pynrrd as they are.
    """
    import io

    import nrrd

    with open(path, "rb") as fh:
        header = nrrd.read_header(fh)
        if str(header.get("encoding", "")).lower() not in ("gzip", "gz") or any(
            k in header for k in _DETACHED_OR_SKIPPED
        ):
            return nrrd.read_data(header, fh, str(path), index_order="F"), header
        from isal import isal_zlib

        raw = isal_zlib.decompress(fh.read(), isal_zlib.MAX_WBITS | 16)  # one gzip member, as pynrrd reads
    return nrrd.read_data({**header, "encoding": "raw"}, io.BytesIO(raw), str(path), index_order="F"), header


def read_slicer_segmentation(
    path: str | os.PathLike, *, role_overrides: dict[str, str] | None = None, warn_unknown: bool = True
) -> tuple[list[Roi], list[str]]:
    """ROIs from a 3D Slicer segmentation file (``.seg.nrrd``), one per segment, with roles from names.

    Handles single-layer (3-D label map) and multi-layer (4-D, overlapping segments) files. Segment names,
    label values and layers come from the ``SegmentN_*`` header fields. Roles are inferred from names
    (:func:`~dosimetry.roi.infer_role`) unless ``role_overrides`` maps the segment name (case-insensitive)
    to a role, or to ``'ignore'``, which leaves the segment out; segments with neither get the role
    ``other`` and a warning. With ``warn_unknown``, override names that are no segment of the file give a
    warning listing the segments (the command line, which may pass one set of overrides to several files,
    checks the names itself).

    Returns
    -------
    rois : list of Roi
    warnings : list of str

    References
    ----------
    3D Slicer segmentation file format: https://slicer.readthedocs.io/en/latest/developer_guide/modules/segmentations.html
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file; check the path")
    try:
        data, header = read_nrrd(path)
    except Exception as err:
        raise InputFileError(f"{path}: cannot read as NRRD ({type(err).__name__}: {err})") from err
    kinds = [str(k).lower() for k in header.get("kinds", ["domain"] * data.ndim)]
    if data.ndim == 3:
        data = data[np.newaxis]
        spatial = [0, 1, 2]
    elif data.ndim == 4:
        list_axes = [i for i, k in enumerate(kinds) if k not in ("domain", "space")]
        if len(list_axes) != 1:
            raise InputFileError(f"{path}: a 4-D segmentation needs exactly one non-spatial (list) axis; kinds {kinds}")
        spatial = [i for i in range(4) if i != list_axes[0]]
        data = np.moveaxis(data, list_axes[0], 0)
    else:
        raise InputFileError(f"{path}: expected a 3-D or 4-D segmentation, got {data.ndim} dimensions")
    numbers = _segment_numbers(header)
    if not numbers:
        raise InputFileError(
            f"{path}: no SegmentN_Name fields: not a 3D Slicer segmentation (use --roi for plain masks)"
        )
    if "space directions" not in header:
        raise InputFileError(f"{path}: the NRRD header has no 'space directions'; cannot place it in world coordinates")
    affine, _ = _nrrd_geometry(header, spatial, path)
    check_affine(affine, path)
    overrides = {k.strip().lower(): str(getattr(v, "value", v)).strip() for k, v in (role_overrides or {}).items()}
    rois: list[Roi] = []
    warnings: list[str] = []
    names = [str(header.get(f"Segment{n}_Name", f"Segment_{n}")) for n in numbers]
    unknown = sorted(set(overrides) - {name.strip().lower() for name in names})
    if unknown and warn_unknown:
        warnings.append(
            f"{path.name}: role overrides name no segment of the file: {', '.join(unknown)}; "
            f"the segments are: {', '.join(names)}"
        )
    layers: dict[int, Image] = {}
    for number in numbers:
        name = str(header.get(f"Segment{number}_Name", f"Segment_{number}"))
        layer = int(header.get(f"Segment{number}_Layer", 0 if data.shape[0] == 1 else number))
        label = int(header.get(f"Segment{number}_LabelValue", 1))
        if layer >= data.shape[0]:
            raise InputFileError(f"{path}: segment {name!r} is in layer {layer}, but the file has {data.shape[0]}")
        override = overrides.get(name.strip().lower())
        if override is not None and override.lower() == IGNORE:
            continue
        if override is not None:
            try:
                role = Role.parse(override)
            except RoiError:
                raise RoiError(
                    f"--segment-role '{name}={override}': unknown role; use one of "
                    f"{', '.join(r.value for r in Role)} or {IGNORE}"
                ) from None
        else:
            role = infer_role(name)
            if role is None:
                role = Role.OTHER
                warnings.append(
                    f"segment {name!r} in {path.name}: no role could be inferred from the name; "
                    f"used 'other' (set one with --segment-role '{name}=ROLE')"
                )
        # stored cropped to the segment's extent (plus one voxel): on a fine CT-grid segmentation each
        # full-size mask would cost a CT's worth of memory; the values outside are zeros either way. The
        # extent is searched inside the layer's own extent (cropped once per layer), not the whole grid
        if layer not in layers:
            layers[layer] = Image.from_affine(data[layer], affine).cropped_to_support()
        in_layer = layers[layer]
        mask = (in_layer.array == label).view(np.uint8)  # binary: kept as uint8 (see Roi)
        if not mask.any():
            warnings.append(f"segment {name!r} in {path.name} is empty and was skipped")
            continue
        rois.append(Roi(name, role, in_layer.with_array(mask).cropped_to_support(), source=f"{path}#{name}"))
    return rois, warnings
