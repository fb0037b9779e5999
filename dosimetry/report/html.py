"""One self-contained HTML report per study: figures embedded as PNG (base64), CSS inline, no scripts.

Every number is formatted from ``result.stats`` -- the same dict that is written to ``stats.json`` -- and
each numeric table cell names its source in a ``data-json`` attribute (a path such as
``rois/@Tumor 1/mean_gy``: ``@name`` picks the list element with that ``name``, with "%" and "/" in
names percent-encoded; digits pick by index), so
tests and readers can trace every printed value to ``stats.json``. Every default the run assumed
(``stats['assumptions']``) is shown in a box at the very top, then every warning; notes of the clinical
sections are shown in their sections.

A PDF of the same HTML is made with headless Chromium (:func:`html_to_pdf`); :func:`html_to_png`
renders a full-page screenshot (used by ``scripts/render_report.py`` and the tests).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from dosimetry.errors import OutputError
from dosimetry.quantify.emission import report_title
from dosimetry.report.first_page import first_page_parts, run_header
from dosimetry.report.layout import (
    Section,
    badge,
    esc,
    figure,
    fmt,
    img_tag,
    key,
    num_cell,
    page_html,
    table,
    text_cell,
)
from dosimetry.report.overlay import (
    CROP_MARGIN_MM,
    dose_scale_html,
    isodose_legend_html,
    isodose_levels,
    lesion_png,
    outline_colours,
    outline_legend_html,
    planes_png,
    roi_boxes,
    slice_centre,
)
from dosimetry.report.svgplot import Curve, dvh_svg

__all__ = ["Section", "write_report", "render_report_html", "find_chromium", "html_to_png", "html_to_pdf"]

_LEVEL_LABEL = {"alert": "alert", "caution": "caution", "favourable": "favourable", "info": "info"}


# --- formatting (shared with every report: dosimetry.report.layout) -----------------------------------

_e, _key, _fmt, _text, _badge, _table = esc, key, fmt, text_cell, badge, table


def _num(path: str, value, digits: int | str = 1, *, cls: str = "num") -> str:
    """A numeric table cell carrying the stats.json path of its value."""
    return num_cell(path, value, digits, cls=cls)


def _dose_digits(value) -> int:
    return 2 if value is not None and abs(value) < 10 else 1


def _swatch(colour: str) -> str:
    return f'<span class="swatch" style="background:{colour}"></span>'


# --- sections -----------------------------------------------------------------------------------------


def _roi_table(stats: dict, colours: dict) -> str:
    rows = []
    for e in stats["rois"]:
        p = f"rois/@{_key(e['name'])}"
        derived = "derived" in e
        name = f"{_swatch(colours[e['name']])}{_e(e['name'])}" + (
            ' <span class="muted">(derived)</span>' if derived else ""
        )
        rows.append(
            f'<tr data-roi="{_e(e["name"])}" class="{"derived" if derived else ""}"><td class="name">{name}</td>'
            + _text(e["role"].replace("_", " "))
            + _num(f"{p}/volume_ml", e["volume_ml"], 1)
            + _num(f"{p}/mass_g", e["mass_g"], 1)
            + _num(f"{p}/activity_mbq", e["activity_mbq"], 1)
            + _num(f"{p}/mean_gy", e["mean_gy"], 1, cls="num key")
            + _num(f"{p}/std_gy", e["std_gy"], 1)
            + _num(f"{p}/min_gy", e["min_gy"], 1)
            + _num(f"{p}/median_gy", e["median_gy"], 1)
            + _num(f"{p}/max_gy", e["max_gy"], 1)
            + "</tr>"
        )
    return _table(
        [
            "ROI",
            "role",
            "volume<br>mL",
            "mass<br>g",
            "activity<br>MBq",
            "mean<br>Gy",
            "SD<br>Gy",
            "min<br>Gy",
            "median<br>Gy",
            "max<br>Gy",
        ],
        rows,
        table_id="roi-table",
        left=(0, 1),
    )


def _dvh_metrics_table(stats: dict, colours: dict) -> str:
    if not stats["rois"]:
        return ""
    keys_d = [k for k in stats["rois"][0] if re.fullmatch(r"D\d+", k)]
    keys_v = [k for k in stats["rois"][0] if re.fullmatch(r"V\d+", k)]
    rows = []
    for e in stats["rois"]:
        p = f"rois/@{_key(e['name'])}"
        cells = "".join(_num(f"{p}/{k}", e[k], 1) for k in keys_d + keys_v)
        rows.append(
            f'<tr data-roi="{_e(e["name"])}"><td class="name">{_swatch(colours[e["name"]])}{_e(e["name"])}</td>'
            f"{cells}</tr>"
        )
    headers = ["ROI"] + [f"{k}<br>Gy" for k in keys_d] + [f"{k}<br>%" for k in keys_v]
    return _table(headers, rows, table_id="dvh-table")


def _lesion_table(stats: dict, colours: dict) -> str:
    lesions = [e for e in stats["rois"] if e["role"] == "tumor" and "derived" not in e]
    if not lesions:
        return '<p class="muted">No tumour ROI.</p>'
    pv_first = next((e["partial_volume"] for e in lesions if e.get("partial_volume")), None)
    rb = {r["name"]: r for r in (stats.get("radiobiology") or {}).get("rois", [])}
    flags = (stats.get("flags") or {}).get("results", [])
    pvc = stats.get("partial_volume_correction")
    rows = []
    for e in lesions:
        p = f"rois/@{_key(e['name'])}"
        r = rb.get(e["name"], {})
        mine = [f for f in flags if f["roi"] == e["name"] and f["flag"]]
        badges = (
            " ".join(_badge(f["flag"], f"{f['set']}: {f['flag']}") for f in mine)
            or '<span class="muted">no flag</span>'
        )
        pv = e.get("partial_volume") or {}
        pv_badge = (_badge("caution", f"partial volume: {pv.get('reason')}") + " ") if pv.get("warning") else ""
        rows.append(
            f'<tr data-roi="{_e(e["name"])}"><td class="name">{_swatch(colours[e["name"]])}{_e(e["name"])}</td>'
            + _num(f"{p}/volume_ml", e["volume_ml"], 2)
            + _num(f"{p}/mean_gy", e["mean_gy"], 1, cls="num key")
            + (
                _num(f"{p}/mean_gy_pvc", e.get("mean_gy_pvc"), 1)
                + _num(f"{p}/partial_volume/recovery_coefficient", pv.get("recovery_coefficient"), 2)
                if pvc
                else ""
            )
            + _num(f"{p}/D70", e["D70"], 1)
            + _num(f"{p}/D90", e["D90"], 1)
            + _num(f"{p}/V100", e["V100"], 1)
            + _num(f"radiobiology/rois/@{_key(e['name'])}/bed_mean_gy", r.get("bed_mean_gy"), 1)
            + _num(f"radiobiology/rois/@{_key(e['name'])}/eud_gy", r.get("eud_gy"), 1)
            + _num(f"{p}/partial_volume/equivalent_diameter_mm", pv.get("equivalent_diameter_mm"), 1)
            + _num(f"{p}/partial_volume/ratio", pv.get("ratio"), 1)
            + f'<td class="flags">{pv_badge}{badges}</td></tr>'
        )
    note = (
        f'<p class="params">Partial-volume check: resolution {_fmt(pv_first["resolution_mm"], 1)} mm '
        f"({_e(pv_first['resolution_source'])}); a lesion under {_fmt(pv_first['min_volume_ml'], '.3g')} mL or with "
        f"a sphere-equivalent diameter under {_fmt(pv_first['min_ratio'], '.3g')} x the resolution is flagged "
        "(Soret et al., J Nucl Med 2007).</p>"
        if pv_first
        else ""
    )
    if pvc:
        curve = pvc["curve"]
        note += (
            f'<p class="params">Partial-volume correction: {_e(pvc["method"])}; recovery curve {_e(curve["file"])} '
            f"(sha256 {_e(curve['sha256'][:12])}&hellip;, {len(curve['points'])} spheres). The corrected mean is shown "
            "beside the measured one, which it does not replace.</p>"
        )
    return note + _table(
        [
            "lesion",
            "volume<br>mL",
            "mean<br>Gy",
            *(["mean PVC<br>Gy", "recovery<br>coefficient"] if pvc else []),
            "D70<br>Gy",
            "D90<br>Gy",
            "V100<br>%",
            "mean BED<br>Gy",
            "EUD<br>Gy",
            "sphere-equiv.<br>diameter mm",
            "diameter /<br>resolution",
            "partial volume, threshold flags",
        ],
        rows,
        table_id="lesion-table",
        left=(0, -1),
    )


def _tn_lung_table(stats: dict) -> str:
    tn = stats.get("tumor_to_normal") or {}
    lung = stats.get("lung") or {}
    burden = stats.get("tumor_burden") or {}
    burden_note = (
        f"{_fmt(burden.get('tumor_volume_ml'), 0)} mL of tumour in {_fmt(burden.get('liver_volume_ml'), 0)} mL of "
        f"liver; over {' and '.join(_fmt(x, '.3g') + '%' for x in burden.get('exceeds', [])) or 'no limit'} "
        "(limits 50% and 70%: Salem &amp; Thurston 2006, Kennedy 2007)"
        if burden.get("burden_percent") is not None
        else _e(burden.get("note") or "not computed")
    )
    burden_badge = (
        _badge("caution", f"over {_fmt(burden['exceeds'][-1], '.3g')}%") + " " if burden.get("exceeds") else ""
    )
    rows = [
        "<tr><th>Hepatic tumour burden (% of liver volume)</th>"
        + _num("tumor_burden/burden_percent", burden.get("burden_percent"), 1)
        + f"<td class='muted'>{burden_badge}{burden_note}</td></tr>",
        "<tr><th>T:N dose ratio</th>"
        + _num("tumor_to_normal/dose_ratio", tn.get("dose_ratio"), 2)
        + f"<td class='muted'>{_e(tn.get('tumor') or '')} / {_e(tn.get('normal') or '')}, mass-weighted mean doses</td></tr>",
        "<tr><th>T:N activity-concentration ratio</th>"
        + _num("tumor_to_normal/activity_ratio", tn.get("activity_ratio"), 2)
        + "<td class='muted'>(MBq/mL tumour) / (MBq/mL normal liver)</td></tr>",
        "<tr><th>Lung mean dose (Gy)</th>"
        + _num("lung/mean_gy", lung.get("mean_gy"), 1)
        + f"<td class='muted'>{_e(lung.get('roi') or 'no lung ROI')}, mass-weighted</td></tr>",
        "<tr><th>Lung voxel mean dose (Gy)</th>"
        + _num("lung/voxel_mean_gy", lung.get("voxel_mean_gy"), 1)
        + "<td class='muted'>volume-weighted</td></tr>",
        "<tr><th>Lung dose from the shunt fraction (Gy)</th>"
        + _num("lung/lsf_estimate_gy", lung.get("lsf_estimate_gy"), 1)
        + f"<td class='muted'>{_e(lung.get('lsf_formula') or '')}; lung mass "
        + (
            f"{_fmt(lung.get('lung_mass_kg'), 3)} kg ({_e(lung.get('lung_mass_source'))})"
            if lung.get("lung_mass_kg")
            else "n/a"
        )
        + (f"; {_e(lung['lung_roi_mass_note'])}" if lung.get("lung_roi_mass_note") else "")
        + "</td></tr>",
    ]
    return '<table class="kv" id="tn-lung-table"><tbody>' + "".join(rows) + "</tbody></table>"


def _radiobiology(stats: dict, colours: dict) -> str:
    rb = stats.get("radiobiology")
    if not rb:
        return '<p class="muted">Not computed.</p>'
    prm = rb["parameters"]
    rows = []
    for r in rb["rois"]:
        p = f"radiobiology/rois/@{_key(r['name'])}"
        rows.append(
            f'<tr data-roi="{_e(r["name"])}"><td class="name">{_swatch(colours.get(r["name"], "#999"))}{_e(r["name"])}</td>'
            + _num(f"{p}/alpha_beta_gy", r["alpha_beta_gy"], 1)
            + _num(f"{p}/voxel_mean_gy", r["voxel_mean_gy"], 1)
            + _num(f"{p}/bed_mean_gy", r["bed_mean_gy"], 1)
            + _num(f"{p}/bed_of_mean_gy", r["bed_of_mean_gy"], 1)
            + _num(f"{p}/bed_max_gy", r["bed_max_gy"], 1)
            + _num(f"{p}/eud_gy", r["eud_gy"], 1)
            + _num(f"{p}/eubed_gy", r["eubed_gy"], 1)
            + "</tr>"
        )
    table = _table(
        [
            "ROI",
            "&alpha;/&beta;<br>Gy",
            "mean dose<br>Gy (volume)",
            "mean BED<br>Gy",
            "BED of mean<br>Gy",
            "max BED<br>Gy",
            "EUD<br>Gy",
            "EUBED<br>Gy",
        ],
        rows,
        table_id="radiobiology-table",
    )
    params = (
        f'<p class="params">Repair half-time <span class="num" data-json="radiobiology/parameters/repair_half_time_h">'
        f"{_fmt(prm['repair_half_time_h'], 2)}</span> h; physical half-life "
        f'<span class="num" data-json="radiobiology/parameters/physical_half_life_h">{_fmt(prm["physical_half_life_h"], 1)}</span> h; '
        f'EUD &alpha; = <span class="num" data-json="radiobiology/parameters/eud_alpha_per_gy">'
        f"{_fmt(prm['eud_alpha_per_gy'], '.4g')}</span> Gy<sup>-1</sup>.</p>"
    )
    formulas = "".join(f"<li><code>{_e(v)}</code></li>" for v in rb["formulas"].values())
    notes = "".join(f"<li>{_e(n)}</li>" for n in rb.get("notes", []))
    return (
        params
        + table
        + f'<ul class="formulas">{formulas}</ul>'
        + (f'<div class="box note"><ul>{notes}</ul></div>' if notes else "")
    )


def _planning(stats: dict) -> str:
    pl = stats.get("planning")
    if not pl:
        return '<p class="muted">Not computed.</p>'
    rows = []
    for i, c in enumerate(pl["comparison"]):
        p = f"planning/comparison/{i}"
        rows.append(
            f"<tr><td>{_e(pl['models'][c['model']]['title'])}</td>{_text(c['quantity'])}{_text(c['roi'])}"
            + _num(f"{p}/predicted_gy", c["predicted_gy"], _dose_digits(c["predicted_gy"]))
            + _num(f"{p}/delivered_gy", c["delivered_gy"], _dose_digits(c["delivered_gy"]), cls="num key")
            + _num(f"{p}/predicted_over_delivered", c["predicted_over_delivered"], 2)
            + "</tr>"
        )
    comparison = (
        _table(
            ["model", "quantity", "ROI", "predicted<br>Gy", "delivered (voxel)<br>Gy", "predicted /<br>delivered"],
            rows,
            table_id="planning-table",
            left=(0, 1, 2),
        )
        if rows
        else '<p class="muted">No model could predict doses (see below).</p>'
    )
    m = pl["models"]
    mird, bsa, part = m["mird"], m["bsa"], m["partition"]
    detail_rows = [
        f"<tr><td>{_e(mird['title'])}</td>{_text(mird['status'])}"
        + _num("planning/models/mird/prescribed_activity_gbq", mird["prescribed_activity_gbq"], 3)
        + f"<td>target {_e(mird['target_roi'] or '')}, "
        + f"<span class='num' data-json='planning/models/mird/target_mass_kg'>{_fmt(mird['target_mass_kg'], 3)}</span> kg"
        + (
            f"; for {_fmt(mird['target_dose_gy'], 1)} Gy"
            if mird["target_dose_gy"]
            else "; no target dose given (--mird-target-gy)"
        )
        + f"<br><code>{_e(mird['formula'])}</code><br><span class='muted'>{_e(mird['source'])}</span></td></tr>",
        f"<tr><td>{_e(bsa['title'])}</td>{_text(bsa['status'])}"
        + _num("planning/models/bsa/prescribed_activity_gbq", bsa["prescribed_activity_gbq"], 3)
        + "<td>"
        + (
            f"BSA <span class='num' data-json='planning/models/bsa/bsa_m2'>{_fmt(bsa['bsa_m2'], 3)}</span> m&sup2;, "
            f"perfused fraction {_fmt(bsa['perfused_fraction'], 2)}, LSF factor {_fmt(bsa['lsf_factor'], 1)}; "
            f"administered / BSA activity <span class='num' data-json='planning/models/bsa/administered_over_prescribed'>"
            f"{_fmt(bsa['administered_over_prescribed'], 2)}</span><br>"
            if bsa["bsa_m2"]
            else ""
        )
        + f"<code>{_e(bsa['formula'])}</code><br><span class='muted'>{_e(bsa['source'])}</span></td></tr>",
        f"<tr><td>{_e(part['title'])}</td>{_text(part['status'])}"
        + _num("planning/models/partition/max_activity_gbq", part["max_activity_gbq"], 3)
        + "<td>"
        + (
            f"maximum activity for normal liver &le; {_fmt(part['normal_liver_limit_gy'], 0)} Gy and lung &le; "
            f"{_fmt(part['lung_limit_gy'], 0)} Gy (limited by {_e(part['limited_by'])}); "
            f"T:N <span class='num' data-json='planning/models/partition/tn_ratio'>{_fmt(part['tn_ratio'], 2)}</span> "
            f"({_e(part['tn_source'])}); lung mass {_fmt(part['lung_mass_kg'], 2)} kg ({_e(part['lung_mass_source'])})<br>"
            if part["max_activity_gbq"] is not None
            else ""
        )
        + f"<code>{_e(part['formula'])}</code><br><span class='muted'>{_e(part['source'])}</span></td></tr>",
    ]
    details = _table(
        ["model", "status", "activity<br>GBq", "details"],
        detail_rows,
        cls="models",
        table_id="models-table",
        left=(0, 1, 3),
    )
    a = pl["inputs"]["administered_activity_gbq"]
    head = (
        f'<p class="params">Administered activity <span class="num" data-json="planning/inputs/administered_activity_gbq">'
        f"{_fmt(a, 3)}</span> GBq; constant {_fmt(pl['constant_gy_kg_per_gbq'], 2)} Gy kg/GBq (published models). "
        "Activity column: MIRD = prescribed for the target dose, BSA = prescribed, partition = maximum within limits.</p>"
    )
    notes = "".join(f"<li>{_e(n)}</li>" for n in pl.get("notes", []))
    return (
        head
        + comparison
        + details
        + (f'<div class="box note"><ul>{notes}</ul></div>' if notes else "")
        + _lung_shunt(pl.get("lung_shunt"))
        + _prescription(pl.get("prescription"))
    )


def _lung_shunt(ls: dict | None) -> str:
    """Typed and image (MAA) lung shunt fractions, and which one is used."""
    if not ls:
        return ""
    image = ls.get("image") or {}
    parts = [
        "<p class='params' id='lung-shunt'>Lung shunt fraction: typed "
        f"<span class='num' data-json='planning/lung_shunt/typed'>{_fmt(ls.get('typed'), 3)}</span>, from the MAA "
        "counts "
        + (
            "<span class='num' data-json='planning/lung_shunt/image/lung_shunt_fraction'>"
            f"{_fmt(image['lung_shunt_fraction'], 3)}</span>"
            if image
            else "\u2014"
        )
    ]
    if image:
        parts.append(
            f" ({_e(image['method'])}; lung ROI {_e(image['lung_roi'])}, liver ROIs {_e(', '.join(image['liver_rois']))})"
        )
    parts.append(f"; used: {_e(ls.get('used') or 'none')}.")
    if ls.get("note"):
        parts.append(f" <span class='muted'>{_e(ls['note'])}</span>")
    return "".join(parts) + "</p>"


def _prescription(pr: dict | None) -> str:
    """The activities for the --target doses, from the predictive map, and the lung check."""
    if not pr:
        return ""
    metric = "mean dose" if pr["metric"] == "mean" else "D70"
    rows = []
    for i, v in enumerate(pr["volumes"]):
        p = f"planning/prescription/volumes/{i}"
        rows.append(
            f"<tr>{_text(v['roi'])}"
            + _num(f"{p}/target_dose_gy", v["target_dose_gy"], 1)
            + _num(f"{p}/planned_dose_gy", v["planned_dose_gy"], _dose_digits(v["planned_dose_gy"]))
            + _num(f"{p}/activity_share", v["activity_share"], 3)
            + _num(f"{p}/activity_gbq", v["activity_gbq"], 3, cls="num key")
            + "</tr>"
        )
    table = _table(
        ["target ROI", f"target {metric}<br>Gy", f"{metric} at planned<br>Gy", "share w", "activity<br>GBq"],
        rows,
        table_id="prescription-table",
    )
    lung = pr["lung"]
    alerts = [
        f"above {_fmt(lung[limit], 0)} Gy {what}"
        for key, limit, what in (
            ("exceeds_single", "single_limit_gy", "per treatment"),
            ("exceeds_cumulative", "cumulative_limit_gy", "cumulative"),
        )
        if lung[key]
    ]
    lung_text = (
        "<p class='params'>Total <span class='num' data-json='planning/prescription/total_activity_gbq'>"
        f"{_fmt(pr['total_activity_gbq'], 3)}</span> GBq (planned "
        f"{_fmt(pr['planned_activity_gbq'], 3)} GBq; the map stands for "
        f"<span class='num' data-json='planning/prescription/effective_activity_gbq'>"
        f"{_fmt(pr['effective_activity_gbq'], 3)}</span> GBq administered). Lung dose "
        f"<span class='num' data-json='planning/prescription/lung/lung_dose_gy'>{_fmt(lung['lung_dose_gy'], 1)}</span> Gy "
        f"({_e(lung['lung_dose_source'] or 'not available')}), cumulative "
        f"<span class='num' data-json='planning/prescription/lung/cumulative_lung_dose_gy'>"
        f"{_fmt(lung['cumulative_lung_dose_gy'], 1)}</span> Gy: "
        + (f"<strong>{_e('; '.join(alerts))}</strong>" if alerts else "within the lung limits")
        + "; largest total activity within them "
        f"<span class='num' data-json='planning/prescription/lung/max_activity_gbq'>{_fmt(lung['max_activity_gbq'], 3)}"
        "</span> GBq. " + "; ".join(f"{_e(name)}: {_e(d['status'])}" for name, d in pr["devices"].items()) + ".</p>"
    )
    notes = "".join(f"<li>{_e(n)}</li>" for n in pr.get("notes", []))
    return (
        "<h3>Activity for the target doses (from the predictive dose map)</h3>"
        + table
        + lung_text
        + f"<p class='muted'><code>{_e(pr['formula'])}</code></p>"
        + (f'<div class="box note"><ul>{notes}</ul></div>' if notes else "")
    )


def _flags(stats: dict) -> str:
    fl = stats.get("flags")
    if not fl:
        return '<p class="muted">Not evaluated.</p>'
    notes = "".join(f"<li>{_e(n)}</li>" for n in fl.get("notes") or [])
    notes = f'<div class="box note" id="flags-notes"><ul>{notes}</ul></div>' if notes else ""
    if not fl["results"]:
        return notes or '<p class="muted">No threshold set evaluated.</p>'
    rows = []
    for i, r in enumerate(fl["results"]):
        p = f"flags/results/{i}"
        if r["status"] == "met":
            result = _badge(r["flag"], _LEVEL_LABEL.get(r["flag"], r["flag"]))
        elif r["status"] == "not met":
            result = _badge("none", "not met")
        else:
            result = _badge("na", "not evaluated")
        note = r.get("note") or ""
        rows.append(
            f'<tr class="flag-{_e(r["flag"] or "none")}"><td>{_e(r["set"])}</td>{_text(r["roi"])}'
            f"{_text(r['quantity'])}"
            + _num(f"{p}/value", r["value"], 1)
            + f'<td class="cmp">{_e(r["comparison"])}</td>'
            + _num(f"{p}/threshold", r["threshold"], 1)
            + f"<td>{result}</td><td>{_e(r['meaning'])}"
            + (f"<br><span class='muted'>{_e(note)}</span>" if note else "")
            + "</td></tr>"
        )
    table = _table(
        ["set", "ROI", "quantity", "value", "", "threshold", "result", "meaning"],
        rows,
        table_id="flags-table",
        left=(0, 1, 2, 6, 7),
    )
    sets = "".join(
        f"<li><strong>{_e(s['name'])}</strong> &mdash; {_e(s['title'])} "
        f"<span class='muted'>(population: {_e(s['population'] or 'any')}; device: {_e(s['device'] or 'any')})</span>"
        f"<br>{_e(s['source'])}<br><span class='muted'>{_e(s['note'])}</span></li>"
        for s in fl["sets"]
    )
    counts = ", ".join(f"{v} {k}" for k, v in fl.get("counts", {}).items() if v) or "no rule met"
    selection = fl.get("selection")
    selection = ", ".join(selection) if isinstance(selection, list) else selection
    indication = f"indication {fl['indication']}; " if fl.get("indication") else ""
    device = f"device {fl['device']}; " if fl.get("device") else ""
    return (
        f'<p class="params">{_e(indication + device)}threshold sets: {_e(selection)}. Flags raised: {_e(counts)}. '
        "Thresholds come from the populations and devices named; they inform, they do not decide.</p>"
        + notes
        + table
        + f'<h3>Sources</h3><ul class="sources">{sets}</ul>'
    )


def _flatten(prefix: str, value, rows: list[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}/{k}" if prefix else str(k), v, rows)
        return
    label = _e(prefix.replace("/", " \u203a ").replace("_", " "))
    if isinstance(value, bool) or value is None or isinstance(value, str):
        rows.append(f"<tr><th>{label}</th>{_text(value if value is not None else None)}</tr>")
    elif isinstance(value, (int, float)):
        rows.append(f"<tr><th>{label}</th>" + _num(f"inputs/{prefix}", value, ".6g") + "</tr>")
    elif isinstance(value, (list, tuple)):
        if value and all(isinstance(v, dict) for v in value):
            for i, v in enumerate(value):
                _flatten(f"{prefix}/{i}", v, rows)
        else:
            rows.append(f"<tr><th>{label}</th>{_text(', '.join(str(v) for v in value))}</tr>")


def _inputs(stats: dict) -> str:
    rows: list[str] = []
    inputs = dict(stats.get("inputs") or {})
    roi_inputs = inputs.pop("rois", [])
    _flatten("", inputs, rows)
    if roi_inputs:
        rois = "; ".join(f"{r.get('name')} ({r.get('role')}): {r.get('source') or 'mask'}" for r in roi_inputs)
        rows.append(f"<tr><th>ROIs</th>{_text(rois)}</tr>")
    extra = (
        f"<tr><th>method</th>{_text(stats.get('method'))}</tr>"
        f"<tr><th>density source</th>{_text(stats.get('density_source'))}</tr>"
    )
    return '<table class="kv inputs" id="inputs-table"><tbody>' + extra + "".join(rows) + "</tbody></table>"


def _constants(stats: dict) -> str:
    rows = []
    for name, c in (stats.get("constants") or {}).items():
        value = c["value"]
        cell = (
            _num(f"constants/{name}/value", value, ".6g")
            if isinstance(value, (int, float))
            else _text(", ".join(str(v) for v in value) if isinstance(value, (list, tuple)) else value)
        )
        rows.append(f"<tr><td class='mono'>{_e(name)}</td>{cell}{_text(c.get('unit'))}{_text(c.get('source'))}</tr>")
    return _table(
        ["constant", "value", "unit", "source"], rows, table_id="constants-table", cls="constants", left=(0, 2, 3)
    )


def _lesion_panels(result, colours: dict, isodose_gy: tuple[float, ...]) -> str:
    """One panel per given tumour ROI: axial slice through its centre, its DVH (normal liver dashed for
    reference) and its numbers."""
    stats = result.stats
    lesions = [e for e in stats["rois"] if e["role"] == "tumor" and "derived" not in e]
    if not lesions:
        return '<p class="muted">No tumour ROI.</p>'
    names = {e["name"] for e in stats["rois"]}
    normal = "perfused_normal_liver" if "perfused_normal_liver" in names else "normal_liver"
    flags = (stats.get("flags") or {}).get("results", [])
    axis = np.asarray(result.dvh_dose_gy)
    panels = []
    boxes = roi_boxes(result)
    for e in lesions:
        name = e["name"]
        p = f"rois/@{_key(name)}"
        made = (
            lesion_png(result, name, isodose_gy=isodose_gy, colours=colours, boxes=boxes)
            if name in result.roi_weights
            else None
        )
        image = (
            img_tag(made[0], f"lesion {name}: three planes")
            if made
            else '<p class="muted">no voxel on the dose grid</p>'
        )
        curves = (
            [Curve(name, colours[name], axis, result.dvh_volume_percent[name])]
            if name in result.dvh_volume_percent
            else []
        )
        if normal in result.dvh_volume_percent:
            curves.append(
                Curve(normal, colours.get(normal, "#666"), axis, result.dvh_volume_percent[normal], dashed=True)
            )
        dvh = dvh_svg(curves, width=560, height=230, markers_gy=isodose_gy, title=f"DVH of {name}")
        mine = [f for f in flags if f["roi"] == name and f["flag"]]
        badges = " ".join(_badge(f["flag"], f"{f['set']}: {f['flag']}") for f in mine)
        pv = e.get("partial_volume") or {}
        if pv.get("warning"):
            badges = _badge("caution", "partial volume") + " " + badges
        numbers = _table(
            ["volume<br>mL", "mean<br>Gy", "D70<br>Gy", "D90<br>Gy", "V100<br>%", "max<br>Gy"],
            [
                "<tr>"
                + _num(f"{p}/volume_ml", e["volume_ml"], 2)
                + _num(f"{p}/mean_gy", e["mean_gy"], 1, cls="num key")
                + _num(f"{p}/D70", e["D70"], 1)
                + _num(f"{p}/D90", e["D90"], 1)
                + _num(f"{p}/V100", e["V100"], 1)
                + _num(f"{p}/max_gy", e["max_gy"], 1)
                + "</tr>"
            ],
            cls="lesion-numbers",
            left=(),
        ) + (f"<div>{badges}</div>" if badges else "")
        where = (
            f"; planes through its weighted centre, LPS ({made[1][0]:.1f}, {made[1][1]:.1f}, {made[1][2]:.1f}) mm"
            if made
            else ""
        )
        panels.append(
            figure(
                f"<div>{image}</div><div>{dvh}{numbers}</div>",
                f"{_swatch(colours[name])}<strong>{_e(name)}</strong>: axial, coronal and sagittal slices (outlines, "
                f"isodose lines and colours as above){where}; DVH with the normal liver dashed and the isodose "
                "levels marked.",
                cls="lesion",
                attrs=f' data-lesion="{_e(name)}"',
            )
        )
    return '<div class="lesions">' + "".join(panels) + "</div>"


def _dvh_all_svg(result, colours: dict, isodose_gy: tuple[float, ...]) -> str:
    derived = {e["name"] for e in result.stats["rois"] if "derived" in e}
    axis = np.asarray(result.dvh_dose_gy)
    curves = [
        Curve(e["name"], colours[e["name"]], axis, result.dvh_volume_percent[e["name"]], dashed=e["name"] in derived)
        for e in result.stats["rois"]
        if e["name"] in result.dvh_volume_percent
    ]
    return dvh_svg(curves, markers_gy=isodose_gy, title="cumulative DVH of every ROI")


def _detail_sections(result, colours: dict, isodose_gy: tuple[float, ...], dvh_html: str) -> list[Section]:
    stats = result.stats
    return [
        Section(
            "lesions",
            "Per lesion",
            _lesion_panels(result, colours, isodose_gy) + "<h3>All lesions</h3>" + _lesion_table(stats, colours),
        ),
        Section("dvh", "Dose-volume histograms", dvh_html),
        Section(
            "rois",
            "Dose per ROI",
            "<p class='params'>Mean = mass-weighted (energy / mass); SD, median and DVH metrics are "
            "volume-weighted. Activities at implant.</p>"
            + _roi_table(stats, colours)
            + "<h3>DVH metrics</h3><p class='params'>Dx: minimum dose to the hottest x % of the volume; Vx: % of "
            "the volume receiving at least x Gy.</p>" + _dvh_metrics_table(stats, colours),
        ),
        Section("tn-lung", "Tumour-to-normal ratio and lung", _tn_lung_table(stats)),
        Section("radiobiology", "Radiobiology", _radiobiology(stats, colours)),
        Section("planning", "Planning models: predicted against delivered", _planning(stats)),
        Section("flags", "Threshold flags", _flags(stats)),
        Section("inputs", "Inputs", _inputs(stats)),
        Section("constants", "Constants used", _constants(stats)),
    ]


REPORT_FOOTER = (
    "Every number in this report is taken from <code>stats.json</code> of the same run (each table cell names its "
    "source in a <code>data-json</code> attribute). Research software: check the results and the thresholds "
    "against your own protocol before clinical use."
)


def render_report_html(
    result,
    *,
    title: str | None = None,
    isodose_gy: tuple[float, ...] | None = None,
    extra_sections: list[Section] | tuple[Section, ...] = (),
) -> str:
    """The report of ``result`` as one HTML string (see :func:`write_report`).

    Parameters
    ----------
    isodose_gy : tuple of float or None
        Isodose lines drawn on the images and marked on the DVHs; None: the tumour and liver thresholds of
        the threshold sets evaluated, else :data:`~dosimetry.report.overlay.ISODOSE_GY` (EANM 2022); see
        :func:`~dosimetry.report.overlay.isodose_levels`.
    extra_sections : list of Section
        Sections added after the standard ones (e.g. a treatment course), each ``Section(id, title, html)``.
    """
    stats = result.stats
    colours = outline_colours(stats)
    if isodose_gy is None:
        isodose_gy, isodose_source = isodose_levels(stats)
    else:
        isodose_gy, isodose_source = tuple(float(x) for x in isodose_gy), "levels given"
    centre, reason = slice_centre(result)
    planes = planes_png(result, centre, reason, isodose_gy=isodose_gy, colours=colours)
    activity_file = ((stats.get("inputs") or {}).get("activity") or {}).get("file")
    title = title or (report_title(stats) + (f": {Path(activity_file).name}" if activity_file else ""))
    c = planes.centre_lps
    overview = figure(
        img_tag(planes.png, "dose over CT, three planes")
        + dose_scale_html()
        + isodose_legend_html(isodose_gy)
        + outline_legend_html(planes.outlined, colours),
        "Absorbed dose in colour bands at fixed levels (Gy, the same in every report, so normal liver is "
        "distinguishable from tumour) "
        + ("over the CT (window W400/L40)" if result.ct_hu is not None else "(no CT given: black background)")
        + f"; cropped to the {_e(planes.crop)} plus {CROP_MARGIN_MM:g} mm. Isodose lines at "
        f"{', '.join(f'{x:g}' for x in isodose_gy)} Gy ({_e(isodose_source)}). Planes through {_e(planes.reason)}, LPS "
        f"({c[0]:.1f}, {c[1]:.1f}, {c[2]:.1f}) mm. ROI outlines at 50 % occupancy, Okabe-Ito colours; radiological "
        "convention (patient right on the image left).",
        fig_id="fig-planes",
    )
    dvh_html = figure(
        _dvh_all_svg(result, colours, isodose_gy),
        "Cumulative DVH: % of each ROI's volume receiving at least the dose. Dashed: derived ROIs (unions, liver "
        "minus tumours); vertical lines: isodose levels.",
        fig_id="fig-dvh",
    )
    header = run_header(stats, title=title)
    return page_html(
        header,
        first_page_parts(stats, overview_figure=overview),
        [*_detail_sections(result, colours, isodose_gy, dvh_html), *extra_sections],
        footer=REPORT_FOOTER,
    )


def write_report(result, path: str | os.PathLike, *, title: str | None = None, **options) -> Path:
    """Write the self-contained HTML report of ``result`` to ``path`` (written to a temporary file, then renamed).

    Raises
    ------
    OutputError
        ``path`` cannot be written.
    """
    path = Path(path)
    text = render_report_html(result, title=title, **options)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as err:
        raise OutputError(f"cannot write the report {path}: {err.strerror or err}") from err
    return path


# --- headless Chromium --------------------------------------------------------------------------------

_CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
)


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable on PATH, or None."""
    for name in _CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _run_chromium(args: list[str], *, chromium: str | None, timeout_s: float) -> subprocess.CompletedProcess:
    exe = chromium or find_chromium()
    if exe is None:
        raise OutputError("headless Chromium not found; install it (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="dosimetry-chromium-") as profile:
        try:
            return subprocess.run(
                [exe, *_CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise OutputError(f"Chromium did not finish within {timeout_s:g} s") from err


def _page_height_px(
    html_path: Path, width_px: int, *, chromium: str | None, timeout_s: float, element_id: str | None = None
) -> int:
    """Height of the laid-out page (or the bottom of element ``element_id``), measured by a copy of the HTML
    with a one-line script (the report has none)."""
    text = html_path.read_text(encoding="utf-8")
    measure = (
        f"Math.ceil(document.getElementById('{element_id}').getBoundingClientRect().bottom+window.scrollY)+24"
        if element_id
        else "document.documentElement.scrollHeight"
    )
    probe = (
        "<script>document.addEventListener('DOMContentLoaded',()=>{document.body.setAttribute("
        f"'data-page-height',String({measure}));}});</script>"
    )
    with tempfile.TemporaryDirectory(prefix="dosimetry-probe-") as folder:
        copy = Path(folder) / "probe.html"
        copy.write_text(text.replace("</body>", probe + "</body>", 1), encoding="utf-8")
        proc = _run_chromium(
            [f"--window-size={width_px},1000", "--virtual-time-budget=5000", "--dump-dom", copy.resolve().as_uri()],
            chromium=chromium,
            timeout_s=timeout_s,
        )
    match = re.search(r'data-page-height="(\d+)"', proc.stdout)
    return int(match.group(1)) if match else 6000


def html_to_png(
    html_path: str | os.PathLike,
    png_path: str | os.PathLike,
    *,
    width_px: int = 1400,
    height_px: int | None = None,
    chromium: str | None = None,
    timeout_s: float = 180.0,
    first_page: bool = False,
) -> Path:
    """Full-page screenshot of an HTML file with headless Chromium (height measured when not given);
    ``first_page=True``: only down to the end of the report's first page (its ``#first-page`` block).

    Raises
    ------
    OutputError
        No Chromium, or it failed to write the PNG.
    """
    html_path, png_path = Path(html_path), Path(png_path)
    if height_px is None:
        height_px = _page_height_px(
            html_path, width_px, chromium=chromium, timeout_s=timeout_s, element_id="first-page" if first_page else None
        )
    png_path.unlink(missing_ok=True)
    proc = _run_chromium(
        [
            f"--window-size={width_px},{height_px}",
            "--virtual-time-budget=5000",
            f"--screenshot={png_path.resolve()}",
            html_path.resolve().as_uri(),
        ],
        chromium=chromium,
        timeout_s=timeout_s,
    )
    if not png_path.exists():
        raise OutputError(f"Chromium wrote no screenshot (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
    return png_path


def html_to_pdf(
    html_path: str | os.PathLike, pdf_path: str | os.PathLike, *, chromium: str | None = None, timeout_s: float = 180.0
) -> Path:
    """Print an HTML file to PDF with headless Chromium (A4, the report's print styles).

    Raises
    ------
    OutputError
        No Chromium, or it failed to write the PDF.
    """
    html_path, pdf_path = Path(html_path), Path(pdf_path)
    pdf_path.unlink(missing_ok=True)
    proc = _run_chromium(
        [
            "--no-pdf-header-footer",
            "--virtual-time-budget=5000",
            f"--print-to-pdf={pdf_path.resolve()}",
            html_path.resolve().as_uri(),
        ],
        chromium=chromium,
        timeout_s=timeout_s,
    )
    if not pdf_path.exists():
        raise OutputError(f"Chromium wrote no PDF (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
    return pdf_path
