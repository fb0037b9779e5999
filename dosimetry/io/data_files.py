"""Access to the physics data files in ``kernels/`` (installed as ``dosimetry.kernel_data``)."""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

from dosimetry.errors import InputFileError

_PACKAGE = "dosimetry.kernel_data"


def data_path(name: str):
    """A traversable for the data file ``name`` in ``kernels/`` (works from a checkout and a wheel)."""
    path = resources.files(_PACKAGE).joinpath(name)
    if not path.is_file():
        raise InputFileError(
            f"physics data file {name!r} is missing from the installed package "
            f"(expected in kernels/); reinstall y90-dosimetry"
        )
    return path


@functools.lru_cache(maxsize=None)
def hu_to_density_table() -> tuple[np.ndarray, np.ndarray]:
    """The Schneider 2000 HU -> density nodes (HU, g/cm3), read once per process.

    Returns read-only arrays; the cache holds immutable data only (no per-study state).
    """
    text = data_path("hu_to_density_schneider2000.txt").read_text()
    rows = [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    table = np.array(rows, dtype=float)
    hu, rho = table[:, 0].copy(), table[:, 1].copy()
    hu.flags.writeable = False
    rho.flags.writeable = False
    return hu, rho
