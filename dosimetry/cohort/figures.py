"""Figures of the dose-response analysis of one dose metric, as PNG bytes.

Three per metric: the ROC curve with the Youden point; responders against non-responders (box plot and the
lesions, with the thresholds); the logistic dose-response curve over the lesions. Only
:class:`matplotlib.figure.Figure` and the Agg canvas are used (never ``pyplot``), as in :mod:`dosimetry.compare.figures`.
The horizontal scatter of points is a fixed function of their order (no random state).
"""

from __future__ import annotations

import io

import numpy as np

from dosimetry.cohort.dose_response import MetricAnalysis

__all__ = ["FIGURES", "groups_png", "logistic_png", "roc_png"]

_RESPONDER = "#1b7837"
_NON_RESPONDER = "#b2182b"
_DPI = 110


def _figure(width_in: float = 5.0, height_in: float = 4.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), layout="constrained")


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def _ci(pair, fmt: str) -> str:
    return "" if pair is None else f" (95% CI {pair[0]:{fmt}}-{pair[1]:{fmt}})"


def _spread(n: int, width: float = 0.25) -> np.ndarray:
    """Deterministic horizontal offsets in [-width, width] for n points."""
    if n <= 1:
        return np.zeros(n)
    return width * (((np.arange(n) * 0.618033988749895) % 1.0) * 2 - 1)


def roc_png(m: MetricAnalysis) -> bytes:
    """ROC curve of ``m`` with the chance diagonal and the Youden-optimal point."""
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1, label="chance")
    ax.plot(
        m.fpr,
        m.tpr,
        color="#2166ac",
        linewidth=2,
        drawstyle="default",
        label=f"AUC {m.auc:.3f}{_ci(m.auc_ci95, '.2f')}",
    )
    ax.plot(
        [1 - m.specificity],
        [m.sensitivity],
        "o",
        color="#d6604d",
        label=f"Youden: >= {m.threshold_gy:.0f} Gy (sens {m.sensitivity:.2f}, spec {m.specificity:.2f})",
    )
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel="1 - specificity", ylabel="sensitivity")
    ax.set_title(f"ROC: response by {m.label}", fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    return _png(fig)


def _threshold_lines(ax, m: MetricAnalysis, *, vertical: bool) -> None:
    line = ax.axvline if vertical else ax.axhline
    line(
        m.threshold_gy,
        color="#d6604d",
        linestyle="--",
        linewidth=1.2,
        label=f"Youden threshold {m.threshold_gy:.0f} Gy",
    )
    line(
        m.no_response_below_gy,
        color="0.35",
        linestyle=":",
        linewidth=1,
        label=f"no response below {m.no_response_below_gy:.0f} Gy",
    )
    line(
        m.all_response_above_gy,
        color="0.35",
        linestyle="-.",
        linewidth=1,
        label=f"all responded above {m.all_response_above_gy:.0f} Gy",
    )


def groups_png(m: MetricAnalysis) -> bytes:
    """Responders and non-responders: box plots of the metric with every lesion, and the thresholds."""
    fig = _figure()
    ax = fig.add_subplot()
    data = [m.dose_gy[~m.responder], m.dose_gy[m.responder]]
    ax.boxplot(data, positions=[0, 1], widths=0.5, showfliers=False, medianprops={"color": "black"})
    for pos, values, colour in ((0, data[0], _NON_RESPONDER), (1, data[1], _RESPONDER)):
        ax.plot(pos + _spread(len(values)), values, "o", color=colour, alpha=0.6, markersize=4)
    _threshold_lines(ax, m, vertical=False)
    ax.set_xticks(
        [0, 1],
        [f"non-responders\n(n = {m.n_lesions - m.n_responders})", f"responders\n(n = {m.n_responders})"],
    )
    ax.set_ylabel(m.label)
    ax.set_title(f"Mann-Whitney U p = {m.mann_whitney_p:.2g}", fontsize=9)
    ax.legend(loc="upper left", fontsize=7)
    return _png(fig)


def logistic_png(m: MetricAnalysis) -> bytes:
    """Response (0/1) against the metric with the fitted logistic curve and D50, or why there is none."""
    fig = _figure()
    ax = fig.add_subplot()
    y = m.responder.astype(float)
    offsets = _spread(len(y), 0.04)
    ax.plot(
        m.dose_gy[m.responder],
        (y + offsets)[m.responder],
        "o",
        color=_RESPONDER,
        alpha=0.6,
        markersize=4,
        label="responders",
    )
    ax.plot(
        m.dose_gy[~m.responder],
        (y + offsets)[~m.responder],
        "o",
        color=_NON_RESPONDER,
        alpha=0.6,
        markersize=4,
        label="non-responders",
    )
    fit = m.logistic
    if fit.intercept is not None:
        grid = np.linspace(0, float(m.dose_gy.max()) * 1.1, 300)
        ax.plot(grid, fit.probability(grid), color="#2166ac", linewidth=2, label="logistic fit")
        if fit.d50_gy is not None and 0 < fit.d50_gy < grid[-1]:
            ax.axvline(
                fit.d50_gy,
                color="#2166ac",
                linestyle="--",
                linewidth=1,
                label=f"D50 {fit.d50_gy:.0f} Gy{_ci(fit.d50_ci95_gy, '.0f')}",
            )
    else:
        ax.text(
            0.5,
            0.5,
            "no logistic fit:\ngroups do not overlap",
            transform=ax.transAxes,
            ha="center",
            fontsize=8,
            color="0.3",
        )
    ax.set(ylim=(-0.1, 1.1), xlabel=m.label, ylabel="response probability")
    ax.set_title("Logistic dose-response", fontsize=9)
    ax.legend(loc="center right", fontsize=7)
    return _png(fig)


FIGURES = {"roc": roc_png, "groups": groups_png, "logistic": logistic_png}
"""The figures of one metric by name; the files are ``<name>_<metric>.png``."""
