"""From emission image to activity: which nuclide it shows, plausibility checks, decay, calibration, and HU to density."""
