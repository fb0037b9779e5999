"""The "Treatment course" section: earlier treatments, their dose and BED, and the cumulative rows, as HTML.

:func:`course_section_html` turns the ``course`` dict (schema in :mod:`dosimetry.course`) into one
self-contained HTML fragment (a ``<section>`` with a table and the notes); every numeric cell names its
source in a ``data-json`` attribute, as in :mod:`dosimetry.report.html` (a path such as
``course/treatments/0/regions/normal_liver/bed_gy``; digits pick list elements by index), so a reader can
trace each printed value to ``accumulate.json``. :func:`write_course_page` wraps it in a minimal page
(``course.html`` of ``dosimetry accumulate``; the accumulate run has no other HTML report).
Only the standard library is used.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["course_section_html", "write_course_page"]

_REGIONS = (("normal_liver", "Normal liver"), ("tumor", "Tumour"), ("lung", "Lung"))
_CSS = (
    "body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0}"
    "th,td{border:1px solid #bbb;padding:.25em .5em}td.num{text-align:right;font-variant-numeric:tabular-nums}"
    "tr.total td{font-weight:bold;background:#f3f3f3}.kind{font-size:.85em;color:#555}"
)


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _num(path: str, value) -> str:
    shown = "\u2014" if value is None else f"{float(value):.1f}"
    return f'<td class="num" data-json="{_e(path)}">{shown}</td>'


def course_section_html(course: Mapping) -> str:
    """The HTML fragment of the ``course`` section: a table of treatments, the cumulative row, parameters, notes."""
    head = "".join(f'<th colspan="2">{label}</th>' for _, label in _REGIONS)
    sub = "".join("<th>dose (Gy)</th><th>BED (Gy)</th>" for _ in _REGIONS)
    rows = []
    for i, t in enumerate(course["treatments"]):
        cells = []
        for region, _ in _REGIONS:
            base = f"course/treatments/{i}/regions/{region}"
            value = t["regions"].get(region) or {}
            cells.append(_num(f"{base}/mean_gy", value.get("mean_gy")) + _num(f"{base}/bed_gy", value.get("bed_gy")))
        model = f"{_e(t['dose_rate_model'])}, T = {float(t['half_life_h']):.1f} h"
        own = [
            f"{label.lower()} {float(v['half_life_h']):.1f} h"
            for region, label in _REGIONS
            if (v := t["regions"].get(region)) and v.get("half_life_h") not in (None, t["half_life_h"])
        ]
        model += f" ({', '.join(own)})" if own else ""
        cycles = "" if t["cycles"] == 1 else f", {int(t['cycles'])} cycles"
        rows.append(
            f"<tr><td>{_e(t['label'])}</td><td>{_e(t['nuclide'])}</td><td>{_e(t['date'] or 'not given')}</td>"
            f"<td>{_e(t['source'])}{cycles}</td>"
            f'<td>{model}<br><span class="kind">{_e(t["half_life_source"])}</span></td>{"".join(cells)}</tr>'
        )
    total = []
    for region, _ in _REGIONS:
        value = course["cumulative"][region]
        base = f"course/cumulative/{region}"
        total.append(_num(f"{base}/dose_gy", value["dose_gy"]) + _num(f"{base}/bed_gy", value["bed_gy"]))
    rows.append(f'<tr class="total"><td colspan="5">cumulative</td>{"".join(total)}</tr>')
    params = []
    for region, label in _REGIONS:
        p = course["parameters"][region]
        if p["alpha_beta_gy"] is None:
            params.append(f"<li>{label}: no alpha/beta or repair half-time given (no BED)</li>")
        else:
            params.append(
                f"<li>{label}: alpha/beta {float(p['alpha_beta_gy']):g} Gy ({_e(p['alpha_beta_source'])}); "
                f"repair half-time {float(p['repair_half_time_h']):g} h ({_e(p['repair_half_time_source'])})</li>"
            )
    notes = "".join(f"<li>{_e(n)}</li>" for n in course["notes"])
    return (
        '<section class="course"><h2>Treatment course</h2>'
        f'<p class="kind">{_e(course["model"])}; means weighted by {_e(course["weighting"])}.</p>'
        "<table><thead><tr><th>treatment</th><th>nuclide</th><th>date</th><th>source</th><th>dose rate</th>"
        f'{head}</tr><tr><th colspan="5"></th>{sub}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
        f"<h3>Radiobiology parameters</h3><ul>{''.join(params)}</ul>"
        f"{f'<h3>Notes</h3><ul>{notes}</ul>' if notes else ''}</section>"
    )


def write_course_page(course: Mapping, path: str | os.PathLike) -> Path:
    """Write a minimal HTML page holding :func:`course_section_html` to ``path`` (inside an atomic output folder)."""
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Treatment course</title>'
        f"<style>{_CSS}</style></head><body>{course_section_html(course)}</body></html>\n"
    )
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path
