"""Study folders for the batch tests: the sample DICOM study copied with new UIDs, and broken cases."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pydicom

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "samples" / "phantom_dicom"
STANDARD_UID_ROOT = "1.2.840.10008."  # SOP classes, transfer syntaxes: never rewritten


def new_uid(old: str, seed: str) -> str:
    return "2.25." + str(int(hashlib.sha256(f"{seed}|{old}".encode()).hexdigest()[:30], 16))


def _rewrite(dataset, seed: str) -> None:
    for element in dataset.iterall():
        if element.VR == "UI" and element.value:
            values = element.value if element.VM > 1 else [element.value]
            new = [v if str(v).startswith(STANDARD_UID_ROOT) else new_uid(str(v), seed) for v in values]
            element.value = new if element.VM > 1 else new[0]


def copy_study(dst: str | Path, seed: str, *, prefix: str = "", drop: tuple[str, ...] = ()) -> Path:
    """Copy the sample study into ``dst`` with every Study/Series/SOP Instance and Frame of Reference UID
    replaced consistently (RTSTRUCT references included); ``prefix`` is put before each file name (to put
    two studies in one folder) and files named in ``drop`` (e.g. ``PET/PT0010.dcm``) are left out."""
    dst = Path(dst)
    for src in sorted(SAMPLE.rglob("*.dcm")):
        rel = src.relative_to(SAMPLE)
        if rel.as_posix() in drop:
            continue
        ds = pydicom.dcmread(src)
        _rewrite(ds, seed)
        if ds.file_meta.get("MediaStorageSOPInstanceUID"):
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        target = dst / rel.parent / f"{prefix}{rel.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target)
    return dst


def study_uid(path: str | Path) -> str:
    """The StudyInstanceUID of a DICOM file, or of the first file of a folder."""
    path = Path(path)
    first = path if path.is_file() else next(p for p in sorted(path.rglob("*.dcm")))
    return str(pydicom.dcmread(first, stop_before_pixels=True).StudyInstanceUID)


def make_root(root: str | Path) -> dict[str, Path]:
    """A folder of studies: three good ones (one in a folder with a space, two in one folder), one with a
    missing PET slice, an empty folder and a non-DICOM file. Returns the study folders by name."""
    root = Path(root)
    folders = {
        "alpha": copy_study(root / "alpha", "alpha"),
        "beta": copy_study(root / "site 2" / "beta", "beta"),
        "pair": copy_study(root / "pair", "pair-1", prefix="a_"),
        "broken": copy_study(root / "broken", "broken", drop=("PET/PT0020.dcm",)),
    }
    copy_study(root / "pair", "pair-2", prefix="b_")
    (root / "empty").mkdir()
    (root / "notes.txt").write_text("not a DICOM file\n")
    return folders


def sample_pet_files() -> list[str]:
    return sorted(p.name for p in (SAMPLE / "PET").iterdir())


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst
