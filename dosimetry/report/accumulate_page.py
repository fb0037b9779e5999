"""``accumulate.html``: the report of a ``dosimetry accumulate`` run, on the shared layout.

Header: CUMULATIVE label, the treatments and, when the current dose is a run folder, the current run's
dates, device and activities. First page: the three doses (tumour, normal liver, lung) current and cumulative
(mean, cumulative D70), the physical-sum note, warnings, and the cumulative dose over the current CT (the
same images as ``report.html``: crop, dose bands, isodose lines, outlines). Then per-ROI doses per treatment,
the alignment of each treatment, and any extra sections (the hook for e.g. a treatment-course section:
``extra_sections=[Section(id, title, html)]``).

Every number comes from ``accumulate.json``'s dict (``data-json`` paths into it).
"""

from __future__ import annotations

from dosimetry.report.layout import ReportHeader, Section, esc, figure, img_tag, key, num_cell, page_html, table

__all__ = ["accumulate_report_html"]


def _entry(stats: dict, role: str, preferred: tuple[str, ...]) -> dict | None:
    by_name = {e["name"]: e for e in stats["rois"]}
    for name in preferred:
        if name in by_name:
            return by_name[name]
    return next((e for e in stats["rois"] if e["role"] == role), None)


def _key_doses(stats: dict) -> str:
    """Tumour (the union when there is one, else each tumour ROI: accumulate builds no tumour union), normal
    liver and lung: current mean, cumulative mean and D70."""
    rows = []
    tumours = [e for e in stats["rois"] if e["role"] == "tumor"]
    union = next((e for e in tumours if e["name"] == "tumors_all"), None)
    picked: list[tuple[str, dict | None]] = (
        [("Tumour", union)] if union else [("Tumour", e) for e in tumours] or [("Tumour", None)]
    )
    picked.append(("Normal liver", _entry(stats, "normal_liver", ("perfused_normal_liver", "normal_liver"))))
    picked.append(("Lung", _entry(stats, "lung", ("lungs_all",))))
    for label, e in picked:
        if e is None:
            rows.append(
                f'<tr data-dose="{label}"><th>{label}</th>'
                + '<td class="num na">\u2014</td>' * 3
                + "<td>no ROI</td></tr>"
            )
            continue
        p = f"rois/@{key(e['name'])}"
        rows.append(
            f'<tr data-dose="{label}"><th>{label}</th>'
            + num_cell(f"{p}/current_mean_gy", e["current_mean_gy"], 1)
            + num_cell(f"{p}/cumulative/mean_gy", e["cumulative"]["mean_gy"], 1)
            + num_cell(f"{p}/cumulative/D70", e["cumulative"]["D70"], 1)
            + f'<td class="limit">{esc(e["name"])}</td></tr>'
        )
    return (
        '<table class="kv key-doses" id="key-doses"><thead><tr><th class="l">absorbed dose</th>'
        '<th class="l">current mean Gy</th><th class="l">cumulative mean Gy</th><th class="l">cumulative D70 Gy</th>'
        '<th class="l">ROI</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>"
    )


def _roi_table(stats: dict) -> str:
    labels = [t["label"] for t in stats["treatments"][1:]]
    rows = []
    for e in stats["rois"]:
        p = f"rois/@{key(e['name'])}"
        c = e["cumulative"]
        rows.append(
            f'<tr data-roi="{esc(e["name"])}"><td class="name">{esc(e["name"])}</td><td>{esc(e["role"])}</td>'
            + num_cell(f"{p}/volume_ml", e["volume_ml"], 1)
            + num_cell(f"{p}/current_mean_gy", e["current_mean_gy"], 1)
            + "".join(num_cell(f"{p}/previous_mean_gy/{i}", v, 1) for i, v in enumerate(e["previous_mean_gy"]))
            + num_cell(f"{p}/cumulative/mean_gy", c["mean_gy"], 1, cls="num key")
            + num_cell(f"{p}/cumulative/D70", c["D70"], 1)
            + num_cell(f"{p}/cumulative/V100", c["V100"], 1)
            + num_cell(f"{p}/cumulative/max_gy", c["max_gy"], 1)
            + "</tr>"
        )
    headers = ["ROI", "role", "volume<br>mL", "current<br>mean Gy"]
    headers += [f"{esc(label)}<br>mean Gy" for label in labels]
    headers += ["cumulative<br>mean Gy", "cumulative<br>D70 Gy", "cumulative<br>V100 %", "cumulative<br>max Gy"]
    return table(headers, rows, table_id="accumulate-roi-table", left=(0, 1))


def _treatments(stats: dict) -> str:
    rows = []
    for t in stats["treatments"]:
        rest = {k: v for k, v in t.items() if k not in ("label", "alignment")}
        detail = "; ".join(
            f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}"
            for k, v in rest.items()
            if not isinstance(v, (dict, list))
        )
        rows.append(f"<tr><td>{esc(t['label'])}</td><td>{esc(t.get('alignment', ''))}</td><td>{esc(detail)}</td></tr>")
    return table(["treatment", "alignment", "checks"], rows, table_id="treatments-table", left=(0, 1, 2))


def _overview(result, rois, ct_hu, run_stats: dict | None) -> str:
    """The cumulative dose over the current CT with the run report's image machinery."""
    from dosimetry.report.overlay import (
        CROP_MARGIN_MM,
        dose_scale_html,
        dose_view,
        isodose_legend_html,
        isodose_levels,
        outline_colours,
        outline_legend_html,
        planes_png,
        slice_centre,
    )

    view = dose_view(result.dose_gy, ct_hu, rois)
    colours = outline_colours(view.stats)
    centre, reason = slice_centre(view)
    levels, source = isodose_levels(run_stats or {})
    planes = planes_png(view, centre, reason, isodose_gy=levels, colours=colours)
    return figure(
        img_tag(planes.png, "cumulative dose over CT, three planes")
        + dose_scale_html()
        + isodose_legend_html(levels)
        + outline_legend_html(planes.outlined, colours),
        "Cumulative absorbed dose (physical sum of all treatments on the current grid), colour bands as in "
        f"report.html; isodose lines at {', '.join(f'{x:g}' for x in levels)} Gy ({esc(source)}); cropped to the {esc(planes.crop)} plus {CROP_MARGIN_MM:g} mm; planes through "
        f"{esc(planes.reason)}"
        + ("; over the current CT (W400/L40)." if ct_hu is not None else "; no CT (black background)."),
        fig_id="fig-planes",
    )


def accumulate_report_html(
    result,
    *,
    rois=(),
    ct_hu=None,
    run_stats: dict | None = None,
    extra_sections: list[Section] | tuple[Section, ...] = (),
) -> str:
    """The report of an :class:`~dosimetry.accumulate.AccumulationResult` as one HTML string.

    Parameters
    ----------
    rois : sequence of Roi
        The current study's ROIs (outlined in the images).
    ct_hu : Image or None
        The current CT (under the dose).
    run_stats : dict or None
        The current run's ``stats.json`` (its dates, device and activities go into the header).
    extra_sections : list of Section
        Added after the standard sections and the treatment course (the ``course`` of the result's stats,
        when there is one).
    """
    from dosimetry.report.first_page import run_fields

    stats = result.stats
    n = len(stats["treatments"])
    fields = [("Treatments", esc(", ".join(t["label"] for t in stats["treatments"])))]
    fields += [(f"Current: {k.lower()}", v) for k, v in run_fields(run_stats or {}, json_paths=False)]
    header = ReportHeader(
        "Cumulative Y-90 dose",
        f"CUMULATIVE ({n} treatment{'s' if n != 1 else ''})",
        "cumulative",
        fields,
        esc(stats.get("note", "")),
    )
    warnings = stats.get("warnings") or []
    first = [
        _key_doses(stats),
        (
            f'<div class="box warn" id="warnings"><strong>{len(warnings)} warning{"s" if len(warnings) != 1 else ""}'
            "</strong><ul>" + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul></div>"
            if warnings
            else '<div class="box ok" id="warnings"><strong>No warnings.</strong></div>'
        ),
        _overview(result, list(rois), ct_hu, run_stats),
    ]
    sections = [
        Section("rois", "Dose per ROI and treatment", _roi_table(stats)),
        Section("treatments", "Treatments and alignment", _treatments(stats)),
    ]
    if "course" in stats:
        from dosimetry.report.course_section import course_section_html

        sections.append(Section("course", "Treatment course", course_section_html(stats["course"])))
    sections += list(extra_sections)
    return page_html(
        header,
        first,
        sections,
        footer="Every number is taken from <code>accumulate.json</code> (each cell names its path in "
        "<code>data-json</code>).",
    )
