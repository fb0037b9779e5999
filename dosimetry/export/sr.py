"""The per-ROI results of a run as a DICOM TID 1500 Measurement Report (Comprehensive 3D SR, highdicom).

One measurement group per ROI (given and derived), identified by a Tracking Identifier equal to the ROI
name, holding:

=====================  =============================================  ================  =================
quantity               concept name                                   unit (UCUM)       from ``stats``
=====================  =============================================  ================  =================
mean absorbed dose     (128513, DCM, "Absorbed Dose"), derivation     Gy                ``mean_gy``
                       (373098007, SCT, "Mean"), method
                       (MASS-WEIGHTED-MEAN, 99Y90DOSIMETRY)
D70                    (D70, 99Y90DOSIMETRY)                          Gy                ``D70``
V100                   (V100, 99Y90DOSIMETRY)                         %                 ``V100``
volume                 (118565006, SCT, "Volume")                     ml                ``volume_ml``
T:N (tumour group)     (TN-DOSE-RATIO, 99Y90DOSIMETRY)                {ratio}           ``tumor_to_normal``
                       (TN-ACT-RATIO, 99Y90DOSIMETRY)
=====================  =============================================  ================  =================

Standard codes are used where DICOM has them: "Absorbed Dose" is in CID 7469 (Generic Intensity and
Size Measurements) and CID 10070, "Mean" in CID 7464 (General Region of Interest Measurement
Modifiers), "Volume" in CID 7469; units are UCUM (PS3.16 CID 7181). DICOM has no concept for the
dose-volume metrics Dx and Vx of a post-treatment dose distribution, for the tumour-to-normal ratios
of radioembolization, nor for "perfused liver territory" and "non-tumoral liver": these use the
private coding scheme :data:`PRIVATE_CODING_SCHEME` ("99Y90DOSIMETRY"; the "99" prefix marks a local
scheme, PS3.16 8.2), declared in the Coding Scheme Identification Sequence (0008,0110) of every instance
that uses it, with each code's meaning spelled out.

When the ROIs were exported as a DICOM Segmentation (:mod:`.seg`), each group that has a segment of the
same label is a volumetric group (TID 1411) referencing that segment; derived ROIs (normal liver, union
of tumours) and ROIs without a segment are TID 1501 groups.

References
----------
.. [PS3.16-TID1500] DICOM PS3.16 TID 1500 Measurement Report, TID 1411 Volumetric ROI Measurements and
   Qualitative Evaluations, TID 1501 Measurement and Qualitative Evaluation Group, TID 1419 ROI
   Measurements.
.. [PS3.3-C.12.1] DICOM PS3.3 C.12.1 SOP Common Module (Coding Scheme Identification Sequence).
.. [highdicom] Herrmann et al., "Highdicom: a Python library for standardized encoding of image
   annotations and machine learning model outputs in pathology and radiology", J Digit Imaging 35 (2022)
   1719-1737, doi:10.1007/s10278-022-00683-y.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from dosimetry._version import __version__
from dosimetry.quantify.emission import is_predictive
from dosimetry.errors import InputFileError, RoiError
from dosimetry.export.rtdose import MANUFACTURER, new_uid, save_dataset_atomically

PRIVATE_CODING_SCHEME = "99Y90DOSIMETRY"
"""Coding Scheme Designator of the package's local codes (declared in each instance that uses them)."""

PRIVATE_CODING_SCHEME_NAME = "y90-dosimetry local concepts"


def _private(value: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value, PRIVATE_CODING_SCHEME, meaning)


# standard concepts
ABSORBED_DOSE = hd.sr.CodedConcept("128513", "DCM", "Absorbed Dose")
MEAN = hd.sr.CodedConcept("373098007", "SCT", "Mean")
VOLUME = hd.sr.CodedConcept("118565006", "SCT", "Volume")
UNIT_GY = hd.sr.CodedConcept("Gy", "UCUM", "Gy")
UNIT_ML = hd.sr.CodedConcept("ml", "UCUM", "milliliter")
UNIT_PERCENT = hd.sr.CodedConcept("%", "UCUM", "Percent")
UNIT_RATIO = hd.sr.CodedConcept("{ratio}", "UCUM", "ratio")
LIVER = hd.sr.CodedConcept("10200004", "SCT", "Liver")
LUNG = hd.sr.CodedConcept("39607008", "SCT", "Lung")
NEOPLASM = hd.sr.CodedConcept("108369006", "SCT", "Neoplasm")
TISSUE = hd.sr.CodedConcept("85756007", "SCT", "Tissue")
ANATOMICAL_STRUCTURE = hd.sr.CodedConcept("91723000", "SCT", "Anatomical Structure")
MORPHOLOGICALLY_ABNORMAL = hd.sr.CodedConcept("49755003", "SCT", "Morphologically Abnormal Structure")

# local concepts (no standard code exists)
MASS_WEIGHTED_MEAN = _private("MASS-WEIGHTED", "Mass-weighted mean (energy imparted / mass)")
D70 = _private("D70", "Minimum absorbed dose to the hottest 70% of the volume")
V100 = _private("V100", "Percentage of the volume receiving at least 100 Gy")
TN_DOSE_RATIO = _private("TN-DOSE-RATIO", "Tumor to normal liver mean absorbed dose ratio")
TN_ACTIVITY_RATIO = _private("TN-ACT-RATIO", "Tumor to normal liver activity concentration ratio")
PERFUSED_LIVER = _private("PERFUSED-LIVER", "Perfused liver territory")
NORMAL_LIVER = _private("NORMAL-LIVER", "Non-tumoral liver (liver minus tumors)")
PROCEDURE = _private("Y90-DOSIMETRY", "Post-treatment Y-90 radioembolization voxel dosimetry")
PREDICTIVE_PROCEDURE = _private("Y90-PREDICTIVE-DOSIMETRY", "Predictive Y-90 voxel dosimetry from Tc-99m MAA")

ROLE_CODES: dict[str, tuple[hd.sr.CodedConcept, hd.sr.CodedConcept]] = {
    "liver": (ANATOMICAL_STRUCTURE, LIVER),
    "tumor": (MORPHOLOGICALLY_ABNORMAL, NEOPLASM),
    "lung": (ANATOMICAL_STRUCTURE, LUNG),
    "perfused": (ANATOMICAL_STRUCTURE, PERFUSED_LIVER),
    "normal_liver": (ANATOMICAL_STRUCTURE, NORMAL_LIVER),
    "other": (TISSUE, TISSUE),
}
"""ROI role -> (segmented property category, segmented property type / finding type)."""

_KEYS_BY_CONCEPT = {
    ("128513", "DCM"): "mean_gy",
    ("D70", PRIVATE_CODING_SCHEME): "D70",
    ("V100", PRIVATE_CODING_SCHEME): "V100",
    ("118565006", "SCT"): "volume_ml",
    ("TN-DOSE-RATIO", PRIVATE_CODING_SCHEME): "tn_dose_ratio",
    ("TN-ACT-RATIO", PRIVATE_CODING_SCHEME): "tn_activity_ratio",
}


def coding_scheme_identification() -> Dataset:
    """The Coding Scheme Identification item (PS3.3 C.12.1) that declares :data:`PRIVATE_CODING_SCHEME`."""
    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_CODING_SCHEME
    item.CodingSchemeName = PRIVATE_CODING_SCHEME_NAME
    item.CodingSchemeResponsibleOrganization = "y90-dosimetry developers"
    return item


def declare_private_scheme(dataset: Dataset) -> None:
    """Add the private scheme to the Coding Scheme Identification Sequence of ``dataset`` (once)."""
    existing = dataset.get("CodingSchemeIdentificationSequence", [])
    if any(item.get("CodingSchemeDesignator") == PRIVATE_CODING_SCHEME for item in existing):
        return
    items = list(existing) + [coding_scheme_identification()]
    dataset.CodingSchemeIdentificationSequence = items


def _finite(value) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def _measurements(entry: dict, tn: Mapping | None) -> list[hd.sr.Measurement]:
    out = [
        hd.sr.Measurement(
            name=ABSORBED_DOSE, value=float(entry["mean_gy"]), unit=UNIT_GY, derivation=MEAN, method=MASS_WEIGHTED_MEAN
        ),
        hd.sr.Measurement(name=D70, value=float(entry["D70"]), unit=UNIT_GY),
        hd.sr.Measurement(name=V100, value=float(entry["V100"]), unit=UNIT_PERCENT),
        hd.sr.Measurement(name=VOLUME, value=float(entry["volume_ml"]), unit=UNIT_ML),
    ]
    if tn is not None:
        if _finite(tn.get("dose_ratio")):
            out.append(hd.sr.Measurement(name=TN_DOSE_RATIO, value=float(tn["dose_ratio"]), unit=UNIT_RATIO))
        if _finite(tn.get("activity_ratio")):
            out.append(hd.sr.Measurement(name=TN_ACTIVITY_RATIO, value=float(tn["activity_ratio"]), unit=UNIT_RATIO))
    return out


def _segment_numbers(segmentation: Dataset | None) -> dict[str, int]:
    if segmentation is None:
        return {}
    return {str(item.SegmentLabel): int(item.SegmentNumber) for item in segmentation.SegmentSequence}


def _referenced_segment(segmentation: Dataset, number: int) -> hd.sr.ReferencedSegment:
    """The SR reference to one segment of ``segmentation``, with the segmentation's source series.

    TID 1411 allows the source of a segment to be given as its series ("Source series for segmentation")
    instead of each source image. The series keeps the SR small (highdicom's
    ``ReferencedSegment.from_segmentation`` lists every source image of every segment: hundreds of
    references for a PET series, each then searched, copied and written), and the SEG lists its source
    images itself.
    """
    series_uid = segmentation.ReferencedSeriesSequence[0].SeriesInstanceUID
    return hd.sr.ReferencedSegment(
        sop_class_uid=segmentation.SOPClassUID,
        sop_instance_uid=segmentation.SOPInstanceUID,
        segment_number=number,
        source_series=hd.sr.SourceSeriesForSegmentation(series_uid),
    )


def build_measurement_report(
    stats: Mapping,
    evidence: Sequence[Dataset],
    *,
    segmentation: Dataset | None = None,
    series_description: str = "Y-90 dosimetry results",
    series_number: int = 902,
    instance_number: int = 1,
) -> hd.sr.Comprehensive3DSR:
    """A TID 1500 Measurement Report of the ROI results of a run.

    Parameters
    ----------
    stats : mapping
        ``DosimetryResult.stats`` (the content of ``stats.json``): ``rois`` entries with ``name``,
        ``role``, ``mean_gy``, ``D70``, ``V100``, ``volume_ml``, and ``tumor_to_normal``.
    evidence : sequence of pydicom.dataset.Dataset
        Headers of the instances the results derive from (at least one image of the study's CT or PET;
        the RT Dose may be added). Patient and study are taken from them; they are listed as evidence.
    segmentation : pydicom.dataset.Dataset, optional
        The DICOM Segmentation of the ROIs (:func:`~dosimetry.export.seg.build_segmentation`). Segments
        whose label equals an ROI name are referenced from that ROI's group, with the segmentation's
        source series; the segmentation must then also be in ``evidence`` (its source images may be).
    series_description : str
    series_number, instance_number : int

    Returns
    -------
    highdicom.sr.Comprehensive3DSR

    Raises
    ------
    RoiError
        ``stats`` holds no ROI.
    InputFileError
        ``evidence`` is empty.
    """
    rois = list(stats.get("rois", []))
    if not rois:
        raise RoiError("the results hold no ROI statistics; nothing to report in the SR")
    if not evidence:
        raise InputFileError("the SR needs at least one header of the study's CT or PET series as evidence")
    tn = stats.get("tumor_to_normal") or {}
    tn_owner = tn.get("tumor") if (_finite(tn.get("dose_ratio")) or _finite(tn.get("activity_ratio"))) else None
    segments = _segment_numbers(segmentation)
    groups = []
    for entry in rois:
        name, role = str(entry["name"]), str(entry["role"])
        finding = ROLE_CODES.get(role, ROLE_CODES["other"])[1]
        tracking = hd.sr.TrackingIdentifier(uid=new_uid(), identifier=name)
        measurements = _measurements(entry, tn if name == tn_owner else None)
        if name in segments:
            reference = _referenced_segment(segmentation, segments[name])
            groups.append(
                hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                    tracking_identifier=tracking,
                    referenced_segment=reference,
                    finding_type=finding,
                    measurements=measurements,
                )
            )
        else:
            groups.append(
                hd.sr.MeasurementsAndQualitativeEvaluations(
                    tracking_identifier=tracking, finding_type=finding, measurements=measurements
                )
            )
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=new_uid(), name=MANUFACTURER, manufacturer_name=MANUFACTURER, model_name=__version__
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=PREDICTIVE_PROCEDURE if is_predictive(stats) else PROCEDURE,
        imaging_measurements=groups,
        title=codes.DCM.ImagingMeasurementReport,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=list(evidence),
        content=report,
        series_instance_uid=new_uid(),
        series_number=int(series_number),
        sop_instance_uid=new_uid(),
        instance_number=int(instance_number),
        manufacturer=MANUFACTURER,
        is_complete=True,
    )
    sr.SeriesDescription = series_description
    sr.SoftwareVersions = __version__
    declare_private_scheme(sr)
    return sr


def write_measurement_report(stats: Mapping, evidence: Sequence[Dataset], path: str | os.PathLike, **options) -> Path:
    """Build (:func:`build_measurement_report`, same keywords) and write the SR atomically.

    Raises
    ------
    OutputError
        The file cannot be written.
    """
    return save_dataset_atomically(build_measurement_report(stats, evidence, **options), path)


def read_measurement_report(path_or_dataset: str | os.PathLike | Dataset) -> dict[str, dict[str, float]]:
    """The numbers of a Measurement Report written by :func:`write_measurement_report`, by ROI name.

    Parsed with highdicom (no knowledge of our writer beyond the concept codes): for each measurement
    group, the Tracking Identifier gives the ROI name, and each measurement whose concept is one of the
    table in the module docstring gives a key (``mean_gy``, ``D70``, ``V100``, ``volume_ml``,
    ``tn_dose_ratio``, ``tn_activity_ratio``) and its value.

    Raises
    ------
    InputFileError
        The file is not a readable TID 1500 Structured Report.
    """
    try:
        sr = (
            hd.sr.Comprehensive3DSR.from_dataset(path_or_dataset)
            if isinstance(path_or_dataset, Dataset)
            else hd.sr.srread(path_or_dataset)
        )
        content = sr.content
        groups = list(content.get_volumetric_roi_measurement_groups()) + list(content.get_image_measurement_groups())
    except Exception as err:  # highdicom raises several types for non-conforming content
        raise InputFileError(
            f"cannot read the SR as a TID 1500 measurement report ({type(err).__name__}: {err})"
        ) from err
    out: dict[str, dict[str, float]] = {}
    for group in groups:
        values: dict[str, float] = {}
        for measurement in group.get_measurements():
            key = _KEYS_BY_CONCEPT.get((measurement.name.value, measurement.name.scheme_designator))
            if key is not None:
                values[key] = float(measurement.value)
        out[str(group.tracking_identifier)] = values
    return out
