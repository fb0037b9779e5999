"""Dose over the CT as PNG from numpy arrays and Pillow: banded colour wash, isodose lines, ROI outlines.

No matplotlib: each plane is sampled through the images' own geometry
(:mod:`dosimetry.report.sampling`: separable linear interpolation, no scipy.ndimage import on axis-aligned
images), composited in numpy through a lookup table, and encoded by Pillow, so the report's images cost tens
of milliseconds instead of a matplotlib figure per image. Legends and the colour bar are HTML
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

from dosimetry.image import Image, nonzero_box
from dosimetry.occupancy import Occupancy
from dosimetry.report.sampling import PlaneIndex, dilate_cross, erode_cross, sample_linear

__all__ = [
    "CROP_MARGIN_MM",
    "ColourScale",
    "DOSE_BANDS_GY",
    "DOSE_SCALE",
    "DoseView",
    "ISODOSE_GY",
    "OKABE_ITO",
    "PlaneImages",
    "centre_roi",
    "crop_box_lps",
    "dose_scale_html",
    "dose_view",
    "view_from_weights",
    "image_sheet",
    "lesion_frame",
    "lesion_panels",
    "isodose_legend_html",
    "lesion_png",
    "outline_colours",
    "outline_legend_html",
    "isodose_levels",
    "planes_png",
    "roi_boxes",
    "roi_centre",
    "scale_html",
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


@dataclass(frozen=True)
class ColourScale:
    """Fixed colour bands of a washed-over value: ``edges`` (ascending, > 0) and one colour per band.

    Unsigned (doses): a value gets the colour of the highest edge it reaches (``colours[k]`` for
    ``edges[k] <= v``); under ``edges[0]`` it is not coloured. Signed (differences): ``colours`` holds the
    bands of the positive side then those of the negative side (``2 * len(edges)`` colours), so a value v
    with ``|v| >= edges[k]`` gets ``colours[k]`` (v > 0) or ``colours[len(edges) + k]`` (v < 0); values with
    ``|v| < edges[0]`` are not coloured.
    """

    edges: tuple[float, ...]
    colours: tuple[str, ...]
    signed: bool = False

    def __post_init__(self):
        n = len(self.edges) * (2 if self.signed else 1)
        if len(self.colours) != n or any(b <= a for a, b in zip(self.edges, self.edges[1:])) or self.edges[0] <= 0:
            raise ValueError(f"ColourScale: {len(self.colours)} colours for edges {self.edges} (signed={self.signed})")

    def band_index(self, values: np.ndarray) -> np.ndarray:
        """1 + the index into ``colours`` of every value; 0: not coloured."""
        band = np.digitize(np.abs(values) if self.signed else values, self.edges)
        if self.signed:
            band = np.where((values < 0) & (band > 0), band + len(self.edges), band)
        return band

    def lut(self) -> np.ndarray:
        return np.stack([_rgb(c) for c in self.colours])


DOSE_SCALE = ColourScale(DOSE_BANDS_GY, _BAND_RGB)
"""The dose bands of every report (:data:`DOSE_BANDS_GY`, turbo colours)."""


@dataclass(frozen=True)
class DoseView:
    """What the images draw: a dose (Gy) on its grid, the CT (HU) under it or None (black), ROI weights on the
    dose grid by name and ``stats = {"rois": [{name, role, volume_ml[, derived]}]}`` (a
    :class:`~dosimetry.pipeline.DosimetryResult` has the same attributes and is drawn the same way)."""

    dose_gy: Image
    ct_hu: Image | None
    roi_weights: dict
    stats: dict


def dose_view(dose_gy: Image, ct_hu: Image | None, rois) -> DoseView:
    """The :class:`DoseView` of a dose with the ROIs of its study (resampled onto the dose grid by
    :func:`dosimetry.accumulate.roi_weights`, which adds normal liver and the union of lungs as derived ROIs)."""
    from dosimetry.accumulate import roi_weights

    return view_from_weights(dose_gy, ct_hu, roi_weights(list(rois), dose_gy), {r.name for r in rois})


def view_from_weights(dose_gy: Image, ct_hu: Image | None, weights, given: set[str]) -> DoseView:
    """The :class:`DoseView` of ``(name, role, weights on the dose grid)`` triples; names not in ``given``
    are derived ROIs (unions, normal liver): drawn grey in legends, never outlined."""
    by_name, entries = {}, []
    for name, role, w in weights:
        by_name[name] = w
        entry = {"name": name, "role": role, "volume_ml": float(w.sum(dtype=np.float64)) * dose_gy.voxel_volume_ml}
        if name not in given:
            entry["derived"] = "union" if name.endswith("_all") else "difference"
        entries.append(entry)
    return DoseView(dose_gy, ct_hu, by_name, {"rois": entries})


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
    boxes = [b for b in (Occupancy.of(result.roi_weights[n]).nonzero_box() for n in names) if b is not None]
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


def centre_roi(result) -> tuple[str | None, str]:
    """The ROI the planes cross at and why: the largest given tumour, else the (first) liver; None if neither."""
    tumours = [
        e
        for e in result.stats["rois"]
        if e["role"] == "tumor" and "derived" not in e and e["name"] in result.roi_weights
    ]
    livers = [e for e in result.stats["rois"] if e["role"] == "liver" and e["name"] in result.roi_weights]
    if tumours:
        return max(tumours, key=lambda e: e["volume_ml"])["name"], "centre of the largest tumour"
    if livers:
        return livers[0]["name"], "centre of the liver"
    return None, ""


def slice_centre(result) -> tuple[np.ndarray, str]:
    """Where the three planes cross (LPS, mm) and why: the weighted centre of the largest tumour, else of
    the liver (:func:`centre_roi`), else the hottest voxel."""
    dose: Image = result.dose_gy
    name, reason = centre_roi(result)
    if name is not None:
        centre = roi_centre(result, name)
        if centre is not None:
            return centre, f"{reason} ({name})"
    peak = np.unravel_index(int(np.argmax(dose.array)), dose.shape)
    return dose.index_to_world(np.asarray(peak, float)), "hottest voxel"


def roi_centre(view, name: str, box=None) -> np.ndarray | None:
    """The weighted centre (LPS, mm) of ROI ``name``'s weights on the dose grid; None when it has no voxel.
    ``box`` (its :func:`~dosimetry.image.nonzero_box`) saves finding it again."""
    weights = view.roi_weights.get(name)
    box = Occupancy.of(weights).nonzero_box() if box is None and weights is not None else box
    if box is None:
        return None
    lo, hi = box
    w = weights[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].astype(np.float64)
    idx = np.array(np.nonzero(w > 0)).T + lo
    centre_idx = (idx * w[w > 0][:, None]).sum(axis=0) / w[w > 0].sum()
    return view.dose_gy.index_to_world(centre_idx)


@dataclass(frozen=True)
class _Plane:
    """A regular grid of points in a plane: ``start`` + j ``v_mm`` + i ``u_mm`` (j down, i across), LPS."""

    start: np.ndarray
    u_mm: np.ndarray
    v_mm: np.ndarray
    shape: tuple[int, int]

    def coordinates(self, image: Image) -> PlaneIndex:
        """Fractional voxel indices of the points in ``image`` (an affine map: exact)."""
        origin = image.world_to_index(self.start)
        du = image.world_to_index(self.start + self.u_mm) - origin
        dv = image.world_to_index(self.start + self.v_mm) - origin
        return PlaneIndex(origin, dv, du, self.shape)


def roi_boxes(result) -> dict[str, tuple[np.ndarray, np.ndarray] | None]:
    """The nonzero index box of every given ROI's weights (None: empty)."""
    return {
        e["name"]: Occupancy.of(result.roi_weights[e["name"]]).nonzero_box()
        for e in result.stats["rois"]
        if "derived" not in e and e["name"] in result.roi_weights
    }


def _sample(image: Image, grid: PlaneIndex, *, cval: float) -> np.ndarray:
    # no float copy of the whole volume (a clinical CT is large): interpolate from its own dtype
    return sample_linear(image.array, grid, cval=cval)


def _sample_in_box(weights: np.ndarray, box, grid: PlaneIndex) -> np.ndarray:
    """Linear samples of ``weights`` (zero outside ``box``) at the points of ``grid``, from the box plus a
    margin of one voxel: the same values as from the whole array."""
    if box is None:
        return np.zeros(grid.shape, np.float32)
    lo = np.maximum(box[0] - 1, 0)
    hi = np.minimum(box[1] + 1, np.asarray(weights.shape))
    return sample_linear(weights[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], grid, cval=0.0, offset=lo)


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

    png: bytes  # or the list of the three Pillow images (``as_panels``)
    centre_lps: tuple[float, float, float]
    reason: str
    crop: str
    step_mm: float
    isodose_gy: tuple[float, ...]
    outlined: tuple[str, ...]


def _composite(ct: np.ndarray | None, dose_gy: np.ndarray, scale: ColourScale = DOSE_SCALE) -> np.ndarray:
    """RGB float32 (h, w, 3): CT grey (soft-tissue window) under the banded wash of ``scale``."""
    if ct is None:
        grey = np.zeros(dose_gy.shape, np.float32)
    else:
        grey = np.clip((ct - CT_WINDOW_HU[0]) / (CT_WINDOW_HU[1] - CT_WINDOW_HU[0]), 0.0, 1.0) * 255.0
    band = scale.band_index(dose_gy)  # 0: not coloured
    coloured = band > 0
    wash = np.vstack([np.zeros((1, 3), np.float32), _WASH_ALPHA * scale.lut()])  # by band, 0 first
    kept = (1.0 - _WASH_ALPHA) * grey
    rgb = np.empty((*grey.shape, 3), np.float32)
    for c in range(3):  # whole-plane arithmetic per channel: faster than gathering the coloured pixels
        rgb[..., c] = np.where(coloured, kept + wash[band, c], grey)
    return rgb


def _edge(mask: np.ndarray, width: int) -> np.ndarray:
    return mask & ~erode_cross(mask, width)


def _window(mask: np.ndarray, pad: int) -> tuple[slice, slice]:
    """The box of a mask's set pixels plus ``pad`` pixels (within the mask). Erosion and dilation by at most
    ``pad - 1`` pixels give the same pixels on it as on the whole mask (everything outside is unset)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return (
        slice(max(rows[0] - pad, 0), min(rows[-1] + 1 + pad, mask.shape[0])),
        slice(max(cols[0] - pad, 0), min(cols[-1] + 1 + pad, mask.shape[1])),
    )


def _outline_masks(mask: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The black halo and the coloured edge of an outline; both empty when ``mask`` is empty or full."""
    if not mask.any() or mask.all():
        empty = np.zeros(mask.shape, bool)
        return empty, empty
    # morphology on the mask's box plus a margin only: outside it everything is 0, so the result is the same
    window = _window(mask, width + 2)
    sub = mask[window]
    halo = np.zeros(mask.shape, bool)
    edge = np.zeros(mask.shape, bool)
    halo[window] = dilate_cross(sub) & ~erode_cross(sub, width + 1)
    edge[window] = _edge(sub, width)
    return halo, edge


def _draw_isodose(rgb: np.ndarray, dose_gy: np.ndarray, level: float, style) -> None:
    mask = dose_gy >= level
    if not mask.any() or mask.all():
        return
    window = _window(mask, 2)
    edge = _edge(mask[window], 1)
    colour, on, off = style
    if off:  # dashes along the diagonals of the whole plane
        i = np.arange(window[0].start, window[0].stop)[:, None]
        j = np.arange(window[1].start, window[1].stop)[None, :]
        edge &= ((i + j) % (on + off)) < on
    rgb[window][edge] = _rgb(colour)


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


def _underlay(view, plane: _Plane, boxes: dict, width: int, cache: dict | None):
    """What a panel draws that does not depend on the dose: the CT samples, the dose-grid coordinates of the
    plane, and per outlined ROI its halo and edge pixels. Views sharing CT, ROI weights and dose grid (the
    predicted dose on the delivered grid, the delivered dose, their difference) share it through ``cache``."""
    grid = view.dose_gy
    key = (
        id(view.ct_hu),
        id(view.roi_weights),
        tuple(boxes),
        width,
        plane.start.tobytes() + plane.u_mm.tobytes() + plane.v_mm.tobytes(),
        plane.shape,
        grid.shape,
        grid.origin_mm.tobytes() + grid.spacing_mm.tobytes() + grid.direction.tobytes(),
    )
    if cache is not None and key in cache:
        return cache[key]
    ct = _sample(view.ct_hu, plane.coordinates(view.ct_hu), cval=-1000.0) if view.ct_hu is not None else None
    idx = plane.coordinates(grid)
    outlines = []
    for n, box in boxes.items():
        mask = _sample_in_box(view.roi_weights[n], box, idx) >= 0.5
        if mask.any():
            outlines.append((n, *_outline_masks(mask, width)))
    value = (ct, idx, outlines)
    if cache is not None:
        cache[key] = value
    return value


def _panel(
    view,
    plane: _Plane,
    *,
    isodose_gy,
    colours: dict,
    boxes: dict,
    scale: ColourScale,
    width: int,
    cache: dict | None = None,
):
    """One plane of ``view`` as a Pillow image: CT, banded wash of ``scale``, isodose lines, the outlines of
    every given ROI (at 50 % occupancy); and the names of the ROIs it outlines."""
    from PIL import Image as PILImage

    ct, idx, outlines = _underlay(view, plane, boxes, width, cache)
    d = _sample(view.dose_gy, idx, cval=0.0)
    rgb = _composite(ct, d, scale)
    for k, level in enumerate(isodose_gy):
        _draw_isodose(rgb, d, level, _ISODOSE_STYLE[k % len(_ISODOSE_STYLE)])
    for n, halo, edge in outlines:
        rgb[halo] = 0.0
        rgb[edge] = _rgb(colours[n])
    return PILImage.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB"), {n for n, _, _ in outlines}


def _letters(img, letters, size: int, margin: int) -> None:
    _label(img, (margin, img.height / 2), letters[0], size)
    _label(img, (img.width - margin, img.height / 2), letters[1], size)
    _label(img, (img.width / 2, margin), letters[2], size)
    _label(img, (img.width / 2, img.height - margin), letters[3], size)


def image_sheet(rows: list[list], *, gap: int = 6, column_titles: list[str] | None = None) -> bytes:
    """Pillow images laid out in ``rows`` (each a list; None leaves its cell empty) on white, as PNG bytes;
    ``column_titles`` are written above the columns."""
    from PIL import Image as PILImage

    columns = max(len(r) for r in rows)
    widths = [max((r[c].width for r in rows if c < len(r) and r[c] is not None), default=0) for c in range(columns)]
    heights = [max((p.height for p in r if p is not None), default=0) for r in rows]
    top = 24 if column_titles else 0
    sheet = PILImage.new(
        "RGB", (sum(widths) + gap * (columns - 1), top + sum(heights) + gap * (len(rows) - 1)), (255, 255, 255)
    )
    if column_titles:
        from PIL import ImageDraw

        draw = ImageDraw.Draw(sheet)
        for c, title in enumerate(column_titles):
            x = sum(widths[:c]) + gap * c + widths[c] / 2
            draw.text((x, top / 2), title, fill=(0, 0, 0), font=_font(14), anchor="mm")
    y = top
    for r, row in enumerate(rows):
        x = 0
        for c, img in enumerate(row):
            if img is not None:
                sheet.paste(img, (x, y))
            x += widths[c] + gap
        y += heights[r] + gap
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", compress_level=3)
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
    scale: ColourScale = DOSE_SCALE,
    crop: tuple[np.ndarray, np.ndarray, str] | None = None,
    as_panels: bool = False,
    cache: dict | None = None,
) -> PlaneImages:
    """Axial, coronal and sagittal planes through ``centre_lps``, side by side in one PNG, cropped to
    :func:`crop_box_lps` (or ``crop``, the same tuple, so several views show one field), sampled at up to 420
    pixels a side; orientation letters, plane titles and a 5 cm bar drawn in. ``scale``: the colour bands of
    the wash (:data:`DOSE_SCALE`; a difference map gives its own). ``as_panels``: ``png`` is then the list of
    the three Pillow images (for :func:`image_sheet`). ``cache`` (a dict) shares the CT samples and outlines
    between views of one CT, ROI set and dose grid."""
    from PIL import ImageDraw

    lo, hi, what = crop_box_lps(result) if crop is None else crop
    # finer than the voxels: linear interpolation then gives smooth outlines and isodose lines
    step = max(float(np.max(hi - lo)) / _MAX_PIXELS, 0.75)
    boxes = {n: b for n, b in roi_boxes(result).items() if b is not None}
    panels, outlined = [], set()
    for name, (u, v, letters, normal_axis) in _PLANES.items():
        plane = _plane(lo, hi, centre_lps, u, v, step)
        img, drawn = _panel(
            result, plane, isodose_gy=isodose_gy, colours=colours, boxes=boxes, scale=scale, width=2, cache=cache
        )
        outlined |= drawn
        _letters(img, letters, 18, 14)
        _label(img, (8, 8), f"{name}  {'xyz'[normal_axis]} = {centre_lps[normal_axis]:.0f} mm", 16, "la")
        bar_px = 50.0 / step
        y = img.height - 34
        ImageDraw.Draw(img).rectangle((12, y - 1, 12 + bar_px, y + 2), fill=(255, 255, 255), outline=(0, 0, 0))
        _label(img, (12 + bar_px / 2, y - 12), "5 cm", 14)
        panels.append(img)
    given = [n for n in roi_boxes(result)]
    return PlaneImages(
        panels if as_panels else image_sheet([panels]),
        tuple(float(c) for c in centre_lps),
        reason,
        what,
        step,
        tuple(isodose_gy),
        tuple(n for n in given if n in outlined),
    )


def lesion_frame(result, name: str, *, boxes: dict | None = None) -> tuple[np.ndarray, float] | None:
    """Centre (LPS, mm: the weighted centre of ROI ``name``) and half width (mm) of the cube shown around a
    lesion: its box plus 15 mm, at least 60 mm wide; None when the ROI has no voxel."""
    boxes = roi_boxes(result) if boxes is None else boxes
    box = boxes.get(name)
    if box is None:
        return None
    lo_i, hi_i = box
    centre = roi_centre(result, name, box)
    corner_idx = np.array(
        [
            [a, b, c]
            for a in (lo_i[0] - 0.5, hi_i[0] - 0.5)
            for b in (lo_i[1] - 0.5, hi_i[1] - 0.5)
            for c in (lo_i[2] - 0.5, hi_i[2] - 0.5)
        ]
    )
    world = result.dose_gy.index_to_world(corner_idx)
    half = float(np.max((world.max(axis=0) - world.min(axis=0)) / 2 + 15.0))
    return centre, max(half, 30.0)  # a cube around the lesion: every plane square, the same scale


def lesion_panels(
    result,
    centre: np.ndarray,
    half_mm: float,
    *,
    isodose_gy: tuple[float, ...] = ISODOSE_GY,
    colours: dict[str, str],
    size_px: int = 200,
    boxes: dict | None = None,
    scale: ColourScale = DOSE_SCALE,
    cache: dict | None = None,
) -> list:
    """Axial, coronal and sagittal slices (Pillow images) through ``centre``, a cube of half width
    ``half_mm``, with the isodose lines and every given ROI's outline (``cache``: as :func:`planes_png`)."""
    boxes = roi_boxes(result) if boxes is None else boxes
    boxes = {n: b for n, b in boxes.items() if b is not None}
    lo, hi = centre - half_mm, centre + half_mm
    step = max(2 * half_mm / size_px, 0.4)
    panels = []
    for plane_name, (u, v, letters, normal_axis) in _PLANES.items():
        plane = _plane(lo, hi, centre, u, v, step)
        img, _ = _panel(
            result, plane, isodose_gy=isodose_gy, colours=colours, boxes=boxes, scale=scale, width=1, cache=cache
        )
        _letters(img, letters, 14, 10)
        _label(
            img, (6, img.height - 26), f"{plane_name[:3]}. {'xyz'[normal_axis]} = {centre[normal_axis]:.0f}", 12, "la"
        )
        panels.append(img)
    return panels


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
    boxes = roi_boxes(result) if boxes is None else boxes
    frame = lesion_frame(result, name, boxes=boxes)
    if frame is None:
        return None
    centre, half = frame
    panels = lesion_panels(result, centre, half, isodose_gy=isodose_gy, colours=colours, size_px=size_px, boxes=boxes)
    return image_sheet([panels], gap=4), tuple(float(c) for c in centre)


# --- HTML legends -------------------------------------------------------------------------------------


def dose_scale_html() -> str:
    """The colour bar of the bands, as HTML (equal-width blocks, each labelled with its lower edge)."""
    return scale_html(DOSE_SCALE)


def scale_html(
    scale: ColourScale,
    *,
    title: str = "dose (Gy) &ge;",
    note: str | None = None,
    html_id: str = "dose-scale",
) -> str:
    """The colour bar of ``scale`` as HTML: equal-width blocks, each labelled with its edge (signed scales:
    the negative bands from the most negative up, then the positive ones)."""
    n = len(scale.edges)
    if scale.signed:
        items = [(f"&le;&minus;{e:g}", scale.colours[n + k]) for k, e in reversed(list(enumerate(scale.edges)))]
        items += [(f"&ge;{e:g}", scale.colours[k]) for k, e in enumerate(scale.edges)]
        note = note if note is not None else f"between &minus;{scale.edges[0]:g} and {scale.edges[0]:g}: not coloured"
    else:
        items = [(f"{e:g}", c) for e, c in zip(scale.edges, scale.colours)]
        note = note if note is not None else f"under {scale.edges[0]:g} Gy: not coloured"
    cells = "".join(f'<span class="band" style="background:{c}"><i>{label}</i></span>' for label, c in items)
    return (
        f'<div class="dose-scale" id="{html_id}"><span class="band-title">{title}</span>{cells}'
        f'<span class="band-note">{note}</span></div>'
    )


def _line_svg(colour: str, on: int, off: int, width: int = 2) -> str:
    dash = f' stroke-dasharray="{on * 2},{off * 2}"' if off else ""
    halo = ' stroke="#000"' if colour.lower() == "#ffffff" else ' stroke="#fff"'
    return (
        f'<svg width="34" height="10" viewBox="0 0 34 10"><rect width="34" height="10" fill="#7f7f7f"/>'
        f'<line x1="2" y1="5" x2="32" y2="5"{halo} stroke-width="{width + 2}" opacity="0"/>'
        f'<line x1="2" y1="5" x2="32" y2="5" stroke="{colour}" stroke-width="{width}"{dash}/></svg>'
    )


def isodose_legend_html(isodose_gy: tuple[float, ...], *, html_id: str = "isodose-legend") -> str:
    items = "".join(
        f'<span class="legend-item" data-isodose="{level:g}">{_line_svg(*_ISODOSE_STYLE[k % len(_ISODOSE_STYLE)])} '
        f"{level:g} Gy</span>"
        for k, level in enumerate(isodose_gy)
    )
    return f'<div class="legend" id="{html_id}"><span class="legend-title">isodose lines:</span>{items}</div>'


def outline_legend_html(
    names: tuple[str, ...] | list[str],
    colours: dict[str, str],
    *,
    html_id: str = "outline-legend",
    title: str = "ROI outlines:",
) -> str:
    import html

    items = "".join(
        f'<span class="legend-item" data-outline="{html.escape(n, quote=True)}">'
        f'<span class="outline-swatch" style="border-color:{colours[n]}"></span>{html.escape(n)}</span>'
        for n in names
    )
    return f'<div class="legend" id="{html_id}"><span class="legend-title">{html.escape(title)}</span>{items}</div>'
