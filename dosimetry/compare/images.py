"""The dose images of ``compare.html``: predicted and delivered dose over the CT, their difference, per lesion.

The images are those of ``report.html`` (:mod:`dosimetry.report.overlay`: crop to liver + lungs, fixed dose
bands, isodose lines, Okabe-Ito outlines, slices through each lesion centre), drawn for both doses:

* **Each run's own statistics** (the default mode): each dose over its own CT with its own ROIs, read as
  ``compare`` reads a run (``dose.nii.gz``, the CT and ROIs recorded in ``stats.json``; a DICOM run's CT
  series and RTSTRUCT/SEG). The planes of the predicted dose cross at the centre of the predicted partner of
  the delivered lesion the delivered planes cross at, so both rows show the same lesion. Matched ROIs share
  an outline colour. The two doses are on one grid only when both runs record the same FrameOfReferenceUID
  (DICOM runs; the predicted dose is then resampled onto the delivered grid with the identity); otherwise
  the page says that no difference image can be drawn, and how to get one (``--on-delivered-grid``).
* **Delivered ROIs** (``--roi``, ``--segmentation``, ``--on-delivered-grid``): the predicted dose as the API
  brought it onto the delivered grid (registered when the frames differ), both over the delivered CT with
  the delivered ROIs, the same crop and planes, and the difference.

Difference: delivered - predicted (Gy), in fixed bands of :data:`DIFFERENCE_SCALE` (ColorBrewer RdBu, a
diverging scale: red where more dose was delivered than predicted, blue where less; under
:data:`DIFFERENCE_EDGES_GY` [0] Gy either way not coloured, so agreement shows the CT).

A run whose images cannot be drawn (no ``dose.nii.gz``, its ROIs or CT no longer where ``stats.json``
says) is drawn as far as possible (without outlines, on black) and the page says why.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np

from dosimetry.errors import DosimetryError
from dosimetry.progress import advance
from dosimetry.report.overlay import (
    CROP_MARGIN_MM,
    OKABE_ITO,
    ColourScale,
    DoseView,
    centre_roi,
    crop_box_lps,
    DOSE_SCALE,
    image_sheet,
    isodose_legend_html,
    isodose_levels,
    lesion_frame,
    lesion_panels,
    outline_colours,
    outline_legend_html,
    planes_png,
    roi_boxes,
    roi_centre,
    scale_html,
    slice_centre,
)

__all__ = ["DIFFERENCE_EDGES_GY", "DIFFERENCE_SCALE", "ComparisonViews", "comparison_views", "image_sections"]

DIFFERENCE_EDGES_GY = (5.0, 10.0, 20.0, 40.0, 70.0)
"""Edges of the difference bands (Gy, either sign): |delivered - predicted| under 5 Gy is not coloured."""

DIFFERENCE_SCALE = ColourScale(
    DIFFERENCE_EDGES_GY,
    # ColorBrewer RdBu, 11 classes (Brewer, colorbrewer2.org; Harrower & Brewer, Cartogr J 2003;40:27-37),
    # without its white centre: red side (delivered > predicted) light to dark, then the blue side
    ("#fddbc7", "#f4a582", "#d6604d", "#b2182b", "#67001f") + ("#d1e5f0", "#92c5de", "#4393c3", "#2166ac", "#053061"),
    signed=True,
)
"""Diverging bands of delivered - predicted dose (Gy)."""


@dataclass
class ComparisonViews:
    """What the compare images draw: each dose's :class:`~dosimetry.report.overlay.DoseView` (None when it
    cannot be drawn), the difference (delivered - predicted, Gy) on the delivered grid or None, and notes
    for the captions."""

    predicted: DoseView | None
    delivered: DoseView | None
    difference: DoseView | None
    one_grid: bool
    notes: dict[str, list[str]] = field(default_factory=lambda: {"predicted": [], "delivered": [], "difference": []})


def _run_view(record, which: str, notes: list[str]) -> DoseView | None:
    """A run folder's dose over its own CT with its own ROIs; what cannot be read goes into ``notes``."""
    from dosimetry.io.run_folder import read_ct
    from dosimetry.compare.runs import recorded_rois
    from dosimetry.io.images import read_image
    from dosimetry.report.overlay import dose_view

    if not record.dose_path.is_file():
        notes.append(f"no dose.nii.gz in {record.folder}: the {which} dose cannot be drawn")
        return None
    dose = read_image(record.dose_path)
    ct_path = record.recorded_ct()
    ct = None
    if ct_path is None:
        notes.append(f"the {which} run records no CT that still exists: drawn on black")
    else:
        try:
            ct = read_ct(ct_path)
        except DosimetryError as err:
            notes.append(f"the {which} CT could not be read ({err}): drawn on black")
    try:
        rois, _ = recorded_rois(record, option=f"{which} images")
    except DosimetryError as err:
        notes.append(f"no ROI outlines for the {which} dose: {err}")
        rois = []
    try:
        return dose_view(dose, ct, rois)
    except DosimetryError as err:  # e.g. a recorded ROI that no longer fits the dose grid
        notes.append(f"no ROI outlines for the {which} dose: {err}")
        return dose_view(dose, ct, [])


def comparison_views(result) -> ComparisonViews | None:
    """The views of a single-pair :class:`~dosimetry.compare.api.ComparisonResult` (None for a cohort)."""
    from dosimetry.compare.runs import read_run

    stats = result.stats
    if "cases" in stats:
        return None
    if result.delivered_view is not None:  # delivered ROIs: both on the delivered grid, as the API computed
        d = result.delivered_view
        p = DoseView(result.predicted_on_delivered, d.ct_hu, d.roi_weights, d.stats)
        views = ComparisonViews(p, d, _difference(p, d), True)
        if d.ct_hu is None:
            views.notes["delivered"].append("no delivered CT: drawn on black")
        return views
    notes = {"predicted": [], "delivered": [], "difference": []}
    runs = stats["runs"]
    p = _run_view(read_run(runs["predicted"]["folder"], option="--predicted"), "predicted", notes["predicted"])
    d = _run_view(read_run(runs["delivered"]["folder"], option="--delivered"), "delivered", notes["delivered"])
    same = stats["frames_of_reference"].get("same")
    difference = None
    if p is not None and d is not None and same:
        from dosimetry.accumulate import resample_dose

        on_d = p.dose_gy if p.dose_gy.same_grid(d.dose_gy) else resample_dose(p.dose_gy, d.dose_gy, None)[0]
        difference = _difference(DoseView(on_d, d.ct_hu, d.roi_weights, d.stats), d)
    elif same is False:
        notes["difference"].append(
            "the runs are in different frames of reference (their FrameOfReferenceUIDs differ), so the doses "
            "are not on one grid: no difference image. Compare with --on-delivered-grid (or the delivered ROIs "
            "with --roi/--segmentation) to register the predicted dose onto the delivered grid and see it"
        )
    elif p is not None and d is not None:
        notes["difference"].append(
            "the runs record no frame of reference (runs from image files), so nothing says the doses share "
            "patient coordinates: no difference image. Compare with --on-delivered-grid (or --roi/--segmentation), "
            "with --same-frame if they do share coordinates, to put the predicted dose on the delivered grid"
        )
    else:
        notes["difference"].append("a dose cannot be drawn: no difference image")
    return ComparisonViews(p, d, difference, difference is not None, notes)


def _difference(p: DoseView, d: DoseView) -> DoseView:
    diff = np.asarray(d.dose_gy.array, np.float32) - np.asarray(p.dose_gy.array, np.float32)
    return DoseView(d.dose_gy.with_array(diff), d.ct_hu, d.roi_weights, d.stats)


# --- colours -------------------------------------------------------------------------------------------------


def _colours(stats: dict, views: ComparisonViews) -> tuple[dict[str, str], dict[str, str]]:
    """Outline colours of the delivered ROIs (as in its report) and of the predicted ones: a matched
    predicted ROI takes its delivered partner's colour, the others the next colours left."""
    d_col = outline_colours(views.delivered.stats) if views.delivered is not None else {}
    if views.predicted is None:
        return {}, d_col
    if views.one_grid and views.predicted.stats is (views.delivered.stats if views.delivered else None):
        return dict(d_col), d_col
    partner = {e["predicted_roi"]: e["delivered_roi"] for e in stats["rois"]}
    p_col, used = {}, set(d_col.values())
    spare = [c for c in OKABE_ITO if c not in used] or list(OKABE_ITO)
    own = outline_colours(views.predicted.stats)
    k = 0
    for e in views.predicted.stats["rois"]:
        name = e["name"]
        if partner.get(name) in d_col:
            p_col[name] = d_col[partner[name]]
        elif "derived" in e:
            p_col[name] = own[name]
        else:
            p_col[name] = spare[k % len(spare)]
            k += 1
    return p_col, d_col


# --- HTML ----------------------------------------------------------------------------------------------------


def _caption_notes(notes: list[str]) -> str:
    return "".join(f" {html.escape(n)}." for n in notes)


def _overview(stats: dict, views: ComparisonViews, levels, source, p_col, d_col) -> str:
    from dosimetry.report.layout import figure, img_tag

    d, p = views.delivered, views.predicted
    parts = []
    d_centre, d_reason = slice_centre(d) if d is not None else (None, "")
    crop = crop_box_lps(d) if (d is not None and views.one_grid) else None
    rows = []  # (key, view, centre, reason, colours, caption lead)
    cache: dict = {}  # on one grid the three views share CT samples and outlines
    if p is not None:
        if views.one_grid and d is not None:
            p_centre, p_reason = d_centre, d_reason
        else:
            d_name = centre_roi(d)[0] if d is not None else None
            partner = next((e["predicted_roi"] for e in stats["rois"] if e["delivered_roi"] == d_name), None)
            p_centre = roi_centre(p, partner) if partner else None
            p_reason = f"centre of {partner} (the predicted partner of {d_name}, where the delivered planes cross)"
            if p_centre is None:
                p_centre, p_reason = slice_centre(p)
        rows.append(("predicted", p, p_centre, p_reason, p_col, "Predicted (Tc-99m MAA) absorbed dose"))
    if d is not None:
        rows.append(("delivered", d, d_centre, d_reason, d_col, "Delivered (Y-90) absorbed dose"))
    for key, view, centre, reason, colours, lead in rows:
        planes = planes_png(view, centre, reason, isodose_gy=levels, colours=colours, crop=crop, cache=cache)
        c = planes.centre_lps
        ct = "over its CT (W400/L40)" if view.ct_hu is not None else "on black (no CT)"
        parts.append(
            figure(
                img_tag(planes.png, f"{key} dose over CT, three planes")
                + scale_html(DOSE_SCALE, html_id=f"dose-scale-{key}")
                + isodose_legend_html(levels, html_id=f"isodose-legend-{key}")
                + outline_legend_html(planes.outlined, colours, html_id=f"outline-legend-{key}"),
                f"{lead} in the colour bands of report.html {ct}; cropped to the {html.escape(planes.crop)} plus "
                f"{CROP_MARGIN_MM:g} mm; isodose lines at {', '.join(f'{x:g}' for x in levels)} Gy "
                f"({html.escape(source)}); planes through the {html.escape(planes.reason)}, LPS ({c[0]:.1f}, "
                f"{c[1]:.1f}, {c[2]:.1f}) mm; ROI outlines at 50 % occupancy (matched ROIs in the same colour)."
                + _caption_notes(views.notes[key]),
                fig_id=f"fig-planes-{key}",
                cls="compare-planes",
            )
        )
    if views.difference is not None:
        planes = planes_png(
            views.difference,
            d_centre,
            d_reason,
            isodose_gy=(),
            colours=d_col,
            crop=crop,
            scale=DIFFERENCE_SCALE,
            cache=cache,
        )
        parts.append(
            figure(
                img_tag(planes.png, "difference delivered - predicted, three planes")
                + _difference_legend()
                + outline_legend_html(planes.outlined, d_col, html_id="outline-legend-difference"),
                "Difference delivered - predicted absorbed dose (Gy) on the delivered grid, in fixed bands: red, "
                "more dose delivered than predicted; blue, less; under "
                f"{DIFFERENCE_EDGES_GY[0]:g} Gy either way not coloured. Same planes and crop as the delivered "
                f"dose ({html.escape(_alignment(stats))})." + _caption_notes(views.notes["difference"]),
                fig_id="fig-planes-difference",
                cls="compare-planes",
            )
        )
    else:
        parts.append(
            '<div class="box warn" id="no-difference"><strong>No difference image.</strong>'
            + _caption_notes(views.notes["difference"])
            + "</div>"
        )
    return "".join(parts)


def _alignment(stats: dict) -> str:
    text = (stats.get("alignment") or {}).get("alignment", "")
    if stats.get("mode") == "own statistics":
        text = "same recorded frame of reference, predicted dose resampled onto the delivered grid"
    return text + "; predicted dose outside its own grid counts as 0 Gy"


def _difference_legend() -> str:
    return scale_html(
        DIFFERENCE_SCALE,
        title="delivered &minus; predicted (Gy):",
        html_id="difference-scale",
        note=f"between &minus;{DIFFERENCE_EDGES_GY[0]:g} and {DIFFERENCE_EDGES_GY[0]:g} Gy: not coloured "
        "(ColorBrewer RdBu)",
    )


def _lesions(stats: dict, views: ComparisonViews, levels, p_col, d_col) -> str:
    from dosimetry.report.layout import figure, img_tag

    pairs = [
        e
        for e in stats["rois"]
        if e.get("role") == "tumor" and not e.get("derived") and e["delivered_roi"] not in ("tumors_all",)
    ]
    if not pairs:
        return '<p class="muted">No matched tumour ROI.</p>'
    p, d, diff = views.predicted, views.delivered, views.difference
    cache: dict = {}  # on one grid the three columns share CT samples and outlines
    p_boxes = roi_boxes(p) if p is not None else {}
    d_boxes = roi_boxes(d) if d is not None else {}
    columns = ["predicted (MAA)", "delivered (Y-90)"] + (["delivered - predicted"] if diff is not None else [])
    out = []
    for e in pairs:
        p_name, d_name = e["predicted_roi"], e["delivered_roi"]
        p_frame = lesion_frame(p, p_name, boxes=p_boxes) if p is not None and p_name in p_boxes else None
        d_frame = lesion_frame(d, d_name, boxes=d_boxes) if d is not None and d_name in d_boxes else None
        half = max([f[1] for f in (p_frame, d_frame) if f is not None], default=None)
        missing = []
        cols = []
        for label, view, frame, name, boxes, colours in (
            ("predicted", p, p_frame, p_name, p_boxes, p_col),
            ("delivered", d, d_frame, d_name, d_boxes, d_col),
        ):
            if frame is not None:
                cols.append(
                    lesion_panels(view, frame[0], half, isodose_gy=levels, colours=colours, boxes=boxes, cache=cache)
                )
            else:
                cols.append([None] * 3)
                missing.append(_why_not_drawn(label, name, boxes))
        if diff is not None:
            cols.append(
                lesion_panels(
                    diff,
                    d_frame[0],
                    half,
                    isodose_gy=(),
                    colours=d_col,
                    boxes=d_boxes,
                    scale=DIFFERENCE_SCALE,
                    cache=cache,
                )
                if d_frame is not None
                else [None] * 3
            )
        if half is None:
            body = '<p class="muted">neither ROI has a voxel on its dose grid</p>'
        else:
            rows = [[c[k] for c in cols] for k in range(3)]
            body = img_tag(image_sheet(rows, gap=4, column_titles=columns), f"lesion {d_name}: predicted and delivered")
        m = e["mean_gy"]
        where = "; ".join(
            f"{which} through the centre of {html.escape(n)}, LPS ({f[0][0]:.1f}, {f[0][1]:.1f}, {f[0][2]:.1f}) mm"
            for which, n, f in (("predicted", p_name, p_frame), ("delivered", d_name, d_frame))
            if f is not None
        )
        name = html.escape(d_name if p_name == d_name else f"{p_name} = {d_name}")
        caption = f"<strong>{name}</strong>: "
        if half is not None:
            caption += (
                "axial, coronal and sagittal slices, predicted beside delivered"
                + (" and their difference" if diff is not None else "")
                + f" (colours, isodose lines and outlines as above; a cube {2 * half:.0f} mm wide); {where}. "
            )
        caption += f"Mean dose predicted {_gy(m['predicted'])} Gy, delivered {_gy(m['delivered'])} Gy."
        caption += "".join(f" {html.escape(x)}." for x in missing)
        out.append(
            figure(
                body,
                caption,
                cls="lesion-pair",
                attrs=f' data-lesion="{html.escape(d_name, quote=True)}"',
            )
        )
        advance()
    return "".join(out)


def _why_not_drawn(which: str, name: str, boxes: dict) -> str:
    if name in boxes:
        return f"{which} ROI {name} has no voxel on its dose grid"
    return f"{which} ROI {name} could not be read (see the {which} image's caption)"


def _gy(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def image_sections(result, *, run_stats: dict | None = None) -> list:
    """The ``Section``s of ``compare.html`` with the dose images (none for a cohort): "Dose images"
    (predicted, delivered, difference) and "Per lesion" (one predicted/delivered pair per matched tumour)."""
    from dosimetry.report.layout import Section

    views = comparison_views(result)
    if views is None:
        return []
    stats = result.stats
    levels, source = isodose_levels((run_stats or {}).get("delivered") or {})
    p_col, d_col = _colours(stats, views)
    return [
        Section(
            "dose-images", "Dose images: predicted and delivered", _overview(stats, views, levels, source, p_col, d_col)
        ),
        Section("lesion-images", "Per lesion: predicted and delivered", _lesions(stats, views, levels, p_col, d_col)),
    ]
