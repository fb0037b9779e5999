"""``cohort_analysis.html``: one self-contained page of a cohort analysis (figures embedded as PNG)."""

from __future__ import annotations

import base64
from html import escape

from dosimetry.cohort.api import CohortAnalysis

__all__ = ["cohort_page"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.figures img { width: 32%; min-width: 18em; margin-right: 1%; }
.warn { color: #8a4b00; }
"""


def _num(value, fmt: str = ".3g") -> str:
    if value is None:
        return "-"
    return format(value, fmt)


def _ci(pair, fmt: str = ".3g") -> str:
    return "-" if pair is None else f"{pair[0]:{fmt}} - {pair[1]:{fmt}}"


def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i in numeric else ''}>{escape(str(c))}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _metric_section(m, figures: dict[str, bytes]) -> str:
    d = m.to_dict()
    fit = m.logistic
    rows = [
        ["lesions (responders / non-responders)", f"{m.n_lesions} ({m.n_responders} / {m.n_lesions - m.n_responders})"],
        ["responders: median (IQR), Gy", f"{m.responders_median_gy:.1f} ({_ci(m.responders_iqr_gy, '.1f')})"],
        [
            "non-responders: median (IQR), Gy",
            f"{m.non_responders_median_gy:.1f} ({_ci(m.non_responders_iqr_gy, '.1f')})",
        ],
        ["Mann-Whitney U, two-sided p", _num(m.mann_whitney_p, ".2g")],
        ["ROC AUC (95% CI)", f"{m.auc:.3f} ({_ci(m.auc_ci95)})"],
        ["Youden threshold, Gy (95% CI)", f"{m.threshold_gy:.1f} ({_ci(m.threshold_ci95_gy, '.1f')})"],
        ["  sensitivity / specificity", f"{m.sensitivity:.2f} / {m.specificity:.2f}"],
        ["no lesion responded below, Gy", f"{m.no_response_below_gy:.1f} ({m.n_below} lesions below)"],
        ["every lesion responded above, Gy", f"{m.all_response_above_gy:.1f} ({m.n_above} lesions above)"],
    ]
    if fit.intercept is not None:
        rows += [
            [
                "logistic slope per Gy (95% CI), p",
                f"{fit.slope_per_gy:.4g} ({_ci(fit.slope_ci95, '.3g')}), p = {fit.slope_p_value:.2g}",
            ],
            ["logistic D50, Gy (95% CI, delta method)", f"{_num(fit.d50_gy, '.1f')} ({_ci(fit.d50_ci95_gy, '.1f')})"],
        ]
    else:
        rows.append(["logistic fit", fit.reason])
    boot = d["bootstrap"]
    if boot.get("resamples"):
        rows.append(
            [
                "bootstrap",
                f"{boot['used']} of {boot['resamples']} resamples of {boot['unit']}s used (seed {boot['seed']})"
                + (f"; {boot['note']}" if boot.get("note") else "")
                + (f"; {boot['caution']}" if boot.get("caution") else ""),
            ]
        )
    images = "".join(
        f'<img alt="{escape(name)} of {escape(m.metric)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        for name, png in figures.items()
    )
    return f"<h2>{escape(m.label)}</h2>" + _table(["", "value"], rows) + f'<div class="figures">{images}</div>'


def cohort_page(result: CohortAnalysis, figures: dict[str, dict[str, bytes]]) -> str:
    """The HTML page of ``result``; ``figures[metric][name]`` are the PNGs of :mod:`dosimetry.cohort.figures`."""
    summary = result.to_dict()
    crit = result.criterion
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Cohort dose-response ({escape(crit.name)})</title>"
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Cohort dose-response: {escape(crit.name)}</h1>",
        f"<p>Response by {escape(crit.name)} ({escape(crit.reference)}) on the {escape(crit.quantity)} "
        f"({escape(crit.unit)}); responder = CR or PR. Inputs: {escape(result.inputs['cohort'])}, "
        f"{escape(result.inputs['responses'])}.</p>",
    ]
    for w in result.warnings:
        parts.append(f"<p class='warn'>warning: {escape(w)}</p>")
    for n in result.notes:
        parts.append(f"<p>note: {escape(n)}</p>")
    cats = summary["lesions"]["categories"]
    pcats = summary["patients"]["categories"]
    parts.append(
        _table(
            ["", "n", "CR", "PR", "SD", "PD", "NE"],
            [
                ["lesions", summary["lesions"]["n"], cats["CR"], cats["PR"], cats["SD"], cats["PD"], "-"],
                ["patients", summary["patients"]["n"], pcats["CR"], pcats["PR"], pcats["SD"], pcats["PD"], pcats["NE"]],
            ],
            numeric={1, 2, 3, 4, 5, 6},
        )
    )
    for key, m in result.metrics.items():
        parts.append(_metric_section(m, figures.get(key, {})))
    parts.append("<h2>Lesions</h2>")
    parts.append(
        _table(
            ["case", "ROI", "mean Gy", "category", "rule"],
            [[x.case_id, x.roi, f"{x.mean_gy:.1f}", x.category, x.rule] for x in result.lesions],
            numeric={2},
        )
    )
    parts.append("<h2>Patients</h2>")
    parts.append(
        _table(
            ["case", "target lesions", "category", "rule"],
            [[p.case_id, " ".join(p.lesions), p.category, p.rule] for p in result.patients],
        )
    )
    parts.append("</body></html>\n")
    return "\n".join(parts)
