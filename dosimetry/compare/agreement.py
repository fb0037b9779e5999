"""Agreement of paired dose values (predicted vs delivered): differences, Bland-Altman, correlations.

Differences are always *delivered - predicted*: a positive bias means the Tc-99m MAA prediction was
lower than the Y-90 dose delivered.

Bland-Altman (Bland and Altman 1986; 1999): bias = mean difference, SD of the differences (n - 1), limits
of agreement bias +- z SD with z = the 97.5 % normal quantile (1.96), and 95 % confidence intervals of
the bias, SE = SD / sqrt(n), and of each limit, SE = SD sqrt(3 / n) (the approximation of Bland and Altman
1986, section 5), both with the t quantile on n - 1 degrees of freedom. The same analysis on percent
differences relative to the pair mean, 100 (d - p) / ((d + p) / 2), suits doses spread over an order of
magnitude (differences growing with the dose).

Correlations: Pearson's r and Spearman's rho with their p-values (:mod:`scipy.stats`), and Lin's
concordance correlation coefficient rho_c = 2 s_pd / (s_p^2 + s_d^2 + (mean_p - mean_d)^2) (moments with
1/n, Lin 1989), which is 1 only when the points lie on the identity line (r measures only linearity).

References
----------
.. [BA1986] Bland JM, Altman DG, "Statistical methods for assessing agreement between two methods of
   clinical measurement", Lancet 327 (1986) 307-310, doi:10.1016/S0140-6736(86)90837-8.
.. [BA1999] Bland JM, Altman DG, "Measuring agreement in method comparison studies", Stat Methods Med
   Res 8 (1999) 135-160, doi:10.1177/096228029900800204.
.. [Lin1989] Lin LI-K, "A concordance correlation coefficient to evaluate reproducibility", Biometrics
   45 (1989) 255-268, doi:10.2307/2532051.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

LOA_Z: float = float(sps.norm.ppf(0.975))
"""Multiplier of the SD for 95 % limits of agreement (1.959964, the 97.5 % standard normal quantile)."""

MIN_PAIRS_BLAND_ALTMAN = 2
"""Fewest pairs for a Bland-Altman analysis (an SD needs two)."""
MIN_PAIRS_CORRELATION = 3
"""Fewest pairs for a correlation (two points always lie on a line)."""


def _finite_pairs(predicted: Sequence[float], delivered: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(predicted, dtype=np.float64)
    d = np.asarray(delivered, dtype=np.float64)
    if p.shape != d.shape or p.ndim != 1:
        raise ValueError(f"predicted and delivered must be 1-D of the same length, got {p.shape} and {d.shape}")
    keep = np.isfinite(p) & np.isfinite(d)
    return p[keep], d[keep]


def bland_altman(predicted: Sequence[float], delivered: Sequence[float], *, percent: bool = False) -> dict | None:
    """Bias, SD, 95 % limits of agreement and their 95 % CIs of ``delivered - predicted``.

    Parameters
    ----------
    predicted, delivered : sequence of float
        Paired values (pairs with a NaN are left out).
    percent : bool
        Analyse ``100 (d - p) / ((d + p) / 2)`` (percent of the pair mean) instead of ``d - p``; pairs whose
        mean is 0 are left out.

    Returns
    -------
    dict or None
        ``n``, ``bias``, ``sd``, ``loa_lower``, ``loa_upper``, ``bias_ci``, ``loa_lower_ci``,
        ``loa_upper_ci`` (``[low, high]``), ``z``; None with fewer than 2 pairs.

    Examples
    --------
    >>> r = bland_altman([10, 20, 30], [12, 21, 33])
    >>> round(r["bias"], 6), round(r["sd"], 6)
    (2.0, 1.0)
    """
    p, d = _finite_pairs(predicted, delivered)
    if percent:
        mean = (p + d) / 2
        keep = mean != 0
        diff = 100.0 * (d[keep] - p[keep]) / mean[keep]
    else:
        diff = d - p
    n = diff.size
    if n < MIN_PAIRS_BLAND_ALTMAN:
        return None
    bias = float(diff.mean())
    sd = float(diff.std(ddof=1))
    t = float(sps.t.ppf(0.975, n - 1))
    se_bias = sd / math.sqrt(n)
    se_loa = sd * math.sqrt(3.0 / n)
    lower, upper = bias - LOA_Z * sd, bias + LOA_Z * sd
    return {
        "n": int(n),
        "difference": "100 (delivered - predicted) / pair mean (%)" if percent else "delivered - predicted",
        "bias": bias,
        "sd": sd,
        "loa_lower": lower,
        "loa_upper": upper,
        "z": LOA_Z,
        "bias_ci": [bias - t * se_bias, bias + t * se_bias],
        "loa_lower_ci": [lower - t * se_loa, lower + t * se_loa],
        "loa_upper_ci": [upper - t * se_loa, upper + t * se_loa],
    }


def lin_ccc(predicted: Sequence[float], delivered: Sequence[float]) -> float:
    """Lin's concordance correlation coefficient (moments with 1/n, Lin 1989); NaN when undefined.

    Examples
    --------
    >>> lin_ccc([1, 2, 3], [1, 2, 3])
    1.0
    """
    p, d = _finite_pairs(predicted, delivered)
    if p.size < 2:
        return math.nan
    sp, sd = p.var(), d.var()
    spd = float(np.mean((p - p.mean()) * (d - d.mean())))
    denominator = sp + sd + (p.mean() - d.mean()) ** 2
    return float(2 * spd / denominator) if denominator > 0 else math.nan


def correlations(predicted: Sequence[float], delivered: Sequence[float]) -> dict | None:
    """Pearson r, Spearman rho (with p-values) and Lin's CCC; None with fewer than 3 pairs.

    Values that are undefined (a constant series) are NaN (null in JSON), with ``note`` saying why.
    """
    p, d = _finite_pairs(predicted, delivered)
    if p.size < MIN_PAIRS_CORRELATION:
        return None
    note = None
    if np.ptp(p) == 0 or np.ptp(d) == 0:
        note = "a constant series: Pearson and Spearman are undefined"
        pearson = spearman = (math.nan, math.nan)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy's small-sample warnings; n is in the record
            pr = sps.pearsonr(p, d)
            sr = sps.spearmanr(p, d)
        pearson = (float(pr.statistic), float(pr.pvalue))
        spearman = (float(sr.statistic), float(sr.pvalue))
    return {
        "n": int(p.size),
        "pearson_r": pearson[0],
        "pearson_p": pearson[1],
        "spearman_rho": spearman[0],
        "spearman_p": spearman[1],
        "lin_ccc": lin_ccc(p, d),
        "note": note,
    }


def agreement(predicted: Sequence[float], delivered: Sequence[float]) -> dict:
    """Bland-Altman (in the values' unit and in percent of the pair mean) and correlations of the pairs."""
    p, d = _finite_pairs(predicted, delivered)
    return {
        "n": int(p.size),
        "bland_altman": bland_altman(p, d),
        "bland_altman_percent": bland_altman(p, d, percent=True),
        "correlation": correlations(p, d),
    }


def difference(predicted: float | None, delivered: float | None) -> dict:
    """``delivered - predicted`` and the same in percent of the predicted value (None where undefined)."""
    if predicted is None or delivered is None or not (math.isfinite(predicted) and math.isfinite(delivered)):
        return {"difference": None, "difference_percent": None}
    diff = float(delivered) - float(predicted)
    return {"difference": diff, "difference_percent": 100.0 * diff / predicted if predicted != 0 else None}


__all__ = ["LOA_Z", "agreement", "bland_altman", "correlations", "difference", "lin_ccc"]
