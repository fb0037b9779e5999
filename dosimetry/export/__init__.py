"""DICOM exports of a run: the dose map as RT Dose, the ROIs as Segmentation, the results as a TID 1500 SR.

:mod:`.rtdose`
    :func:`~.rtdose.write_rt_dose` (and :func:`~.rtdose.read_rt_dose` for round trips): the dose grid
    in the Frame of Reference and study of a reference CT or PET series; :func:`~.rtdose.deterministic_uids`
    makes the UIDs of every export inside it derive from a seed (the nightly job's resends are duplicates).
:mod:`.seg`
    :func:`~.seg.build_segmentation` / :func:`~.seg.write_segmentation`: ROI masks (from NIfTI/NRRD) as
    a DICOM Segmentation on the grid of the source images (highdicom).
:mod:`.sr`
    :func:`~.sr.build_measurement_report` / :func:`~.sr.write_measurement_report`: per-ROI mean dose,
    D70, V100, volume and T:N as a TID 1500 Measurement Report (highdicom), and
    :func:`~.sr.read_measurement_report` to read the numbers back.
:mod:`.vr`
    :func:`~.vr.fit_value` / :func:`~.vr.conformed_header`: every value copied from a source header fitted
    to its VR (truncated, upper-cased or dropped, with a note); type 2 attributes present, empty if unknown.
:mod:`.study`
    :func:`~.study.write_dicom_outputs`: the exports of a DICOM run, each a guarded step that is left out
    with a warning when it cannot be made conformant.

:mod:`.results` writes the files of a run (temporary folder, then rename); :mod:`.output_guard` keeps
``--out`` away from every input.

Nothing here configures logging; messages never contain patient identifiers.
"""

from dosimetry._lazy import lazy_exports

__getattr__, __all__ = lazy_exports(
    __name__,
    {
        "DOSE_SUMMATION_TYPE": "rtdose",
        "deterministic_uids": "rtdose",
        "read_rt_dose": "rtdose",
        "write_rt_dose": "rtdose",
        "build_segmentation": "seg",
        "write_segmentation": "seg",
        "PRIVATE_CODING_SCHEME": "sr",
        "build_measurement_report": "sr",
        "read_measurement_report": "sr",
        "write_measurement_report": "sr",
    },
)
"""Public names, loaded from their submodule on first use, so that importing :mod:`.output_guard` or
:mod:`.results` does not import highdicom."""
