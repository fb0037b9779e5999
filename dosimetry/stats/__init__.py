"""Statistics of a dose map: ROI statistics and DVH, radiobiology, planning models, threshold sets, partial volume."""
