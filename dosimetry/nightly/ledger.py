"""The nightly job's ledger: one SQLite file (WAL journal) recording what happened to every study.

Table ``studies``, one row per StudyInstanceUID: ``study_key`` (the hash the logs use), ``fingerprint``
(what the PACS reported: the input series and their instance counts), ``input_hash`` (of the retrieved
files and the run options), ``state`` (``retrieved``, ``computed``, ``stored``, ``failed``; ``skipped``: no emission series the nuclide
policy accepts, e.g. an F-18 FDG PET), ``attempts``
(computations tried for these inputs), ``reason`` (of the last failure, one line), ``no_rois`` (computed
without ROIs), ``results_dir`` and ``updated``. Table ``sent``: every instance stored back (study,
SOP Instance UID, what it is, input hash, time), written right after the PACS confirmed it.

Every change is one transaction, so a job killed at any moment leaves the ledger as it was before the
change or after it. The patient is never recorded: no names, IDs or dates of birth.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from dosimetry.errors import OutputError

STATES = ("retrieved", "computed", "stored", "failed", "skipped")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
    study_uid   TEXT PRIMARY KEY,
    study_key   TEXT NOT NULL,
    fingerprint TEXT,
    input_hash  TEXT,
    state       TEXT NOT NULL CHECK (state IN ('retrieved', 'computed', 'stored', 'failed', 'skipped')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    reason      TEXT,
    no_rois     INTEGER NOT NULL DEFAULT 0,
    predictive  INTEGER NOT NULL DEFAULT 0,
    results_dir TEXT,
    updated     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sent (
    study_uid        TEXT NOT NULL,
    sop_instance_uid TEXT NOT NULL,
    series_uid       TEXT NOT NULL,
    what             TEXT NOT NULL,
    input_hash       TEXT NOT NULL,
    sent_at          TEXT NOT NULL,
    PRIMARY KEY (study_uid, sop_instance_uid)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('schema_version', '1');
"""


@dataclass(frozen=True)
class StudyRow:
    study_uid: str
    study_key: str
    fingerprint: str | None
    input_hash: str | None
    state: str
    attempts: int
    reason: str | None
    no_rois: bool
    predictive: bool
    results_dir: str | None
    updated: str


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Ledger:
    """The ledger file, opened for one pass (``with Ledger.open(path) as ledger:``)."""

    def __init__(self, connection: sqlite3.Connection, path: Path):
        self._db = connection
        self.path = path

    @classmethod
    def open(cls, path: str | Path) -> Ledger:
        """Open (create) the ledger for writing.

        Raises
        ------
        OutputError
            The file cannot be created or is not a ledger.
        """
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as err:
            raise OutputError(
                f"ledger {path}: cannot open it ({err}); check the path and permissions in [paths] ledger"
            ) from err
        return cls(db, path)

    @classmethod
    def open_read_only(cls, path: str | Path) -> Ledger | None:
        """The ledger for reading only (``--dry-run``), or None when it does not exist yet. Nothing is written."""
        path = Path(path)
        if not path.exists():
            return None
        wal = path.with_name(path.name + "-wal")
        mode = "ro" if wal.exists() else "ro&immutable=1"
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode={mode}", uri=True, timeout=30)
            db.execute("SELECT 1 FROM studies LIMIT 1")
        except sqlite3.Error as err:
            raise OutputError(f"ledger {path}: cannot read it ({err})") from err
        return cls(db, path)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- reading -----------------------------------------------------------------------------------
    def study(self, study_uid: str) -> StudyRow | None:
        row = self._db.execute(
            "SELECT study_uid, study_key, fingerprint, input_hash, state, attempts, reason, no_rois, predictive, "
            "results_dir, updated FROM studies WHERE study_uid = ?",
            (study_uid,),
        ).fetchone()
        return StudyRow(*row[:7], bool(row[7]), bool(row[8]), *row[9:]) if row else None

    def studies(self, state: str | None = None) -> list[StudyRow]:
        uids = [
            r[0]
            for r in self._db.execute(
                "SELECT study_uid FROM studies" + (" WHERE state = ?" if state else "") + " ORDER BY updated",
                (state,) if state else (),
            )
        ]
        return [self.study(uid) for uid in uids]

    def sent(self, study_uid: str, input_hash: str | None = None) -> dict[str, str]:
        """SOP Instance UID -> what, of the instances of the study (of these inputs) the PACS confirmed."""
        query = "SELECT sop_instance_uid, what FROM sent WHERE study_uid = ?"
        args: tuple = (study_uid,)
        if input_hash is not None:
            query += " AND input_hash = ?"
            args += (input_hash,)
        return dict(self._db.execute(query, args).fetchall())

    def sent_series(self, study_uid: str) -> set[str]:
        """Series Instance UIDs of everything this job ever stored into the study (not inputs)."""
        return {
            r[0] for r in self._db.execute("SELECT DISTINCT series_uid FROM sent WHERE study_uid = ?", (study_uid,))
        }

    # --- writing: one transaction each -------------------------------------------------------------
    def _write(self, sql: str, args: tuple) -> None:
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(sql, args)
        except sqlite3.Error as err:
            raise OutputError(f"ledger {self.path}: cannot write it ({err})") from err

    def begin(self, study_uid: str, study_key: str, fingerprint: str) -> None:
        """A new study, or new inputs of a known one: its record starts again (attempts 0)."""
        self._write(
            "INSERT INTO studies (study_uid, study_key, fingerprint, state, attempts, reason, updated) "
            "VALUES (?, ?, ?, 'failed', 0, 'not retrieved yet', ?) ON CONFLICT(study_uid) DO UPDATE SET "
            "fingerprint = excluded.fingerprint, input_hash = NULL, state = 'failed', attempts = 0, "
            "reason = excluded.reason, no_rois = 0, predictive = 0, results_dir = NULL, "
            "updated = excluded.updated",
            (study_uid, study_key, fingerprint, _now()),
        )

    def mark_retrieved(self, study_uid: str, input_hash: str, fingerprint: str) -> None:
        self._write(
            "UPDATE studies SET state = 'retrieved', input_hash = ?, fingerprint = ?, reason = NULL, "
            "updated = ? WHERE study_uid = ?",
            (input_hash, fingerprint, _now(), study_uid),
        )

    def set_fingerprint(self, study_uid: str, fingerprint: str) -> None:
        self._write(
            "UPDATE studies SET fingerprint = ?, updated = ? WHERE study_uid = ?", (fingerprint, _now(), study_uid)
        )

    def count_attempt(self, study_uid: str) -> None:
        """Recorded before a computation starts, so a computation that kills the job still counts."""
        self._write("UPDATE studies SET attempts = attempts + 1, updated = ? WHERE study_uid = ?", (_now(), study_uid))

    def mark_computed(self, study_uid: str, results_dir: str, *, no_rois: bool, predictive: bool) -> None:
        self._write(
            "UPDATE studies SET state = 'computed', results_dir = ?, no_rois = ?, predictive = ?, "
            "reason = NULL, updated = ? WHERE study_uid = ?",
            (results_dir, int(no_rois), int(predictive), _now(), study_uid),
        )

    def mark_stored(self, study_uid: str) -> None:
        self._write(
            "UPDATE studies SET state = 'stored', reason = NULL, updated = ? WHERE study_uid = ?", (_now(), study_uid)
        )

    def mark_failed(self, study_uid: str, reason: str, *, count_attempt: bool = False) -> None:
        """``failed`` with its reason (one line); the state it failed in is in the reason."""
        reason = " ".join(str(reason).split())[:500]
        self._write(
            "UPDATE studies SET state = 'failed', reason = ?, attempts = attempts + ?, updated = ? WHERE study_uid = ?",
            (reason, int(count_attempt), _now(), study_uid),
        )

    def mark_skipped(self, study_uid: str, reason: str) -> None:
        """Not a study for this program (the nuclide policy refuses every emission series); not fetched."""
        reason = " ".join(str(reason).split())[:500]
        self._write(
            "UPDATE studies SET state = 'skipped', reason = ?, updated = ? WHERE study_uid = ?",
            (reason, _now(), study_uid),
        )

    def record_sent(self, study_uid: str, sop_instance_uid: str, series_uid: str, what: str, input_hash: str) -> None:
        self._write(
            "INSERT OR IGNORE INTO sent VALUES (?, ?, ?, ?, ?, ?)",
            (study_uid, sop_instance_uid, series_uid, what, input_hash, _now()),
        )
