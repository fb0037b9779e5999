"""Named threshold sets from the literature, as data, and their evaluation against a run's statistics.

A threshold set is a TOML file: its ``name``, ``title``, ``source`` (citation), ``population`` (e.g. NET
liver metastases, HCC), ``indications`` (a list of ``hcc``, ``crc``, ``net``, ``other``, or ``["any"]`` for
every indication), ``device`` (``resin``, ``glass``, or ``any``/empty for any), a ``note`` and a list of
``[[rules]]``. Each rule compares one ``quantity`` of one ROI with a ``threshold``::

    [[rules]]
    id = "no_response"
    roi = ["each_tumor"]          # ROI selectors, first one that exists is used (fallbacks)
    quantity = "mean_gy"          # any key of a stats.json ROI entry (mean_gy, D70, V100, ...)
    comparison = "<"              # <, <=, >, >=
    threshold = 72.8
    level = "alert"               # alert | caution | favourable | info: what it means when the comparison holds
    meaning = "in the range associated with no response"

ROI selectors: ``each_tumor`` (every given tumour ROI, i.e. per lesion), ``all_tumors`` (``tumors_all``, or
the one tumour), ``normal_liver``, ``perfused_normal_liver``, ``liver`` (the given liver ROIs) and ``lung``
(the ``lung`` section of stats.json: ``mean_gy``, ``voxel_mean_gy``, ``lsf_estimate_gy`` and
``cumulative_lsf_estimate_gy`` = lsf estimate + the previous lung dose, when given).

The bundled sets live in ``dosimetry/stats/threshold_sets/`` (:func:`available_threshold_sets`); a user's own
file is loaded with :func:`load_threshold_set` (or named by path on the command line).

Which sets a run evaluates (:func:`choose_threshold_sets`): none without the patient's indication (a
threshold of one population means nothing for another); with it, the bundled sets of that indication (and
the sets for any indication, the lung limits) whose device is any or the ``--device`` given; without
``--device``, sets for one device are left out, and a note says so. Sets named explicitly are evaluated
as asked, with a warning for each mismatch of indication or device.
"""

from __future__ import annotations

import operator
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

from dosimetry.errors import InputFileError, OptionsError

__all__ = [
    "ThresholdRule",
    "ThresholdSet",
    "ThresholdSelection",
    "available_threshold_sets",
    "load_threshold_set",
    "select_threshold_sets",
    "choose_threshold_sets",
    "evaluate_thresholds",
    "INDICATIONS",
    "NO_INDICATION_NOTE",
]

COMPARISONS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
LEVELS = ("alert", "caution", "favourable", "info")
SELECTORS = ("each_tumor", "all_tumors", "normal_liver", "perfused_normal_liver", "liver", "lung")
DEVICES = ("resin", "glass")
INDICATIONS = ("hcc", "crc", "net", "other")
NO_INDICATION_NOTE = "threshold flags not evaluated: give --indication (hcc, crc, net, other)"


@dataclass(frozen=True)
class ThresholdRule:
    """One comparison: ``quantity`` of the ROI chosen by ``roi`` ``comparison`` ``threshold``."""

    id: str
    roi: tuple[str, ...]
    quantity: str
    comparison: str
    threshold: float
    level: str
    meaning: str

    @property
    def unit(self) -> str:
        return "%" if self.quantity.startswith("V") else "Gy"


@dataclass(frozen=True)
class ThresholdSet:
    """A named, cited group of rules for one population (and device)."""

    name: str
    title: str
    source: str
    population: str
    device: str | None
    note: str
    rules: tuple[ThresholdRule, ...]
    indications: tuple[str, ...] = ()
    """Indications the set is for (of :data:`INDICATIONS`), ``("any",)`` for all, empty = not declared."""

    def record(self) -> dict:
        return {
            "name": self.name,
            "title": self.title,
            "source": self.source,
            "population": self.population,
            "indications": list(self.indications),
            "device": self.device,
            "note": self.note,
        }

    def applies_to(self, indication: str) -> bool:
        """Whether the set declares ``indication`` (or any indication)."""
        return "any" in self.indications or indication in self.indications


def _parse(data: dict, origin: str) -> ThresholdSet:
    try:
        rules = []
        for raw in data["rules"]:
            roi = raw["roi"]
            roi = (roi,) if isinstance(roi, str) else tuple(roi)
            rule = ThresholdRule(
                str(raw["id"]),
                roi,
                str(raw["quantity"]),
                str(raw["comparison"]),
                float(raw["threshold"]),
                str(raw["level"]),
                str(raw.get("meaning", "")),
            )
            bad = [s for s in rule.roi if s not in SELECTORS]
            if bad or not rule.roi:
                raise OptionsError(
                    f"{origin}: rule {rule.id!r} has ROI selector(s) {bad or rule.roi}; use {', '.join(SELECTORS)}"
                )
            if rule.comparison not in COMPARISONS:
                raise OptionsError(
                    f"{origin}: rule {rule.id!r} comparison {rule.comparison!r}; use {', '.join(COMPARISONS)}"
                )
            if rule.level not in LEVELS:
                raise OptionsError(f"{origin}: rule {rule.id!r} level {rule.level!r}; use {', '.join(LEVELS)}")
            rules.append(rule)
        device = str(data.get("device", "")).strip().lower() or None
        device = None if device == "any" else device
        if device is not None and device not in DEVICES:
            raise OptionsError(f"{origin}: device {device!r}; use resin, glass or any")
        raw_indications = data.get("indications", [])
        raw_indications = [raw_indications] if isinstance(raw_indications, str) else list(raw_indications)
        indications = tuple(str(i).strip().lower() for i in raw_indications)
        bad = [i for i in indications if i not in (*INDICATIONS, "any")]
        if bad:
            raise OptionsError(f"{origin}: indications {bad}; use {', '.join(INDICATIONS)} or any")
        if not str(data.get("source", "")).strip():
            raise OptionsError(f"{origin}: a threshold set needs its source (citation)")
        return ThresholdSet(
            str(data["name"]),
            str(data.get("title", data["name"])),
            str(data["source"]),
            str(data.get("population", "")),
            device,
            str(data.get("note", "")),
            tuple(rules),
            indications,
        )
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, OptionsError):
            raise
        raise OptionsError(
            f"{origin}: not a valid threshold set ({type(err).__name__}: {err}); see "
            "dosimetry/stats/thresholds.py for the format"
        ) from err


def load_threshold_set(path: str | Path) -> ThresholdSet:
    """Read a threshold set from a TOML file.

    Raises
    ------
    InputFileError
        The file is missing or not TOML.
    OptionsError
        The content is not a valid threshold set.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise InputFileError(f"{path}: no such threshold-set file") from err
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InputFileError(f"{path}: cannot read the threshold set ({err})") from err
    return _parse(data, str(path))


def available_threshold_sets() -> dict[str, ThresholdSet]:
    """The threshold sets bundled with the package, by name (sorted)."""
    folder = resources.files("dosimetry.stats").joinpath("threshold_sets")
    sets = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            ts = _parse(tomllib.loads(entry.read_text(encoding="utf-8")), f"threshold_sets/{entry.name}")
            sets[ts.name] = ts
    return sets


def select_threshold_sets(names: Sequence[str] | None, *, device: str | None = None) -> list[ThresholdSet]:
    """The sets named (bundled names or paths of .toml files); None = every bundled set for ``device``.

    With ``device`` None and no names, all bundled sets are used (each result says its device).

    Raises
    ------
    OptionsError
        An unknown name.
    """
    bundled = available_threshold_sets()
    if names is None:
        return [s for s in bundled.values() if device is None or s.device in (None, device)]
    chosen = []
    for name in names:
        if name in bundled:
            chosen.append(bundled[name])
        elif name.endswith(".toml"):
            chosen.append(load_threshold_set(name))
        else:
            raise OptionsError(
                f"unknown threshold set {name!r}; bundled sets are {', '.join(bundled)} "
                "(or give the path of a .toml file)"
            )
    return chosen


@dataclass(frozen=True)
class ThresholdSelection:
    """The threshold sets a run evaluates, with the notes (what was left out) and warnings (mismatches)."""

    sets: tuple[ThresholdSet, ...]
    notes: tuple[str, ...]
    warnings: tuple[str, ...]
    description: str


def choose_threshold_sets(
    names: Sequence[str] | None, *, indication: str | None, device: str | None
) -> ThresholdSelection:
    """The threshold sets for a patient's ``indication`` and ``device``, or the sets ``names`` asks for.

    Parameters
    ----------
    names : sequence of str or None
        Bundled names or paths of .toml files; None = choose among the bundled sets.
    indication : {"hcc", "crc", "net", "other"} or None
        None: no bundled set is evaluated (a note says to give ``--indication``).
    device : {"resin", "glass"} or None
        None: sets for one device are left out (a note names them).

    Raises
    ------
    OptionsError
        An unknown name.
    """
    notes: list[str] = []
    warnings: list[str] = []
    if names is not None:
        sets = select_threshold_sets(names, device=device)
        for ts in sets:
            if indication is None:
                warnings.append(
                    f"threshold set {ts.name!r} evaluated without --indication: its population "
                    f"({ts.population or 'not stated'}) was not checked against the patient's"
                )
            elif not ts.indications:
                warnings.append(
                    f"threshold set {ts.name!r} declares no indications: it may not apply to "
                    f"{indication} (population: {ts.population or 'not stated'})"
                )
            elif not ts.applies_to(indication):
                warnings.append(
                    f"threshold set {ts.name!r} is for {', '.join(ts.indications)} "
                    f"({ts.population}), not --indication {indication}: its flags may not apply"
                )
            if ts.device is not None and device is None:
                warnings.append(
                    f"threshold set {ts.name!r} is for {ts.device} microspheres and --device "
                    "was not given: its flags may not apply"
                )
            elif ts.device is not None and ts.device != device:
                warnings.append(
                    f"threshold set {ts.name!r} is for {ts.device} microspheres, not --device "
                    f"{device}: its flags may not apply"
                )
        return ThresholdSelection(tuple(sets), (), tuple(warnings), "as named: " + ", ".join(names))
    if indication is None:
        return ThresholdSelection((), (NO_INDICATION_NOTE,), (), "none: no --indication")
    bundled = [ts for ts in available_threshold_sets().values() if ts.applies_to(indication)]
    sets = [ts for ts in bundled if ts.device is None or ts.device == device]
    left_out = [ts.name for ts in bundled if ts not in sets]
    if left_out and device is None:
        notes.append(
            f"sets for one microsphere type not evaluated, give --device (resin, glass): {', '.join(left_out)}"
        )
    specific = [ts for ts in bundled if "any" not in ts.indications]
    if not specific:
        notes.append(
            f"no bundled threshold set for {indication}: only the limits for every indication (lung) are evaluated"
        )
    elif device is not None and not any(ts in sets for ts in specific):
        notes.append(
            f"no bundled threshold set for {indication} with {device} microspheres: only the limits "
            "for every indication (lung) are evaluated"
        )
    description = f"bundled sets for {indication}" + (f", {device} microspheres" if device else ", any device")
    return ThresholdSelection(tuple(sets), tuple(notes), (), description)


def _targets(stats: dict, selector: str, previous_lung_dose_gy: float | None) -> list[tuple[str, dict]]:
    rois = stats["rois"]
    by_name = {e["name"]: e for e in rois}
    if selector == "each_tumor":
        return [(e["name"], e) for e in rois if e["role"] == "tumor" and "derived" not in e]
    if selector == "all_tumors":
        if "tumors_all" in by_name:
            return [("tumors_all", by_name["tumors_all"])]
        given = [e for e in rois if e["role"] == "tumor" and "derived" not in e]
        return [(given[0]["name"], given[0])] if len(given) == 1 else []
    if selector in ("normal_liver", "perfused_normal_liver"):
        return [(selector, by_name[selector])] if selector in by_name else []
    if selector == "liver":
        return [(e["name"], e) for e in rois if e["role"] == "liver" and "derived" not in e]
    if selector == "lung":
        lung = dict(stats.get("lung") or {})
        if not lung:
            return []
        estimate = lung.get("lsf_estimate_gy")
        lung["cumulative_lsf_estimate_gy"] = (
            estimate + previous_lung_dose_gy if estimate is not None and previous_lung_dose_gy is not None else None
        )
        return [(lung.get("roi") or "lung", lung)]
    raise OptionsError(f"unknown ROI selector {selector!r}")


def evaluate_thresholds(
    stats: dict, sets: Iterable[ThresholdSet], *, previous_lung_dose_gy: float | None = None
) -> dict:
    """Compare a run's statistics with threshold sets: the ``flags`` section of ``stats.json``.

    Parameters
    ----------
    stats : dict
        The statistics of a run (``rois``, ``lung``).
    sets : iterable of ThresholdSet
    previous_lung_dose_gy : float, optional
        Lung dose of earlier treatments, for cumulative lung limits.

    Returns
    -------
    dict
        ``sets`` (name, title, source, population, device, note of each set) and ``results``: one entry
        per rule and ROI with ``set``, ``rule``, ``roi``, ``quantity``, ``value``, ``comparison``,
        ``threshold``, ``unit``, ``status`` (``met``, ``not met`` or ``not evaluated``), ``flag`` (the
        rule's level when met, else None), ``meaning``, ``population``, ``device`` and ``note``.
    """
    sets = list(sets)
    results = []
    for ts in sets:
        for rule in ts.rules:
            base = {
                "set": ts.name,
                "rule": rule.id,
                "quantity": rule.quantity,
                "comparison": rule.comparison,
                "threshold": rule.threshold,
                "unit": rule.unit,
                "meaning": rule.meaning,
                "population": ts.population,
                "device": ts.device,
                "level": rule.level,
            }
            targets, used, note = [], None, None
            for selector in rule.roi:
                targets = _targets(stats, selector, previous_lung_dose_gy)
                if targets:
                    used = selector
                    break
            if used is not None and used != rule.roi[0]:
                note = f"no {rule.roi[0].replace('_', ' ')} ROI: {used.replace('_', ' ')} used"
            if not targets:
                results.append(
                    {
                        **base,
                        "roi": None,
                        "value": None,
                        "status": "not evaluated",
                        "flag": None,
                        "note": f"no ROI for {' / '.join(rule.roi)}",
                    }
                )
                continue
            for label, entry in targets:
                value = entry.get(rule.quantity)
                if value is None:
                    reason = (
                        "previous lung dose not given (--previous-lung-dose-gy)"
                        if rule.quantity == "cumulative_lsf_estimate_gy"
                        else f"{rule.quantity} not available"
                    )
                    if rule.quantity == "lsf_estimate_gy":
                        reason = "administered activity or lung shunt fraction not given"
                    results.append(
                        {**base, "roi": label, "value": None, "status": "not evaluated", "flag": None, "note": reason}
                    )
                    continue
                met = bool(COMPARISONS[rule.comparison](float(value), rule.threshold))
                results.append(
                    {
                        **base,
                        "roi": label,
                        "value": float(value),
                        "status": "met" if met else "not met",
                        "flag": rule.level if met else None,
                        "note": note,
                    }
                )
    counts = {level: sum(1 for r in results if r["flag"] == level) for level in LEVELS}
    return {
        "sets": [ts.record() for ts in sets],
        "results": results,
        "counts": counts,
        "previous_lung_dose_gy": previous_lung_dose_gy,
    }
