"""Figures of the report, as PNG bytes: dose over the CT in three planes with ROI outlines, and the DVH.

Only :class:`matplotlib.figure.Figure` is used (never ``pyplot``), so no global figure state is touched and
reports can be made from parallel threads; PNGs are rendered by the Agg canvas.

Display convention (radiological): axial and coronal views show the patient's right on the left of the
image; axial views have anterior at the top, coronal and sagittal superior at the top; sagittal views
anterior on the left. The planes are parallel to the LPS world axes and sampled from each image through
its own geometry (:meth:`dosimetry.image.Image.world_to_index`), so oblique grids display correctly.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np
from scipy.ndimage import map_coordinates

from dosimetry.image import Image
from dosimetry.image import nonzero_box

if TYPE_CHECKING:  # matplotlib is imported by the functions that draw (about 1 s), not with the package
    from matplotlib.figure import Figure

__all__ = ["roi_colours", "slice_figure_png", "dvh_figure_png", "SliceInfo"]

_PALETTE = (
    "#ffd400",
    "#ff3b8d",
    "#4cd9ff",
    "#7cff4c",
    "#ff8c1a",
    "#b388ff",
    "#ffffff",
    "#ff5252",
    "#00e5a0",
    "#f5a3ff",
)
_DERIVED_PALETTE = ("#555555", "#1f4e79", "#7a4f01", "#2e7d32")
CT_WINDOW_HU = (-160.0, 240.0)
"""Soft-tissue window (level 40 HU, width 400 HU) for the CT underlay."""
DOSE_COLORMAP = "turbo"
_FONT = 9


def _png(fig: Figure, dpi: int) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor=fig.get_facecolor())
    return buffer.getvalue()


def roi_colours(stats: dict) -> dict[str, str]:
    """A display colour per ROI name: given ROIs from a bright palette, derived ROIs dark (dashed in plots)."""
    colours, given, derived = {}, 0, 0
    for entry in stats["rois"]:
        if "derived" in entry:
            colours[entry["name"]] = _DERIVED_PALETTE[derived % len(_DERIVED_PALETTE)]
            derived += 1
        else:
            colours[entry["name"]] = _PALETTE[given % len(_PALETTE)]
            given += 1
    return colours


@dataclass(frozen=True)
class SliceInfo:
    """Where the three planes cut (LPS, mm) and why."""

    centre_lps: tuple[float, float, float]
    reason: str
    dose_max_display_gy: float


def _centre(result) -> tuple[np.ndarray, str]:
    dose: Image = result.dose_gy
    tumours = [
        e
        for e in result.stats["rois"]
        if e["role"] == "tumor" and "derived" not in e and e["name"] in result.roi_weights
    ]
    livers = [e for e in result.stats["rois"] if e["role"] == "liver" and e["name"] in result.roi_weights]
    if tumours:
        chosen, reason = max(tumours, key=lambda e: e["volume_ml"]), "centre of the largest tumour"
    elif livers:
        chosen, reason = livers[0], "centre of the liver"
    else:
        chosen = None
    if chosen is not None:
        weights = result.roi_weights[chosen["name"]]
        lo, hi = nonzero_box(weights)  # the same voxels, in the same order, from the ROI's box only
        w = weights[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].astype(np.float64)
        idx = np.array(np.nonzero(w > 0)).T + lo
        centre_idx = (idx * w[w > 0][:, None]).sum(axis=0) / w[w > 0].sum()
        return dose.index_to_world(centre_idx), f"{reason} ({chosen['name']})"
    peak = np.unravel_index(int(np.argmax(dose.array)), dose.shape)
    return dose.index_to_world(np.asarray(peak, float)), "hottest voxel"


def _sample(image: Image, points_lps: np.ndarray, *, order: int, cval: float) -> np.ndarray:
    idx = image.world_to_index(points_lps.reshape(-1, 3))
    array = image.array if image.array.dtype != bool else image.array.astype(np.float32)
    # no float copy of the whole volume (a clinical CT is large): interpolate from its own dtype
    values = map_coordinates(array, idx.T, output=np.float32, order=order, mode="constant", cval=cval, prefilter=False)
    return values.reshape(points_lps.shape[:-1])


def _sample_in_box(weights: np.ndarray, box, idx: np.ndarray, shape) -> np.ndarray:
    """Linear samples of ``weights`` (zero outside ``box``) at voxel indices ``idx`` (n, 3): only the points
    near the box are interpolated, from the box (with a margin of zeros); the others are 0, as they would
    be from the whole array."""
    out = np.zeros(len(idx), np.float32)
    if box is not None:
        lo = np.maximum(box[0] - 1, 0)
        hi = np.minimum(box[1] + 1, np.asarray(weights.shape))
        near = np.all((idx >= lo - 1) & (idx <= hi), axis=1)
        if near.any():
            sub = weights[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
            out[near] = map_coordinates(
                sub, (idx[near] - lo).T, output=np.float32, order=1, mode="constant", cval=0.0, prefilter=False
            )
    return out.reshape(shape)


_PLANES = {
    # name: (u axis, v axis (down the screen), labels left/right/top/bottom)
    "Axial": (np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), ("R", "L", "A", "P")),
    "Coronal": (np.array([1.0, 0, 0]), np.array([0, 0, -1.0]), ("R", "L", "S", "I")),
    "Sagittal": (np.array([0, 1.0, 0]), np.array([0, 0, -1.0]), ("A", "P", "S", "I")),
}
_PLANE_NORMAL_AXIS = {"Axial": 2, "Coronal": 1, "Sagittal": 0}
_AXIS_NAME = "xyz"


def _plane_points(
    lo: np.ndarray, hi: np.ndarray, centre: np.ndarray, u: np.ndarray, v: np.ndarray, step_mm: float
) -> np.ndarray:
    start = np.where(u > 0, lo, hi) * np.abs(u) + np.where(v > 0, lo, hi) * np.abs(v)
    normal = 1.0 - np.abs(u) - np.abs(v)
    start = start + centre * normal
    nu = int(np.floor(abs(float(np.dot(hi - lo, u))) / step_mm)) + 1
    nv = int(np.floor(abs(float(np.dot(hi - lo, v))) / step_mm)) + 1
    i = np.arange(nu) * step_mm
    j = np.arange(nv) * step_mm
    return start + j[:, None, None] * v + i[None, :, None] * u


def slice_figure_png(result, *, dpi: int = 110) -> tuple[bytes, SliceInfo]:
    """Dose (colour wash with a colour bar, Gy) over the CT in axial, coronal and sagittal planes.

    The planes cross at the centre of the largest tumour (else the liver, else the hottest voxel). Given
    ROIs are outlined at 50 % occupancy in the colours of :func:`roi_colours`, with a legend.

    Returns
    -------
    png : bytes
    info : SliceInfo
    """
    dose: Image = result.dose_gy
    corners = dose.corners_world()
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    centre, reason = _centre(result)
    spacings = [float(np.min(dose.spacing_mm))]
    if result.ct_hu is not None:
        spacings.append(float(np.min(result.ct_hu.spacing_mm)))
    step = max(min(spacings), float(np.max(hi - lo)) / 480.0, 0.5)

    positive = dose.array[dose.array > 0]
    # ``positive`` is our own copy: partitioned in place (the same percentile, no second copy of it)
    vmax = float(np.percentile(positive, 99.9, overwrite_input=True)) if positive.size else 1.0
    del positive
    vmax = vmax if vmax > 0 else 1.0
    threshold = max(0.02 * vmax, 1e-6)
    colours = roi_colours(result.stats)
    given = [e["name"] for e in result.stats["rois"] if "derived" not in e and e["name"] in result.roi_weights]

    boxes = {n: nonzero_box(result.roi_weights[n]) for n in given}
    planes = {}
    for name, (u, v, labels) in _PLANES.items():
        pts = _plane_points(lo, hi, centre, u, v, step)
        ct = (
            _sample(result.ct_hu, pts, order=1, cval=-1000.0)
            if result.ct_hu is not None
            else np.full(pts.shape[:2], -1000.0, np.float32)
        )
        d = _sample(dose, pts, order=1, cval=0.0)
        idx = dose.world_to_index(pts.reshape(-1, 3))
        outlines = {n: _sample_in_box(result.roi_weights[n], boxes[n], idx, pts.shape[:2]) for n in given}
        planes[name] = (ct, d, outlines, labels)

    widths = [planes[n][0].shape[1] for n in planes]
    height_px = max(planes[n][0].shape[0] for n in planes)
    from matplotlib import colormaps, patheffects
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    fig = Figure(figsize=(12.6, 12.6 * height_px / (sum(widths) * 1.12) + 1.0), facecolor="white")
    grid = fig.add_gridspec(
        1, 4, width_ratios=widths + [0.035 * sum(widths)], wspace=0.05, left=0.01, right=0.94, top=0.90, bottom=0.13
    )
    cmap = colormaps[DOSE_COLORMAP]
    mappable = None
    for k, (name, (ct, d, outlines, labels)) in enumerate(planes.items()):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(ct, cmap="gray", vmin=CT_WINDOW_HU[0], vmax=CT_WINDOW_HU[1], interpolation="bilinear")
        mappable = ax.imshow(
            np.ma.masked_less(d, threshold), cmap=cmap, vmin=0.0, vmax=vmax, alpha=0.72, interpolation="bilinear"
        )
        for n, w in outlines.items():
            if np.nanmax(w) >= 0.5 and np.nanmin(w) < 0.5:
                cs = ax.contour(w, levels=[0.5], colors=[colours[n]], linewidths=1.3)
                cs.set_path_effects([patheffects.Stroke(linewidth=2.6, foreground="black"), patheffects.Normal()])
        axis = _PLANE_NORMAL_AXIS[name]
        ax.set_title(f"{name}  ({_AXIS_NAME[axis]} = {centre[axis]:.1f} mm)", fontsize=_FONT + 1)
        ax.set_xticks([])
        ax.set_yticks([])
        ny, nx = ct.shape
        style = dict(color="white", fontsize=_FONT, fontweight="bold", ha="center", va="center")
        ax.text(0.035 * nx, ny / 2, labels[0], **style)
        ax.text(0.965 * nx, ny / 2, labels[1], **style)
        ax.text(nx / 2, 0.04 * ny, labels[2], **style)
        ax.text(nx / 2, 0.96 * ny, labels[3], **style)
        bar_mm = 50.0
        ax.plot([0.05 * nx, 0.05 * nx + bar_mm / step], [0.9 * ny] * 2, color="white", linewidth=2)
        ax.text(0.05 * nx + bar_mm / step / 2, 0.86 * ny, "5 cm", color="white", fontsize=_FONT - 1, ha="center")
    cax = fig.add_subplot(grid[0, 3])
    bar = fig.colorbar(mappable, cax=cax)
    bar.solids.set_alpha(1.0)
    bar.set_label("absorbed dose (Gy)", fontsize=_FONT)
    bar.ax.tick_params(labelsize=_FONT - 1)
    handles = [
        Line2D(
            [],
            [],
            color=colours[n],
            linewidth=2.4,
            path_effects=[patheffects.Stroke(linewidth=4, foreground="black"), patheffects.Normal()],
        )
        for n in given
    ]
    fig.legend(
        handles,
        given,
        loc="lower center",
        ncol=min(len(given), 8),
        fontsize=_FONT,
        frameon=False,
        bbox_to_anchor=(0.47, 0.0),
    )
    info = SliceInfo(tuple(float(c) for c in centre), reason, vmax)
    return _png(fig, dpi), info


def dvh_figure_png(result, *, dpi: int = 110) -> bytes:
    """Cumulative DVHs of every ROI (% of volume receiving at least the dose); derived ROIs dashed."""
    from matplotlib import patheffects
    from matplotlib.figure import Figure

    colours = roi_colours(result.stats)
    derived = {e["name"] for e in result.stats["rois"] if "derived" in e}
    fig = Figure(figsize=(10.5, 3.9), facecolor="white")
    ax = fig.add_axes((0.07, 0.13, 0.68, 0.82))
    axis = np.asarray(result.dvh_dose_gy)
    for entry in result.stats["rois"]:
        name = entry["name"]
        if name not in result.dvh_volume_percent:
            continue
        ax.plot(
            axis,
            result.dvh_volume_percent[name],
            color=colours[name],
            linestyle="--" if name in derived else "-",
            linewidth=1.8,
            path_effects=None
            if name in derived
            else [patheffects.Stroke(linewidth=2.8, foreground="#333333"), patheffects.Normal()],
            label=name,
        )
    ax.set_xlabel("absorbed dose (Gy)", fontsize=_FONT + 1)
    ax.set_ylabel("volume (%) receiving at least the dose", fontsize=_FONT + 1)
    ax.set_ylim(0, 102)
    ax.set_xlim(0, float(axis[-1]) if axis.size else 1.0)
    ax.grid(True, color="#dddddd", linewidth=0.7)
    ax.tick_params(labelsize=_FONT)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=_FONT, frameon=False)
    return _png(fig, dpi)
