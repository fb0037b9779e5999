"""The DICOM files of a run from a DICOM study: RT Dose, SEG of the added ROIs, TID 1500 SR.

Called by :func:`dosimetry.outputs.write_results` when the result came from
:func:`dosimetry.pipeline.run_dicom_study`; the files land in the same temporary folder as the other
outputs, so a failure leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path

import pydicom

from ..errors import InputFileError
from ..pipeline import DosimetryResult
from ..roi import Roi
from .rtdose import save_dataset_atomically, write_rt_dose
from .seg import build_segmentation
from .sr import build_measurement_report

DICOM_OUTPUT_FILES = ("rtdose.dcm", "sr.dcm", "seg.dcm")
"""RT Dose and SR for every DICOM run; SEG only when ROIs were added from NIfTI/NRRD files."""


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


def write_dicom_outputs(result: DosimetryResult, folder: str | Path) -> list[Path]:
    """Write ``rtdose.dcm``, ``sr.dcm`` and (for ROIs not from the study) ``seg.dcm`` into ``folder``.

    The RT Dose joins the study and Frame of Reference of the CT (or of the emission series when there is
    no CT); the SEG lies on the emission series' grid (its source images); the SR cites the CT/PET
    header, and the SEG and its source images when there is one.
    """
    sources = result.dicom_sources or {}
    folder = Path(folder)
    reference_files = sources.get("ct") or sources.get("emission")
    if not reference_files:
        return []
    reference = _read(reference_files[0], pixels=False)
    written = [write_rt_dose(result.dose_gy, reference, folder / "rtdose.dcm",
                             dose_comment=f"Y-90 {result.stats['method']} dose")]
    evidence = [reference]
    segmentation = None
    added = [name for name in sources.get("added_rois", ()) if name in result.roi_weights]
    if added:
        roles = {entry["name"]: entry["role"] for entry in result.stats["rois"]}
        rois = [Roi(name, roles[name], result.dose_gy.with_array(result.roi_weights[name]), source="added ROI")
                for name in added]
        source_images = [_read(path, pixels=True) for path in sources["emission"]]
        segmentation = build_segmentation(rois, source_images)
        _copy_deidentification(source_images[0], segmentation)
        written.append(save_dataset_atomically(segmentation, folder / "seg.dcm"))
        evidence += [segmentation, *source_images]
    report = build_measurement_report(result.stats, evidence, segmentation=segmentation)
    _copy_deidentification(reference, report)
    written.append(save_dataset_atomically(report, folder / "sr.dcm"))
    return written
