"""The DICOM files of a run from a DICOM study: RT Dose, SEG of the added ROIs, TID 1500 SR.

Called by :func:`dosimetry.export.results.write_results` when the result came from
:func:`dosimetry.pipeline.run_dicom_study`; the files land in the same temporary folder as the other
outputs, so a failure leaves nothing behind.

The DICOM files are extras: the dose, statistics and report are complete without them. Each export is
therefore one guarded step, and an export that cannot be made conformant is left out with a warning
that says why, while the run goes on:

* expected faults (a :class:`~dosimetry.errors.DosimetryError` other than
  :class:`~dosimetry.errors.OutputError`: no Frame of Reference, no usable source images for the SEG, ...)
  give ``"<file> not written: <reason>"``;
* an unexpected exception is a bug of ours or of a library: the export is left out too, but the warning
  says ``"unexpected <ExceptionType> (a bug: please report it; run with -vv for the traceback)"`` and the
  traceback is logged at DEBUG level, so it is visible in stats.json, on the terminal and in the report,
  and never silent; ``strict=True`` (used by the tests) raises it instead;
* :class:`~dosimetry.errors.OutputError` (the folder cannot be written) fails the run as for any output.

Every value copied from a source header is fitted to its VR first (:mod:`.vr`), and library warnings
are turned into the run's warnings (:func:`dosimetry.libwarnings.library_warnings`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom

from dosimetry.quantify.emission import is_predictive, series_description
from dosimetry.errors import DosimetryError, GeometryError, InputFileError, OutputError
from dosimetry.libwarnings import library_warnings
from dosimetry.occupancy import Occupancy
from dosimetry.image import Image
from dosimetry.pipeline import DosimetryResult
from dosimetry.roi import Roi
from dosimetry.export.rtdose import save_dataset_atomically, write_rt_dose
from dosimetry.export.vr import conformed_header

log = logging.getLogger("dosimetry")

DICOM_OUTPUT_FILES = ("rtdose.dcm", "sr.dcm", "seg.dcm")
"""RT Dose and SR for every DICOM run; SEG only when ROIs were added from NIfTI/NRRD files."""


@dataclass
class DicomExports:
    """What :func:`write_dicom_outputs` wrote, and the warnings of the exports (for stats.json)."""

    written: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _read(path, *, pixels: bool) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(str(path), stop_before_pixels=not pixels)
    except Exception as err:  # the file was read once already; a failure now means it changed
        raise InputFileError(f"{path}: cannot read it again for the DICOM exports ({err})") from err


_DEIDENTIFICATION = ("PatientIdentityRemoved", "DeidentificationMethod", "DeidentificationMethodCodeSequence")


def _copy_deidentification(reference: pydicom.Dataset, dataset: pydicom.Dataset) -> None:
    """highdicom copies the Patient module but not its de-identification attributes (PS3.3 C.7.1.1)."""
    for keyword in _DEIDENTIFICATION:
        if keyword in reference:
            dataset[keyword] = reference[keyword]


class _Step:
    """One guarded export: expected faults and bugs become warnings (see the module docstring)."""

    def __init__(self, name: str, exports: DicomExports, strict: bool) -> None:
        self.name, self.exports, self.strict = name, exports, strict
        self.failed = False

    def __enter__(self):
        self._warnings = library_warnings(self.exports.warnings, during=f"{self.name} export")
        self._warnings.__enter__()
        return self

    def __exit__(self, kind, err, tb) -> bool:
        self._warnings.__exit__(None, None, None)
        if err is None:
            return False
        if isinstance(err, OutputError) or not isinstance(err, Exception):
            return False  # the folder cannot be written, or an interrupt: the run fails
        self.failed = True
        if isinstance(err, DosimetryError):
            self.exports.warnings.append(f"{self.name} not written: {err}")
            return True
        if self.strict:
            return False
        log.debug("%s export failed", self.name, exc_info=(kind, err, tb))
        self.exports.warnings.append(
            f"{self.name} not written: unexpected {type(err).__name__}: {' '.join(str(err).split())[:200]} "
            "(a bug: please report it; run with -vv for the traceback)"
        )
        return True


def _single_frame(files) -> bool:
    return bool(files) and int(_read(files[0], pixels=False).get("NumberOfFrames", 1) or 1) == 1


def _note_fitted(exports: DicomExports, notes) -> None:
    for note in dict.fromkeys(notes):
        line = f"DICOM exports: {note}"
        if line not in exports.warnings:
            exports.warnings.append(line)


def _segmentation_sources(sources: dict) -> tuple[tuple, str | None]:
    """The files the SEG is drawn on and a note when they are not the emission series.

    A DICOM Segmentation references its source images frame by frame; the exporter works on classic
    single-frame series. A multi-frame emission image (NM tomo, Enhanced PET) is replaced by the CT.

    Raises
    ------
    InputFileError
        No single-frame series to reference.
    """
    emission, ct = tuple(sources.get("emission") or ()), tuple(sources.get("ct") or ())
    if _single_frame(emission):
        return emission, None
    if ct and _single_frame(ct):
        return ct, (
            "seg.dcm: the emission series is one multi-frame image, which the SEG export cannot reference "
            "frame by frame; the ROIs are drawn on the CT series instead"
        )
    raise InputFileError(
        "the emission series is one multi-frame image and there is no single-frame CT series "
        "to draw the segmentation on; the added ROIs are in stats.json only"
    )


@dataclass
class PreparedSegmentation:
    """The SEG of a run's added ROIs built before it is written (:func:`prepare_segmentation`)."""

    weights: dict[str, Occupancy]
    """The occupancies it was built from (the run's, on the emission grid)."""
    roles: dict[str, str]
    """Their roles (which give the segments' codes)."""
    grid: Image
    """The grid they lie on (its voxels are not used)."""
    dataset: pydicom.Dataset | None
    """The SEG; None when it could not be made (``exports.warnings`` says why)."""
    source_images: list = field(default_factory=list)
    exports: DicomExports = field(default_factory=DicomExports)
    """The warnings of building it (headers fitted to their VRs, the SEG left out and why)."""

    def matches(self, weights: dict[str, Occupancy], roles: dict[str, str], grid: Image) -> bool:
        """True when ``weights`` on ``grid``, with ``roles``, are exactly what it was built from."""
        if set(weights) != set(self.weights) or not grid.same_grid(self.grid, tol_mm=0.0):
            return False
        if any(roles.get(name) != self.roles.get(name) for name in weights):
            return False
        for name, weight in weights.items():
            mine, theirs = Occupancy.of(self.weights[name]), Occupancy.of(weight)
            if (mine.start, mine.grid_shape) != (theirs.start, theirs.grid_shape):
                return False
            if not np.array_equal(mine.values, theirs.values):
                return False
        return True


def prepare_segmentation(
    sources: dict, grid: Image, weights: dict[str, Occupancy], roles: dict[str, str], *, strict: bool = False
) -> PreparedSegmentation:
    """Build the SEG of the added ROIs ``weights`` (occupancies on ``grid``, the emission grid) on the source
    series of ``sources`` (``DosimetryResult.dicom_sources``), without writing it.

    :func:`write_dicom_outputs` calls it, or takes one made earlier (the command line's export process makes it
    as soon as the ROIs are resampled) when its occupancies are the result's. Expected faults and bugs become
    warnings, as for every export (module docstring); ``strict`` raises the bugs.
    """
    exports = DicomExports()
    dataset, source_images = None, []
    with _Step("seg.dcm", exports, strict) as step:
        rois = [
            Roi(name, roles[name], Occupancy.of(weight).as_image(grid), source="added ROI")
            for name, weight in weights.items()
        ]
        files, note = _segmentation_sources(sources)
        for path in files:
            view, notes = conformed_header(_read(path, pixels=False))  # the SEG needs their headers only
            _note_fitted(exports, notes)
            source_images.append(view)
        from dosimetry.export.seg import build_segmentation  # highdicom: only for the SEG and SR

        dataset = build_segmentation(rois, source_images)
        _copy_deidentification(source_images[0], dataset)
        if note:
            exports.warnings.append(note)
    if step.failed:
        dataset, source_images = None, []
    roles = {name: roles[name] for name in weights}
    return PreparedSegmentation(dict(weights), roles, grid, dataset, source_images, exports)


def write_dicom_outputs(
    result: DosimetryResult,
    folder: str | Path,
    *,
    strict: bool = False,
    prepared: PreparedSegmentation | None = None,
    parts: tuple[str, ...] = ("rtdose", "seg", "sr"),
) -> DicomExports:
    """Write ``rtdose.dcm``, ``sr.dcm`` and (for ROIs not from the study) ``seg.dcm`` into ``folder``.

    The RT Dose joins the study and Frame of Reference of the CT (or of the emission series when there is
    no CT); the SEG lies on the emission series' grid (its source images), or on the CT's when the
    emission series is one multi-frame image; the SR cites the CT/PET header, and the SEG and its source
    images when there is one. Each export is a guarded step (module docstring): one that cannot be made
    conformant is left out and :attr:`DicomExports.warnings` says why.

    Parameters
    ----------
    strict : bool
        Raise unexpected exceptions (bugs) instead of turning them into warnings.
    prepared : PreparedSegmentation, optional
        The SEG built earlier (:func:`prepare_segmentation`); used when its occupancies are the result's,
        else the SEG is built again.
    parts : tuple of str
        Which exports to write: ``("rtdose",)`` and ``("seg", "sr")`` are the two halves (the command line
        writes the RT Dose in the run's process and the others in its export process); the warnings about the
        reference header are those of a whole call in both, so that joining the halves' warnings in this
        order, without repeats, gives a whole call's.

    Raises
    ------
    OutputError
        A file cannot be written.
    """
    sources = result.dicom_sources or {}
    folder = Path(folder)
    exports = DicomExports()
    reference_files = sources.get("ct") or sources.get("emission")
    if not reference_files:
        return exports
    reference = None
    with _Step("rtdose.dcm", exports, strict):
        reference, notes = conformed_header(_read(reference_files[0], pixels=False))
        _note_fitted(exports, notes)
        if not str(reference.get("FrameOfReferenceUID", "")):
            raise GeometryError(
                f"{'the CT' if sources.get('ct') else 'the emission'} series has no FrameOfReferenceUID"
                f"{'' if sources.get('ct') else ' and there is no CT to take one from'}; an RT Dose without a "
                "Frame of Reference cannot be placed on any image"
            )
        if "rtdose" in parts:
            exports.written.append(
                write_rt_dose(
                    result.dose_gy,
                    reference,
                    folder / "rtdose.dcm",
                    series_description=series_description(result.stats, "rtdose"),
                    dose_comment=f"Y-90 {result.stats['method']} "
                    + ("predictive dose from Tc-99m MAA" if is_predictive(result.stats) else "dose"),
                )
            )
    if "sr" not in parts:
        return exports
    if reference is None:
        exports.warnings.append("sr.dcm not written: the reference header cannot be read (see rtdose.dcm)")
        return exports
    evidence = [reference]
    segmentation = None
    added = [name for name in sources.get("added_rois", ()) if name in result.roi_weights]
    if added:
        weights = {name: result.roi_weights[name] for name in added}
        roles = {entry["name"]: entry["role"] for entry in result.stats["rois"]}
        if prepared is not None and not prepared.matches(weights, roles, result.dose_gy):
            log.debug("the SEG built ahead is not of the result's ROIs; it is built again")
            prepared = None
        if prepared is None:
            prepared = prepare_segmentation(sources, result.dose_gy, weights, roles, strict=strict)
        exports.warnings.extend(w for w in prepared.exports.warnings if w not in exports.warnings)
        if prepared.dataset is not None:
            with _Step("seg.dcm", exports, strict) as step:
                exports.written.append(save_dataset_atomically(prepared.dataset, folder / "seg.dcm"))
            if not step.failed:
                segmentation = prepared.dataset
                evidence += [segmentation, *prepared.source_images]
    with _Step("sr.dcm", exports, strict):
        from dosimetry.export.sr import build_measurement_report

        report = build_measurement_report(
            result.stats, evidence, segmentation=segmentation, series_description=series_description(result.stats, "sr")
        )
        _copy_deidentification(reference, report)
        exports.written.append(save_dataset_atomically(report, folder / "sr.dcm"))
    return exports
