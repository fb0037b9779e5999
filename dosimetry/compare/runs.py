"""A ``dosimetry run`` output folder as the input of ``compare``: its statistics and what its dose is.

The folder must hold ``stats.json`` (and ``dose.nii.gz`` when the dose is resampled). What the dose is
comes from ``stats.json`` ``emission`` (:mod:`dosimetry.quantify.emission`): a Y-90 dose, or a predictive dose from
Tc-99m MAA. The frame of reference is the emission series' ``FrameOfReferenceUID`` recorded for DICOM runs
(``inputs.dicom.emission.frame_of_reference_uid``); runs from image files record none (unknown).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from dosimetry.quantify.emission import Verdict
from dosimetry.errors import InputFileError, UnitsError
from dosimetry.stats.lung_shunt import spect_lung_shunt

DERIVED_UNIONS = frozenset({"tumors_all", "lungs_all"})
"""Derived ROIs that repeat the given ones (unions): left out of the agreement statistics."""

PREDICTIVE = Verdict.TC99M_PREDICTIVE.value
DELIVERED = Verdict.Y90.value


@dataclass(frozen=True)
class RunRecord:
    """One run folder: its ``stats.json`` and the facts ``compare`` needs.

    Attributes
    ----------
    folder : Path
    stats : dict
        The parsed ``stats.json``.
    verdict : str or None
        ``emission.verdict`` (``"Y-90"``, ``"Tc-99m predictive"``), None when the run records none.
    frame_of_reference_uid : str or None
        Recorded FrameOfReferenceUID of the emission series (DICOM runs), else None (unknown).
    """

    folder: Path
    stats: dict
    verdict: str | None
    frame_of_reference_uid: str | None

    @property
    def label(self) -> str:
        return ((self.stats.get("emission") or {}).get("label")) or "not recorded"

    @property
    def rois(self) -> dict[str, dict]:
        """The ROI entries of ``stats.json`` by name (given and derived)."""
        return {entry["name"]: entry for entry in self.stats.get("rois", [])}

    @property
    def dose_path(self) -> Path:
        return self.folder / "dose.nii.gz"

    def recorded_ct(self) -> Path | None:
        """The CT the run used: its file, or the DICOM folder of a DICOM run with a CT, if it still exists."""
        inputs = self.stats.get("inputs") or {}
        recorded = (inputs.get("ct") or {}).get("file")
        if recorded and Path(recorded).is_file():
            return Path(recorded)
        dicom = inputs.get("dicom") or {}
        if dicom.get("folder") and dicom.get("ct") and Path(dicom["folder"]).is_dir():
            return Path(dicom["folder"])
        return None

    def study_values(self) -> dict:
        """Study-level numbers: T:N dose ratio, lung mean dose, lung shunt from the image and as stated."""
        tn = (self.stats.get("tumor_to_normal") or {}).get("dose_ratio")
        lung = self.stats.get("lung") or {}
        return {
            "tn_ratio": _number(tn),
            "lung_mean_gy": _number(lung.get("mean_gy")),
            "lung_roi": lung.get("roi"),
            "lsf_image": image_lung_shunt(self.stats.get("rois", [])),
            "lsf_stated": _number(((self.stats.get("inputs") or {}).get("options") or {}).get("lung_shunt_fraction")),
        }


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def image_lung_shunt(rois: list[dict]) -> float | None:
    """Lung shunt fraction from the image: A_lung / (A_lung + A_liver), ROI activities of ``stats.json``.

    Lungs: ``lungs_all`` if present, else the one lung ROI; liver: the sum of the liver ROIs. A scale
    factor common to all voxels (relative calibration) cancels, so this is the image's own ratio, not the
    typed lung shunt. None without a lung and a liver ROI (:func:`dosimetry.stats.lung_shunt.spect_lung_shunt`).
    """
    record = spect_lung_shunt({"rois": rois})
    return None if record is None else record["lung_shunt_fraction"]


def read_run(folder: str | os.PathLike, *, option: str) -> RunRecord:
    """Read a run folder; ``option`` names the command-line option for the messages.

    Raises
    ------
    InputFileError
        Not a folder, no readable ``stats.json``, or one without ROI statistics.
    """
    folder = Path(folder)
    stats_path = folder / "stats.json"
    if not folder.is_dir():
        raise InputFileError(f"{option} {folder}: not a folder; give the output folder of a 'dosimetry run'")
    if not stats_path.is_file():
        raise InputFileError(
            f"{option} {folder}: no stats.json in this folder; give the output folder of a 'dosimetry run'"
        )
    try:
        stats = json.loads(stats_path.read_text())
    except (OSError, ValueError) as err:
        raise InputFileError(f"{stats_path}: not readable JSON ({err}); run 'dosimetry run' again") from err
    if not isinstance(stats, dict) or not isinstance(stats.get("rois"), list) or not stats["rois"]:
        raise InputFileError(f"{stats_path}: no ROI statistics; the run needs ROIs (--roi, --segmentation, RTSTRUCT)")
    emission = stats.get("emission") or {}
    dicom = (stats.get("inputs") or {}).get("dicom") or {}
    for_uid = ((dicom.get("emission") or {}).get("frame_of_reference_uid")) or None
    return RunRecord(folder, stats, emission.get("verdict"), for_uid)


def recorded_rois(record: RunRecord, *, option: str) -> tuple[list, list[str]]:
    """The ROIs a run used, from its ``stats.json``: the structures of its DICOM study, else its mask files
    and Slicer segments (``PATH#SEGMENT``), with their recorded roles.

    ``option`` names the command-line option (or the purpose) in the messages.

    Raises
    ------
    InputFileError
        A recorded ROI file no longer exists (the message names it and the fix).
    RoiError
        The run records no ROI source.
    """
    from dosimetry.errors import RoiError
    from dosimetry.io.roi_files import read_mask_roi, read_slicer_segmentation
    from dosimetry.io.run_folder import rois_of_dicom_run

    rois, notes = rois_of_dicom_run(record.folder)
    if rois:
        return rois, notes
    entries = (record.stats.get("inputs") or {}).get("rois") or []
    segmentations: dict[str, dict] = {}
    for entry in entries:
        source, name, role = entry.get("source") or "", entry.get("name"), entry.get("role")
        path, sep, segment = source.rpartition("#") if "#" in source else (source, "", "")
        if not path or not Path(path).is_file():
            raise InputFileError(
                f"{option}: ROI {name!r} of {record.folder} was read from {source or 'an unrecorded source'}, "
                "which no longer exists; give the delivered ROIs with --roi/--segmentation"
            )
        if sep:
            if path not in segmentations:
                seg_rois, seg_notes = read_slicer_segmentation(path, warn_unknown=False)
                segmentations[path] = {r.name: r for r in seg_rois}
                notes += seg_notes
            roi = segmentations[path].get(segment)
            if roi is None:
                raise InputFileError(f"{option}: {path} has no segment {segment!r} any more; give --segmentation")
            rois.append(type(roi)(name, role, roi.mask, source=source))
        else:
            rois.append(read_mask_roi(path, role, name, notes=notes))
    if not rois:
        raise RoiError(f"{option}: {record.folder} records no ROI; give the delivered ROIs with --roi")
    notes.append(f"ROIs: those recorded in {record.folder / 'stats.json'}")
    return rois, notes


def check_emission(predicted: RunRecord, delivered: RunRecord, *, accept: bool = False) -> list[str]:
    """Refuse a ``--predicted`` run that is not a predictive Tc-99m MAA dose, or a ``--delivered`` run that is
    not a Y-90 dose; with ``accept`` the mismatch becomes a warning (returned).

    Raises
    ------
    UnitsError
        The emission verdict of a run is not the one expected (exit code 5).
    """
    warnings: list[str] = []
    for record, option, expected, words in (
        (predicted, "--predicted", PREDICTIVE, "a predictive dose from Tc-99m MAA"),
        (delivered, "--delivered", DELIVERED, "a Y-90 dose"),
    ):
        if record.verdict == expected:
            continue
        found = f"'{record.label}'" if record.verdict else "no emission record (a run of an older version)"
        message = f"{option} {record.folder}: expected {words}, its stats.json says {found}"
        if not accept:
            raise UnitsError(f"{message}; check the order of --predicted and --delivered, or add --accept-emission")
        warnings.append(f"{message}; compared anyway (--accept-emission)")
    return warnings


__all__ = ["DERIVED_UNIONS", "RunRecord", "check_emission", "image_lung_shunt", "read_run", "recorded_rois"]
