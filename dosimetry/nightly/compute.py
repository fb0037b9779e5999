"""Compute one retrieved study exactly as ``dosimetry run STUDY --out DIR --pdf`` does, then prepare what is sent.

The ``[run]`` options (and the study's CSV row) are parsed by the ``run`` command's own parser
(:func:`dosimetry.cli.build_parser`) and turned into :class:`~dosimetry.pipeline.DosimetryOptions` by
:func:`dosimetry.cli.run.dosimetry_options`, as ``dosimetry run`` does; the study is computed by :func:`~dosimetry.pipeline.run_dicom_study` and written by
:func:`~dosimetry.export.results.write_results` (RT Dose, SR and, with ``seg`` sent, a Segmentation of the ROIs
used), all inside :func:`~dosimetry.export.deterministic_uids`, so every UID derives from the input hash
and the software version. Then the report is wrapped as Encapsulated PDF in the same study.

A study without an RTSTRUCT or SEG gets one ROI ``whole image`` (role ``other``): its dose map and the
statistics of the whole image, marked "no ROIs" (a warning in stats.json, " - no ROIs" in the RT Dose's
SeriesDescription); only the RT Dose is sent.

Everything is written into a staging folder in ``work/`` and renamed into ``results/`` when complete; the
folder's ``nightly.json`` (written last) lists the files to send with their UIDs.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

from dosimetry._version import __version__
from dosimetry.errors import OptionsError, OutputError
from dosimetry.nightly.config import run_argv
from dosimetry.nightly.uids import output_uid

MANIFEST = "nightly.json"
ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
WHOLE_IMAGE_ROI = "whole image"
NO_ROIS_WARNING = (
    "no ROIs: the study has no RTSTRUCT or SEG; only the dose map and the statistics of the whole "
    "image ('whole image' ROI) are given; the nightly job computes the study again when an RTSTRUCT "
    "or SEG arrives"
)
SEND_FILES = {"rtdose": "rtdose.dcm", "sr": "sr.dcm", "seg": "seg.dcm", "report": "report-pdf.dcm"}


def parse_run_options(study_dir: Path, out_dir: Path, options: dict):
    """``dosimetry run`` arguments of the study, through the run command's own parser (checked as there)."""
    from dosimetry.cli import build_parser
    from dosimetry.option_ranges import OptionValueError

    try:
        return build_parser().parse_args(["run", str(study_dir), "--out", str(out_dir), *run_argv(options)])
    except OptionValueError as err:
        raise OptionsError(f"run options of the study: {err.error}") from err
    except (Exception, SystemExit) as err:
        raise OptionsError(f"run options of the study: {err}") from err


def has_rois(study_dir: Path) -> bool:
    from dosimetry.dicom import inventory
    from dosimetry.dicom.discovery import Kind

    return any(record.kind in (Kind.RTSTRUCT, Kind.SEG) for record in inventory(study_dir))


def _whole_image_roi(study_dir: Path, options, series_uid):
    from dosimetry.dicom import load_study
    from dosimetry.roi import Roi

    study = load_study(
        study_dir,
        series_uid=series_uid,
        implant_time=options.implant_time,
        calibration=options.calibration,
        emission_nuclide=options.emission_nuclide,
    )
    mask = study.activity.with_array(np.ones(study.activity.array.shape, dtype=np.float32))
    return Roi(WHOLE_IMAGE_ROI, "other", mask, source="nightly job: the study has no ROIs")


def _reference_header(result) -> Dataset:
    sources = result.dicom_sources or {}
    files = sources.get("ct") or sources.get("emission")
    return pydicom.dcmread(str(files[0]), stop_before_pixels=True)


def encapsulated_pdf(pdf_path: Path, reference: Dataset, seed: str, *, title: str) -> Dataset:
    """The report as Encapsulated PDF Storage (PS3.3 A.45.1) in the study of ``reference``."""
    from dosimetry.export.rtdose import MANUFACTURER, copy_patient_study_frame
    from dosimetry.export.vr import conformed_header

    header, _notes = conformed_header(reference)
    document = pdf_path.read_bytes()
    ds = Dataset()
    copy_patient_study_frame(header, ds, frame_of_reference=False)
    for keyword in ("PatientIdentityRemoved", "DeidentificationMethod"):
        if keyword in reference:
            ds[keyword] = reference[keyword]
    now = datetime.now()
    sop_uid = output_uid(seed, "report-instance")
    ds.SOPClassUID = ENCAPSULATED_PDF_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = output_uid(seed, "report-series")
    ds.SeriesNumber = 903  # after the RT Dose (900), SEG (901) and SR (902)
    ds.SeriesDescription = title[:64]
    ds.Manufacturer = MANUFACTURER
    ds.SoftwareVersions = __version__
    ds.ConversionType = "WSD"
    ds.InstanceNumber = 1
    ds.ContentDate = now.strftime("%Y%m%d")
    ds.ContentTime = now.strftime("%H%M%S")
    ds.AcquisitionDateTime = ""
    ds.BurnedInAnnotation = "NO"  # the report names no patient (stats.json and report.html carry no identifiers)
    ds.DocumentTitle = title[:64]
    ds.ConceptNameCodeSequence = []
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocumentLength = len(document)
    ds.EncapsulatedDocument = document + (b"\0" if len(document) % 2 else b"")
    ds.InstanceCreationDate, ds.InstanceCreationTime = ds.ContentDate, ds.ContentTime
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ENCAPSULATED_PDF_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds


def _mark_no_rois(path: Path) -> None:
    from dosimetry.export.rtdose import save_dataset_atomically

    ds = pydicom.dcmread(path)
    ds.SeriesDescription = f"{str(ds.get('SeriesDescription', 'Y-90 dose'))[:53]} - no ROIs"
    save_dataset_atomically(ds, path)


def _entry(path: Path, what: str) -> dict:
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return {
        "file": path.name,
        "what": what,
        "sop_class_uid": str(ds.SOPClassUID),
        "sop_instance_uid": str(ds.SOPInstanceUID),
        "series_uid": str(ds.SeriesInstanceUID),
    }


def read_manifest(folder: Path) -> dict | None:
    """The manifest of a complete results folder, or None (absent, unreadable: the folder is not complete)."""
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _move_into(staging: Path, final: Path) -> None:
    """Rename the complete ``staging`` folder to ``final`` (copied beside it first when on another disk)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(staging, final)
        return
    except OSError as err:
        if err.errno != 18:  # EXDEV: work and results on different file systems
            raise
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        shutil.copytree(staging, tmp / "copy")
        os.replace(tmp / "copy", final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)


def compute_study(
    study_dir: Path, staging: Path, final: Path, options: dict, seed: str, *, input_hash: str, send: tuple[str, ...]
) -> dict:
    """Compute the study in ``study_dir`` into ``final`` (via ``staging``); returns the manifest.

    Raises
    ------
    DosimetryError
        Any expected fault of the study or its options (the message is the reason the ledger records).
    """
    from dataclasses import replace

    from dosimetry.quantify.emission import is_predictive
    from dosimetry.export import deterministic_uids
    from dosimetry.export.results import write_results
    from dosimetry.cli.run import dosimetry_options, isodose_levels
    from dosimetry.pipeline import run_dicom_study

    args = parse_run_options(study_dir, staging, options)
    run_options = dosimetry_options(args)
    rois_present = has_rois(study_dir)
    extra = [] if rois_present else [_whole_image_roi(study_dir, run_options, args.series or None)]
    with deterministic_uids(seed):
        result = run_dicom_study(
            study_dir,
            options=run_options,
            series_uid=args.series or None,
            extra_rois=extra,
            role_overrides=dict(args.segment_role),
            calibration_factor_cps_per_mbq=args.spect_cps_per_mbq,
        )
        given = tuple(e["name"] for e in result.stats["rois"] if "derived" not in e)
        seg_rois = given if rois_present and "seg" in send else ()
        result = replace(result, dicom_sources={**result.dicom_sources, "added_rois": seg_rois})
        if not rois_present:
            result.stats["warnings"].append(NO_ROIS_WARNING)
        if staging.exists():
            shutil.rmtree(staging)
        write_results(result, staging, pdf=rois_present and "report" in send, isodose_gy=isodose_levels(args))
    entries = []
    for what in send if rois_present else ("rtdose",):
        path = staging / SEND_FILES[what]
        if what == "rtdose" and path.exists() and not rois_present:
            _mark_no_rois(path)
        if what == "report" and (staging / "report.pdf").exists():
            title = "Y-90 dosimetry report" + (" (predictive, Tc-99m MAA)" if is_predictive(result.stats) else "")
            from dosimetry.export.rtdose import save_dataset_atomically

            save_dataset_atomically(
                encapsulated_pdf(staging / "report.pdf", _reference_header(result), seed, title=title), path
            )
        if path.exists():
            entries.append(_entry(path, what))
    missing = [w for w in (send if rois_present else ("rtdose",)) if not (staging / SEND_FILES[w]).exists()]
    manifest = {
        "software": "y90-dosimetry",
        "version": __version__,
        "input_hash": input_hash,
        "no_rois": not rois_present,
        "predictive": is_predictive(result.stats),
        "send": entries,
        "not_made": missing,
        "warnings": [w for w in result.stats["warnings"] if " not written: " in w],
    }
    tmp = staging / f".{MANIFEST}.partial"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, staging / MANIFEST)
    if final.exists():  # a complete folder of these inputs from an earlier, interrupted pass: keep it
        if read_manifest(final) is not None:
            shutil.rmtree(staging)
            return read_manifest(final)
        shutil.rmtree(final)  # ours (results/<study key>/<input hash>), incomplete
    try:
        _move_into(staging, final)
    except OSError as err:
        raise OutputError(f"cannot move the results to {final}: {err.strerror or err}; check [paths] results") from err
    return manifest
