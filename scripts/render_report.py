#!/usr/bin/env python3
"""Render a report HTML with headless Chromium: a full-page PNG screenshot and, optionally, a PDF.

    python scripts/render_report.py results/phantom/report.html --png report.png [--pdf report.pdf]
    python scripts/render_report.py results/phantom/report.html --first-page --png first_page.png

The page height is measured first (a copy of the HTML with a one-line script; the report itself has no
script), so the PNG holds the whole page. Needs Chromium on PATH (Debian: apt-get install chromium).
Exit codes: 0 success, 2 usage, 3 input missing, 8 output not written (no Chromium, or it failed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dosimetry.errors import DosimetryError
from dosimetry.report import html_to_pdf, html_to_png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path, help="report.html to render")
    parser.add_argument("--png", type=Path, help="screenshot to write (default: beside the HTML, .png)")
    parser.add_argument("--pdf", type=Path, help="also print the report to this PDF (A4)")
    parser.add_argument("--width-px", type=int, default=1400, help="window width (default 1400)")
    parser.add_argument("--height-px", type=int, help="window height (default: the page height, measured)")
    parser.add_argument("--chromium", help="Chromium executable (default: chromium on PATH)")
    parser.add_argument(
        "--first-page", action="store_true", help="screenshot only the first page (header, key doses, overview)"
    )
    args = parser.parse_args(argv)
    if not args.html.is_file():
        print(f"error: {args.html}: no such file", file=sys.stderr)
        return 3
    try:
        png = html_to_png(
            args.html,
            args.png or args.html.with_suffix(".png"),
            width_px=args.width_px,
            height_px=args.height_px,
            chromium=args.chromium,
            first_page=args.first_page,
        )
        print(f"screenshot: {png}")
        if args.pdf:
            print(f"pdf: {html_to_pdf(args.html, args.pdf, chromium=args.chromium)}")
    except DosimetryError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
