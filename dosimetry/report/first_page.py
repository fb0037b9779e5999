"""The first page of a run's report, from its ``stats.json`` dict: the header and the one-minute summary.

Header: the dose kind (PREDICTIVE from Tc-99m MAA or DELIVERED Y-90, prominent), scan and treatment (implant)
date/time, the study date when recorded, device, indication, administered activity and the activity in the
image at implant time, method. No patient names or identifiers (the run records none).

Summary: the three doses (tumour, normal liver, lung) as mean and D70, T:N, tumour burden, threshold flags of
the indication and device, assumptions and warnings. Every number names its ``stats.json`` path
(``data-json``), like the detail tables.
"""

from __future__ import annotations

from dosimetry.quantify.emission import is_predictive, report_title
from dosimetry.report.layout import ReportHeader, badge, esc, fmt, key, num_cell

__all__ = ["dose_kind", "run_fields", "run_header", "first_page_parts", "key_doses_html"]


def dose_kind(stats: dict) -> tuple[str, str]:
    """(label, css class): "PREDICTIVE (Tc-99m MAA)" or "DELIVERED (Y-90)"."""
    return ("PREDICTIVE (Tc-99m MAA)", "predictive") if is_predictive(stats) else ("DELIVERED (Y-90)", "delivered")


def _when(text: str | None) -> str:
    if not text:
        return '<span class="muted">not recorded</span>'
    return esc(str(text).replace("T", " ")[:16])


def run_fields(stats: dict, *, json_paths: bool = True) -> list[tuple[str, str]]:
    """Header fields (name, HTML value) of a run: dates, device, indication, activities, method.

    ``json_paths=False`` prints the numbers without ``data-json`` (for pages of another JSON file)."""
    if not stats:
        return []
    inputs = stats.get("inputs") or {}
    dicom = inputs.get("dicom") or {}
    options = inputs.get("options") or {}
    check = stats.get("activity_check") or {}
    flags = stats.get("flags") or {}

    def number(path: str, value, digits) -> str:
        return num_cell(path, value, digits, tag="span") if json_paths else fmt(value, digits)

    missing = '<span class="muted">\u2014</span>'
    fields: list[tuple[str, str]] = []
    if dicom.get("study_date"):
        fields.append(("Study date", _when(dicom["study_date"])))
    fields.append(("Scan", _when(dicom.get("activity_time") or options.get("scan_time"))))
    fields.append(("Treatment (implant)", _when(dicom.get("implant_time") or options.get("implant_time"))))
    delay = (inputs.get("activity") or {}).get("scan_delay_h")
    fields.append(("Scan after implant", f"{fmt(delay, 1)} h" if delay is not None else missing))
    device = flags.get("device") or (stats.get("planning") or {}).get("device")
    fields.append(("Device", esc(device) if device else '<span class="muted">not given (--device)</span>'))
    fields.append(
        ("Indication", esc(flags["indication"]) if flags.get("indication") else '<span class="muted">not given</span>')
    )
    in_check = check.get("administered_activity_gbq") is not None
    admin = check.get("administered_activity_gbq") if in_check else options.get("administered_activity_gbq")
    path = "activity_check/administered_activity_gbq" if in_check else "inputs/options/administered_activity_gbq"
    source = check.get("administered_activity_source")
    fields.append(
        (
            "Administered activity",
            number(path, admin, 3) + " GBq" + (f' <span class="muted">({esc(source)})</span>' if source else "")
            if admin is not None
            else '<span class="muted">not given</span>',
        )
    )
    at_implant = check.get("image_activity_at_implant_gbq")
    fields.append(
        (
            "Activity in image at implant",
            number("activity_check/image_activity_at_implant_gbq", at_implant, 3) + " GBq"
            if at_implant is not None
            else missing,
        )
    )
    residual = check.get("residual_fraction", options.get("residual_fraction"))
    fields.append(("Residual fraction", fmt(residual, 3) if residual is not None else missing))
    fields.append(("Method", f"{esc(stats.get('method'))}, density {esc(stats.get('density_source'))}"))
    return fields


def run_header(stats: dict, *, title: str | None = None) -> ReportHeader:
    """The header of a run's report from its stats dict."""
    label, cls = dose_kind(stats)
    fields = run_fields(stats)
    sw = stats.get("software") or {}
    fields.append(("Software", f"{esc(sw.get('name', ''))} {esc(sw.get('version', ''))}"))
    subtitle = (
        "Predictive Y-90 voxel dosimetry from the Tc-99m MAA distribution, scaled to the planned activity"
        if cls == "predictive"
        else "Post-treatment Y-90 voxel dosimetry"
    )
    return ReportHeader(title or report_title(stats), label, cls, fields, subtitle)


def _roi(stats: dict, name: str | None) -> dict | None:
    return next((e for e in stats["rois"] if e["name"] == name), None) if name else None


def key_doses_html(stats: dict) -> str:
    """Table of the three doses: tumour (all tumours), normal liver (perfused if given), lung; mean and D70."""
    tn = stats.get("tumor_to_normal") or {}
    names = {e["name"] for e in stats["rois"]}
    tumour = tn.get("tumor") or next((e["name"] for e in stats["rois"] if e["role"] == "tumor"), None)
    normal = (
        "perfused_normal_liver"
        if "perfused_normal_liver" in names
        else ("normal_liver" if "normal_liver" in names else None)
    )
    lung = (stats.get("lung") or {}).get("roi")
    rows = []
    for label, name in (("Tumour", tumour), ("Normal liver", normal), ("Lung", lung)):
        entry = _roi(stats, name)
        p = f"rois/@{key(name)}" if entry else ""
        rows.append(
            f'<tr data-dose="{esc(label)}"><th>{esc(label)}</th>'
            + (
                num_cell(f"{p}/mean_gy", entry["mean_gy"], 1) + num_cell(f"{p}/D70", entry["D70"], 1)
                if entry
                else '<td class="num na">\u2014</td><td class="num na">\u2014</td>'
            )
            + f'<td class="limit">{esc(name.replace("_", " ")) if entry else "no ROI"}</td></tr>'
        )
    lung_stats = stats.get("lung") or {}
    if lung_stats.get("lsf_estimate_gy") is not None:
        rows.append(
            '<tr data-dose="Lung (LSF)"><th>Lung, from the LSF</th>'
            + num_cell("lung/lsf_estimate_gy", lung_stats["lsf_estimate_gy"], 1)
            + '<td class="num na"></td>'
            + f'<td class="limit" title="{esc(lung_stats.get("lsf_formula") or "")}">shunt-fraction estimate</td></tr>'
        )
    return (
        '<table class="kv key-doses" id="key-doses"><thead><tr><th class="l">absorbed dose</th><th class="l">mean Gy</th>'
        '<th class="l">D70 Gy</th><th class="l">ROI</th></tr></thead><tbody>' + "".join(rows) + "</tbody></table>"
    )


def _ratios_html(stats: dict) -> str:
    tn = stats.get("tumor_to_normal") or {}
    burden = stats.get("tumor_burden") or {}
    exceeds = burden.get("exceeds") or []
    burden_badge = (
        " " + badge("caution", f"over {fmt(exceeds[-1], '.3g')}%")
        if exceeds
        else (" " + badge("favourable", "under 50%") if burden.get("burden_percent") is not None else "")
    )
    return (
        '<table class="kv" id="key-ratios"><tbody>'
        "<tr><th>T:N dose ratio</th>"
        + num_cell("tumor_to_normal/dose_ratio", tn.get("dose_ratio"), 2)
        + f"<td class='muted'>{esc(tn.get('tumor') or '')} / {esc(tn.get('normal') or '')}</td></tr>"
        "<tr><th>Tumour burden (% of liver)</th>"
        + num_cell("tumor_burden/burden_percent", burden.get("burden_percent"), 1)
        + f"<td>{burden_badge}</td></tr></tbody></table>"
    )


def _flags_summary(stats: dict) -> str:
    fl = stats.get("flags") or {}
    if not fl.get("evaluated", bool(fl.get("results"))):
        notes = "; ".join(fl.get("notes") or []) or "threshold flags not evaluated"
        return f'<div class="box note" id="key-flags"><strong>Threshold flags:</strong> {esc(notes)}</div>'
    raised = [(i, r) for i, r in enumerate(fl.get("results") or []) if r.get("flag")]
    what = f"indication {esc(fl.get('indication') or 'any')}, device {esc(fl.get('device') or 'any')}"
    if not raised:
        return f'<div class="box ok" id="key-flags"><strong>Threshold flags</strong> ({what}): none raised.</div>'
    items = "".join(
        f"<li>{badge(r['flag'])} {esc(r['roi'])} {esc(r['quantity'])} "
        f'<span class="num" data-json="flags/results/{i}/value">{fmt(r["value"], 1)}</span> {esc(r["comparison"])} '
        f'<span class="num" data-json="flags/results/{i}/threshold">{fmt(r["threshold"], 1)}</span> '
        f'<span class="muted">({esc(r["set"])}: {esc(r["meaning"])})</span></li>'
        for i, r in raised
    )
    return f'<div class="box note" id="key-flags"><strong>Threshold flags</strong> ({what})<ul>{items}</ul></div>'


def _assumed_and_warnings(stats: dict) -> str:
    from dosimetry.defaults import format_assumption

    out = []
    assumed = stats.get("assumptions") or []
    if assumed:
        items = "".join(
            f'<li data-assumption="{i}"><strong>ASSUMED:</strong> {esc(format_assumption(a))}</li>'
            for i, a in enumerate(assumed)
        )
        out.append(
            f'<div class="box assumed" id="assumptions"><strong>{len(assumed)} value{"s" if len(assumed) > 1 else ""}'
            " assumed, not given</strong> &mdash; the results depend on them; give them to remove this box"
            f"<ul>{items}</ul></div>"
        )
    warnings = stats.get("warnings") or []
    if warnings:
        items = "".join(f"<li>{esc(w)}</li>" for w in warnings)
        out.append(
            f'<div class="box warn" id="warnings"><strong>{len(warnings)} warning{"s" if len(warnings) > 1 else ""}'
            f"</strong><ul>{items}</ul></div>"
        )
    else:
        out.append('<div class="box ok" id="warnings"><strong>No warnings.</strong></div>')
    return "".join(out)


def first_page_parts(stats: dict, *, overview_figure: str = "") -> list[str]:
    """The first page's fragments in reading order: doses and ratios, flags, assumptions and warnings, then
    the overview image."""
    return [
        '<div class="fp-grid"><div>' + key_doses_html(stats) + "</div><div>" + _ratios_html(stats) + "</div></div>",
        _flags_summary(stats),
        _assumed_and_warnings(stats),
        overview_figure,
    ]
