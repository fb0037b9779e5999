"""``compare.html``: one self-contained page (tables and embedded PNGs) of a comparison's ``compare.json``.

Every number shown comes from the stats dict written as ``compare.json`` (and, for the header's dates and
activities, from each run's own ``stats.json`` when given); nothing is computed here. The page uses the
report layout of :mod:`dosimetry.report.layout` (header, one-minute first page, sections, print with page
numbers), like ``report.html``.
"""

from __future__ import annotations

import html
import math


def _fmt(value, digits: int = 1, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, str):
        return html.escape(value)
    text = f"{value:.{digits}f}"
    return text + (" %" if percent else "")


def _row(cells, left: int = 1) -> str:
    return (
        "<tr>"
        + "".join(f"<td class='l'>{c}</td>" if i < left else f"<td>{c}</td>" for i, c in enumerate(cells))
        + "</tr>"
    )


def _head(cells, left: int = 1) -> str:
    return (
        "<tr>"
        + "".join(f"<th class='l'>{c}</th>" if i < left else f"<th>{c}</th>" for i, c in enumerate(cells))
        + "</tr>"
    )


def _roi_table(entries: list[dict], cohort: bool) -> str:
    lead = ["case"] if cohort else []
    head = lead + [
        "predicted ROI",
        "delivered ROI",
        "role",
        "predicted mean Gy",
        "delivered mean Gy",
        "diff Gy",
        "diff %",
        "predicted D70 Gy",
        "delivered D70 Gy",
        "diff Gy",
        "diff %",
    ]
    rows = [_head(head, len(lead) + 3)]
    for e in entries:
        m, d = e["mean_gy"], e["D70"]
        cells = ([html.escape(e.get("case_id", ""))] if cohort else []) + [
            html.escape(e["predicted_roi"]),
            html.escape(e["delivered_roi"]),
            html.escape(str(e.get("role"))),
            _fmt(m["predicted"]),
            _fmt(m["delivered"]),
            _fmt(m["difference"]),
            _fmt(m["difference_percent"], percent=True),
            _fmt(d["predicted"]),
            _fmt(d["delivered"]),
            _fmt(d["difference"]),
            _fmt(d["difference_percent"], percent=True),
        ]
        rows.append(_row(cells, len(lead) + 3))
    return "<table><thead>" + rows[0] + "</thead><tbody>" + "".join(rows[1:]) + "</tbody></table>"


def _study_table(study: dict) -> str:
    rows = [_head(["quantity", "predicted", "delivered", "difference", "diff %"])]
    for key, label, digits in (
        ("tn_ratio", "T:N dose ratio", 2),
        ("lung_mean_gy", "lung mean dose (Gy)", 1),
        ("lsf_image", "lung shunt fraction (image)", 3),
    ):
        v = study[key]
        rows.append(
            _row(
                [
                    label,
                    _fmt(v["predicted"], digits),
                    _fmt(v["delivered"], digits),
                    _fmt(v["difference"], digits),
                    _fmt(v["difference_percent"], percent=True),
                ]
            )
        )
    s = study["lsf_stated"]
    rows.append(
        _row(["lung shunt fraction (stated in the run)", _fmt(s["predicted"], 3), _fmt(s["delivered"], 3), "-", "-"])
    )
    return "<table><thead>" + rows[0] + "</thead><tbody>" + "".join(rows[1:]) + "</tbody></table>"


def _agreement_table(agreement: dict) -> str:
    rows = [
        _head(
            [
                "set",
                "metric",
                "n",
                "bias",
                "bias 95% CI",
                "LoA (1.96 SD)",
                "LoA % of mean",
                "Pearson r",
                "Spearman rho",
                "Lin CCC",
            ],
            2,
        )
    ]
    for set_name, content in agreement.items():
        for metric, a in content.items():
            if metric == "rois":
                continue
            ba, bp, c = a["bland_altman"], a["bland_altman_percent"], a["correlation"]
            rows.append(
                _row(
                    [
                        html.escape(set_name),
                        html.escape(metric),
                        str(a["n"]),
                        _fmt(ba and ba["bias"]),
                        f"{_fmt(ba['bias_ci'][0])} to {_fmt(ba['bias_ci'][1])}" if ba else "-",
                        f"{_fmt(ba['loa_lower'])} to {_fmt(ba['loa_upper'])}" if ba else "-",
                        f"{_fmt(bp['loa_lower'])} to {_fmt(bp['loa_upper'])} %" if bp else "-",
                        _fmt(c and c["pearson_r"], 3),
                        _fmt(c and c["spearman_rho"], 3),
                        _fmt(c and c["lin_ccc"], 3),
                    ],
                    2,
                )
            )
    return "<table><thead>" + rows[0] + "</thead><tbody>" + "".join(rows[1:]) + "</tbody></table>"


def _pick(entries: list[dict], role: str, preferred: tuple[str, ...]) -> dict | None:
    for name in preferred:
        hit = next((e for e in entries if e["delivered_roi"] == name), None)
        if hit is not None:
            return hit
    return next((e for e in entries if e.get("role") == role), None)


def _key_doses(stats: dict) -> str:
    """The three doses, predicted and delivered, mean and D70 (single pair only)."""
    rows = []
    entries = stats["rois"]
    for label, role, preferred in (
        ("Tumour", "tumor", ("tumors_all",)),
        ("Normal liver", "normal_liver", ("perfused_normal_liver", "normal_liver")),
        ("Lung", "lung", ("lungs_all",)),
    ):
        e = _pick(entries, role, preferred)
        if e is None:
            rows.append(
                f'<tr data-dose="{label}"><th>{label}</th>' + "<td>-</td>" * 5 + "<td class='limit'>no ROI</td></tr>"
            )
            continue
        m, d = e["mean_gy"], e["D70"]
        rows.append(
            f'<tr data-dose="{label}"><th>{label}</th><td class="num">{_fmt(m["predicted"])}</td>'
            f'<td class="num">{_fmt(m["delivered"])}</td><td class="num">{_fmt(m["difference_percent"], percent=True)}</td>'
            f'<td class="num">{_fmt(d["predicted"])}</td><td class="num">{_fmt(d["delivered"])}</td>'
            f"<td class='limit'>{html.escape(e['delivered_roi'])}</td></tr>"
        )
    head = (
        "<thead><tr><th class='l'>absorbed dose</th><th>predicted mean Gy</th><th>delivered mean Gy</th>"
        "<th>diff</th><th>predicted D70 Gy</th><th>delivered D70 Gy</th><th class='l'>ROI</th></tr></thead>"
    )
    return f'<table class="kv key-doses" id="key-doses">{head}<tbody>' + "".join(rows) + "</tbody></table>"


_HEADER_FIELDS = ("Scan", "Treatment (implant)", "Device", "Administered activity", "Activity in image at implant")


def _header(stats: dict, run_stats: dict[str, dict] | None):
    from dosimetry.report.first_page import run_fields
    from dosimetry.report.layout import ReportHeader

    fields = [("Mode", html.escape(stats["mode"]))]
    if "cases" in stats:
        fields.append(("Cases", str(len(stats["cases"]))))
    else:
        fields.append(("Alignment", html.escape(stats["alignment"]["alignment"])))
        for which, run in stats["runs"].items():
            fields.append((f"{which.capitalize()} run", html.escape(f"{run['emission']}, {run['method']}")))
            for name, value in run_fields((run_stats or {}).get(which) or {}, json_paths=False):
                if name in _HEADER_FIELDS:
                    fields.append((f"{which.capitalize()}: {name.lower()}", value))
    return ReportHeader(
        "Predicted vs delivered dose",
        "PREDICTIVE (Tc-99m MAA) vs DELIVERED (Y-90)",
        "compare",
        fields,
        f"Differences: {html.escape(stats['difference'])}.",
    )


def comparison_page(
    stats: dict,
    figures: dict[str, bytes],
    *,
    run_stats: dict[str, dict] | None = None,
    image_sections=(),
    extra_sections=(),
) -> str:
    """The HTML page of ``stats`` (``compare.json``) with ``figures`` (file name -> PNG bytes) embedded.

    ``run_stats`` (``{"predicted": stats, "delivered": stats}`` of the two runs' ``stats.json``) adds their
    dates and activities to the header; ``image_sections`` (the dose images of
    :func:`dosimetry.compare.images.image_sections`) follow the runs table; ``extra_sections`` (:class:`~dosimetry.report.layout.Section`) are
    added at the end.
    """
    from dosimetry.report.layout import Section, figure, img_tag, page_html

    cohort = "cases" in stats
    first = []
    if not cohort:
        first.append(_key_doses(stats))
        study = stats["study"]["tn_ratio"]
        first.append(
            f"<p>T:N dose ratio: predicted {_fmt(study['predicted'], 2)}, delivered {_fmt(study['delivered'], 2)}.</p>"
        )
    if stats["warnings"]:
        first.append(
            "<div class='box warn' id='warnings'><b>Warnings</b><ul>"
            + "".join(f"<li>{html.escape(w)}</li>" for w in stats["warnings"])
            + "</ul></div>"
        )
    else:
        first.append("<div class='box ok' id='warnings'><b>No warnings.</b></div>")
    sections = []
    if not cohort:
        runs = stats["runs"]
        sections.append(
            Section(
                "runs",
                "Runs",
                "<table>"
                + _head(["run", "folder", "dose", "method", "frame of reference"])
                + "".join(
                    _row(
                        [
                            k,
                            html.escape(r["folder"]),
                            html.escape(r["emission"]),
                            html.escape(str(r["method"])),
                            html.escape(r["frame_of_reference_uid"] or "not recorded"),
                        ]
                    )
                    for k, r in runs.items()
                )
                + "</table>",
            )
        )
    sections.extend(image_sections)
    sections.append(Section("per-roi", "Per ROI", _roi_table(stats["rois"], cohort)))
    if not cohort:
        sections.append(Section("study", "Study", _study_table(stats["study"])))
    agreement = (
        "<p>Bland-Altman of delivered - predicted: bias, 95 % limits of agreement "
        "(bias +- 1.96 SD) and their CIs; unions (tumors_all, lungs_all) are not counted.</p>"
        + _agreement_table(stats["agreement"])
    )
    if cohort:
        rows = [_head(["quantity", "n", "bias", "LoA (1.96 SD)", "Pearson r", "Lin CCC"])]
        for key, a in stats["study_agreement"].items():
            ba, c = a["bland_altman"], a["correlation"]
            rows.append(
                _row(
                    [
                        key,
                        str(a["n"]),
                        _fmt(ba and ba["bias"], 3),
                        f"{_fmt(ba['loa_lower'], 3)} to {_fmt(ba['loa_upper'], 3)}" if ba else "-",
                        _fmt(c and c["pearson_r"], 3),
                        _fmt(c and c["lin_ccc"], 3),
                    ]
                )
            )
        agreement += (
            "<h3>Across cases</h3><table><thead>" + rows[0] + "</thead><tbody>" + "".join(rows[1:]) + "</tbody></table>"
        )
    sections.append(Section("agreement", "Agreement", agreement))
    sections.append(
        Section(
            "figures",
            "Figures",
            "".join(
                figure(img_tag(png, name), html.escape(name), fig_id=f"fig-{html.escape(name.rsplit('.', 1)[0])}")
                for name, png in figures.items()
            ),
        )
    )
    sections.extend(extra_sections)
    return (
        page_html(
            _header(stats, run_stats),
            first,
            sections,
            footer="Every number is taken from <code>compare.json</code> (and the runs' <code>stats.json</code>).",
        )
        + "\n"
    )


__all__ = ["comparison_page"]
