"""Values copied from a source header into an exported instance, made to fit their Value Representation.

Real headers break the rules of PS3.5 6.2 more often than one would think (a StudyID of 20 characters
in an SH of 16, a description of 70 characters in an LO of 64, an anonymiser's date 00010101, a
PatientSex "male"). Copied as they are, they make every export non-conformant (dciodvfy errors) and
pydicom warns on writing. :func:`fit_value` fits one value to the VR of its keyword (from pydicom's data
dictionary): text is truncated to the maximum length, code strings are upper-cased, values that cannot
be repaired (a date that is no date, a UID with letters) are dropped. Each change comes with a one-line
note that names the attribute and never its value (values of the Patient module identify people).

References
----------
.. [PS3.5-6.2] DICOM PS3.5 section 6.2, Value Representations (maximum lengths, character repertoires,
   DA/TM/DT formats) and 6.2.1 (PN component groups of at most 64 characters).
.. [PS3.3-C.7.1.1] DICOM PS3.3 C.7.1.1 Patient Module (Patient's Sex enumerated values M, F, O).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import format_number_as_ds

MAX_CHARS: dict[str, int] = {
    "AE": 16,
    "AS": 4,
    "CS": 16,
    "DA": 8,
    "DS": 16,
    "DT": 26,
    "IS": 12,
    "LO": 64,
    "LT": 10240,
    "SH": 16,
    "ST": 1024,
    "TM": 14,
    "UI": 64,
}
"""Maximum value length in characters per VR (PS3.5 Table 6.2-1); PN: 64 per component group."""

TRUNCATED_VRS = frozenset({"AE", "LO", "LT", "SH", "ST", "PN"})
"""Free-text VRs whose over-long values are truncated (the start of a description keeps its meaning)."""

EARLIEST_DA_YEAR = 1000
"""DA values with an earlier year (the anonymisers' 00010101) are refused by dicom3tools' dciodvfy
("Character invalid for this VR"), so they are dropped from the exports."""

_CS_CHARS = re.compile(r"[^A-Z0-9 _]")
_DA = re.compile(r"^\d{8}$")
_TM = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")
_DT = re.compile(r"^\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?$")
_UI = re.compile(r"^(0|[1-9]\d*)(\.(0|[1-9]\d*))*$")
_AS = re.compile(r"^\d{3}[DWMY]$")
_PATIENT_SEX = {"M": "M", "F": "F", "O": "O", "MALE": "M", "FEMALE": "F", "OTHER": "O"}


def _valid_date(text: str) -> bool:
    if not _DA.match(text):
        return False
    try:
        day = datetime.strptime(text, "%Y%m%d")
    except ValueError:
        return False
    return day.year >= EARLIEST_DA_YEAR


def _valid_time(text: str) -> bool:
    if not _TM.match(text):
        return False
    whole = text.partition(".")[0]
    limits = (23, 59, 60)
    return all(int(whole[i : i + 2]) <= limit for i, limit in zip(range(0, len(whole), 2), limits))


def _fit_one(vr: str, keyword: str, text: str) -> tuple[str | None, str | None]:
    """(fitted text or None to drop, what was done) for one single value."""
    if text == "":
        return text, None
    if keyword == "PatientSex":
        sex = _PATIENT_SEX.get(text.strip().upper())
        if sex is None:
            return None, "not one of M, F, O"
        return sex, (None if sex == text else "not one of M, F, O: mapped")
    if vr == "PN":
        groups = text.split("=")
        if all(len(g) <= 64 for g in groups):
            return text, None
        return "=".join(g[:64] for g in groups), "longer than 64 characters per name group: truncated"
    if vr in TRUNCATED_VRS:
        limit = MAX_CHARS[vr]
        if len(text) <= limit:
            return text, None
        return text[:limit].rstrip(), f"{len(text)} characters, more than {vr} allows ({limit}): truncated"
    if vr == "CS":
        fitted = _CS_CHARS.sub("_", text.strip().upper())[:16]
        return (fitted, None) if fitted == text else (fitted, "not a valid CS (A-Z, 0-9, space, _; 16): fitted")
    if vr == "DA":
        compact = text.strip().replace(".", "") if len(text.strip()) == 10 else text.strip()
        if _valid_date(compact):
            return compact, None if compact == text else "old ACR-NEMA form: rewritten as YYYYMMDD"
        return None, "not a usable DA date (YYYYMMDD, year 1000 or later)"
    if vr == "TM":
        compact = text.strip().replace(":", "")
        if not _valid_time(compact):
            return None, "not a TM time (HHMMSS.FFFFFF)"
        return compact, None if compact == text else "rewritten as HHMMSS"
    if vr == "DT":
        return (text, None) if _DT.match(text.strip()) and len(text) <= 26 else (None, "not a DT value")
    if vr == "UI":
        return (text, None) if _UI.match(text) and len(text) <= 64 else (None, "not a valid UID")
    if vr == "AS":
        return (text, None) if _AS.match(text) else (None, "not an AS age (nnnD/W/M/Y)")
    if vr in ("DS", "IS"):
        try:
            number = float(text)
        except ValueError:
            return None, f"not a number ({vr})"
        if vr == "IS":
            if number != int(number) or not -(2**31) <= number < 2**31:
                return None, "not a 32-bit integer (IS)"
            fitted = str(int(number))
            return (text, None) if len(text) <= 12 else (fitted, "rewritten in 12 characters")
        if len(text) <= 16:
            return text, None
        return format_number_as_ds(number), "more than 16 characters (DS): rounded"
    return text, None


def fit_value(keyword: str, value) -> tuple[object, str | None]:
    """``value`` of attribute ``keyword`` fitted to the attribute's VR, and a note when it was changed.

    Multi-valued text is fitted value by value (a value that cannot be repaired is removed). Returns
    ``(None, note)`` when nothing usable is left: the caller then writes the attribute empty (type 2)
    or leaves it out (type 3). Values of VRs not listed here (numbers, sequences, bytes) are returned
    unchanged.
    """
    try:
        vr = dictionary_VR(keyword)
    except KeyError:
        return value, None
    if vr not in MAX_CHARS and vr != "PN" or value is None:
        return value, None
    values = list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]
    fitted, notes = [], []
    for item in values:
        text = str(item) if item is not None else ""
        new, note = _fit_one(vr, keyword, text)
        if note:
            notes.append(note)
        if new is not None:
            fitted.append(new)
    if not notes:
        return value, None
    note = f"{keyword} ({vr}) {notes[0]}"
    if not fitted:
        return None, note
    return (fitted if len(values) > 1 else fitted[0]), note


def fit_dataset(dataset: Dataset, keywords: Iterable[str], *, type2: Iterable[str] = ()) -> list[str]:
    """Fit the attributes ``keywords`` of ``dataset`` to their VRs in place; the notes of the changes.

    An attribute with nothing usable left is written empty when it is in ``type2`` and removed otherwise.
    Items of sequences among ``keywords`` are fitted element by element (text VRs only). The elements
    are replaced, never modified, so a dataset that shares elements with another (see
    :func:`header_view`) leaves the other untouched.
    """
    type2 = set(type2)
    notes: list[str] = []
    for keyword in keywords:
        if keyword not in dataset:
            continue
        element = dataset[keyword]
        if element.VR == "SQ":
            for item in element.value:
                notes += fit_dataset(item, [e.keyword for e in item if e.keyword])
            continue
        value, note = fit_value(keyword, element.value)
        if note is None:
            continue
        del dataset[keyword]
        if value is not None:
            dataset.add_new(element.tag, element.VR, value)
        elif keyword in type2:
            dataset.add_new(element.tag, element.VR, "")
            note += ": written empty"
        else:
            note += ": left out"
        notes.append(note)
    return notes


def header_view(dataset: Dataset) -> Dataset:
    """A new dataset holding the elements of ``dataset`` (shared, not copied) and its file meta.

    Replacing an element of the view (as :func:`fit_dataset` does) leaves ``dataset`` unchanged; the
    pixel data is shared, not duplicated. Elements not yet decoded are shared as read (``get_item``): each
    is decoded when the view or ``dataset`` reads it, so a view of a header read from a file costs no
    decoding of the elements nobody reads.
    """
    view = Dataset({tag: dataset.get_item(tag) for tag in dataset.keys()})
    if hasattr(dataset, "file_meta"):
        view.file_meta = dataset.file_meta
    return view


PATIENT_STUDY_KEYWORDS: tuple[str, ...] = (
    # Patient (PS3.3 C.7.1.1)
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "TypeOfPatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientSex",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "EthnicGroup",
    "PatientComments",
    "PatientSpeciesDescription",
    "PatientBreedDescription",
    "ResponsiblePerson",
    "ResponsibleOrganization",
    "PatientIdentityRemoved",
    "DeidentificationMethod",
    "DeidentificationMethodCodeSequence",
    # General Study (C.7.2.1)
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDescription",
    "PhysiciansOfRecord",
    "NameOfPhysiciansReadingStudy",
    # Patient Study (C.7.2.2)
    "AdmittingDiagnosesDescription",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "Occupation",
    "AdditionalPatientHistory",
    "MedicalAlerts",
    "Allergies",
    "SmokingStatus",
    "PregnancyStatus",
)
"""Attributes of the Patient, General Study and Patient Study modules that the exports copy (ours and
highdicom's); UIDs are not among them: they are references and are never altered."""

TYPE2_PATIENT_STUDY: tuple[str, ...] = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)
"""Type 2 attributes of the Patient and General Study modules: present in every export, empty when unknown."""


def conformed_header(dataset: Dataset) -> tuple[Dataset, list[str]]:
    """A view of ``dataset`` (:func:`header_view`) whose Patient and Study attributes fit their VRs.

    Type 2 attributes missing from ``dataset`` are added empty (PS3.3 C.7.1.1, C.7.2.1), so highdicom,
    which reads them from its source images, finds them. Returns the view and the notes of the changes
    (one per attribute; none for attributes added empty: the standard allows them so).
    """
    view = header_view(dataset)
    notes = fit_dataset(view, PATIENT_STUDY_KEYWORDS, type2=TYPE2_PATIENT_STUDY)
    for keyword in TYPE2_PATIENT_STUDY:
        if keyword not in view:
            setattr(view, keyword, "")
    return view, notes


__all__ = [
    "EARLIEST_DA_YEAR",
    "MAX_CHARS",
    "PATIENT_STUDY_KEYWORDS",
    "TYPE2_PATIENT_STUDY",
    "conformed_header",
    "fit_dataset",
    "fit_value",
    "header_view",
]
