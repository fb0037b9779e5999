"""Helpers of the nightly job's tests: study variants with new UIDs, configuration files, running the job."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pydicom

from dosimetry.export.rtdose import uid_from_seed

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "samples" / "phantom_dicom"
SAMPLE_PATIENT = pydicom.dcmread(SAMPLE / "RTSTRUCT.dcm")
_INSTANCE_UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")


def _instance_uids(datasets) -> set[str]:
    uids = set()
    for ds in datasets:
        for keyword in _INSTANCE_UID_KEYWORDS:
            if keyword in ds:
                uids.add(str(ds[keyword].value))
    return uids


def _remap(ds, mapping: dict) -> None:
    for element in ds:
        if element.VR == "SQ":
            for item in element.value:
                _remap(item, mapping)
        elif element.VR == "UI" and element.value:
            values = (
                element.value if isinstance(element.value, (list, pydicom.multival.MultiValue)) else [element.value]
            )
            new = [mapping.get(str(v), str(v)) for v in values]
            element.value = new if len(new) > 1 else new[0]


def as_fdg(ds) -> None:
    """Make a PET header say F-18 FDG (name, code, half-life, positron fraction)."""
    if ds.Modality != "PT":
        return
    info = ds.RadiopharmaceuticalInformationSequence[0]
    info.Radiopharmaceutical = "Fluorodeoxyglucose F^18^"
    info.RadionuclideHalfLife = "6586.2"
    info.RadionuclidePositronFraction = "0.9686"
    code = info.RadionuclideCodeSequence[0]
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "77004003", "SCT", "^18^Fluorine"


def as_tc99m_maa(ds) -> None:
    """Make an emission header say Tc-99m MAA (a predictive study)."""
    if ds.Modality != "PT":
        return
    info = ds.RadiopharmaceuticalInformationSequence[0]
    info.Radiopharmaceutical = "Tc99m MAA"
    info.RadionuclideHalfLife = "21624.0"
    del info.RadionuclidePositronFraction
    del info.RadionuclideTotalDose
    code = info.RadionuclideCodeSequence[0]
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "72454006", "SCT", "^99m^Technetium"


def copy_study(
    target: Path,
    variant: str,
    *,
    rtstruct: bool = True,
    only_rtstruct: bool = False,
    patient: tuple[str, str] | None = None,
    transform=None,
) -> str:
    """Copy the sample study to ``target`` with every instance UID replaced (derived from ``variant``);
    returns the new StudyInstanceUID. ``rtstruct=False`` leaves the RTSTRUCT out; ``only_rtstruct`` writes
    only it (to add it later); ``patient`` sets (PatientName, PatientID); ``transform(ds)`` changes each."""
    files = sorted(SAMPLE.rglob("*.dcm"))
    datasets = [pydicom.dcmread(p) for p in files]
    mapping = {uid: uid_from_seed(f"test variant {variant} {uid}") for uid in _instance_uids(datasets)}
    study_uid = None
    for path, ds in zip(files, datasets):
        is_rtstruct = ds.Modality == "RTSTRUCT"
        if (is_rtstruct and not rtstruct) or (only_rtstruct and not is_rtstruct):
            continue
        _remap(ds, mapping)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if patient is not None:
            ds.PatientName, ds.PatientID = patient
        if transform is not None:
            transform(ds)
        out = target / path.relative_to(SAMPLE)
        out.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(out, enforce_file_format=True)
        study_uid = str(ds.StudyInstanceUID)
    return study_uid


def write_config(
    folder: Path,
    *,
    our_port: int,
    pacs_port: int | None,
    retrieve: str = "C-MOVE",
    timeout_s: float = 10,
    extra: str = "",
    allowed=("ORTHANC",),
    source: Path | None = None,
    send=("rtdose", "sr", "seg", "report"),
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = f"""
[local]
ae_title = "Y90DOSI"
host = "127.0.0.1"
port = {our_port}
"""
    if pacs_port is not None:
        text += f'''
[pacs]
ae_title = "ORTHANC"
host = "127.0.0.1"
port = {pacs_port}
retrieve = "{retrieve}"
timeout_s = {timeout_s}
[store]
send = [{", ".join(f'"{s}"' for s in send)}]
destination = "ORTHANC"
'''
    if source is not None:
        text += f'''
[source]
kind = "folder"
path = "{source}"
[job]
settle_s = 0
'''
    text += f"""
[query]
modalities = ["PT", "NM"]
lookback_days = 2
[run]
residual_fraction = 0.03
lung_shunt = 0.05
method = "ldm"
[paths]
work = "work"
results = "results"
ledger = "ledger.sqlite"
[security]
allowed_ae_titles = [{", ".join(f'"{a}"' for a in allowed)}]
{extra}
"""
    path = folder / "nightly.toml"
    path.write_text(text)
    return path


def nightly_command(config: Path, *args: str, verbose: bool = False) -> list[str]:
    return [
        sys.executable,
        "-m",
        "dosimetry",
        *(["-vv"] if verbose else []),
        "nightly",
        "--config",
        str(config),
        "--since",
        "2020-01-01",
        *args,
    ]


def run_nightly(config: Path, *args: str, timeout: float = 240, verbose: bool = False) -> subprocess.CompletedProcess:
    """One pass of the job as the console command, in its own process (``verbose``: -vv, DEBUG logging)."""
    return subprocess.run(
        nightly_command(config, *args, verbose=verbose),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def start_nightly(config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        nightly_command(config, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def wait_for_line(process: subprocess.Popen, needle: str, lines: list[str]) -> str:
    """Read the job's stdout until a line containing ``needle`` (collected into ``lines``)."""
    for line in process.stdout:
        lines.append(line)
        if needle in line:
            return line
    raise AssertionError(f"the job ended without printing {needle!r}: {''.join(lines)}{process.stderr.read()}")
