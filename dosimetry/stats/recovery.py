"""Partial-volume correction of lesion mean doses with a recovery curve measured on a sphere phantom.

A site scans a NEMA/IEC body phantom whose spheres hold a known Y-90 activity concentration and measures,
for each sphere, the recovery coefficient ``RC = measured / true`` mean activity concentration. The
curve (sphere volume in mL -> RC) is a CSV file given by the user (``--recovery-curve FILE.csv``,
``ClinicalOptions(recovery_curve=...)``)::

    volume_ml,recovery_coefficient
    0.52,0.20
    ...

Lines starting with ``#`` are comments. For each lesion of volume ``V`` the coefficient is interpolated
linearly in ``log V`` between the two nearest spheres (``numpy.interp`` on the log volumes); outside the
spheres' range it is clamped to the nearest sphere's RC and the lesion's record says so
(``recovery_clamped``), with a warning. The corrected mean dose is

    ``mean_gy_pvc = mean_gy / RC(V)``

written beside ``mean_gy`` (which is never changed): the mean dose is linear in the activity inside the
lesion, so the sphere-phantom correction of the mean activity concentration carries over to it. It corrects
the mean only (not D70 or the DVH), and only as far as a lesion behaves like a sphere of the same volume
with the phantom's contrast; irregular or heterogeneous lesions may be over- or under-corrected.

A curve depends on the scanner, the reconstruction, the filter and the count level: **measure your own**.
The one shipped (:data:`BUNDLED_CURVES`) is a published example for trying the option, not a calibration.

References
----------
.. [DArienzo2017] D'Arienzo M, Pimpinella M, Capogni M, et al. Phantom validation of quantitative Y-90
   PET/CT-based dosimetry in liver radioembolization. EJNMMI Res 2017;7:94. doi:10.1186/s13550-017-0341-9
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dosimetry.errors import InputFileError

__all__ = [
    "BUNDLED_CURVES",
    "RecoveryCurve",
    "read_recovery_curve",
    "recovery_curve",
    "pvc_method_record",
]

BUNDLED_CURVES: dict[str, str] = {"darienzo2017-endpoints": "y90_pet_recovery_darienzo2017_endpoints.csv"}
"""Names of the curves shipped in ``kernels/`` -> file name (see ``kernels/README.md`` for the source)."""

METHOD = (
    "mean_gy_pvc = mean_gy / RC(V): recovery coefficient of a sphere of the lesion's volume, interpolated "
    "linearly in log(volume) between the phantom spheres, clamped to the nearest sphere outside their range"
)

_COLUMNS = ("volume_ml", "recovery_coefficient")


@dataclass(frozen=True)
class RecoveryCurve:
    """A recovery curve: sphere volumes (mL, increasing) and their recovery coefficients.

    Attributes
    ----------
    volumes_ml, coefficients : tuple of float
    file : str
        File name (or bundled name) it was read from.
    sha256 : str
        SHA-256 of the file's bytes, recorded in ``stats.json``.
    """

    volumes_ml: tuple[float, ...]
    coefficients: tuple[float, ...]
    file: str = ""
    sha256: str = ""

    def coefficient(self, volume_ml: float) -> tuple[float, bool]:
        """The recovery coefficient at ``volume_ml`` and whether it was clamped (outside the spheres).

        >>> curve = RecoveryCurve((1.0, 100.0), (0.4, 0.8))
        >>> curve.coefficient(10.0)  # halfway in log volume
        (0.6000000000000001, False)
        >>> curve.coefficient(500.0)
        (0.8, True)
        """
        if not (math.isfinite(volume_ml) and volume_ml > 0):
            raise ValueError(f"volume_ml must be a positive number, got {volume_ml!r}")
        log_v = np.log(np.asarray(self.volumes_ml))
        rc = float(np.interp(math.log(volume_ml), log_v, np.asarray(self.coefficients)))
        return rc, not (self.volumes_ml[0] <= volume_ml <= self.volumes_ml[-1])

    def record(self) -> dict:
        """How the curve is described in ``stats.json``."""
        return {
            "file": self.file,
            "sha256": self.sha256,
            "points": [[v, rc] for v, rc in zip(self.volumes_ml, self.coefficients)],
        }


def _parse(text: str, what: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    fix = f"give a CSV with the header {','.join(_COLUMNS)} and one row per phantom sphere"
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    if not rows or [c.strip() for c in rows[0]] != list(_COLUMNS):
        found = ",".join(rows[0]) if rows else "nothing"
        raise InputFileError(f"recovery curve {what}: header is {found!r}; {fix}")
    points = []
    for number, row in enumerate(rows[1:], start=2):
        try:
            volume, rc = (float(c) for c in row)
        except ValueError:
            raise InputFileError(f"recovery curve {what}: row {number} {row!r} is not two numbers; {fix}") from None
        if not (math.isfinite(volume) and volume > 0):
            raise InputFileError(f"recovery curve {what}: row {number}: volume {volume} mL must be > 0; {fix}")
        if not (math.isfinite(rc) and 0 < rc <= 2):
            raise InputFileError(
                f"recovery curve {what}: row {number}: recovery coefficient {rc} is outside 0..2 "
                "(measured / true concentration); check the column order"
            )
        points.append((volume, rc))
    if len(points) < 2:
        raise InputFileError(f"recovery curve {what}: {len(points)} sphere(s); at least 2 are needed; {fix}")
    points.sort()
    volumes = [v for v, _ in points]
    if len(set(volumes)) != len(volumes):
        raise InputFileError(f"recovery curve {what}: two rows have the same volume; give one row per sphere")
    return tuple(volumes), tuple(rc for _, rc in points)


def read_recovery_curve(path: str | os.PathLike) -> RecoveryCurve:
    """Read a recovery-curve CSV (see the module's description).

    Raises
    ------
    InputFileError
        The file is missing or unreadable, has another header, non-numeric or out-of-range values, fewer
        than two spheres or a repeated volume.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputFileError(
            f"recovery curve {path}: cannot be read ({err.strerror or err}); give the CSV measured on your phantom"
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputFileError(f"recovery curve {path}: not a UTF-8 text file; save it as CSV") from None
    volumes, coefficients = _parse(text, str(path))
    return RecoveryCurve(volumes, coefficients, path.name, hashlib.sha256(data).hexdigest())


def recovery_curve(value: str | os.PathLike | RecoveryCurve) -> RecoveryCurve:
    """A :class:`RecoveryCurve` from a curve, a bundled name (:data:`BUNDLED_CURVES`) or a CSV path."""
    if isinstance(value, RecoveryCurve):
        return value
    if isinstance(value, str) and value in BUNDLED_CURVES:
        from dosimetry.io.data_files import data_path

        data = data_path(BUNDLED_CURVES[value]).read_bytes()
        volumes, coefficients = _parse(data.decode("utf-8"), value)
        return RecoveryCurve(volumes, coefficients, value, hashlib.sha256(data).hexdigest())
    return read_recovery_curve(value)


def pvc_method_record(curve: RecoveryCurve) -> dict:
    """The ``partial_volume_correction`` section of ``stats.json``."""
    return {"method": METHOD, "extrapolation": "clamp to the nearest sphere (warned)", "curve": curve.record()}
