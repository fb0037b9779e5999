"""Cumulative DVH plots as inline SVG (no matplotlib): crisp in print, a few kB, milliseconds to make.

:func:`dvh_svg` draws curves of % volume against dose with axes, grid, a legend and optional vertical
marker lines (isodose levels); every curve is a ``<polyline data-roi="...">`` so tests can find it.
"""

from __future__ import annotations

import html
import math

import numpy as np

__all__ = ["Curve", "dvh_svg"]


class Curve:
    """One DVH curve: ``dose_gy`` (increasing) and ``volume_percent`` (same length)."""

    __slots__ = ("name", "colour", "dashed", "dose_gy", "volume_percent")

    def __init__(self, name: str, colour: str, dose_gy, volume_percent, *, dashed: bool = False):
        self.name, self.colour, self.dashed = name, colour, dashed
        self.dose_gy = np.asarray(dose_gy, np.float64)
        self.volume_percent = np.asarray(volume_percent, np.float64)


def _nice_step(span: float, target: int) -> float:
    raw = span / max(target, 1)
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for m in (1, 2, 2.5, 5, 10):
        if m * power >= raw:
            return m * power
    return 10 * power


def _thin(x: np.ndarray, y: np.ndarray, n: int = 240) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n`` points (the curve's last point kept)."""
    if x.size <= n:
        return x, y
    keep = np.unique(np.r_[np.linspace(0, x.size - 1, n).astype(int), x.size - 1])
    return x[keep], y[keep]


def dvh_svg(
    curves: list[Curve],
    *,
    width: int = 900,
    height: int = 300,
    x_max_gy: float | None = None,
    markers_gy: tuple[float, ...] = (),
    legend: bool = True,
    title: str = "cumulative DVH",
) -> str:
    """An SVG of the curves; x from 0 to ``x_max_gy`` (default: where the last curve reaches 0.5 %)."""
    left, right, top, bottom = 52, (170 if legend else 14), 10, 38
    pw, ph = width - left - right, height - top - bottom
    if x_max_gy is None:
        ends = []
        for c in curves:
            above = np.flatnonzero(c.volume_percent > 0.5)
            if above.size:
                ends.append(c.dose_gy[min(above[-1] + 1, c.dose_gy.size - 1)])
        x_max_gy = max(ends) if ends else 1.0
    x_max_gy = max(float(x_max_gy), 1e-6)
    step = _nice_step(x_max_gy, 8)
    x_max_gy = math.ceil(x_max_gy / step) * step

    def sx(x):
        return left + pw * np.clip(x, 0, x_max_gy) / x_max_gy

    def sy(y):
        return top + ph * (1 - np.clip(y, 0, 100) / 100)

    parts = [
        f'<svg class="dvh" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{html.escape(title, quote=True)}">',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#999"/>',
    ]
    for k in range(int(round(x_max_gy / step)) + 1):
        x = sx(k * step)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" stroke="#e3e3e3"/>')
        parts.append(f'<text x="{x:.1f}" y="{top + ph + 14}" font-size="11" text-anchor="middle">{k * step:g}</text>')
    for y_pct in range(0, 101, 20):
        y = sy(y_pct)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#e3e3e3"/>')
        parts.append(f'<text x="{left - 5}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{y_pct}</text>')
    for level in markers_gy:
        if 0 < level <= x_max_gy:
            x = sx(level)
            parts.append(
                f'<line class="marker" data-gy="{level:g}" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + ph}" '
                'stroke="#555" stroke-dasharray="3,3"/>'
                f'<text x="{x + 3:.1f}" y="{top + 11}" font-size="10" fill="#555">{level:g}</text>'
            )
    for c in curves:
        x, y = _thin(c.dose_gy, c.volume_percent)
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(sx(x), sy(y)))
        dash = ' stroke-dasharray="6,4"' if c.dashed else ""
        parts.append(
            f'<polyline data-roi="{html.escape(c.name, quote=True)}" points="{points}" fill="none" '
            f'stroke="#333" stroke-width="3.2" opacity="{0 if c.dashed else 0.55}"/>'
            f'<polyline points="{points}" fill="none" stroke="{c.colour}" stroke-width="2"{dash}/>'
        )
    parts.append(
        f'<text x="{left + pw / 2}" y="{height - 6}" font-size="12" text-anchor="middle">absorbed dose (Gy)</text>'
        f'<text x="13" y="{top + ph / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 13 {top + ph / 2})">volume (%)</text>'
    )
    if legend:
        for k, c in enumerate(curves):
            y = top + 8 + 17 * k
            dash = ' stroke-dasharray="6,4"' if c.dashed else ""
            parts.append(
                f'<line x1="{left + pw + 12}" y1="{y}" x2="{left + pw + 36}" y2="{y}" stroke="{c.colour}" '
                f'stroke-width="3"{dash}/><text x="{left + pw + 42}" y="{y + 4}" font-size="11">'
                f"{html.escape(c.name)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)
