"""The wheel carries the physics data: an installed package reads kernels/ without the checkout."""

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA_FILES = {
    "hu_to_density_schneider2000.txt",
    "y90_beta_dpk_water_graves2019_0-12mm.csv",
    "y90_decay_icrp107.json",
    "y90_beta_spectrum_icrp107.txt",
    "README.md",
}


def _has_modern_setuptools() -> bool:
    """Build in this environment when it can (fast, offline); otherwise let pip fetch the build backend."""
    if importlib.util.find_spec("setuptools") is None or importlib.util.find_spec("wheel") is None:
        return False
    import setuptools

    return int(setuptools.__version__.split(".")[0]) >= 77


def test_wheel_contains_kernel_data_and_works_when_installed(tmp_path):
    isolation = ["--no-build-isolation"] if _has_modern_setuptools() else []
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *isolation, "-w", str(tmp_path / "w"), str(ROOT)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    wheel = next((tmp_path / "w").glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"dosimetry/kernel_data/{n}" for n in DATA_FILES} <= names
    assert {
        "dosimetry/cli/__init__.py",
        "dosimetry/cli/run.py",
        "dosimetry/cli/accumulate.py",
        "dosimetry/cli/cohort.py",
    } <= names
    assert {
        "dosimetry/cohort/__init__.py",
        "dosimetry/cohort/criteria.py",
        "dosimetry/cohort/dose_response.py",
    } <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)  # license-files, PEP 639
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: BSD-3-Clause" in metadata and "License-File: LICENSE" in metadata
    # install the wheel alone into a folder and read the data from there, far from the checkout
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(tmp_path / "site"), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = "import dosimetry.io.data_files as d, dosimetry; print(dosimetry.__file__); print(d.hu_to_density_table()[1][-1])"
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    where, last_density = proc.stdout.split()
    assert Path(where).is_relative_to(tmp_path / "site")
    assert float(last_density) == 2.8
