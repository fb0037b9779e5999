"""Tumour response by the published rules of RECIST 1.1, mRECIST, WHO and EASL, per lesion and per patient.

Each criterion measures one quantity per target lesion at baseline and at follow-up and compares the sum
over a patient's target lesions (or, per lesion, the lesion's own value) with fixed boundaries:

==========  ==============================  ======  ==========================================  ==============
criterion   quantity (RESPONSES.csv column)  PR      PD                                          CR
==========  ==============================  ======  ==========================================  ==============
RECIST 1.1  longest diameter, mm             <= -30%  sum >= +20% and >= +5 mm absolute           disappearance
            (``longest_diameter_mm``)
mRECIST     viable (arterially enhancing)    <= -30%  sum >= +20%                                 disappearance
            diameter, mm                                                                          of enhancement
            (``viable_diameter_mm``)
WHO         bidimensional product, mm2       <= -50%  >= +25% in one or more lesions               disappearance
            (``bidimensional_product_mm2``)
EASL        enhancing (viable) tumour area,  <= -50%  >= +25% in one or more lesions               disappearance
            mm2 (``enhancing_area_mm2``)                                                          of enhancement
==========  ==============================  ======  ==========================================  ==============

Every boundary is inclusive ("at least 30% decrease", "at least 20% increase"); the comparison allows a
relative rounding tolerance of :data:`TOLERANCE` so that 70.0 mm after 100.0 mm is exactly -30%. The order is
CR, then PD, then PR, then SD: a patient whose sum fell by half while one lesion grew by a quarter is PD
under WHO and EASL. "No change" (NC) of WHO and EASL is reported as SD.

The patient's sums are over its target lesions (RESPONSES.csv ``target``, default yes); RECIST 1.1 takes at
most 2 per organ and 5 in total, and more target lesions in one patient give a warning (all lesions here may be
in the liver). New lesions make a patient PD in every criterion: RESPONSES.csv says so in ``new_lesions`` (see
:mod:`dosimetry.cohort.responses`); a lesion keeps its own category. What the rules here do not see, and the
reader must: unequivocal progression of non-target lesions (PD), lymph nodes (RECIST 1.1 short axis < 10 mm
counts as CR), confirmation scans (WHO: 4 weeks). The reference of PD is the smallest sum on study (RECIST 1.1, mRECIST); with one
baseline and one follow-up, that is the baseline. A category given in RESPONSES.csv (``response``) is
used for a lesion without the criterion's measurements.

References
----------
.. [Eisenhauer2009] Eisenhauer EA, Therasse P, Bogaerts J, et al. New response evaluation criteria in solid
   tumours: revised RECIST guideline (version 1.1). Eur J Cancer 2009;45:228-47.
   doi:10.1016/j.ejca.2008.10.026
.. [Lencioni2010] Lencioni R, Llovet JM. Modified RECIST (mRECIST) assessment for hepatocellular carcinoma.
   Semin Liver Dis 2010;30:52-60. doi:10.1055/s-0030-1247132
.. [WHO1979] World Health Organization. WHO handbook for reporting results of cancer treatment. Geneva: WHO
   Offset Publication No. 48; 1979.
.. [Miller1981] Miller AB, Hoogstraten B, Staquet M, Winkler A. Reporting results of cancer treatment.
   Cancer 1981;47:207-14. doi:10.1002/1097-0142(19810101)47:1<207::aid-cncr2820470134>3.0.co;2-6
.. [Bruix2001] Bruix J, Sherman M, Llovet JM, et al. Clinical management of hepatocellular carcinoma.
   Conclusions of the Barcelona-2000 EASL conference. J Hepatol 2001;35:421-30.
   doi:10.1016/s0168-8278(01)00130-1
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

__all__ = [
    "CATEGORIES",
    "CRITERIA",
    "Criterion",
    "Classification",
    "TOLERANCE",
    "classify_lesion",
    "classify_patient",
    "criterion",
    "is_responder",
]

TOLERANCE = 1e-9
"""Relative tolerance of the boundary comparisons (floating-point rounding of the measurements only)."""

CATEGORIES = ("CR", "PR", "SD", "PD")
"""Response categories; CR and PR are responses (objective response), SD and PD are not."""


class PdScope(str, enum.Enum):
    """What must grow for progression: the sum of the target lesions, or any one lesion."""

    SUM = "sum"
    ANY_LESION = "any lesion"


@dataclass(frozen=True)
class Criterion:
    """One response criterion: its measured quantity and boundaries (fractions of the baseline)."""

    key: str
    name: str
    column: str
    unit: str
    quantity: str
    pr_change: float
    pd_change: float
    pd_min_increase: float | None
    pd_scope: PdScope
    reference: str
    max_targets_per_organ: int | None = None
    max_targets_total: int | None = None


CRITERIA: dict[str, Criterion] = {
    c.key: c
    for c in (
        Criterion(
            "recist11",
            "RECIST 1.1",
            "longest_diameter_mm",
            "mm",
            "longest diameter",
            -0.30,
            0.20,
            5.0,
            PdScope.SUM,
            "Eisenhauer et al., Eur J Cancer 2009;45:228-47",
            2,
            5,
        ),
        Criterion(
            "mrecist",
            "mRECIST",
            "viable_diameter_mm",
            "mm",
            "viable (enhancing) tumour diameter",
            -0.30,
            0.20,
            None,
            PdScope.SUM,
            "Lencioni & Llovet, Semin Liver Dis 2010;30:52-60",
        ),
        Criterion(
            "who",
            "WHO",
            "bidimensional_product_mm2",
            "mm2",
            "bidimensional product",
            -0.50,
            0.25,
            None,
            PdScope.ANY_LESION,
            "WHO Offset Publication 48, 1979; Miller et al., Cancer 1981;47:207-14",
        ),
        Criterion(
            "easl",
            "EASL",
            "enhancing_area_mm2",
            "mm2",
            "enhancing (viable) tumour area",
            -0.50,
            0.25,
            None,
            PdScope.ANY_LESION,
            "Bruix et al., J Hepatol 2001;35:421-30",
        ),
    )
}
"""The criteria by key (the command line's ``--criteria`` choices)."""


def criterion(key: str) -> Criterion:
    """The criterion named ``key`` (``recist11``, ``mrecist``, ``who``, ``easl``; case-insensitive)."""
    from dosimetry.errors import OptionsError

    found = CRITERIA.get(str(key).strip().lower().replace(".", "").replace(" ", ""))
    if found is None:
        raise OptionsError(f"unknown response criteria {key!r}; use one of {', '.join(CRITERIA)}")
    return found


@dataclass(frozen=True)
class Classification:
    """A response category, the change that decided it and the rule, in words."""

    category: str
    change_percent: float | None
    rule: str


def is_responder(category: str) -> bool:
    """CR and PR are responses."""
    return category in ("CR", "PR")


def _at_most(value: float, bound: float) -> bool:
    return value <= bound + TOLERANCE * max(1.0, abs(bound))


def _at_least(value: float, bound: float) -> bool:
    return value >= bound - TOLERANCE * max(1.0, abs(bound))


def _check(value: float, what: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a finite number >= 0, got {value}")
    return value


def _fmt(value: float, unit: str) -> str:
    return f"{value:g} {unit}"


def classify_lesion(crit: Criterion, baseline: float, follow_up: float) -> Classification:
    """The category of one lesion from its baseline and follow-up measurement (``crit.unit``).

    Raises
    ------
    ValueError
        A negative or non-finite measurement, or a baseline of 0 (not a measurable target lesion).

    Examples
    --------
    >>> classify_lesion(CRITERIA["recist11"], 100.0, 70.0).category
    'PR'
    >>> classify_lesion(CRITERIA["recist11"], 20.0, 24.0).category  # +20% but only +4 mm
    'SD'
    """
    return _classify(crit, _check(baseline, "baseline"), _check(follow_up, "follow-up"), [])


def classify_patient(crit: Criterion, lesions: dict[str, tuple[float, float]]) -> Classification:
    """The category of a patient from its target lesions ``{roi: (baseline, follow_up)}``.

    RECIST 1.1 and mRECIST compare the sums; WHO and EASL compare the sum of products for PR and each
    lesion for PD (25% growth of one or more lesions).
    """
    if not lesions:
        raise ValueError("a patient needs at least one target lesion")
    base = sum(_check(b, f"baseline of {roi}") for roi, (b, _) in lesions.items())
    follow = sum(_check(f, f"follow-up of {roi}") for roi, (_, f) in lesions.items())
    growing = []
    if crit.pd_scope is PdScope.ANY_LESION:
        for roi, (b, f) in lesions.items():
            if b > 0 and _at_least((f - b) / b, crit.pd_change):
                growing.append(f"{roi} {100 * (f - b) / b:+.1f}%")
    return _classify(crit, base, follow, growing, sums=len(lesions) > 1)


def _classify(crit: Criterion, base: float, follow: float, growing: list[str], sums: bool = False) -> Classification:
    what = f"sum of {crit.quantity}s" if sums else crit.quantity
    if base <= 0:
        raise ValueError(f"baseline {what} is 0: not a measurable target lesion")
    change = (follow - base) / base
    pct = 100 * change
    ref = f"{crit.name}: {what} {_fmt(base, crit.unit)} -> {_fmt(follow, crit.unit)} ({pct:+.1f}%)"
    if follow == 0:
        return Classification("CR", pct, f"{ref}; disappearance: CR")
    if crit.pd_scope is PdScope.ANY_LESION:
        if growing:
            return Classification("PD", pct, f"{ref}; {', '.join(growing)} >= +{100 * crit.pd_change:g}%: PD")
        if not sums and _at_least(change, crit.pd_change):
            return Classification("PD", pct, f"{ref}; >= +{100 * crit.pd_change:g}%: PD")
    elif _at_least(change, crit.pd_change):
        if crit.pd_min_increase is None:
            return Classification("PD", pct, f"{ref}; >= +{100 * crit.pd_change:g}%: PD")
        increase = follow - base
        if _at_least(increase, crit.pd_min_increase):
            return Classification(
                "PD",
                pct,
                f"{ref}; >= +{100 * crit.pd_change:g}% and +{increase:g} {crit.unit} >= "
                f"{crit.pd_min_increase:g} {crit.unit}: PD",
            )
        return Classification(
            "SD",
            pct,
            f"{ref}; >= +{100 * crit.pd_change:g}% but +{increase:g} {crit.unit} < "
            f"{crit.pd_min_increase:g} {crit.unit}: not PD; SD",
        )
    if _at_most(change, crit.pr_change):
        return Classification("PR", pct, f"{ref}; <= {100 * crit.pr_change:g}%: PR")
    return Classification(
        "SD",
        pct,
        f"{ref}; between {100 * crit.pr_change:g}% and +{100 * crit.pd_change:g}%: SD",
    )
