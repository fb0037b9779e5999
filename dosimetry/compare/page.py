"""``compare.html``: one self-contained page (tables and embedded PNGs) of a comparison's ``compare.json``.

Every number shown comes from the stats dict written as ``compare.json``; nothing is computed here.
"""

from __future__ import annotations

import base64
import html
import math

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:0.6em 0 1.2em}th,td{border:1px solid #bbb;padding:3px 7px;text-align:right}
th{background:#eee}td.l,th.l{text-align:left}.warn{background:#fff4ce;padding:0.5em 1em;border-left:4px solid #e0a800}
figure{display:inline-block;margin:0.4em}
@media print{figure,table{break-inside:avoid}}
"""


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
    return "<table>" + "".join(rows) + "</table>"


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
    return "<table>" + "".join(rows) + "</table>"


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
    return "<table>" + "".join(rows) + "</table>"


def comparison_page(stats: dict, figures: dict[str, bytes]) -> str:
    """The HTML page of ``stats`` (``compare.json``) with ``figures`` (file name -> PNG bytes) embedded."""
    cohort = "cases" in stats
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>Predicted vs delivered dose</title><style>{_CSS}</style></head><body>",
        "<h1>Predicted (Tc-99m MAA) vs delivered (Y-90) dose</h1>",
        f"<p>Mode: <b>{html.escape(stats['mode'])}</b>. Differences: {html.escape(stats['difference'])}.</p>",
    ]
    if cohort:
        parts.append(f"<p>{len(stats['cases'])} case(s).</p>")
    else:
        runs = stats["runs"]
        parts.append(
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
            + "</table>"
        )
        parts.append(f"<p>Alignment: {html.escape(stats['alignment']['alignment'])}</p>")
    if stats["warnings"]:
        parts.append(
            "<div class='warn'><b>Warnings</b><ul>"
            + "".join(f"<li>{html.escape(w)}</li>" for w in stats["warnings"])
            + "</ul></div>"
        )
    parts.append("<h2>Per ROI</h2>" + _roi_table(stats["rois"], cohort))
    if not cohort:
        parts.append("<h2>Study</h2>" + _study_table(stats["study"]))
    parts.append(
        "<h2>Agreement</h2><p>Bland-Altman of delivered - predicted: bias, 95 % limits of agreement "
        "(bias +- 1.96 SD) and their CIs; unions (tumors_all, lungs_all) are not counted.</p>"
    )
    parts.append(_agreement_table(stats["agreement"]))
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
        parts.append("<h3>Across cases</h3><table>" + "".join(rows) + "</table>")
    for name, png in figures.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,{data}'><figcaption>{html.escape(name)}</figcaption></figure>"
        )
    parts.append("</body></html>\n")
    return "\n".join(parts)


__all__ = ["comparison_page"]
