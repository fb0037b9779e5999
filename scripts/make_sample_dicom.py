#!/usr/bin/env python
"""Write the SYNTHETIC sample phantom as a DICOM study: CT series, Y-90 PET series, RTSTRUCT.

Reads ``data/samples/phantom/`` (made by ``scripts/make_sample_phantom.py``: ``activity_bqml.nii.gz`` in
Bq/mL at scan time, ``ct_hu.nii.gz``, ``rois/*.nii.gz``, ``truth.json``) and writes
``data/samples/phantom_dicom/``:

* ``CT/``: one file per slice, HU = stored - 1024, RLE Lossless;
* ``PET/``: one file per slice, Units BQML, int16 with per-slice Rescale Slope, Decay Correction START with
  per-slice Decay Factor, two bed positions of 15 min each (the second bed starts 15 min later), scan
  20 h after the implant, RadiopharmaceuticalInformationSequence with the start date-time, half-life and
  administered activity in Bq; Series Time set 2 h after the scan, as post-processing rewrites it;
* ``RTSTRUCT.dcm``: one structure per ROI mask, traced along the voxel edges.

The files carry every attribute their IODs require, so ``dciodvfy`` (dicom3tools) reports no error:
De-identification Method (Patient Identity Removed is YES: the data are synthetic), Image Laterality U
(the liver is unpaired), the NM/PET Patient Orientation codes of a head-first supine patient, Image Index,
and in the RT Structure Set its Frame of Reference and the CT images it refers to.
UIDs derive from a fixed root and a hash of their role, so repeated runs give identical files.
Usage: ``python scripts/make_sample_dicom.py [--phantom DIR] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from dosimetry.constants import Y90_HALF_LIFE_S
from dosimetry.dicom.rtstruct import mask_to_contours
from dosimetry.image import Image
from dosimetry.io.images import read_image

ROOT = Path(__file__).resolve().parents[1]
UID_ROOT = "2.25."
IMPLANT = datetime(2024, 1, 15, 9, 30, 0)
BED_DURATION_S = 900.0
N_BEDS = 2
SOP = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "PT": "1.2.840.10008.5.1.4.1.1.128",
    "RTSTRUCT": "1.2.840.10008.5.1.4.1.1.481.3",
}


def uid(*parts) -> str:
    """Deterministic UID: 2.25 root + 120 bits of SHA-256 of the parts."""
    digest = hashlib.sha256(("sample-phantom/" + "/".join(map(str, parts))).encode()).hexdigest()
    return UID_ROOT + str(int(digest[:30], 16))


STUDY, FOR = uid("study"), uid("frame of reference")
SERIES = {"CT": uid("series", "CT"), "PT": uid("series", "PT"), "RTSTRUCT": uid("series", "RTSTRUCT")}
DEIDENTIFICATION_METHOD = "SYNTHETIC PHANTOM: contains no patient data"
"""(0012,0063); no code of CID 7050 (de-identification profiles and options) describes synthetic data."""


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def _da_tm(value: datetime) -> tuple[str, str]:
    return value.strftime("%Y%m%d"), value.strftime("%H%M%S")


def _dataset(modality: str, number: int, when: datetime) -> Dataset:
    sop_uid = uid("instance", modality, number)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SOP[modality]
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = uid("implementation")
    meta.ImplementationVersionName = "Y90DOSI_SAMPLE"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = SOP[modality], sop_uid
    ds.Modality = modality
    ds.StudyInstanceUID, ds.SeriesInstanceUID = STUDY, SERIES[modality]
    ds.PatientName = "SYNTHETIC^PHANTOM"
    ds.PatientID = "SYNTHETIC-PHANTOM"
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = DEIDENTIFICATION_METHOD
    ds.StudyDate, ds.StudyTime = _da_tm(IMPLANT + timedelta(hours=20))
    ds.SeriesDate, ds.SeriesTime = _da_tm(when)
    ds.StudyID = "SYNTH1"
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "SYNTHETIC Y-90 post-treatment phantom"
    ds.Manufacturer = "y90-dosimetry sample generator (synthetic)"
    ds.SeriesNumber = {"CT": 1, "PT": 2, "RTSTRUCT": 3}[modality]
    ds.InstanceNumber = number + 1
    if modality != "RTSTRUCT":
        ds.ImageLaterality = "U"  # unpaired body part: General Series Laterality (Type 2C) is then not required
    return ds


def _geometry(ds: Dataset, image: Image, k: int) -> None:
    ds.FrameOfReferenceUID = FOR
    ds.PositionReferenceIndicator = ""
    ds.ImagePositionPatient = [f"{v:.4f}" for v in image.index_to_world((0, 0, k))]
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in np.concatenate([image.direction[:, 0], image.direction[:, 1]])]
    ds.PixelSpacing = [f"{image.spacing_mm[1]:.4f}", f"{image.spacing_mm[0]:.4f}"]
    ds.SliceThickness = f"{image.spacing_mm[2]:.4f}"
    ds.SliceLocation = f"{image.index_to_world((0, 0, k))[2]:.4f}"


def _pixels(ds: Dataset, plane: np.ndarray) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = plane.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    ds.compress(RLELossless, np.ascontiguousarray(plane.astype(np.int16)), generate_instance_uid=False)


def write_ct(ct: Image, out: Path, when: datetime) -> int:
    out.mkdir(parents=True, exist_ok=True)
    for k in range(ct.shape[2]):
        ds = _dataset("CT", k, when)
        ds.SeriesDescription = "CT low dose (SYNTHETIC)"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        _geometry(ds, ct, k)
        ds.PatientPosition = "HFS"  # PET says it with the Patient Orientation codes instead (PS3.3 C.7.3.1)
        ds.AcquisitionDate, ds.AcquisitionTime = _da_tm(when)
        ds.KVP = "120"
        ds.AcquisitionNumber = 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
        _pixels(ds, np.round(ct.array[:, :, k].T.astype(float) + 1024.0))
        ds.save_as(out / f"CT{k + 1:04d}.dcm", enforce_file_format=True)
    return ct.shape[2]


def write_pet(activity: Image, out: Path, scan: datetime, administered_bq: float) -> int:
    """PET slices; the truth is the concentration at ``scan`` (start of bed 1)."""
    out.mkdir(parents=True, exist_ok=True)
    lam = math.log(2.0) / Y90_HALF_LIFE_S
    in_frame = lam * BED_DURATION_S / -math.expm1(-lam * BED_DURATION_S)
    n = activity.shape[2]
    per_bed = math.ceil(n / N_BEDS)
    # Image Index (PS3.3 C.8.9.4.1.9): for WHOLE BODY\IMAGE, the Slice Index, 1 to n in increasing position
    # along the normal (row direction x column direction)
    normal = np.cross(activity.direction[:, 0], activity.direction[:, 1])
    along = [float(np.dot(activity.index_to_world((0, 0, k)), normal)) for k in range(n)]
    image_index = {int(k): i for i, k in enumerate(np.argsort(along, kind="stable"), start=1)}
    for k in range(n):
        bed = k // per_bed
        start_s = bed * BED_DURATION_S
        mean_over_frame = activity.array[:, :, k].T.astype(np.float64) * math.exp(-lam * start_s) / in_frame
        decay_factor = math.exp(lam * start_s) * in_frame  # START: back to the series start, and over the frame
        values = mean_over_frame * decay_factor
        vmax = float(np.max(np.abs(values)))
        slope = float(f"{(vmax / 32767.0 if vmax > 0 else 1.0):.6g}")  # per-slice slope, as scanners write
        ds = _dataset("PT", k, scan + timedelta(hours=2))
        ds.SeriesDescription = "Y90 PET AC (SYNTHETIC)"
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        _geometry(ds, activity, k)
        ds.Units = "BQML"
        ds.CountsSource = "EMISSION"
        ds.SeriesType = ["WHOLE BODY", "IMAGE"]
        ds.CollimatorType = "NONE"  # 3D PET, no septa
        ds.CorrectedImage = ["NORM", "DTIM", "ATTN", "SCAT", "DECY", "RAN"]
        ds.DecayCorrection = "START"
        ds.RandomsCorrectionMethod = "DLYD"
        ds.ReconstructionMethod = "OSEM"
        ds.NumberOfSlices = n
        ds.ImageIndex = image_index[k]
        ds.AcquisitionDate, ds.AcquisitionTime = _da_tm(scan + timedelta(seconds=start_s))
        ds.ActualFrameDuration = int(BED_DURATION_S * 1000)
        ds.FrameReferenceTime = f"{1000.0 * (start_s + math.log(in_frame) / lam):.3f}"
        ds.DecayFactor = f"{decay_factor:.10f}"[:16]
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.6g}", "0"
        item = Dataset()
        item.Radiopharmaceutical = "Y-90 microspheres"
        item.RadiopharmaceuticalStartDateTime = IMPLANT.strftime("%Y%m%d%H%M%S")
        item.RadiopharmaceuticalStartTime = IMPLANT.strftime("%H%M%S")
        item.RadionuclideTotalDose = f"{administered_bq:.6g}"
        item.RadionuclideHalfLife = f"{Y90_HALF_LIFE_S:.1f}"
        item.RadionuclidePositronFraction = "3.186e-05"
        item.RadionuclideCodeSequence = Sequence([_code("14691008", "SCT", "^90^Yttrium")])  # CID 4020
        ds.RadiopharmaceuticalInformationSequence = Sequence([item])
        # NM/PET Patient Orientation module, head-first supine as the CT: recumbent (CID 19), supine (CID 20),
        # headfirst (CID 21); Patient Position (0018,5100) shall then be absent
        orientation = _code("102538003", "SCT", "recumbent")
        orientation.PatientOrientationModifierCodeSequence = Sequence([_code("40199007", "SCT", "supine")])
        ds.PatientOrientationCodeSequence = Sequence([orientation])
        ds.PatientGantryRelationshipCodeSequence = Sequence([_code("102540008", "SCT", "headfirst")])
        _pixels(ds, np.clip(np.round(values / slope), -32768, 32767))
        ds.save_as(out / f"PT{k + 1:04d}.dcm", enforce_file_format=True)
    return n


def write_rtstruct(masks: dict[str, Image], path: Path, when: datetime, n_ct: int) -> int:
    """The structures on the Frame of Reference of the study, referring to the ``n_ct`` CT images."""
    ds = _dataset("RTSTRUCT", 0, when)
    ds.SeriesDescription = "ROIs (SYNTHETIC)"
    ds.OperatorsName = ""
    ds.FrameOfReferenceUID = FOR
    ds.PositionReferenceIndicator = ""
    ds.StructureSetLabel = "ROIs"
    ds.StructureSetDate, ds.StructureSetTime = _da_tm(when)
    ser = Dataset()
    ser.SeriesInstanceUID = SERIES["CT"]
    images = []
    for k in range(n_ct):
        image = Dataset()
        image.ReferencedSOPClassUID, image.ReferencedSOPInstanceUID = SOP["CT"], uid("instance", "CT", k)
        images.append(image)
    ser.ContourImageSequence = Sequence(images)
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.ReferencedSOPInstanceUID = STUDY
    study.RTReferencedSeriesSequence = Sequence([ser])
    ref = Dataset()
    ref.FrameOfReferenceUID = FOR
    ref.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([ref])
    rois, contours, observations = [], [], []
    colours = [[220, 120, 60], [80, 160, 230], [230, 40, 40], [240, 200, 40], [160, 60, 200], [60, 200, 90]]
    for number, (name, mask) in enumerate(masks.items(), start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = FOR
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = "AUTOMATIC"
        rois.append(roi)
        rc = Dataset()
        rc.ReferencedROINumber = number
        rc.ROIDisplayColor = colours[(number - 1) % len(colours)]
        items = []
        for loop in mask_to_contours(mask):
            item = Dataset()
            item.ContourGeometricType = "CLOSED_PLANAR"
            item.NumberOfContourPoints = len(loop)
            item.ContourData = [f"{v:.2f}" for v in loop.ravel()]
            items.append(item)
        rc.ContourSequence = Sequence(items)
        contours.append(rc)
        obs = Dataset()
        obs.ObservationNumber = number
        obs.ReferencedROINumber = number
        obs.RTROIInterpretedType = "GTV" if name.lower().startswith("tumor") else "ORGAN"
        obs.ROIInterpreter = ""
        observations.append(obs)
    ds.StructureSetROISequence = Sequence(rois)
    ds.ROIContourSequence = Sequence(contours)
    ds.RTROIObservationsSequence = Sequence(observations)
    ds.save_as(path, enforce_file_format=True)
    return len(rois)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--phantom", type=Path, default=ROOT / "data" / "samples" / "phantom")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "samples" / "phantom_dicom")
    args = parser.parse_args(argv)
    truth = json.loads((args.phantom / "truth.json").read_text())
    scan = IMPLANT + timedelta(hours=float(truth["scan_delay_h"]))
    administered_bq = float(truth["administered_activity_gbq"]) * 1e9
    activity = read_image(args.phantom / "activity_bqml.nii.gz")
    ct = read_image(args.phantom / "ct_hu.nii.gz")
    masks = {p.name[: -len(".nii.gz")]: read_image(p) for p in sorted((args.phantom / "rois").glob("*.nii.gz"))}
    if args.out.exists():
        for old in sorted(args.out.rglob("*.dcm")):
            old.unlink()
    args.out.mkdir(parents=True, exist_ok=True)
    n_ct = write_ct(ct, args.out / "CT", scan - timedelta(minutes=3))
    n_pt = write_pet(activity, args.out / "PET", scan, administered_bq)
    n_roi = write_rtstruct(masks, args.out / "RTSTRUCT.dcm", scan, n_ct)
    (args.out / "README.md").write_text(
        "# SYNTHETIC sample DICOM study (not patient data)\n\n"
        "Written by `scripts/make_sample_dicom.py` from `data/samples/phantom/` (see its README and "
        "`truth.json`).\n\n"
        f"- `CT/`: {n_ct} CT slices (HU, RLE Lossless).\n"
        f"- `PET/`: {n_pt} Y-90 PET slices, Units BQML, per-slice Rescale Slope, Decay Correction START "
        f"with Decay Factor, {N_BEDS} beds of {BED_DURATION_S / 60:.0f} min, scan start "
        f"{scan.isoformat()} = implant {IMPLANT.isoformat()} + {truth['scan_delay_h']} h; Series Time "
        "deliberately 2 h after the scan (as post-processing rewrites it).\n"
        f"- `RTSTRUCT.dcm`: {n_roi} structures traced along the voxel edges of `rois/*.nii.gz`.\n\n"
        "Loaded with `dosimetry.dicom.load_study`, it gives the NIfTI activity image at the scan start.\n\n"
        "Every file passes `dciodvfy` (dicom3tools) without error; the data are synthetic (Patient Identity "
        f'Removed YES, De-identification Method "{DEIDENTIFICATION_METHOD}").\n'
    )
    print(f"wrote {n_ct} CT, {n_pt} PET slices and {n_roi} structures to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
