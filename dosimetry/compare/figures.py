"""Figures of a comparison as PNG bytes: Bland-Altman plot and predicted-vs-delivered scatter.

Only :class:`matplotlib.figure.Figure` (never ``pyplot``) with the Agg canvas, as in :mod:`dosimetry.report`.
"""

from __future__ import annotations

import io

import numpy as np

_ROLE_MARKERS = {
    "tumor": ("o", "#d62728"),
    "liver": ("s", "#1f77b4"),
    "normal_liver": ("D", "#2ca02c"),
    "lung": ("^", "#9467bd"),
}


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _points(entries: list[dict], metric: str):
    rows = [
        (e[metric]["predicted"], e[metric]["delivered"], e.get("role") or "other", e["delivered_roi"], e.get("case_id"))
        for e in entries
        if e["in_agreement"] and e[metric]["predicted"] is not None and e[metric]["delivered"] is not None
    ]
    return rows


def _scatter_by_role(ax, rows, xs, ys, label_points: bool):
    for role in sorted({r[2] for r in rows}):
        marker, colour = _ROLE_MARKERS.get(role, ("x", "#7f7f7f"))
        idx = [i for i, r in enumerate(rows) if r[2] == role]
        ax.scatter(np.asarray(xs)[idx], np.asarray(ys)[idx], marker=marker, color=colour, label=role, zorder=3)
    if label_points:
        for x, y, r in zip(xs, ys, rows):
            ax.annotate(r[3], (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)


def bland_altman_png(entries: list[dict], metric: str, analysis: dict | None, *, unit: str = "Gy") -> bytes:
    """Differences (delivered - predicted) against pair means, with the bias and the limits of agreement."""
    from matplotlib.figure import Figure

    rows = _points(entries, metric)
    fig = Figure(figsize=(6.0, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    means = [(p + d) / 2 for p, d, *_ in rows]
    diffs = [d - p for p, d, *_ in rows]
    _scatter_by_role(ax, rows, means, diffs, label_points=len(rows) <= 12)
    if analysis:
        for value, style, text in (
            (analysis["bias"], "-", f"bias {analysis['bias']:.1f}"),
            (analysis["loa_upper"], "--", f"+1.96 SD {analysis['loa_upper']:.1f}"),
            (analysis["loa_lower"], "--", f"-1.96 SD {analysis['loa_lower']:.1f}"),
        ):
            ax.axhline(value, linestyle=style, color="black", linewidth=1)
            ax.annotate(text, (1.0, value), xycoords=("axes fraction", "data"), ha="right", va="bottom", fontsize=8)
    ax.axhline(0.0, color="grey", linewidth=0.6, linestyle=":")
    ax.set_xlabel(f"mean of predicted and delivered {metric} ({unit})")
    ax.set_ylabel(f"delivered - predicted {metric} ({unit})")
    ax.set_title(f"Bland-Altman: {metric} (n = {len(rows)})")
    if rows:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _png(fig)


def scatter_png(entries: list[dict], metric: str, *, unit: str = "Gy") -> bytes:
    """Delivered against predicted, with the identity line."""
    from matplotlib.figure import Figure

    rows = _points(entries, metric)
    fig = Figure(figsize=(5.0, 4.6))
    ax = fig.add_subplot(1, 1, 1)
    xs = [p for p, *_ in rows]
    ys = [d for _, d, *_ in rows]
    _scatter_by_role(ax, rows, xs, ys, label_points=len(rows) <= 12)
    top = max([*xs, *ys, 1.0]) * 1.08
    ax.plot([0, top], [0, top], color="grey", linewidth=0.8, label="identity")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel(f"predicted {metric} ({unit}), Tc-99m MAA")
    ax.set_ylabel(f"delivered {metric} ({unit}), Y-90")
    ax.set_title(f"Predicted vs delivered: {metric}")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return _png(fig)


__all__ = ["bland_altman_png", "scatter_png"]
