"""Reading images and ROI files (NIfTI, NRRD, MHA, Slicer .seg.nrrd) and the package's data files; DICOM input is in ``dosimetry.dicom``."""
