"""Dose-response of lesions: responders against non-responders by a dose metric.

For one metric (lesion mean dose, D70 or BED, in Gy) and the binary outcome responder (CR or PR) vs
non-responder (SD or PD), :func:`analyse_metric` gives

* the two groups' medians and quartiles, and the two-sided Mann-Whitney U test (:func:`scipy.stats.mannwhitneyu`);
* the ROC curve and its area (:func:`sklearn.metrics.roc_curve`, :func:`sklearn.metrics.roc_auc_score`);
* the Youden-optimal threshold (maximum of sensitivity + specificity - 1 over the observed doses; a lesion
  is predicted to respond when its dose is >= the threshold) with its sensitivity and specificity. The
  threshold is reported, as pROC does [Robin2011]_, as the midpoint between the lowest dose called responder
  and the next lower observed dose (an observed dose would sit, by construction, on the responders' side);
  that lowest dose is given too;
* 95% confidence intervals of the AUC and of the threshold by percentile bootstrap. Lesions of one patient
  are not independent, so by default whole patients are resampled (cluster bootstrap); ``bootstrap_unit=
  "lesion"`` resamples lesions. Resamples with only one class are skipped (their number is reported). The
  generator is :func:`numpy.random.default_rng` with a recorded seed, so results repeat exactly;
* the dose below which no lesion responded (the lowest responder's dose) and the dose above which every
  lesion responded (the highest non-responder's dose), with the number of lesions beyond each;
* a logistic dose-response fit ``P(response) = 1 / (1 + exp(-(b0 + b1 D)))`` by maximum likelihood
  (:class:`statsmodels.discrete.discrete_model.Logit`), with ``D50 = -b0 / b1`` (the dose of 50% response
  probability) and its 95% CI by the delta method. When the groups do not overlap (complete or
  quasi-complete separation) the maximum-likelihood fit does not exist: it is not reported, and the
  reason is.

References
----------
.. [Youden1950] Youden WJ. Index for rating diagnostic tests. Cancer 1950;3:32-5.
.. [Robin2011] Robin X, Turck N, Hainard A, et al. pROC: an open-source package for R and S+ to analyze and
   compare ROC curves. BMC Bioinformatics 2011;12:77. doi:10.1186/1471-2105-12-77
.. [Fluss2005] Fluss R, Faraggi D, Reiser B. Estimation of the Youden index and its associated cutoff
   point. Biom J 2005;47:458-72. doi:10.1002/bimj.200410135
.. [Efron1993] Efron B, Tibshirani RJ. An introduction to the bootstrap. Chapman & Hall, 1993 (percentile
   intervals, ch. 13).
.. [Field2007] Field CA, Welsh AH. Bootstrapping clustered data. J R Stat Soc B 2007;69:369-90.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from dosimetry.errors import OptionsError
from dosimetry.progress import advance, stage

__all__ = ["BOOTSTRAP_UNITS", "LogisticFit", "MetricAnalysis", "analyse_metric", "check_bootstrap", "fit_logistic"]

BOOTSTRAP_UNITS = ("patient", "lesion")
_CHUNK = 50  # bootstrap resamples between progress steps (and Ctrl-C checks)
_FEW_UNITS = 10  # below this many patients (or lesions) the percentile bootstrap is a rough guide only


@dataclass(frozen=True)
class LogisticFit:
    """Logistic dose-response fit, or the reason there is none (``reason`` set, numbers None)."""

    intercept: float | None = None
    slope_per_gy: float | None = None
    slope_ci95: tuple[float, float] | None = None
    slope_p_value: float | None = None
    d50_gy: float | None = None
    d50_ci95_gy: tuple[float, float] | None = None
    reason: str | None = None

    def probability(self, dose_gy) -> np.ndarray:
        """Fitted response probability at ``dose_gy``."""
        if self.intercept is None:
            raise ValueError(f"no logistic fit: {self.reason}")
        return 1.0 / (1.0 + np.exp(-(self.intercept + self.slope_per_gy * np.asarray(dose_gy, dtype=float))))


@dataclass(frozen=True)
class MetricAnalysis:
    """Every number of the dose-response analysis of one dose metric (see the module docstring)."""

    metric: str
    label: str
    dose_gy: np.ndarray
    responder: np.ndarray
    n_lesions: int
    n_responders: int
    n_patients: int
    responders_median_gy: float
    responders_iqr_gy: tuple[float, float]
    non_responders_median_gy: float
    non_responders_iqr_gy: tuple[float, float]
    mann_whitney_p: float
    fpr: np.ndarray
    tpr: np.ndarray
    auc: float
    auc_ci95: tuple[float, float] | None
    threshold_gy: float
    threshold_observed_gy: float
    threshold_ci95_gy: tuple[float, float] | None
    sensitivity: float
    specificity: float
    youden_j: float
    no_response_below_gy: float
    n_below: int
    all_response_above_gy: float
    n_above: int
    logistic: LogisticFit
    bootstrap: dict

    def to_dict(self) -> dict:
        """The numbers as a JSON-ready dict (arrays left out, the ROC curve kept)."""
        return {
            "metric": self.metric,
            "label": self.label,
            "n_lesions": self.n_lesions,
            "n_responders": self.n_responders,
            "n_non_responders": self.n_lesions - self.n_responders,
            "n_patients": self.n_patients,
            "responders": {"median_gy": self.responders_median_gy, "iqr_gy": list(self.responders_iqr_gy)},
            "non_responders": {
                "median_gy": self.non_responders_median_gy,
                "iqr_gy": list(self.non_responders_iqr_gy),
            },
            "mann_whitney_u_p": self.mann_whitney_p,
            "roc": {
                "auc": self.auc,
                "auc_ci95": _list(self.auc_ci95),
                "fpr": self.fpr.tolist(),
                "tpr": self.tpr.tolist(),
            },
            "youden": {
                "threshold_gy": self.threshold_gy,
                "threshold_ci95_gy": _list(self.threshold_ci95_gy),
                "rule": "responder predicted when dose >= threshold_gy",
                "lowest_dose_called_responder_gy": self.threshold_observed_gy,
                "threshold_is": "midpoint between the lowest dose called responder and the next lower dose (as pROC)",
                "sensitivity": self.sensitivity,
                "specificity": self.specificity,
                "j": self.youden_j,
            },
            "no_response_below_gy": {
                "dose_gy": self.no_response_below_gy,
                "n_lesions_below": self.n_below,
                "meaning": "lowest dose of a responder: no lesion below it responded",
            },
            "all_response_above_gy": {
                "dose_gy": self.all_response_above_gy,
                "n_lesions_above": self.n_above,
                "meaning": "highest dose of a non-responder: every lesion above it responded",
            },
            "logistic": {
                "model": "P(response) = 1 / (1 + exp(-(intercept + slope_per_gy * dose_gy)))",
                "intercept": self.logistic.intercept,
                "slope_per_gy": self.logistic.slope_per_gy,
                "slope_ci95": _list(self.logistic.slope_ci95),
                "slope_p_value": self.logistic.slope_p_value,
                "d50_gy": self.logistic.d50_gy,
                "d50_ci95_gy": _list(self.logistic.d50_ci95_gy),
                "d50_ci_method": "delta method",
                "not_fitted_because": self.logistic.reason,
            },
            "bootstrap": self.bootstrap,
        }


def _list(pair):
    return None if pair is None else [float(pair[0]), float(pair[1])]


def _roc(responder: np.ndarray, dose: np.ndarray):
    from sklearn.metrics import roc_curve

    return roc_curve(responder, dose, drop_intermediate=False)


def _cut(thresholds: np.ndarray, k: int) -> float:
    """The threshold between the k-th observed dose of roc_curve (the lowest called responder) and the next
    lower one: their midpoint, as pROC reports it, so the value does not lean toward the responders."""
    if k + 1 < len(thresholds):
        return float((thresholds[k] + thresholds[k + 1]) / 2)
    return float(thresholds[k])


def _youden(fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray) -> int:
    """Index of the Youden-optimal point; ties go to the highest threshold (the first in roc_curve's order).

    The first point of roc_curve is the threshold +inf (nothing predicted positive, J = 0), never chosen
    unless every J is <= 0.
    """
    j = tpr - fpr
    return int(np.argmax(j[1:]) + 1) if len(j) > 1 else 0


def fit_logistic(dose_gy: np.ndarray, responder: np.ndarray) -> LogisticFit:
    """Maximum-likelihood logistic fit of response on dose (statsmodels ``Logit``), D50 with delta-method CI."""
    resp, non = dose_gy[responder], dose_gy[~responder]
    if resp.min() >= non.max() or non.min() >= resp.max():
        return LogisticFit(
            reason="the doses of responders and non-responders do not overlap (complete or quasi-complete "
            "separation): the maximum-likelihood logistic fit does not exist; see the thresholds instead"
        )
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

    x = sm.add_constant(np.asarray(dose_gy, dtype=float), has_constant="add")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            fit = sm.Logit(responder.astype(float), x).fit(disp=0, maxiter=200)
        except (PerfectSeparationWarning, ConvergenceWarning, np.linalg.LinAlgError) as err:
            return LogisticFit(reason=f"the logistic fit did not converge ({err})")
    b0, b1 = (float(v) for v in fit.params)
    cov = np.asarray(fit.cov_params(), dtype=float)
    ci = np.asarray(fit.conf_int(alpha=0.05), dtype=float)
    d50 = d50_ci = None
    if b1 != 0:
        d50 = -b0 / b1
        grad = np.array([-1.0 / b1, b0 / b1**2])  # d(D50)/d(b0, b1)
        se = math.sqrt(max(float(grad @ cov @ grad), 0.0))
        d50_ci = (d50 - 1.959963984540054 * se, d50 + 1.959963984540054 * se)
    return LogisticFit(
        intercept=b0,
        slope_per_gy=b1,
        slope_ci95=(float(ci[1, 0]), float(ci[1, 1])),
        slope_p_value=float(fit.pvalues[1]),
        d50_gy=d50,
        d50_ci95_gy=d50_ci,
    )


def _bootstrap(dose, responder, groups, *, n, unit, seed):
    """Percentile 95% CIs of the AUC and of the Youden threshold over ``n`` resamples."""
    from sklearn.metrics import auc as area

    rng = np.random.default_rng(seed)
    if unit == "patient":
        labels, members = np.unique(groups, return_inverse=True)
        clusters = [np.flatnonzero(members == k) for k in range(len(labels))]
    else:
        clusters = [np.array([i]) for i in range(len(dose))]
    aucs, thresholds = [], []
    skipped = 0
    with stage("bootstrap", total=math.ceil(n / _CHUNK)):
        for start in range(0, n, _CHUNK):
            for _ in range(min(_CHUNK, n - start)):
                pick = rng.integers(0, len(clusters), size=len(clusters))
                idx = np.concatenate([clusters[k] for k in pick])
                y = responder[idx]
                if y.all() or not y.any():
                    skipped += 1
                    continue
                fpr, tpr, thr = _roc(y, dose[idx])
                aucs.append(area(fpr, tpr))
                thresholds.append(_cut(thr, _youden(fpr, tpr, thr)))
            advance()
    record = {"resamples": n, "used": len(aucs), "skipped_one_class": skipped, "unit": unit, "seed": seed}
    if len(clusters) < _FEW_UNITS:
        record["caution"] = (
            f"only {len(clusters)} {unit}s to resample: the bootstrap intervals are rough (too narrow) at this size"
        )
    if len(aucs) < max(20, n // 2):
        record["note"] = "too few resamples with both responders and non-responders: no confidence intervals"
        return None, None, record
    return (
        tuple(float(v) for v in np.percentile(aucs, [2.5, 97.5])),
        tuple(float(v) for v in np.percentile(thresholds, [2.5, 97.5])),
        record,
    )


def check_bootstrap(n_bootstrap: int, bootstrap_unit: str) -> None:
    """Refuse a bootstrap of 1-99 resamples (too few for a 95% interval) or an unknown unit (OptionsError)."""
    if bootstrap_unit not in BOOTSTRAP_UNITS:
        raise OptionsError(f"bootstrap unit {bootstrap_unit!r}; use one of {', '.join(BOOTSTRAP_UNITS)}")
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise OptionsError(f"n_bootstrap {n_bootstrap!r}: give a whole number, 0 (no confidence intervals) or >= 100")
    if 0 < n_bootstrap < 100:
        raise OptionsError(f"n_bootstrap {n_bootstrap}: use 0 (no confidence intervals) or at least 100")


def analyse_metric(
    dose_gy,
    responder,
    groups,
    *,
    metric: str,
    label: str,
    n_bootstrap: int = 1000,
    bootstrap_unit: str = "patient",
    seed: int = 0,
) -> MetricAnalysis:
    """Dose-response analysis of one dose metric (see the module docstring).

    Parameters
    ----------
    dose_gy : array_like
        The metric per lesion (Gy), finite.
    responder : array_like of bool
        True for CR or PR.
    groups : array_like of str
        The patient (case_id) of each lesion, for the cluster bootstrap.
    metric, label : str
        Key and words of the metric (``"mean_gy"``, ``"mean dose (Gy)"``).
    n_bootstrap : int
        Number of bootstrap resamples (>= 100, or 0 for no confidence intervals).
    bootstrap_unit : {"patient", "lesion"}
        What is resampled.
    seed : int
        Seed of the bootstrap's :func:`numpy.random.default_rng`.

    Raises
    ------
    OptionsError
        Fewer than one responder and one non-responder, non-finite doses, or bad bootstrap options.
    """
    from scipy.stats import mannwhitneyu
    from sklearn.metrics import roc_auc_score

    dose = np.asarray(dose_gy, dtype=float)
    resp = np.asarray(responder, dtype=bool)
    groups = np.asarray(groups, dtype=str)
    if not (dose.shape == resp.shape == groups.shape) or dose.ndim != 1:
        raise OptionsError("dose_gy, responder and groups must be 1-D and of the same length")
    if not np.isfinite(dose).all():
        raise OptionsError(f"{metric}: every dose must be a finite number")
    if resp.all() or not resp.any():
        kind = "responders" if resp.all() else "non-responders"
        raise OptionsError(
            f"{metric}: all {len(resp)} lesions are {kind}; a dose-response analysis needs both responders "
            "and non-responders"
        )
    check_bootstrap(n_bootstrap, bootstrap_unit)
    fpr, tpr, thr = _roc(resp, dose)
    k = _youden(fpr, tpr, thr)
    auc = float(roc_auc_score(resp, dose))
    if n_bootstrap:
        auc_ci, thr_ci, boot = _bootstrap(dose, resp, groups, n=n_bootstrap, unit=bootstrap_unit, seed=seed)
    else:
        auc_ci, thr_ci, boot = None, None, {"resamples": 0}
    r, nr = dose[resp], dose[~resp]
    below = float(r.min())
    above = float(nr.max())
    return MetricAnalysis(
        metric=metric,
        label=label,
        dose_gy=dose,
        responder=resp,
        n_lesions=int(len(dose)),
        n_responders=int(resp.sum()),
        n_patients=int(len(np.unique(groups))),
        responders_median_gy=float(np.median(r)),
        responders_iqr_gy=tuple(float(v) for v in np.percentile(r, [25, 75])),
        non_responders_median_gy=float(np.median(nr)),
        non_responders_iqr_gy=tuple(float(v) for v in np.percentile(nr, [25, 75])),
        mann_whitney_p=float(mannwhitneyu(r, nr, alternative="two-sided").pvalue),
        fpr=fpr,
        tpr=tpr,
        auc=auc,
        auc_ci95=auc_ci,
        threshold_gy=_cut(thr, k),
        threshold_observed_gy=float(thr[k]),
        threshold_ci95_gy=thr_ci,
        sensitivity=float(tpr[k]),
        specificity=float(1.0 - fpr[k]),
        youden_j=float(tpr[k] - fpr[k]),
        no_response_below_gy=below,
        n_below=int((dose < below).sum()),
        all_response_above_gy=above,
        n_above=int((dose > above).sum()),
        logistic=fit_logistic(dose, resp),
        bootstrap=boot,
    )
