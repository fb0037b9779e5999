"""Page machinery shared by every report (``report.html`` of a run, ``compare.html``, the accumulate report).

One page = a header (title, a prominent PREDICTIVE / DELIVERED / ... label, the study's dates, device and
activities), a first page meant to be read in one minute (key doses, flags, warnings), then detail sections.
The sections are a list of :class:`Section` (id, title, HTML fragment), so a caller inserts extra sections
(e.g. the treatment course of an accumulate run) without touching the layout.

Print (PDF through headless Chromium): A4, "page X of Y" in the bottom margin (CSS ``@page`` margin boxes,
Chromium >= 131), the first page alone on its sheet, figures and table rows never split, table headers
repeated on every page.

Formatting helpers (:func:`esc`, :func:`num_cell`, :func:`fmt`, :func:`table`) are shared too: each numeric
cell names its ``stats.json``/``compare.json`` path in a ``data-json`` attribute.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from datetime import datetime, timezone

__all__ = [
    "PAGE_CSS",
    "ReportHeader",
    "Section",
    "badge",
    "esc",
    "figure",
    "fmt",
    "img_tag",
    "key",
    "num_cell",
    "page_html",
    "table",
    "text_cell",
]


# --- formatting ---------------------------------------------------------------------------------------


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def key(name: str) -> str:
    """An ROI name as a ``data-json`` path segment ("%" and "/" percent-encoded)."""
    return str(name).replace("%", "%25").replace("/", "%2F")


def fmt(value, digits: int | str) -> str:
    if value is None:
        return "\u2014"
    if isinstance(digits, str):  # a format spec such as ".4g"
        return format(float(value), digits)
    return f"{float(value):.{digits}f}"


def num_cell(path: str, value, digits: int | str = 1, *, cls: str = "num", tag: str = "td") -> str:
    """A numeric cell (or span, ``tag="span"``) carrying the JSON path of its value."""
    na = " na" if value is None else ""
    return f'<{tag} class="{cls}{na}" data-json="{esc(path)}">{fmt(value, digits)}</{tag}>'


def text_cell(value, *, cls: str = "") -> str:
    shown = "\u2014" if value is None or value == "" else value
    return f'<td class="{cls}">{esc(shown)}</td>' if cls else f"<td>{esc(shown)}</td>"


def badge(level: str | None, text: str | None = None) -> str:
    level = level or "none"
    return f'<span class="badge b-{esc(level)}">{esc(text or level)}</span>'


def table(
    headers: list[str], rows: list[str], *, cls: str = "", table_id: str = "", left: tuple[int, ...] = (0,)
) -> str:
    head = "".join(
        f'<th class="l">{h}</th>' if i in left or i - len(headers) in left else f"<th>{h}</th>"
        for i, h in enumerate(headers)
    )
    ident = f' id="{table_id}"' if table_id else ""
    return f'<table class="{cls}"{ident}><thead><tr>{head}</tr></thead><tbody>' + "".join(rows) + "</tbody></table>"


def img_tag(png: bytes, alt: str) -> str:
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def figure(body: str, caption: str, *, fig_id: str = "", cls: str = "", attrs: str = "") -> str:
    """A figure that is never split across pages; ``caption`` is HTML."""
    ident = f' id="{fig_id}"' if fig_id else ""
    klass = f' class="{cls}"' if cls else ""
    return f"<figure{ident}{klass}{attrs}>{body}<figcaption>{caption}</figcaption></figure>"


# --- page ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportHeader:
    """The header: ``label`` is the prominent dose kind (e.g. "DELIVERED (Y-90)"), ``label_class`` its style
    (``predictive``, ``delivered``, ``cumulative``, ``compare``); ``fields`` (name, HTML value) pairs."""

    title: str
    label: str
    label_class: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    subtitle: str = ""


@dataclass(frozen=True)
class Section:
    """A detail section: ``html`` is a fragment (no ``<section>``), placed under an ``<h2>`` of ``title``."""

    id: str
    title: str
    html: str


def header_html(header: ReportHeader) -> str:
    fields = "".join(
        f'<div class="hf"><span class="hk">{esc(k)}</span><span class="hv">{v}</span></div>' for k, v in header.fields
    )
    sub = f'<div class="sub">{header.subtitle}</div>' if header.subtitle else ""
    return (
        f'<header id="report-header"><div class="title-row"><h1>{esc(header.title)}</h1>'
        f'<span class="kind kind-{esc(header.label_class)}" id="dose-kind">{esc(header.label)}</span></div>'
        f'{sub}<div class="header-fields">{fields}</div></header>'
    )


def page_html(
    header: ReportHeader,
    first_page: list[str],
    sections: list[Section],
    *,
    footer: str = "",
    extra_css: str = "",
) -> str:
    """The whole self-contained HTML page (no scripts, no external resources)."""
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = "".join(f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2>{s.html}</section>' for s in sections)
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(header.title)}</title><style>{PAGE_CSS}{extra_css}</style></head><body><main>",
            header_html(header),
            '<div class="first-page" id="first-page">' + "".join(first_page) + "</div>",
            body,
            f"<footer>{footer} Report generated {generated}.</footer>",
            "</main></body></html>",
        ]
    )


PAGE_CSS = """
:root{--ink:#1d2330;--muted:#6b7385;--line:#d9dde5;--head:#23395d;--soft:#f4f6fa}
*{box-sizing:border-box}
body{margin:0;background:#e9ecf2;color:var(--ink);font:14px/1.45 "Liberation Sans",Arial,Helvetica,sans-serif}
main{max-width:1280px;margin:0 auto;background:#fff;padding:28px 40px 40px;box-shadow:0 0 12px rgba(0,0,0,.08)}
header{border-bottom:3px solid var(--head);padding-bottom:10px;margin-bottom:14px}
.title-row{display:flex;align-items:center;gap:18px;flex-wrap:wrap}
h1{font-size:24px;margin:0;color:var(--head)}
.kind{font-size:18px;font-weight:bold;letter-spacing:.05em;padding:4px 14px;border-radius:4px;border:3px solid}
.kind-delivered{color:#0b5d1e;border-color:#0b5d1e;background:#e6f4ea}
.kind-predictive{color:#7a3e00;border-color:#c26100;background:#fff0dc}
.kind-cumulative{color:#3b1f6e;border-color:#5b3a9e;background:#efe9fa}
.kind-compare{color:#23395d;border-color:#23395d;background:#e8eef8}
.sub{color:var(--muted);font-size:13px;margin-top:4px}
.header-fields{display:grid;grid-template-columns:repeat(3,1fr);gap:2px 22px;margin-top:8px;font-size:13px}
.hf{display:flex;gap:8px}.hk{color:var(--muted);min-width:9.5em}.hv{font-weight:600}
h2{font-size:18px;color:var(--head);margin:30px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:18px 0 6px;color:var(--head)}
section{break-inside:auto}
.key-doses{width:auto;min-width:70%;font-size:15px}
.key-doses td.num{font-size:18px;font-weight:bold;color:var(--head)}
.key-doses td.limit{font-size:12.5px;color:var(--muted)}
.fp-grid{display:grid;grid-template-columns:1fr 1fr;gap:8px 24px}
.box{border-radius:6px;padding:10px 14px;margin:12px 0}
.box ul{margin:6px 0 0 18px;padding:0}
.box.warn{background:#fff6e0;border:1px solid #e8c56a;border-left:5px solid #d29a00}
.box.ok{background:#eef7ee;border:1px solid #b9dcb9}
.box.note{background:var(--soft);border:1px solid var(--line);font-size:13px}
.box.assumed{background:#fde8e6;border:2px solid #c0392b;border-left:8px solid #c0392b;font-size:14px}
.box.assumed li{margin:3px 0}
figure{margin:10px 0 4px;break-inside:avoid;page-break-inside:avoid;text-align:center}
figure img{max-width:100%;height:auto;border:1px solid var(--line);border-radius:4px}
#fig-planes img{border:none;border-radius:0}
figcaption{font-size:12.5px;color:var(--muted);margin-top:4px;text-align:left}
.legend{font-size:12.5px;margin:4px 0;text-align:left;display:flex;flex-wrap:wrap;gap:4px 14px;align-items:center}
.legend-title{color:var(--muted)}
.legend-item{display:inline-flex;align-items:center;gap:5px;white-space:nowrap}
.outline-swatch{display:inline-block;width:22px;height:11px;border:3px solid;outline:1px solid #000;background:#7f7f7f}
.dose-scale{display:flex;align-items:stretch;gap:0;font-size:11.5px;margin:6px 0;text-align:left}
.dose-scale .band{flex:1;height:20px;position:relative;opacity:.85}
.dose-scale .band i{position:absolute;left:2px;top:2px;font-style:normal;color:#000}
.band-title,.band-note{padding:2px 8px;color:var(--muted);white-space:nowrap}
.lesions{display:block}
figure.lesion{display:grid;grid-template-columns:1fr 1fr;gap:6px 16px;text-align:left;border:1px solid var(--line);
 border-radius:6px;padding:8px;margin:10px 0;align-items:start}
figure.lesion img{width:100%;max-width:610px}
figure.lesion figcaption{grid-column:1 / span 2}
figure.lesion table{width:auto;font-size:12.5px}
figure.lesion svg.dvh{max-width:560px;display:block}
svg.dvh{max-width:100%;height:auto}
table{border-collapse:collapse;width:100%;margin:8px 0 6px;font-size:13px}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
thead{display:table-header-group}
thead th{background:var(--head);color:#fff;font-weight:600;text-align:right;font-size:12px;line-height:1.25}
thead th.l{text-align:left}
tbody tr:nth-child(even){background:#f8f9fb}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.key{font-weight:bold}
td.na{color:#aab}
td.name{white-space:nowrap;font-weight:600}
tr.derived td.name{font-weight:normal;font-style:italic}
table.kv{width:auto;min-width:60%}
table.kv td.num{text-align:left}
table.kv th{text-align:left;font-weight:600;background:none;color:var(--ink);padding-right:24px}
table.inputs{font-size:12.5px}
table.inputs td{word-break:break-all}
table.models td:nth-child(2){width:16%}
table.models td:nth-child(4){font-size:12.5px}
table.constants td:nth-child(4){font-size:12px;color:var(--muted)}
.muted{color:var(--muted)}
.mono,code{font-family:"DejaVu Sans Mono",Consolas,monospace;font-size:12px}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:7px;border:1px solid #333;vertical-align:-1px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:11.5px;font-weight:600;white-space:nowrap;margin:1px 0}
.b-alert{background:#fde0df;color:#a0191b;border:1px solid #f1a7a5}
.b-caution{background:#fff1cc;color:#8a5a00;border:1px solid #ecd08a}
.b-favourable{background:#dff3e2;color:#1d6b2c;border:1px solid #a8d8b1}
.b-info{background:#e3ecfb;color:#23467f;border:1px solid #b3c7ea}
.b-none{background:#f0f1f4;color:#6b7385;border:1px solid #dde0e6}
.b-na{background:#fff;color:#9aa1b0;border:1px dashed #cfd3db}
td.cmp{text-align:center;color:var(--muted)}
.params{font-size:13px;color:#374052}
ul.formulas{font-size:12.5px;color:#374052}
ul.sources li{margin-bottom:8px;font-size:13px}
footer{margin-top:30px;font-size:12px;color:var(--muted);border-top:1px solid var(--line);padding-top:8px}
@page{size:A4;margin:12mm 12mm 16mm 12mm;
 @bottom-right{content:"page " counter(page) " of " counter(pages);font:10px "Liberation Sans",Arial,sans-serif;color:#555}
 @bottom-left{content:"Y-90 dosimetry report";font:10px "Liberation Sans",Arial,sans-serif;color:#555}}
@media print{body{background:#fff;font-size:12px}main{box-shadow:none;padding:0;max-width:none}
 .first-page{break-after:page}
 h2{break-after:avoid}h3{break-after:avoid}table{font-size:10.5px}tr{break-inside:avoid}
 figure,.box,table.kv,.key-doses{break-inside:avoid}
 .header-fields{font-size:10.5px;grid-template-columns:repeat(3,auto)}
 .first-page .box{font-size:10.5px;padding:5px 10px;margin:6px 0}.first-page .box ul{margin-top:2px}
 .key-doses{font-size:12px}.key-doses td.num{font-size:14px}.key-doses th,.key-doses td{padding:3px 6px}
 table.inputs,table.constants{font-size:8.5px}table.inputs th,table.inputs td,table.constants td{padding:1px 4px}
 table.inputs th{font-size:8.5px}ul.sources li{font-size:10px;margin-bottom:4px}
 #fig-planes img{max-height:78mm;width:auto}#fig-planes figcaption{font-size:10px}
}
"""
