"""Dose over the CT as PNG from numpy arrays and Pillow: banded colour wash, isodose lines, ROI outlines.

No matplotlib: each plane is sampled through the images' own geometry ,
composited in numpy through a lookup table, and encoded by Pillow, so the report's images cost tens of
milliseconds instead of a matplotlib figure per image. Legends and the colour bar are HTML
(:func:`dose_scale_html`, :func:`outline_legend_html`), crisp in print.

Choices (issue 15)
------------------
* **Field of view**: the planes are cropped to the bounding box of the liver, lung and tumour ROIs plus a
  margin (:data:`CROP_MARGIN_MM`); without such ROIs, to the voxels with dose.
* **Colour scale**: fixed bands at clinically meaningful levels (:data:`DOSE_BANDS_GY`), the same in every
  report, so a colour always means the same dose and normal liver (20-70 Gy) has its own colours instead of
  being the dark end of a scale that runs to the hottest tumour voxel. Doses under the first band are not
  coloured. Band colours are sampled from the *turbo* colormap (Mikhailov, Google AI blog 2019) at the band
  centres.
* **Isodose lines** at :data:`ISODOSE_GY` (default 40, 70, 100, 205 Gy): EANM 2022 (Weber et al., Eur J Nucl
  Med Mol Imaging 2022;49:1682-99, doi:10.1007/s00259-021-05600-z) Table 3, resin: normal perfused liver
  < 40 Gy, > 70 Gy for radiation lobectomy, HCC tumour >= 100-120 Gy; Table 2, glass: HCC tumour >= 205 Gy
  (DOSISPHERE-01). Other levels can be given (``isodose_gy=``).
* **ROI outlines** in the Okabe-Ito colour-blind-safe qualitative palette (Okabe & Ito 2008, "Color
  Universal Design"), with a black halo so they stay visible on the colour wash.

Display convention (radiological): axial and coronal views show the patient's right on the left of the
image; axial views have anterior at the top, coronal and sagittal superior at the top; sagittal views
anterior on the left.
"""

from __future__ import annotations

import functools
import io
import re
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import binary_dilation, binary_erosion, map_coordinates

from dosimetry.image import nonzero_box
from dosimetry.image import Image

__all__ = [
    "CROP_MARGIN_MM",
    "DOSE_BANDS_GY",
    "ISODOSE_GY",
    "OKABE_ITO",
    "PlaneImages",
    "crop_box_lps",
    "dose_scale_html",
    "isodose_legend_html",
    "lesion_png",
    "outline_colours",
    "outline_legend_html",
    "isodose_levels",
    "planes_png",
    "roi_boxes",
    "slice_centre",
]

CROP_MARGIN_MM = 20.0
"""Margin around the liver + lung (+ tumour) box of the displayed field of view."""

DOSE_BANDS_GY = (5.0, 10.0, 20.0, 40.0, 70.0, 100.0, 150.0, 205.0, 300.0, 500.0)
"""Lower edges of the colour bands (Gy); a voxel gets the colour of the highest edge it reaches."""

_BAND_RGB = (
    "#424bb5",
    "#438efd",
    "#1dcbda",
    "#35f394",
    "#92fe46",
    "#d6e535",
    "#fcb035",
    "#f56817",
    "#ce2d04",
    "#8b0901",
)
"""turbo sampled at 0.08 + 0.9 k / 9, k = 0..9 (one colour per band)."""

ISODOSE_GY = (40.0, 70.0, 100.0, 205.0)
"""Default isodose lines (Gy), EANM 2022 Tables 2 and 3 (see the module docstring)."""

_ISODOSE_STYLE = (  # (colour, dash on px, dash off px): told apart by pattern as well as colour
    ("#ffffff", 2, 3),
    ("#ffffff", 7, 4),
    ("#000000", 7, 4),
    ("#000000", 1, 0),
    ("#ffffff", 1, 0),
    ("#000000", 2, 3),
)

OKABE_ITO = ("#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#FFFFFF")
"""Okabe-Ito qualitative palette (black replaced by white, which shows on the CT)."""
_DERIVED = ("#666666", "#999999", "#333333", "#bbbbbb")

CT_WINDOW_HU = (-160.0, 240.0)
"""Soft-tissue window (level 40 HU, width 400 HU) for the CT underlay."""
_WASH_ALPHA = 0.6
_MAX_PIXELS = 420  # per side of one plane


def isodose_levels(stats: dict, *, max_levels: int = 6) -> tuple[tuple[float, ...], str]:
    """The isodose levels of a run and where they come from.

    With threshold flags evaluated (``--indication``, ``--device``): the dose thresholds (``mean_gy``, Dx) on
    tumour and liver ROIs of the threshold sets chosen for that indication and device (at most
    ``max_levels``, the lowest kept), so a NET report shows NET levels. Otherwise :data:`ISODOSE_GY`
    (EANM 2022).
    """
    roles = {e["name"]: e["role"] for e in stats.get("rois", [])}
    levels: set[float] = set()
    sets: list[str] = []
    for r in (stats.get("flags") or {}).get("results") or []:
        dose_quantity = r.get("quantity") == "mean_gy" or re.fullmatch(r"D\d+", str(r.get("quantity")))
        role = roles.get(r.get("roi"), "")
        if dose_quantity and r.get("threshold") and role in ("tumor", "liver", "normal_liver", "perfused_normal_liver"):
            levels.add(float(r["threshold"]))
            if r["set"] not in sets:
                sets.append(r["set"])
    if levels:
        chosen = tuple(sorted(levels)[:max_levels])
        return chosen, "the tumour and liver dose thresholds of the threshold sets evaluated (" + ", ".join(sets) + ")"
    return ISODOSE_GY, (
        "defaults from EANM 2022 Tables 2-3: normal perfused liver 40 and 70 Gy, HCC tumour 100 Gy resin and "
        "205 Gy glass; give --indication and --device for the levels of their threshold sets"
    )


def outline_colours(stats: dict) -> dict[str, str]:
    """A colour per ROI name: given ROIs from Okabe-Ito, derived ROIs grey (dashed in the DVH)."""
    colours, given, derived = {}, 0, 0
    for entry in stats["rois"]:
        if "derived" in entry:
            colours[entry["name"]] = _DERIVED[derived % len(_DERIVED)]
            derived += 1
        else:
            colours[entry["name"]] = OKABE_ITO[given % len(OKABE_ITO)]
            given += 1
    return colours


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)], np.float32)


def _band_lut() -> np.ndarray:
    return np.stack([_rgb(c) for c in _BAND_RGB])


def crop_box_lps(result, *, margin_mm: float = CROP_MARGIN_MM) -> tuple[np.ndarray, np.ndarray, str]:
    """World box (LPS min, max, mm) shown in the images: liver, lung and tumour ROIs plus ``margin_mm``.

    Falls back to the voxels with dose, then to the whole dose grid; the box never leaves the dose grid.
    """
    dose: Image = result.dose_gy
    corners = dose.corners_world()
    grid_lo, grid_hi = corners.min(axis=0), corners.max(axis=0)
    roles = ("liver", "lung", "tumor")
    names = [
        e["name"]
        for e in result.stats["rois"]
        if e["role"] in roles and "derived" not in e and e["name"] in result.roi_weights
    ]
    boxes = [b for b in (nonzero_box(result.roi_weights[n]) for n in names) if b is not None]
    what = "liver, lung and tumour ROIs"
    if not boxes:
        positive = nonzero_box(dose.array > 0)
        boxes, what = ([positive], "voxels with dose") if positive is not None else ([], "whole dose grid")
    if not boxes:
        return grid_lo, grid_hi, what
    lo_idx = np.min([b[0] for b in boxes], axis=0) - 0.5
    hi_idx = np.max([b[1] for b in boxes], axis=0) - 0.5
    pts = np.array(
        [[a, b, c] for a in (lo_idx[0], hi_idx[0]) for b in (lo_idx[1], hi_idx[1]) for c in (lo_idx[2], hi_idx[2])]
    )
    world = dose.index_to_world(pts)
    lo = np.maximum(world.min(axis=0) - margin_mm, grid_lo)
    hi = np.minimum(world.max(axis=0) + margin_mm, grid_hi)
    return lo, hi, what


def slice_centre(result) -> tuple[np.ndarray, str]:
    """Where the three planes cross (LPS, mm) and why: the weighted centre of the largest tumour, else of
    the liver, else the hottest voxel."""
    dose: Image = result.dose_gy
    tumours = [
        e
        for e in result.stats["rois"]
        if e["role"] == "tumor" and "derived" not in e and e["name"] in result.roi_weights
    ]
    livers = [e for e in result.stats["rois"] if e["role"] == "liver" and e["name"] in result.roi_weights]
    chosen = None
    if tumours:
        chosen, reason = max(tumours, key=lambda e: e["volume_ml"]), "centre of the largest tumour"
    elif livers:
        chosen, reason = livers[0], "centre of the liver"
    if chosen is not None:
        weights = result.roi_weights[chosen["name"]]
        box = nonzero_box(weights)
        if box is not None:
            lo, hi = box
            w = weights[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].astype(np.float64)
            idx = np.array(np.nonzero(w > 0)).T + lo
            centre_idx = (idx * w[w > 0][:, None]).sum(axis=0) / w[w > 0].sum()
            return dose.index_to_world(centre_idx), f"{reason} ({chosen['name']})"
    peak = np.unravel_index(int(np.argmax(dose.array)), dose.shape)
    return dose.index_to_world(np.asarray(peak, float)), "hottest voxel"


@dataclass(frozen=True)
class _Plane:
    """A regular grid of points in a plane: ``start`` + j ``v_mm`` + i ``u_mm`` (j down, i across), LPS."""

    start: np.ndarray
    u_mm: np.ndarray
    v_mm: np.ndarray
    shape: tuple[int, int]

    def coordinates(self, image: Image) -> np.ndarray:
        """Fractional voxel indices (3, rows, columns) of the points in ``image`` (an affine map: exact)."""
        origin = image.world_to_index(self.start)
        du = image.world_to_index(self.start + self.u_mm) - origin
        dv = image.world_to_index(self.start + self.v_mm) - origin
        j = np.arange(self.shape[0], dtype=np.float64)[:, None]
        i = np.arange(self.shape[1], dtype=np.float64)[None, :]
        return np.stack([origin[k] + j * dv[k] + i * du[k] for k in range(3)])


def roi_boxes(result) -> dict[str, tuple[np.ndarray, np.ndarray] | None]:
    """The nonzero index box of every given ROI's weights (None: empty)."""
    return {
        e["name"]: nonzero_box(result.roi_weights[e["name"]])
        for e in result.stats["rois"]
        if "derived" not in e and e["name"] in result.roi_weights
    }


def _sample(image: Image, coords: np.ndarray, *, cval: float) -> np.ndarray:
    array = image.array if image.array.dtype != bool else image.array.astype(np.float32)
    # no float copy of the whole volume (a clinical CT is large): interpolate from its own dtype
    return map_coordinates(array, coords, output=np.float32, order=1, mode="constant", cval=cval, prefilter=False)


def _sample_in_box(weights: np.ndarray, box, coords: np.ndarray) -> np.ndarray:
    """Linear samples of ``weights`` (zero outside ``box``) at ``coords`` (3, rows, columns): only the points
    near the box are interpolated, from the box; the others are 0, as they would be from the whole array."""
    out = np.zeros(coords.shape[1:], np.float32)
    if box is None:
        return out
    lo = np.maximum(box[0] - 1, 0)
    hi = np.minimum(box[1] + 1, np.asarray(weights.shape))
    near = np.ones(coords.shape[1:], bool)
    for k in range(3):
        near &= (coords[k] >= lo[k] - 1) & (coords[k] <= hi[k])
    if near.any():
        sub = weights[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        out[near] = map_coordinates(
            sub, coords[:, near] - lo[:, None], output=np.float32, order=1, mode="constant", cval=0.0, prefilter=False
        )
    return out


_PLANES = {
    # name: (u axis, v axis (down the screen), labels left/right/top/bottom, normal axis)
    "Axial": (np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), ("R", "L", "A", "P"), 2),
    "Coronal": (np.array([1.0, 0, 0]), np.array([0, 0, -1.0]), ("R", "L", "S", "I"), 1),
    "Sagittal": (np.array([0, 1.0, 0]), np.array([0, 0, -1.0]), ("A", "P", "S", "I"), 0),
}


def _plane(lo, hi, centre, u, v, step_mm: float) -> _Plane:
    start = np.where(u > 0, lo, hi) * np.abs(u) + np.where(v > 0, lo, hi) * np.abs(v)
    start = start + centre * (1.0 - np.abs(u) - np.abs(v))
    nu = int(np.floor(abs(float(np.dot(hi - lo, u))) / step_mm)) + 1
    nv = int(np.floor(abs(float(np.dot(hi - lo, v))) / step_mm)) + 1
    return _Plane(start, u * step_mm, v * step_mm, (nv, nu))


@dataclass(frozen=True)
class PlaneImages:
    """The PNG of the three planes and what it shows."""

    png: bytes
    centre_lps: tuple[float, float, float]
    reason: str
    crop: str
    step_mm: float
    isodose_gy: tuple[float, ...]
    outlined: tuple[str, ...]


def _composite(ct: np.ndarray | None, dose_gy: np.ndarray) -> np.ndarray:
    """RGB float32 (h, w, 3): CT grey (soft-tissue window) under the banded dose wash."""
    if ct is None:
        grey = np.zeros(dose_gy.shape, np.float32)
    else:
        grey = np.clip((ct - CT_WINDOW_HU[0]) / (CT_WINDOW_HU[1] - CT_WINDOW_HU[0]), 0.0, 1.0) * 255.0
    rgb = np.repeat(grey[..., None], 3, axis=2)
    band = np.digitize(dose_gy, DOSE_BANDS_GY)  # 0: under the first band
    coloured = band > 0
    lut = _band_lut()
    rgb[coloured] = (1.0 - _WASH_ALPHA) * rgb[coloured] + _WASH_ALPHA * lut[band[coloured] - 1]
    return rgb


def _edge(mask: np.ndarray, width: int) -> np.ndarray:
    return mask & ~binary_erosion(mask, iterations=width, border_value=0)


def _draw_outline(rgb: np.ndarray, mask: np.ndarray, colour: str, *, width: int = 2) -> None:
    if not mask.any() or mask.all():
        return
    halo = binary_dilation(mask, iterations=1) & ~binary_erosion(mask, iterations=width + 1, border_value=0)
    rgb[halo] = 0.0
    rgb[_edge(mask, width)] = _rgb(colour)


def _draw_isodose(rgb: np.ndarray, dose_gy: np.ndarray, level: float, style) -> None:
    mask = dose_gy >= level
    if not mask.any() or mask.all():
        return
    edge = _edge(mask, 1)
    colour, on, off = style
    if off:
        i, j = np.indices(mask.shape)
        edge &= ((i + j) % (on + off)) < on
    rgb[edge] = _rgb(colour)


@functools.lru_cache(maxsize=8)
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def _encode(rgb: np.ndarray) -> bytes:
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB").save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def _label(img, xy, text: str, size: int, anchor: str = "mm") -> None:
    from PIL import ImageDraw

    ImageDraw.Draw(img).text(
        xy, text, fill=(255, 255, 255), font=_font(size), anchor=anchor, stroke_width=2, stroke_fill=(0, 0, 0)
    )


def planes_png(
    result,
    centre_lps: np.ndarray,
    reason: str,
    *,
    isodose_gy: tuple[float, ...] = ISODOSE_GY,
    colours: dict[str, str],
) -> PlaneImages:
    """Axial, coronal and sagittal planes through ``centre_lps``, side by side in one PNG, cropped to
    :func:`crop_box_lps`, sampled at up to 420 pixels a side; orientation letters, plane titles and a 5 cm bar drawn in."""
    from PIL import Image as PILImage

    dose: Image = result.dose_gy
    lo, hi, crop = crop_box_lps(result)
    # finer than the voxels: linear interpolation then gives smooth outlines and isodose lines
    step = max(float(np.max(hi - lo)) / _MAX_PIXELS, 0.75)
    given = [e["name"] for e in result.stats["rois"] if "derived" not in e and e["name"] in result.roi_weights]
    boxes = {n: nonzero_box(result.roi_weights[n]) for n in given}
    panels, outlined = [], set()
    for name, (u, v, letters, normal_axis) in _PLANES.items():
        plane = _plane(lo, hi, centre_lps, u, v, step)
        ct = _sample(result.ct_hu, plane.coordinates(result.ct_hu), cval=-1000.0) if result.ct_hu is not None else None
        idx = plane.coordinates(dose)
        d = _sample(dose, idx, cval=0.0)
        rgb = _composite(ct, d)
        for k, level in enumerate(isodose_gy):
            _draw_isodose(rgb, d, level, _ISODOSE_STYLE[k % len(_ISODOSE_STYLE)])
        for n in given:
            w = _sample_in_box(result.roi_weights[n], boxes[n], idx)
            mask = w >= 0.5
            if mask.any():
                outlined.add(n)
                _draw_outline(rgb, mask, colours[n])
        img = PILImage.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
        w_px, h_px = img.size
        _label(img, (14, h_px / 2), letters[0], 18)
        _label(img, (w_px - 14, h_px / 2), letters[1], 18)
        _label(img, (w_px / 2, 14), letters[2], 18)
        _label(img, (w_px / 2, h_px - 14), letters[3], 18)
        _label(img, (8, 8), f"{name}  {'xyz'[normal_axis]} = {centre_lps[normal_axis]:.0f} mm", 16, "la")
        bar_px = 50.0 / step
        from PIL import ImageDraw

        draw = ImageDraw.Draw(img)
        y = h_px - 34
        draw.rectangle((12, y - 1, 12 + bar_px, y + 2), fill=(255, 255, 255), outline=(0, 0, 0))
        _label(img, (12 + bar_px / 2, y - 12), "5 cm", 14)
        panels.append(img)
    gap = 6
    height = max(p.height for p in panels)
    sheet = PILImage.new("RGB", (sum(p.width for p in panels) + gap * (len(panels) - 1), height), (255, 255, 255))
    x = 0
    for p in panels:
        sheet.paste(p, (x, 0))
        x += p.width + gap
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", compress_level=3)
    return PlaneImages(
        buffer.getvalue(),
        tuple(float(c) for c in centre_lps),
        reason,
        crop,
        step,
        tuple(isodose_gy),
        tuple(n for n in given if n in outlined),
    )


def lesion_png(
    result,
    name: str,
    *,
    isodose_gy: tuple[float, ...] = ISODOSE_GY,
    colours: dict[str, str],
    size_px: int = 200,
    boxes: dict | None = None,
) -> tuple[bytes, tuple[float, float, float]] | None:
    """Axial, coronal and sagittal slices through the weighted centre of ROI ``name``, side by side, cropped
    to a cube around its box plus 15 mm (at least 60 mm wide), with the isodose lines and every ROI outline;
    None when the ROI has no voxel. ``boxes`` (:func:`roi_boxes`) saves finding the ROIs' boxes again for
    every lesion."""
    from PIL import Image as PILImage

    dose: Image = result.dose_gy
    boxes = roi_boxes(result) if boxes is None else boxes
    weights = result.roi_weights.get(name)
    box = boxes.get(name)
    if box is None:
        return None
    lo_i, hi_i = box
    sub = weights[lo_i[0] : hi_i[0], lo_i[1] : hi_i[1], lo_i[2] : hi_i[2]].astype(np.float64)
    idx = np.indices(sub.shape).reshape(3, -1).T + lo_i
    w = sub.reshape(-1)
    centre_idx = (idx * w[:, None]).sum(axis=0) / w.sum()
    centre = dose.index_to_world(centre_idx)
    corner_idx = np.array(
        [
            [a, b, c]
            for a in (lo_i[0] - 0.5, hi_i[0] - 0.5)
            for b in (lo_i[1] - 0.5, hi_i[1] - 0.5)
            for c in (lo_i[2] - 0.5, hi_i[2] - 0.5)
        ]
    )
    world = dose.index_to_world(corner_idx)
    half = float(np.max((world.max(axis=0) - world.min(axis=0)) / 2 + 15.0))
    half = max(half, 30.0)  # a cube around the lesion: every plane square, the same scale
    lo, hi = centre - half, centre + half
    step = max(2 * half / size_px, 0.4)
    given = [e["name"] for e in result.stats["rois"] if "derived" not in e and e["name"] in result.roi_weights]
    panels = []
    for plane_name, (u, v, letters, normal_axis) in _PLANES.items():
        plane = _plane(lo, hi, centre, u, v, step)
        ct = _sample(result.ct_hu, plane.coordinates(result.ct_hu), cval=-1000.0) if result.ct_hu is not None else None
        flat = plane.coordinates(dose)
        d = _sample(dose, flat, cval=0.0)
        rgb = _composite(ct, d)
        for k, level in enumerate(isodose_gy):
            _draw_isodose(rgb, d, level, _ISODOSE_STYLE[k % len(_ISODOSE_STYLE)])
        for n in given:
            wn = _sample_in_box(result.roi_weights[n], boxes.get(n), flat)
            _draw_outline(rgb, wn >= 0.5, colours[n], width=1)
        img = PILImage.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
        _label(img, (10, img.height / 2), letters[0], 14)
        _label(img, (img.width - 10, img.height / 2), letters[1], 14)
        _label(img, (img.width / 2, 10), letters[2], 14)
        _label(img, (img.width / 2, img.height - 10), letters[3], 14)
        _label(
            img, (6, img.height - 26), f"{plane_name[:3]}. {'xyz'[normal_axis]} = {centre[normal_axis]:.0f}", 12, "la"
        )
        panels.append(img)
    gap = 4
    sheet = PILImage.new(
        "RGB", (sum(p.width for p in panels) + gap * 2, max(p.height for p in panels)), (255, 255, 255)
    )
    x = 0
    for img in panels:
        sheet.paste(img, (x, 0))
        x += img.width + gap
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue(), tuple(float(c) for c in centre)


# --- HTML legends -------------------------------------------------------------------------------------


def dose_scale_html() -> str:
    """The colour bar of the bands, as HTML (equal-width blocks, each labelled with its lower edge)."""
    cells = "".join(
        f'<span class="band" style="background:{c}"><i>{lo:g}</i></span>' for lo, c in zip(DOSE_BANDS_GY, _BAND_RGB)
    )
    return (
        f'<div class="dose-scale" id="dose-scale"><span class="band-title">dose (Gy) &ge;</span>{cells}'
        f'<span class="band-note">under {DOSE_BANDS_GY[0]:g} Gy: not coloured</span></div>'
    )


def _line_svg(colour: str, on: int, off: int, width: int = 2) -> str:
    dash = f' stroke-dasharray="{on * 2},{off * 2}"' if off else ""
    halo = ' stroke="#000"' if colour.lower() == "#ffffff" else ' stroke="#fff"'
    return (
        f'<svg width="34" height="10" viewBox="0 0 34 10"><rect width="34" height="10" fill="#7f7f7f"/>'
        f'<line x1="2" y1="5" x2="32" y2="5"{halo} stroke-width="{width + 2}" opacity="0"/>'
        f'<line x1="2" y1="5" x2="32" y2="5" stroke="{colour}" stroke-width="{width}"{dash}/></svg>'
    )


def isodose_legend_html(isodose_gy: tuple[float, ...]) -> str:
    items = "".join(
        f'<span class="legend-item" data-isodose="{level:g}">{_line_svg(*_ISODOSE_STYLE[k % len(_ISODOSE_STYLE)])} '
        f"{level:g} Gy</span>"
        for k, level in enumerate(isodose_gy)
    )
    return f'<div class="legend" id="isodose-legend"><span class="legend-title">isodose lines:</span>{items}</div>'


def outline_legend_html(names: tuple[str, ...] | list[str], colours: dict[str, str]) -> str:
    import html

    items = "".join(
        f'<span class="legend-item" data-outline="{html.escape(n, quote=True)}">'
        f'<span class="outline-swatch" style="border-color:{colours[n]}"></span>{html.escape(n)}</span>'
        for n in names
    )
    return f'<div class="legend" id="outline-legend"><span class="legend-title">ROI outlines:</span>{items}</div>'
