"""One pass of the nightly job: find the studies of the window, fetch what is new, compute, store back.

For each study, by its ledger record (:mod:`.ledger`):

* same fingerprint and ``stored``: nothing to do (a rerun with nothing new sends nothing);
* new, or its inputs changed (an RTSTRUCT arrived, an instance count changed, other run options): the
  record starts again; one instance of each emission series is fetched first and the nuclide policy
  (:mod:`dosimetry.quantify.emission`) decides: a study it refuses entirely (F-18 FDG, Lu-177, ...) is ``skipped``
  and never fetched; otherwise the inputs are fetched into ``work/<study key>/input`` and hashed;
* ``retrieved``: computed (the attempt is counted first, so a computation that kills the job counts);
  failures are retried on later passes up to ``[job] max_attempts``, then left with their reason;
* ``computed`` (or failed while storing): the files of ``results/<study key>/<input hash>/`` not yet
  confirmed by the PACS are sent; each confirmed instance is recorded at once.

The PACS not answering (at the start, or in the middle) raises :class:`PacsUnreachableError`: the study
in flight is marked ``failed`` with the reason (the attempt is not counted: the study is not at fault),
the pass stops, and the next pass takes up where this one stopped. Output UIDs derive from the input
hash and the software version, so anything sent again is a duplicate the PACS recognises.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from dosimetry.errors import DosimetryError, OutputError, PacsUnreachableError
from dosimetry.nightly.compute import compute_study, read_manifest
from dosimetry.nightly.config import NightlyConfig, study_run_options
from dosimetry.nightly.ledger import Ledger, StudyRow
from dosimetry.nightly.network import PacsClient, StorageServer, StoreTarget
from dosimetry.nightly.sources import Candidate, FolderSource, PacsSource, StillArriving, input_hash
from dosimetry.nightly.uids import study_key, uid_seed

log = logging.getLogger("dosimetry.nightly")

_UID_PATTERN = re.compile(r"\b[0-2](?:\.\d+){2,}\b")


def scrub_uids(text: str) -> str:
    """``text`` with every DICOM UID (16 characters or more) replaced by ``uid-`` and its hash, as the
    study key is made; shorter dotted numbers (versions) stay."""
    return _UID_PATTERN.sub(lambda m: f"uid-{study_key(m.group(0))}" if len(m.group(0)) >= 16 else m.group(0), text)


_STORE_OK = (0x0000, 0xB000, 0xB006, 0xB007)  # success and the storage warnings (coercion, elements discarded)


class JobBusyError(DosimetryError):
    """Another pass of the nightly job holds the ledger's lock."""


@dataclass
class PassSummary:
    stored: int = 0
    computed: int = 0
    failed: int = 0
    skipped: int = 0
    up_to_date: int = 0
    waiting: int = 0
    instances_sent: int = 0
    lines: list = field(default_factory=list)


class NightlyPass:
    def __init__(self, config: NightlyConfig, *, log_phi: bool = False, say=print):
        self.config, self.log_phi, self._say = config, log_phi, say
        self.client = PacsClient(config.local, config.pacs) if config.pacs else None
        self.summary = PassSummary()

    # --- naming ------------------------------------------------------------------------------------
    def say(self, candidate_or_uid, message: str) -> None:
        uid = candidate_or_uid.study_uid if isinstance(candidate_or_uid, Candidate) else candidate_or_uid
        phi = (
            f" [{candidate_or_uid.phi}]"
            if self.log_phi and isinstance(candidate_or_uid, Candidate) and candidate_or_uid.phi
            else ""
        )
        line = f"study {study_key(uid)}{phi}: {message if self.log_phi else scrub_uids(message)}"
        self.summary.lines.append(line)
        self._say(line)

    def _window(self, since: date | None) -> tuple[date, date]:
        today = date.today()
        return (since if since is not None else today - timedelta(days=self.config.lookback_days)), today

    def _source(self):
        if self.config.source_kind == "folder":
            return FolderSource(self.config.source_path, self.config.modalities, settle_s=self.config.settle_s)
        return PacsSource(self.client, self.config.modalities, log_phi=self.log_phi)

    def _options(self, candidate: Candidate) -> dict:
        return study_run_options(self.config, candidate.study_uid, candidate.accession)

    # --- the pass ------------------------------------------------------------------------------------
    def run(self, *, since: date | None = None, dry_run: bool = False) -> PassSummary:
        window = self._window(since)
        if self.client is not None:
            self.client.echo()  # unreachable: exit 12 before anything is read or written
        if dry_run:
            return self._dry_run(window)
        for folder in (self.config.work, self.config.results):
            folder.mkdir(parents=True, exist_ok=True)
        with _pass_lock(self.config.ledger), Ledger.open(self.config.ledger) as ledger:
            candidates = self._source().find(window, ledger.sent_series)
            self._say(
                f"nightly: {len(candidates)} stud{'y' if len(candidates) == 1 else 'ies'} with "
                f"{'/'.join(self.config.modalities)} from {window[0]} to {window[1]}"
            )
            target = StoreTarget()
            needs_scp = self.config.source_kind == "pacs" and self.config.pacs.retrieve == "C-MOVE"
            server = (
                StorageServer(
                    self.config.local, self.config.allowed_ae_titles, target, timeout_s=self.config.pacs.timeout_s
                )
                if needs_scp
                else None
            )
            with server if server is not None else _nothing():
                for candidate in candidates:
                    self._study(ledger, candidate, target)
                seen = {c.study_uid for c in candidates}
                for row in ledger.studies():  # results of earlier passes not yet stored, now outside the window
                    if row.study_uid not in seen and row.state in ("computed", "failed") and self._ready(row):
                        self._store(ledger, row.study_uid, row, read_manifest(Path(row.results_dir)))
        s = self.summary
        self._say(
            f"nightly: {s.stored} stored ({s.instances_sent} instances sent), {s.computed} computed, "
            f"{s.up_to_date} up to date, {s.waiting} waiting, {s.skipped} skipped (not Y-90), {s.failed} failed"
        )
        return s

    def _dry_run(self, window) -> PassSummary:
        ledger = Ledger.open_read_only(self.config.ledger)
        try:
            own = ledger.sent_series if ledger else (lambda uid: set())
            candidates = self._source().find(window, own)
            self._say(
                f"nightly --dry-run: {len(candidates)} stud{'y' if len(candidates) == 1 else 'ies'} with "
                f"{'/'.join(self.config.modalities)} from {window[0]} to {window[1]}; nothing is changed"
            )
            for candidate in candidates:
                row = ledger.study(candidate.study_uid) if ledger else None
                self.say(candidate, "would " + self._plan(row, candidate))
        finally:
            if ledger:
                ledger.close()
        return self.summary

    def _plan(self, row: StudyRow | None, candidate: Candidate) -> str:
        if row is None:
            return f"fetch {len(candidate.series)} series ({candidate.n_instances} instances), compute and store (new)"
        if row.fingerprint != candidate.fingerprint(self._options(candidate)):
            return "fetch, compute and store again (its inputs or run options changed)"
        if row.state == "stored":
            return "do nothing (up to date)"
        if row.state == "skipped":
            return f"do nothing ({row.reason})"
        if self._ready(row):
            return "send the results not yet confirmed by the PACS"
        if row.state == "failed" and row.attempts >= self.config.max_attempts:
            return f"do nothing: failed {row.attempts} times, last: {row.reason}"
        return f"compute (state {row.state}, {row.attempts} attempts so far)"

    # --- one study -----------------------------------------------------------------------------------
    def _ready(self, row: StudyRow) -> bool:
        if not row.results_dir or not row.input_hash:
            return False
        manifest = read_manifest(Path(row.results_dir))
        return manifest is not None and manifest.get("input_hash") == row.input_hash

    def _study(self, ledger: Ledger, candidate: Candidate, target: StoreTarget) -> None:
        uid, key = candidate.study_uid, study_key(candidate.study_uid)
        options = self._options(candidate)
        fingerprint = candidate.fingerprint(options)
        row = ledger.study(uid)
        work = self.config.work / key
        try:
            if row is not None and row.fingerprint == fingerprint:
                if row.state == "stored" or (row.state == "computed" and self.client is None and self._ready(row)):
                    self.summary.up_to_date += 1
                    return
                if row.state == "skipped":
                    self.summary.skipped += 1
                    return
                if self._ready(row):
                    self._store(ledger, uid, row, read_manifest(Path(row.results_dir)), candidate)
                    return
                if row.state == "failed" and row.attempts >= self.config.max_attempts:
                    self.summary.failed += 1
                    self.say(candidate, f"left failed after {row.attempts} attempts: {row.reason}")
                    return
            else:
                if row is not None:
                    self.say(candidate, "its inputs changed: computed again")
                ledger.begin(uid, key, fingerprint)
                shutil.rmtree(work, ignore_errors=True)
                row = ledger.study(uid)
            hashed = self._fetched(work, fingerprint)
            if hashed is None:
                refused = self._refused(candidate, work / "probe", target, options)
                if refused:
                    ledger.mark_skipped(uid, refused)
                    self.summary.skipped += 1
                    self.say(candidate, f"skipped: {refused}")
                    shutil.rmtree(work, ignore_errors=True)
                    return
                self.say(candidate, f"fetching {len(candidate.series)} series ({candidate.n_instances} instances)")
                shutil.rmtree(work / "input", ignore_errors=True)
                self._source().fetch(
                    candidate,
                    work / "input",
                    method=self.config.pacs.retrieve if self.config.pacs else None,
                    target=target,
                    own=ledger.sent_series(uid),
                )
                hashed = input_hash(work / "input", options)
                _write_json(work / "input.json", {"fingerprint": fingerprint, "input_hash": hashed})
            ledger.mark_retrieved(uid, hashed, fingerprint)
            row = ledger.study(uid)
            results_dir = self.config.results / key / hashed[:16]
            if read_manifest(results_dir) is None or read_manifest(results_dir).get("input_hash") != hashed:
                self._compute(ledger, candidate, work, results_dir, options, hashed)
            manifest = read_manifest(results_dir)
            ledger.mark_computed(uid, str(results_dir), no_rois=manifest["no_rois"], predictive=manifest["predictive"])
            self.summary.computed += 1
            self._store(ledger, uid, ledger.study(uid), manifest, candidate)
        except StillArriving as err:
            self.summary.waiting += 1
            ledger.mark_failed(uid, f"still arriving ({err}); fetched again on the next run")
            shutil.rmtree(work, ignore_errors=True)
            self.say(candidate, f"still arriving ({err}); left for the next run")
        except PacsUnreachableError as err:
            ledger.mark_failed(uid, f"{err}; retried on the next run")
            self.say(candidate, "the PACS stopped answering; marked for retry")
            raise
        except _StudyFailed:
            pass

    def _refused(self, candidate: Candidate, folder: Path, target: StoreTarget, options: dict) -> str | None:
        """Why the nuclide policy refuses every emission series of the study (one instance of each is
        fetched and its header read), or None when one is accepted (Y-90, or Tc-99m MAA: predictive)."""
        import pydicom

        from dosimetry.quantify.emission import Verdict, decide, evidence_from_header

        shutil.rmtree(folder, ignore_errors=True)
        headers = self._source().probe(
            candidate, folder, method=self.config.pacs.retrieve if self.config.pacs else None, target=target
        )
        reasons = []
        for path in headers:
            decision = decide(
                evidence_from_header(pydicom.dcmread(path, stop_before_pixels=True)),
                override=options.get("emission_nuclide"),
            )
            if decision.verdict is not Verdict.REFUSED:
                return None
            reasons.append(decision.reason)
        shutil.rmtree(folder, ignore_errors=True)
        return f"not a Y-90 study: {'; '.join(dict.fromkeys(reasons))}" if reasons else None

    def _fetched(self, work: Path, fingerprint: str) -> str | None:
        """The input hash of a complete earlier fetch of these inputs (``input.json`` is written last)."""
        try:
            record = json.loads((work / "input.json").read_text())
        except (OSError, ValueError):
            return None
        return record.get("input_hash") if record.get("fingerprint") == fingerprint else None

    def _compute(
        self, ledger: Ledger, candidate: Candidate, work: Path, results_dir: Path, options: dict, hashed: str
    ) -> None:
        uid = candidate.study_uid
        row = ledger.study(uid)
        if row.attempts >= self.config.max_attempts:
            self.summary.failed += 1
            self.say(candidate, f"left failed after {row.attempts} attempts: {row.reason}")
            raise _StudyFailed
        ledger.count_attempt(uid)
        self.say(candidate, f"computing (attempt {row.attempts + 1} of {self.config.max_attempts})")
        for stale in work.glob(".out*"):  # partial folders of an interrupted earlier attempt (ours)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            compute_study(
                work / "input",
                work / "out",
                results_dir,
                options,
                uid_seed(hashed),
                input_hash=hashed,
                send=self.config.send,
            )
        except DosimetryError as err:
            reason = f"exit {err.exit_code}: {err}"
        except Exception as err:  # a bug of ours or of a library: recorded (never silent), the pass goes on
            log.debug("computation failed", exc_info=True)
            reason = f"unexpected {type(err).__name__}: {' '.join(str(err).split())[:200]} (a bug: please report it)"
        else:
            return
        ledger.mark_failed(uid, f"computing: {scrub_uids(reason)}")
        self.summary.failed += 1
        self.say(candidate, f"failed: {reason}")
        raise _StudyFailed

    def _store(self, ledger: Ledger, uid: str, row: StudyRow, manifest: dict, candidate=None) -> None:
        who = candidate if candidate is not None else uid
        if self.client is None or not self.config.destination:
            ledger.mark_computed(uid, row.results_dir, no_rois=manifest["no_rois"], predictive=manifest["predictive"])
            self.say(who, f"computed{_marks(manifest)}; results in {row.results_dir} (no PACS to store to)")
            return
        results_dir = Path(row.results_dir)
        sent = ledger.sent(uid, manifest["input_hash"])
        todo = [e for e in manifest["send"] if e["sop_instance_uid"] not in sent]
        by_file = {e["file"]: e for e in todo}
        refused = []

        def on_stored(path, _ds, status):
            entry = by_file[path.name]
            if status in _STORE_OK:
                ledger.record_sent(
                    uid, entry["sop_instance_uid"], entry["series_uid"], entry["what"], manifest["input_hash"]
                )
                self.summary.instances_sent += 1
            else:
                refused.append(f"{entry['what']} refused with status 0x{status:04X}")

        if todo:
            self.say(who, f"storing {', '.join(e['what'] for e in todo)} into the study")
            self.client.store([results_dir / e["file"] for e in todo], on_stored)
        if refused:
            ledger.mark_failed(uid, "storing: " + "; ".join(refused), count_attempt=True)
            self.summary.failed += 1
            self.say(who, "failed: " + "; ".join(refused))
            return
        ledger.mark_stored(uid)
        self.summary.stored += 1
        self.say(
            who,
            f"stored: {len(todo)} instances sent, {len(manifest['send']) - len(todo)} confirmed "
            f"earlier{_marks(manifest)}; results in {results_dir}",
        )
        shutil.rmtree(self.config.work / study_key(uid), ignore_errors=True)


def _marks(manifest: dict) -> str:
    return (" (no ROIs: RT Dose and whole-image statistics only)" if manifest["no_rois"] else "") + (
        " (predictive, Tc-99m MAA)" if manifest["predictive"] else ""
    )


class _StudyFailed(Exception):
    """The study failed (recorded in the ledger); the pass goes on with the next one."""


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _pass_lock:
    """An exclusive lock beside the ledger: one pass at a time (released by the OS if the job dies)."""

    def __init__(self, ledger: Path):
        self.path = ledger.with_name(ledger.name + ".lock")

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            self.handle.close()
            raise JobBusyError(
                f"another pass of the nightly job is running (lock {self.path}); try again when it has finished"
            ) from err
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    try:
        tmp.write_text(json.dumps(data) + "\n")
        os.replace(tmp, path)
    except OSError as err:
        raise OutputError(f"cannot write {path}: {err.strerror or err}; check [paths] work") from err
