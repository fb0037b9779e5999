"""scripts/test.sh, the README's test command: installs missing system packages or says what to install.

The script is run with a PATH holding only a few programs (and fakes of apt-get, id, chromium), so its
branches are exercised without installing anything and before it reaches the virtualenv.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "test.sh"
BASH = shutil.which("bash")


def fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!{BASH}\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def bin_dir(tmp_path):
    """A PATH folder with the real ``dirname`` only: no chromium, dciodvfy, Orthanc, cc, apt-get, python3."""
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "dirname").symlink_to(shutil.which("dirname"))
    return folder


def run_script(bin_dir: Path, *args):
    return subprocess.run(
        [BASH, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        cwd=bin_dir.parent,
        env={"PATH": str(bin_dir), "HOME": str(bin_dir.parent)},
        timeout=60,
    )


def test_script_is_executable_and_called_by_ci():
    assert os.access(SCRIPT, os.X_OK)
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "./scripts/test.sh" in lines


def test_not_root_says_what_to_install_and_fails(bin_dir):
    fake(bin_dir, "id", "echo 1000")
    fake(bin_dir, "apt-get", 'echo called >> "$0.log"; exit 0')
    proc = run_script(bin_dir)
    assert proc.returncode == 3
    assert "chromium dicom3tools orthanc gcc" in proc.stderr
    assert "sudo apt-get install chromium dicom3tools orthanc gcc" in proc.stderr
    assert not (bin_dir / "apt-get.log").exists()  # nothing installed without root


def test_no_apt_get_names_only_what_is_missing(bin_dir):
    fake(bin_dir, "id", "echo 0")
    fake(bin_dir, "chromium-browser", "exit 0")  # any name find_chromium accepts
    proc = run_script(bin_dir)
    assert proc.returncode == 3
    assert "dicom3tools" in proc.stderr and "chromium dicom3tools" not in proc.stderr and "install" in proc.stderr


def test_root_with_apt_get_updates_then_installs_the_missing_packages(bin_dir):
    fake(bin_dir, "id", "echo 0")
    # a fake apt-get that records its calls and fails the install, so the script stops before the venv
    fake(bin_dir, "apt-get", 'echo "$*" >> "$0.log"; [ "$1" = update ]')
    proc = run_script(bin_dir, "-k", "nothing")
    assert proc.returncode == 3, proc.stderr
    assert (bin_dir / "apt-get.log").read_text().splitlines() == [
        "update -qq",
        "install -y -qq chromium dicom3tools orthanc gcc",
    ]
    assert "apt-get could not install chromium dicom3tools orthanc gcc" in proc.stderr


def test_installed_but_still_missing_is_an_error(bin_dir):
    fake(bin_dir, "id", "echo 0")
    fake(bin_dir, "apt-get", 'echo "$*" >> "$0.log"')  # "succeeds" but installs nothing
    proc = run_script(bin_dir)
    assert proc.returncode == 3
    assert "still not on PATH" in proc.stderr


def test_no_tests_collected_fails_loudly(bin_dir, tmp_path):
    """With the programs present the script goes on to the venv and pytest; exit 5 is passed on and named."""
    for name in ("chromium", "dciodvfy", "Orthanc", "cc"):
        fake(bin_dir, name, "exit 0")
    # fakes for the venv and pytest steps, run in a copy of the script's layout
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, repo / "scripts" / "test.sh")
    venv_bin = repo / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    fake(bin_dir, "python3", 'echo "python3 $*" >> "$HOME/calls.log"')
    fake(venv_bin, "pip", 'echo "pip $*" >> "$HOME/calls.log"')
    fake(venv_bin, "ruff", 'echo "ruff $*" >> "$HOME/calls.log"')
    fake(venv_bin, "python", 'echo "python $*" >> "$HOME/calls.log"; exit 5')
    proc = subprocess.run(
        [BASH, str(repo / "scripts" / "test.sh"), "tests/none.py"],
        capture_output=True,
        text=True,
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        timeout=60,
    )
    assert proc.returncode == 5
    assert "collected no tests" in proc.stderr
    assert (tmp_path / "calls.log").read_text().splitlines() == [
        "python3 -m venv .venv",
        "pip install -q -e .[test]",
        "ruff check .",
        "ruff format --check .",
        "python -m pytest -q -n auto tests/none.py",
    ]
