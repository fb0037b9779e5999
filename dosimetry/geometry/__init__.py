"""Grids in world coordinates: resampling masks and CT onto the activity grid, rigid registration."""
