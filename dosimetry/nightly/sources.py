"""Where studies come from: the PACS (C-FIND, then C-MOVE or C-GET) or an export folder.

Both give :class:`Candidate` studies (StudyInstanceUID, the input series and a fingerprint of what is
there) and fetch a candidate's input series into a work folder of our own. Only input series are
considered (PT, NM, CT, RTSTRUCT, SEG), never what this job stored into the study (its series UIDs are
in the ledger; its Manufacturer is ours). Files are named by hashes, never by DICOM values.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pydicom.dataset import Dataset

from dosimetry.errors import InputFileError, PacsUnreachableError
from dosimetry.export.rtdose import MANUFACTURER
from dosimetry.nightly.network import INPUT_MODALITIES, PacsClient, StoreTarget
from dosimetry.nightly.uids import instance_file_name

EMISSION_MODALITIES = ("PT", "NM")


class StillArriving(Exception):
    """The study changed while it was fetched (the PACS or the share is still receiving it)."""


@dataclass(frozen=True)
class Candidate:
    study_uid: str
    accession: str
    series: tuple  # ((series_uid, modality, instance count), ...) of the input series, sorted
    files: tuple = ()  # folder source: the files of the input series
    phi: str = ""  # patient ID and name, only with --log-phi

    def fingerprint(self, options: dict) -> str:
        """What the source reports about the study's inputs, with the run options: when it changes, the
        study is fetched and computed again."""
        text = json.dumps(
            {"series": [list(s) for s in self.series], "files": self._file_stats(), "options": options},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()

    def _file_stats(self) -> list:
        stats = []
        for path in self.files:
            try:
                st = os.stat(path)
                stats.append([str(path), st.st_size, st.st_mtime_ns])
            except OSError:
                stats.append([str(path), None, None])
        return sorted(stats)

    @property
    def n_instances(self) -> int:
        return sum(s[2] for s in self.series)


def input_hash(folder: Path, options: dict) -> str:
    """SHA-256 over the content of every fetched file (sorted) and the run options."""
    digests = sorted(
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".")
    )
    text = json.dumps({"files": digests, "options": options}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _date_range(window: tuple[date, date]) -> str:
    return f"{window[0]:%Y%m%d}-{window[1]:%Y%m%d}"


class PacsSource:
    def __init__(self, client: PacsClient, modalities, *, log_phi: bool):
        self.client, self.modalities, self.log_phi = client, tuple(modalities), log_phi

    def find(self, window: tuple[date, date], own_series) -> list[Candidate]:
        """Studies of the window with an emission series (C-FIND STUDY, then SERIES)."""
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyDate = _date_range(window)
        query.StudyInstanceUID = ""
        query.AccessionNumber = ""
        query.ModalitiesInStudy = ""
        if self.log_phi:
            query.PatientID = ""
            query.PatientName = ""
        candidates = []
        for match in self.client.find(query):
            study_uid = str(match.get("StudyInstanceUID", "")).strip()
            raw = match.get("ModalitiesInStudy")
            modalities = {str(raw)} if isinstance(raw, str) and raw else {str(v) for v in raw or ()}
            if not study_uid or (modalities and not modalities & set(self.modalities)):
                continue
            series = self._series(study_uid, own_series(study_uid))
            if not any(s[1] in self.modalities for s in series):
                continue
            phi = f"{match.get('PatientID', '')} {match.get('PatientName', '')}".strip() if self.log_phi else ""
            candidates.append(Candidate(study_uid, str(match.get("AccessionNumber", "") or ""), series, phi=phi))
        return candidates

    def _series(self, study_uid: str, own: set) -> tuple:
        query = Dataset()
        query.QueryRetrieveLevel = "SERIES"
        query.StudyInstanceUID = study_uid
        query.SeriesInstanceUID = ""
        query.Modality = ""
        query.Manufacturer = ""
        query.NumberOfSeriesRelatedInstances = ""
        series = []
        for match in self.client.find(query):
            uid, modality = str(match.get("SeriesInstanceUID", "")), str(match.get("Modality", ""))
            if (
                not uid
                or uid in own
                or modality not in INPUT_MODALITIES
                or str(match.get("Manufacturer", "")) == MANUFACTURER
            ):
                continue
            series.append((uid, modality, int(match.get("NumberOfSeriesRelatedInstances") or 0)))
        return tuple(sorted(series))

    def probe(self, candidate: Candidate, folder: Path, *, method: str, target: StoreTarget) -> list[Path]:
        """One instance of each emission series (C-FIND IMAGE, then C-MOVE/C-GET of that instance), for the
        nuclide policy before the whole study is fetched; the paths of the files received."""
        paths = []
        for series_uid, modality, _count in candidate.series:
            if modality not in self.modalities:
                continue
            query = Dataset()
            query.QueryRetrieveLevel = "IMAGE"
            query.StudyInstanceUID = candidate.study_uid
            query.SeriesInstanceUID = series_uid
            query.SOPInstanceUID = ""
            matches = self.client.find(query)
            if not matches:
                continue
            sop_uid = str(matches[0].SOPInstanceUID)
            with target.expect(candidate.study_uid, [series_uid], folder):
                if method == "C-GET":
                    self.client.get(candidate.study_uid, series_uid, target, sop_uid)
                else:
                    self.client.move(candidate.study_uid, series_uid, sop_uid)
            path = folder / instance_file_name(sop_uid)
            if path.exists():
                paths.append(path)
        return paths

    def refresh(self, candidate: Candidate, own: set) -> Candidate:
        return Candidate(
            candidate.study_uid, candidate.accession, self._series(candidate.study_uid, own), phi=candidate.phi
        )

    def fetch(self, candidate: Candidate, folder: Path, *, method: str, target: StoreTarget, own: set) -> None:
        """C-MOVE (to our storage SCP) or C-GET every input series into ``folder``, then wait until every
        instance the PACS reported is there and the PACS still reports the same series and counts."""
        with target.expect(candidate.study_uid, [s[0] for s in candidate.series], folder):
            for series_uid, _modality, _count in candidate.series:
                if method == "C-GET":
                    self.client.get(candidate.study_uid, series_uid, target)
                else:
                    self.client.move(candidate.study_uid, series_uid)
            deadline = time.monotonic() + self.client.pacs.timeout_s
            while True:
                have = sum(1 for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
                if have >= candidate.n_instances:
                    break
                if time.monotonic() > deadline:
                    raise PacsUnreachableError(
                        f"{self.client.where}: {have} of {candidate.n_instances} instances arrived within "
                        f"{self.client.pacs.timeout_s:g} s of the end of the retrieval"
                    )
                time.sleep(0.2)
        if self.refresh(candidate, own).series != candidate.series:
            raise StillArriving("the PACS reports other series or instance counts than before the retrieval")
        have = sum(1 for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        if have != candidate.n_instances:
            raise StillArriving(f"{have} instances received, the PACS reports {candidate.n_instances}")


class FolderSource:
    """Studies a PACS exported to a share. The share is only read; files are copied into ``work/``."""

    def __init__(self, folder: Path, modalities, *, settle_s: float):
        self.folder, self.modalities, self.settle_s = folder, tuple(modalities), settle_s

    def _scan(self, window, own_series) -> dict[str, Candidate]:
        from dosimetry.dicom import inventory
        from dosimetry.dicom.discovery import Kind

        try:
            records = inventory(self.folder)
        except InputFileError:
            return {}
        by_study: dict[str, list] = {}
        for record in records:
            by_study.setdefault(record.study_uid, []).append(record)
        candidates = {}
        for study_uid, study_records in by_study.items():
            own = own_series(study_uid)
            inputs = [
                r
                for r in study_records
                if r.kind in (Kind.EMISSION, Kind.CT, Kind.RTSTRUCT, Kind.SEG)
                and r.series_uid not in own
                and not _ours(r)
            ]
            emission = [r for r in inputs if r.kind is Kind.EMISSION and r.modality in self.modalities]
            dates = {r.date.replace("-", "") for r in emission if r.date}
            if not emission or (dates and not any(f"{window[0]:%Y%m%d}" <= d <= f"{window[1]:%Y%m%d}" for d in dates)):
                continue
            series = tuple(sorted((r.series_uid, r.modality, r.n_files) for r in inputs))
            files = tuple(sorted(str(p) for r in inputs for p in r.files))
            candidates[study_uid] = Candidate(study_uid, _accession(emission[0]), series, files=files)
        return candidates

    def find(self, window, own_series) -> list[Candidate]:
        first = self._scan(window, own_series)
        if self.settle_s <= 0:
            return list(first.values())
        time.sleep(self.settle_s)
        second = self._scan(window, own_series)
        return [c for uid, c in second.items() if uid in first and first[uid].fingerprint({}) == c.fingerprint({})]

    def probe(self, candidate: Candidate, folder: Path, **_ignored) -> list[Path]:
        """The first file of each emission series, read where it is (the share is not written)."""
        emission = {s[0] for s in candidate.series if s[1] in self.modalities}
        firsts = {}
        for path in candidate.files:
            try:
                import pydicom

                ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"])
            except Exception:
                continue
            series_uid = str(ds.get("SeriesInstanceUID", ""))
            if series_uid in emission and series_uid not in firsts:
                firsts[series_uid] = Path(path)
        return list(firsts.values())

    def fetch(self, candidate: Candidate, folder: Path, **_ignored) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for source in candidate.files:
            relative = os.path.relpath(source, self.folder)
            target = folder / instance_file_name(relative)
            tmp = target.with_name(f".{target.name}.partial")
            try:
                shutil.copyfile(source, tmp)
                os.replace(tmp, target)
            except FileNotFoundError as err:
                tmp.unlink(missing_ok=True)
                raise StillArriving("a file of the study disappeared from the export folder") from err


def _accession(record) -> str:
    """The AccessionNumber of a series' first file (for the per-study options of the CSV), or ""."""
    import pydicom

    try:
        return str(pydicom.dcmread(record.files[0], stop_before_pixels=True).get("AccessionNumber", "") or "")
    except Exception:
        return ""


def _ours(record) -> bool:
    """A series this software wrote (its Manufacturer), read from its first file."""
    import pydicom

    try:
        return str(pydicom.dcmread(record.files[0], stop_before_pixels=True).get("Manufacturer", "")) == MANUFACTURER
    except Exception:
        return False
