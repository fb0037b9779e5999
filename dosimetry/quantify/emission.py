"""Which nuclide an emission image shows, and what may be computed from it.

Every emission image is checked before anything is computed from it. Its evidence is gathered item by
item (:class:`Evidence`: the DICOM attribute, its value and the nuclide it points to), a pure function
(:func:`decide`) turns the evidence and the user's statement (``--emission-nuclide``) into a verdict
(:class:`Verdict`), and :meth:`EmissionDecision.record` is the ``emission`` section of ``stats.json``.

* **Y-90**: the dosimetry this package is for. Also when the scanner's half-life or positron fraction
  was set to another nuclide while the radionuclide or radiopharmaceutical names Y-90 (the names win over
  the numbers; the conflict is recorded and warned).
* **Tc-99m (MAA)**: a *predictive* run. The image gives only the distribution; the activity is the planned
  Y-90 activity (relative calibration to ``--administered-gbq``); the dose is what that Y-90 activity would
  give with the MAA distribution. No header activity is taken as Y-90 activity.
* **anything else** (Lu-177, I-131, Ga-68, F-18 FDG, Ho-166, ...): refused (exit 5) with the nuclide and
  its evidence; ``--emission-nuclide Y-90`` overrides, for a Y-90 scan acquired under another protocol.

Evidence, strongest first: the Radionuclide Code Sequence and the Radiopharmaceutical (Code Sequence) of
each Radiopharmaceutical Information Sequence item name the nuclide; the Radionuclide Half Life and
Radionuclide Positron Fraction only say what the scanner was set to. Image files (NIfTI, NRRD, MHA) carry
no evidence: Y-90 is assumed unless ``--emission-nuclide`` says otherwise, and the record says so.

References
----------
.. [PS3.16-CID18] DICOM PS3.16 CID 18 "Isotopes in Radiopharmaceuticals" and CID 4020 "PET Radionuclide"
   (SNOMED CT codes, with their legacy SNOMED-RT "SRT" equivalents).
.. [PS3.16-CID25] DICOM PS3.16 CID 25 "Radiopharmaceuticals" and CID 4021 "PET Radiopharmaceutical".
   The code values below were checked against the dictionaries of pydicom 3 (``pydicom.sr``), see
   ``tests/test_emission_policy.py``.
.. [PS3.3-C.8.9.2] DICOM PS3.3 C.8.9.2 PET Isotope Module: Radiopharmaceutical Information Sequence,
   Radionuclide Code Sequence, Radiopharmaceutical (Code Sequence), Radionuclide Half Life, Radionuclide
   Positron Fraction, Radionuclide Total Dose.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from dosimetry.option_names import option_name
from dosimetry.constants import NUCLIDE_HALF_LIVES_S, NUCLIDE_POSITRON_FRACTIONS
from dosimetry.errors import OptionsError, UnitsError

Y90, TC99M, HO166 = "Y-90", "Tc-99m", "Ho-166"
UNKNOWN = "unknown"
"""Nuclide of a half-life or positron fraction that is not Y-90's and names no nuclide we know."""

HALF_LIFE_REL_TOL: float = 0.01
"""A header half-life names a nuclide within 1% (headers give 64.0 h, 64.1 h or 64.053 h for Y-90)."""
POSITRON_FRACTION_REL_TOL: float = 0.05
"""A header positron fraction names a nuclide within 5%."""


class Verdict(str, enum.Enum):
    """What may be computed from an emission image."""

    Y90 = "Y-90"
    TC99M_PREDICTIVE = "Tc-99m predictive"
    REFUSED = "refused"


LABELS: dict[Verdict, str] = {Verdict.Y90: "Y-90 dose", Verdict.TC99M_PREDICTIVE: "predictive dose from Tc-99m MAA"}
"""The words every output uses for what its dose is (``stats.json`` ``emission.label``, report, DICOM)."""

# (symbol, element name, mass number) of the nuclides we can name from free text
NUCLIDES: dict[str, tuple[str, str, str]] = {
    "Y-90": ("y", "yttrium", "90"),
    "Y-86": ("y", "yttrium", "86"),
    "Tc-99m": ("tc", "technetium", "99m"),
    "Lu-177": ("lu", "lutetium", "177"),
    "Ho-166": ("ho", "holmium", "166"),
    "I-131": ("i", "iodine", "131"),
    "I-123": ("i", "iodine", "123"),
    "I-124": ("i", "iodine", "124"),
    "I-125": ("i", "iodine", "125"),
    "Ga-68": ("ga", "gallium", "68"),
    "Ga-67": ("ga", "gallium", "67"),
    "F-18": ("f", "fluorine", "18"),
    "Cu-64": ("cu", "copper", "64"),
    "Cu-67": ("cu", "copper", "67"),
    "Ge-68": ("ge", "germanium", "68"),
    "In-111": ("in", "indium", "111"),
    "Zr-89": ("zr", "zirconium", "89"),
    "Rb-82": ("rb", "rubidium", "82"),
    "C-11": ("c", "carbon", "11"),
    "N-13": ("n", "nitrogen", "13"),
    "O-15": ("o", "oxygen", "15"),
    "Tl-201": ("tl", "thallium", "201"),
    "Re-186": ("re", "rhenium", "186"),
    "Re-188": ("re", "rhenium", "188"),
    "Sm-153": ("sm", "samarium", "153"),
    "Sr-89": ("sr", "strontium", "89"),
    "Ra-223": ("ra", "radium", "223"),
    "Ac-225": ("ac", "actinium", "225"),
    "Pb-212": ("pb", "lead", "212"),
    "Tb-161": ("tb", "terbium", "161"),
    "Sc-44": ("sc", "scandium", "44"),
}

RADIONUCLIDE_CODES: dict[tuple[str, str], str] = {
    ("SCT", "14691008"): "Y-90",
    ("SRT", "C-162A7"): "Y-90",
    ("SCT", "10738001"): "Y-86",
    ("SRT", "C-162A3"): "Y-86",
    ("SCT", "72454006"): "Tc-99m",
    ("SRT", "C-163A8"): "Tc-99m",
    ("SCT", "447553000"): "Lu-177",
    ("SRT", "C-101ED"): "Lu-177",
    ("NCIt", "C1943"): "Ho-166",
    ("SCT", "1368003"): "I-131",
    ("SRT", "C-114B1"): "I-131",
    ("SCT", "21572004"): "I-123",
    ("SRT", "C-114A4"): "I-123",
    ("SCT", "40937006"): "I-124",
    ("SRT", "C-114A5"): "I-124",
    ("SCT", "35337001"): "Ga-68",
    ("SRT", "C-131A3"): "Ga-68",
    ("SCT", "2008008"): "Ga-67",
    ("SRT", "C-131A2"): "Ga-67",
    ("SCT", "77004003"): "F-18",
    ("SRT", "C-111A1"): "F-18",
    ("SCT", "3932008"): "Cu-64",
    ("SRT", "C-127A2"): "Cu-64",
    ("SCT", "53315004"): "Ge-68",
    ("SRT", "C-128A2"): "Ge-68",
    ("SCT", "56609000"): "In-111",
    ("SRT", "C-145A4"): "In-111",
    ("SCT", "63360001"): "Zr-89",
    ("SRT", "C-168A4"): "Zr-89",
    ("SCT", "60057003"): "Tl-201",
    ("SRT", "C-138A9"): "Tl-201",
}
"""(coding scheme, code value) of CID 18 / CID 4020 radionuclides -> nuclide [PS3.16-CID18]."""

RADIOPHARMACEUTICAL_CODES: dict[tuple[str, str], tuple[str, str]] = {
    ("SCT", "764678003"): ("Y-90", "microspheres"),
    ("SCT", "81761004"): ("Tc-99m", "MAA"),
    ("SRT", "C-B1203"): ("Tc-99m", "MAA"),
    ("SCT", "85693008"): ("Tc-99m", "MAA"),
    ("SRT", "C-B1200"): ("Tc-99m", "MAA"),
    ("SCT", "35321007"): ("F-18", "FDG"),
    ("SRT", "C-B1031"): ("F-18", "FDG"),
    ("SCT", "781259000"): ("Lu-177", "DOTATATE"),
    ("SCT", "111160004"): ("I-131", "sodium iodide"),
    ("SRT", "C-B1086"): ("I-131", "sodium iodide"),
}
"""(coding scheme, code value) of CID 25 / CID 4021 radiopharmaceuticals -> (nuclide, agent) [PS3.16-CID25]."""

_SCHEME_ALIASES = {"SNM3": "SRT", "99SDM": "SRT", "SNOMED": "SCT", "SNOMEDCT": "SCT", "NCIT": "NCIt"}

# agents named in free text: (pattern on normalised text, nuclide it implies, agent)
_AGENTS: tuple[tuple[re.Pattern, str, str], ...] = tuple(
    (re.compile(pattern), nuclide, agent)
    for pattern, nuclide, agent in (
        (r"\bmaa\b|aggregated albumin|albumin aggregated|macroaggregat|microaggregat", TC99M, "MAA"),
        (r"\bfdg\b|fluorodeoxyglucose|fludeoxyglucose", "F-18", "FDG"),
        (r"\bsir ?spheres?\b|\bthera ?spheres?\b", Y90, "microspheres"),
        (r"\bquirem ?spheres?\b|\bquirem\b", HO166, "microspheres"),
    )
)
_NOT_AGENT_WORDS = frozenset(
    "tc technetium spect nm pet ct scan study injection inj kit labelled labeled with and the of dose".split()
)


def _normalise(text) -> str:
    return re.sub(r"[^a-z0-9]+", " ", str(text or "").lower().replace("^", "")).strip()


def _patterns(symbol: str, name: str, mass: str) -> tuple[re.Pattern, ...]:
    mass_rx = mass[:-1] + "m?" if mass.endswith("m") else re.escape(mass)
    element = f"(?:{name}|{symbol})"
    return (
        re.compile(rf"(?<![a-z0-9]){element} ?{mass_rx}(?![0-9])"),
        re.compile(rf"(?<![a-z0-9]){mass_rx} ?{element}(?![a-z])"),
    )


_TEXT_PATTERNS = {nuclide: _patterns(*parts) for nuclide, parts in NUCLIDES.items()}


def nuclides_in_text(text) -> tuple[tuple[str, ...], str | None]:
    """The nuclides a free text names ('Y-90 microspheres', '^99m^Tc MAA', 'Fluorodeoxyglucose F^18^', 'FDG')
    and the agent it names ('MAA', 'FDG', 'microspheres', or the leftover words, e.g. 'sestamibi'); an
    agent implies its nuclide only when the text names none."""
    norm = _normalise(text)
    found = tuple(n for n, patterns in _TEXT_PATTERNS.items() if any(p.search(norm) for p in patterns))
    agent = implied = None
    for pattern, nuclide, name in _AGENTS:
        if pattern.search(norm):
            agent, implied = name, nuclide
            break
    if agent is None:
        rest = norm
        for patterns in _TEXT_PATTERNS.values():
            for p in patterns:
                rest = p.sub(" ", rest)
        words = [w for w in rest.split() if len(w) >= 3 and not w.isdigit() and w not in _NOT_AGENT_WORDS]
        agent = " ".join(words) or None
    if not found and implied:
        found = (implied,)
    return found, agent


def parse_nuclide(text: str) -> str:
    """The nuclide of ``--emission-nuclide`` ('Y-90', 'y90', '90Y', 'Tc-99m', 'Tc-99m MAA', 'Lu-177', ...).

    Raises
    ------
    OptionsError
        The text names no nuclide, or several.
    """
    found, _ = nuclides_in_text(text)
    if len(found) != 1:
        raise OptionsError(
            f"--emission-nuclide {text!r} names {'no' if not found else 'more than one'} nuclide; "
            "give one, like Y-90 or Tc-99m"
        )
    return found[0]


def half_life_nuclide(half_life_s: float) -> str:
    """The nuclide whose half-life is within 1% of ``half_life_s``, else :data:`UNKNOWN`."""
    for name, value in NUCLIDE_HALF_LIVES_S.items():
        if abs(half_life_s - value) <= HALF_LIFE_REL_TOL * value:
            return name
    return UNKNOWN


def positron_fraction_nuclide(fraction: float) -> str:
    """The nuclide whose positrons per decay are within 5% of ``fraction``, else :data:`UNKNOWN`."""
    for name, value in NUCLIDE_POSITRON_FRACTIONS.items():
        if abs(fraction - value) <= POSITRON_FRACTION_REL_TOL * value:
            return name
    return UNKNOWN


# --- evidence -----------------------------------------------------------------------------------------
NAMING_KINDS = ("radionuclide", "radiopharmaceutical", "option")
"""Evidence that names the nuclide; 'half-life' and 'positron fraction' only say what a scanner was set to."""


@dataclass(frozen=True)
class Evidence:
    """One item of evidence: where it stands, what it says, and the nuclide it points to (None: none)."""

    attribute: str
    value: str
    nuclide: str | None
    kind: str = "radiopharmaceutical"
    agent: str | None = None

    @property
    def names(self) -> bool:
        return self.kind in NAMING_KINDS

    def describe(self) -> str:
        return f"{self.attribute} {self.value}" + (f" = {self.nuclide}" if self.nuclide else "")

    def record(self) -> dict:
        return {"attribute": self.attribute, "value": self.value, "nuclide": self.nuclide, "agent": self.agent}


def _code_evidence(code, attribute: str, table: dict, kind: str) -> list[Evidence]:
    value = str(code.get("CodeValue", "") or code.get("LongCodeValue", "") or "").strip()
    scheme = str(code.get("CodingSchemeDesignator", "") or "").strip()
    meaning = str(code.get("CodeMeaning", "") or "").strip()
    shown = f"({value}, {scheme}, {meaning!r})"
    out: list[Evidence] = []
    entry = table.get((_SCHEME_ALIASES.get(scheme.upper(), scheme), value))
    if entry is not None:
        nuclide, agent = entry if isinstance(entry, tuple) else (entry, None)
        out.append(Evidence(attribute, shown, nuclide, kind, agent))
    found, agent = nuclides_in_text(meaning)
    for nuclide in found:
        if entry is None or nuclide != out[0].nuclide:
            out.append(Evidence(f"{attribute} CodeMeaning", repr(meaning), nuclide, kind, agent))
    if not out:
        out.append(Evidence(attribute, shown, None, kind, agent))
    return out


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def evidence_from_header(ds) -> tuple[Evidence, ...]:
    """The nuclide evidence of a DICOM header (a pydicom Dataset, or any mapping with ``get``): every item
    of its Radiopharmaceutical Information Sequence [PS3.3-C.8.9.2]; empty when there is none."""
    items = list(ds.get("RadiopharmaceuticalInformationSequence") or [])
    out: list[Evidence] = []
    for n, item in enumerate(items):
        where = f"RadiopharmaceuticalInformationSequence[{n}]." if len(items) > 1 else ""
        for code in item.get("RadionuclideCodeSequence") or []:
            out += _code_evidence(code, where + "RadionuclideCodeSequence", RADIONUCLIDE_CODES, "radionuclide")
        text = str(item.get("Radiopharmaceutical", "") or "").strip()
        if text:
            found, agent = nuclides_in_text(text)
            for nuclide in found or (None,):
                out.append(Evidence(where + "Radiopharmaceutical", repr(text), nuclide, "radiopharmaceutical", agent))
        for code in item.get("RadiopharmaceuticalCodeSequence") or []:
            out += _code_evidence(
                code, where + "RadiopharmaceuticalCodeSequence", RADIOPHARMACEUTICAL_CODES, "radiopharmaceutical"
            )
        half_life_s = _number(item.get("RadionuclideHalfLife"))
        if half_life_s is not None:
            out.append(
                Evidence(
                    where + "RadionuclideHalfLife", f"{half_life_s:g} s", half_life_nuclide(half_life_s), "half-life"
                )
            )
        fraction = _number(item.get("RadionuclidePositronFraction"))
        if fraction is not None:
            out.append(
                Evidence(
                    where + "RadionuclidePositronFraction",
                    f"{fraction:g}",
                    positron_fraction_nuclide(fraction),
                    "positron fraction",
                )
            )
    return tuple(out)


# --- the decision -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EmissionDecision:
    """The verdict on an emission image, with the evidence it rests on.

    Attributes
    ----------
    verdict : Verdict
    nuclide : str
        The nuclide the run takes the image to show.
    source : str
        Where that came from: the header ('DICOM header'), '--emission-nuclide', or 'assumed (not stated)'.
    evidence : tuple of Evidence
    override : str or None
        The nuclide the user stated (``--emission-nuclide``).
    header_nuclide : str or None
        What the evidence alone says (None: nothing, or a conflict).
    reason : str
        Why the image is refused (empty unless refused).
    warnings : tuple of str
    """

    verdict: Verdict
    nuclide: str
    source: str
    evidence: tuple[Evidence, ...] = ()
    override: str | None = None
    header_nuclide: str | None = None
    agent: str | None = None
    reason: str = ""
    warnings: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return LABELS.get(self.verdict, f"refused ({self.nuclide})")

    @property
    def predictive(self) -> bool:
        return self.verdict is Verdict.TC99M_PREDICTIVE

    @property
    def header_activity_is_y90(self) -> bool:
        """Whether the header's Radionuclide Total Dose is Y-90 activity: its own evidence names Y-90."""
        return self.verdict is Verdict.Y90 and self.header_nuclide == Y90

    def require_computable(self, what: str) -> None:
        """Raise :class:`UnitsError` (exit 5) for a refused image; ``what`` names it (series, file, option)."""
        if self.verdict is Verdict.REFUSED:
            raise UnitsError(f"{what}: {self.reason}")

    def record(self) -> dict:
        """The ``emission`` section of ``stats.json``."""
        return {
            "nuclide": self.nuclide,
            "verdict": self.verdict.value,
            "label": self.label,
            "source": self.source,
            "override": self.override,
            "header_nuclide": self.header_nuclide,
            "agent": self.agent,
            "evidence": [e.record() for e in self.evidence],
            "conflicts": list(self.conflicts),
        }


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _summary(evidence: Sequence[Evidence], nuclide: str | None = None) -> str:
    items = [e for e in evidence if e.nuclide and (nuclide is None or e.nuclide == nuclide)]
    return "; ".join(e.describe() for e in items) or "no evidence"


def decide(
    evidence: Sequence[Evidence], *, override: str | None = None, where: str = "the DICOM header"
) -> EmissionDecision:
    """The verdict on an emission image from its evidence and the user's statement (a pure function).

    Parameters
    ----------
    evidence : sequence of Evidence
        From :func:`evidence_from_header` (empty for image files).
    override : str, optional
        ``--emission-nuclide``: the user's statement, which wins over the evidence (recorded, and warned
        when the evidence names another nuclide).
    where : str
        What the evidence came from, for messages ('the DICOM header', 'an image file').

    Notes
    -----
    Names (radionuclide and radiopharmaceutical codes and text) win over numbers (half-life, positron
    fraction); numbers that disagree with the names are conflicts, recorded and warned. Names that
    disagree with each other, or numbers alone that disagree, are refused: state the nuclide. Without any
    evidence Y-90 is assumed, and a warning says so.

    Raises
    ------
    OptionsError
        ``override`` names no nuclide.
    """
    evidence = tuple(evidence)
    named = _unique(e.nuclide for e in evidence if e.names and e.nuclide)
    numbers = _unique(e.nuclide for e in evidence if not e.names and e.nuclide)
    warnings: list[str] = []
    conflicts: list[str] = []
    header: str | None = None
    unclear = ""
    if len(named) == 1:
        header = named[0]
        for e in evidence:
            if not e.names and e.nuclide and e.nuclide != header:
                conflicts.append(
                    f"{e.attribute} {e.value} points to {e.nuclide}, but {_summary(evidence, header)}: "
                    f"{header} is taken (the radionuclide/radiopharmaceutical wins over the {e.kind})"
                )
    elif len(named) > 1:
        unclear = f"{where} names several nuclides ({_summary([e for e in evidence if e.names])})"
    elif len(numbers) == 1:
        header = numbers[0]
    elif len(numbers) > 1:
        unclear = f"{where} points to several nuclides ({_summary(evidence)}) and names none"
    warnings += conflicts

    if override is not None:
        nuclide, source = parse_nuclide(override), "--emission-nuclide"
        if (header and header != nuclide) or unclear:
            warnings.append(
                f"--emission-nuclide {nuclide} overrides {where}, which points to "
                f"{header or 'several nuclides'} ({_summary(evidence)})"
            )
    elif unclear:
        reason = (
            f"{unclear}: cannot tell which nuclide the image shows; state it with --emission-nuclide "
            "(Y-90 for a Y-90 scan, Tc-99m for an MAA scan)"
        )
        return EmissionDecision(
            Verdict.REFUSED, UNKNOWN, where, evidence, None, None, None, reason, tuple(warnings), tuple(conflicts)
        )
    elif header is None:
        nuclide, source = Y90, "assumed (not stated)"
        warnings.append(
            f"{where} does not name the emission nuclide: Y-90 assumed (state it with {option_name('emission_nuclide')})"
        )
    else:
        nuclide, source = header, where.removeprefix("the ")

    agents = _unique(e.agent for e in evidence if e.names and e.nuclide == TC99M and e.agent)
    agent = "MAA" if "MAA" in agents or (override is not None and nuclide == TC99M) else (agents[0] if agents else None)
    shown = _summary(evidence, nuclide) if source != "--emission-nuclide" else f"--emission-nuclide {override}"
    if nuclide == Y90:
        verdict, reason = Verdict.Y90, ""
    elif nuclide == TC99M and agent in ("MAA", None):
        verdict, reason = Verdict.TC99M_PREDICTIVE, ""
        if agent is None:
            warnings.append(f"{where} names Tc-99m but not MAA ({shown}): taken as Tc-99m MAA for a predictive dose")
        agent = "MAA"
    elif nuclide == TC99M:
        verdict = Verdict.REFUSED
        reason = (
            f"the emission image is Tc-99m {agent} ({shown}), not Tc-99m MAA: only MAA gives a predictive "
            "Y-90 dose; if it is MAA, give --emission-nuclide Tc-99m"
        )
    elif nuclide == HO166:
        verdict = Verdict.REFUSED
        reason = (
            f"the emission image is Ho-166 ({shown}): Ho-166 dosimetry is not supported yet (its half-life, "
            "beta energy and kernel differ from Y-90, so a Y-90 dose would be wrong); for a Y-90 scan "
            "acquired under a Ho-166 protocol give --emission-nuclide Y-90"
        )
    else:
        verdict = Verdict.REFUSED
        what = "an unknown nuclide" if nuclide == UNKNOWN else nuclide
        reason = (
            f"the emission image is {what} ({shown}): only Y-90 doses (and predictive doses from Tc-99m "
            f"MAA) are computed; for a Y-90 scan acquired under another protocol give --emission-nuclide Y-90"
        )
    return EmissionDecision(
        verdict,
        nuclide,
        source,
        evidence,
        parse_nuclide(override) if override else None,
        header,
        agent,
        reason,
        tuple(warnings),
        tuple(conflicts),
    )


def decide_for_image_file(override: str | None = None) -> EmissionDecision:
    """The verdict for an image file (NIfTI, NRRD, MHA), which carries no nuclide: ``--emission-nuclide``
    or Y-90 assumed (with a warning)."""
    return decide((), override=override, where="an image file")


def check_calibration(
    decision: EmissionDecision, *, calibration: str, administered_gbq: float | None, what: str = "the emission image"
) -> None:
    """What a predictive (Tc-99m MAA) run needs: relative calibration to the planned Y-90 activity.

    Raises
    ------
    UnitsError
        Absolute calibration of a Tc-99m image (it would take Tc-99m activity for Y-90), or no
        ``--administered-gbq`` (the header's Radionuclide Total Dose is Tc-99m activity, never used).
    """
    if not decision.predictive:
        return
    if calibration != "relative":
        raise UnitsError(
            f"{what} is Tc-99m MAA: a predictive run, and absolute calibration would take Tc-99m activity for "
            "Y-90; use --calibration relative with --administered-gbq (the planned Y-90 activity)"
        )
    if administered_gbq is None:
        raise UnitsError(
            f"{what} is Tc-99m MAA: a predictive dose needs the planned Y-90 activity; give --administered-gbq "
            "(the header's RadionuclideTotalDose is Tc-99m activity and is never used)"
        )


# --- the words of the outputs -------------------------------------------------------------------------
def _verdict_of(stats: dict) -> str:
    return ((stats or {}).get("emission") or {}).get("verdict", Verdict.Y90.value)


def is_predictive(stats: dict) -> bool:
    """Whether a run's ``stats`` are a predictive dose from Tc-99m MAA."""
    return _verdict_of(stats) == Verdict.TC99M_PREDICTIVE.value


def report_title(stats: dict) -> str:
    """Title of the report of a run."""
    return "Y-90 predictive dose from Tc-99m MAA" if is_predictive(stats) else "Y-90 radioembolization dosimetry"


def series_description(stats: dict, what: str) -> str:
    """SeriesDescription of a DICOM output ('rtdose' or 'sr'), at most 64 characters (LO)."""
    if is_predictive(stats):
        text = {
            "rtdose": "Y-90 predictive dose from Tc-99m MAA",
            "sr": "Y-90 predictive dose from Tc-99m MAA: results",
        }[what]
    else:
        text = {"rtdose": "Y-90 absorbed dose", "sr": "Y-90 dosimetry results"}[what]
    return text[:64]


__all__ = [
    "Evidence",
    "EmissionDecision",
    "LABELS",
    "RADIONUCLIDE_CODES",
    "RADIOPHARMACEUTICAL_CODES",
    "Verdict",
    "check_calibration",
    "decide",
    "decide_for_image_file",
    "evidence_from_header",
    "half_life_nuclide",
    "is_predictive",
    "nuclides_in_text",
    "parse_nuclide",
    "positron_fraction_nuclide",
    "report_title",
    "series_description",
]


def emission_for_run(
    decision: EmissionDecision | None,
    *,
    emission_nuclide: str | None,
    calibration: str,
    administered_gbq: float | None,
    what: str,
) -> EmissionDecision:
    """The decision a run goes by (``decision`` from a DICOM study, else :func:`decide_for_image_file`),
    after refusing what may not be computed (:meth:`~EmissionDecision.require_computable`,
    :func:`check_calibration`)."""
    if decision is None:
        decision = decide_for_image_file(emission_nuclide)
    decision.require_computable(what)
    check_calibration(decision, calibration=calibration, administered_gbq=administered_gbq, what=what)
    return decision
