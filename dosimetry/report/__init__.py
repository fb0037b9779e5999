"""The study report: one self-contained HTML file (figures embedded), optionally printed to PDF.

:func:`write_report` writes ``report.html`` from a :class:`~dosimetry.pipeline.DosimetryResult`;
:func:`html_to_pdf` and :func:`html_to_png` use headless Chromium. Figures are made in
:mod:`dosimetry.report.overlay` (numpy + Pillow) and :mod:`dosimetry.report.svgplot` (inline SVG).
"""

from dosimetry.report.html import find_chromium, html_to_pdf, html_to_png, render_report_html, write_report

__all__ = ["find_chromium", "html_to_pdf", "html_to_png", "render_report_html", "write_report"]
