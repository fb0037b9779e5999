"""The batch ledger: one SQLite file in OUT (``ledger.sqlite``), written only by the submitting process.

Each case is keyed on its id, the content hash of its input files, the hash of its effective run options
and the software version. States::

    pending -> running -> committing -> done
                       \\-> failed

``running`` is recorded (with the case's work folder) before a case starts; ``committing`` before its
complete output is renamed from the work folder into ``OUT/<case_id>``; ``done`` after. A batch killed at
any moment leaves each case in one of these states, and :meth:`Ledger.recover` (at the next start) rolls
each forward or back: a ``committing`` case is finished (the rename is done or redone, never the run), a
``running`` case becomes ``pending`` again. Every change is one transaction; the database is in WAL mode, so
a reader (a test, a monitoring script) never blocks the batch.

File hashes are cached on (path, size, mtime, ctime, inode): an unchanged file is not read again, so a
rerun of a finished batch takes seconds; any write to a file changes its ctime, which the user cannot set.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

LEDGER_NAME = "ledger.sqlite"
SCHEMA_VERSION = 1
STATES = ("pending", "running", "committing", "done", "failed")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY,
    input_hash TEXT NOT NULL,
    options_hash TEXT NOT NULL,
    version TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ({", ".join(repr(s) for s in STATES)})),
    work TEXT,
    exit_code INTEGER,
    error TEXT,
    seconds REAL,
    computations INTEGER NOT NULL DEFAULT 0,
    updated_utc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS file_hashes (
    path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, ctime_ns INTEGER, inode INTEGER, sha256 TEXT NOT NULL
);
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Key:
    """What a case's result depends on."""

    input_hash: str
    options_hash: str
    version: str


@dataclass(frozen=True)
class Entry:
    case_id: str
    key: Key
    state: str
    work: str | None
    exit_code: int | None
    error: str | None
    seconds: float | None
    computations: int


class Ledger:
    """The ledger of one OUT folder; use as a context manager (closes the connection)."""

    def __init__(self, out_dir: str | os.PathLike):
        self.path = Path(out_dir) / LEDGER_NAME
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        with self.transaction():
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self.db.execute(statement)
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def transaction(self):
        return _Transaction(self.db)

    # --- cases ---------------------------------------------------------------------------------------------
    def get(self, case_id: str) -> Entry | None:
        row = self.db.execute(
            "SELECT case_id, input_hash, options_hash, version, state, work, exit_code, error, "
            "seconds, computations FROM cases WHERE case_id = ?",
            (case_id,),
        ).fetchone()
        return None if row is None else Entry(row[0], Key(*row[1:4]), *row[4:])

    def entries(self) -> list[Entry]:
        ids = [r[0] for r in self.db.execute("SELECT case_id FROM cases ORDER BY case_id")]
        return [self.get(i) for i in ids]

    def mark_running(self, case_id: str, key: Key, work: str) -> None:
        with self.transaction():
            self.db.execute(
                "INSERT INTO cases (case_id, input_hash, options_hash, version, state, work, updated_utc) "
                "VALUES (?, ?, ?, ?, 'running', ?, ?) ON CONFLICT(case_id) DO UPDATE SET input_hash = excluded."
                "input_hash, options_hash = excluded.options_hash, version = excluded.version, state = 'running', "
                "work = excluded.work, exit_code = NULL, error = NULL, seconds = NULL, updated_utc = excluded."
                "updated_utc",
                (case_id, key.input_hash, key.options_hash, key.version, work, _now()),
            )

    def mark_committing(self, case_id: str, seconds: float) -> None:
        self._set(case_id, "committing", seconds=seconds, exit_code=0)

    def mark_done(self, case_id: str) -> None:
        self._set(case_id, "done", work=None, count=True)

    def mark_failed(self, case_id: str, exit_code: int | None, error: str, seconds: float) -> None:
        self._set(case_id, "failed", work=None, exit_code=exit_code, error=error, seconds=seconds, count=True)

    def mark_pending(self, case_id: str) -> None:
        self._set(case_id, "pending", work=None)

    def _set(self, case_id: str, state: str, *, count: bool = False, **values) -> None:
        sets = ", ".join(f"{k} = ?" for k in values)
        with self.transaction():
            self.db.execute(
                f"UPDATE cases SET state = ?, {sets + ', ' if sets else ''}"
                f"computations = computations + {1 if count else 0}, updated_utc = ? WHERE case_id = ?",
                (state, *values.values(), _now(), case_id),
            )

    # --- file hashes ---------------------------------------------------------------------------------------
    def file_hash(self, path: Path, new: list | None = None) -> str:
        """SHA-256 of a file's content, read again only when its size, times or inode changed.

        A newly computed hash is appended to ``new`` (stored later by :meth:`store_hashes`, in one
        transaction) or, without ``new``, stored at once."""
        st = os.stat(path)
        stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        key = str(Path(path).resolve())
        row = self.db.execute(
            "SELECT size, mtime_ns, ctime_ns, inode, sha256 FROM file_hashes WHERE path = ?", (key,)
        ).fetchone()
        if row is not None and tuple(row[:4]) == stamp:
            return row[4]
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        value = digest.hexdigest()
        if new is not None:
            new.append((key, *stamp, value))
        else:
            self.store_hashes([(key, *stamp, value)])
        return value

    def store_hashes(self, rows: list) -> None:
        if rows:
            with self.transaction():
                self.db.executemany("INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?, ?, ?)", rows)


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


def options_hash(options, extra: dict | None = None) -> str:
    """Hash of a case's effective run options (order of repeated options kept, options sorted by name)."""
    grouped: dict[str, list] = {}
    for dest, tokens in options:
        grouped.setdefault(dest, []).append(list(tokens))
    text = json.dumps({"options": dict(sorted(grouped.items())), **(extra or {})}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def input_hash(ledger: Ledger, labelled_files, inputs_text: str) -> str:
    """Hash of a case's inputs: each file's name (relative) and content hash, and the input arguments' shape."""
    digest = hashlib.sha256(inputs_text.encode())
    new: list = []
    for label, path in sorted(labelled_files, key=lambda item: item[0]):
        digest.update(f"\n{label}\0{ledger.file_hash(path, new)}".encode())
    ledger.store_hashes(new)
    return digest.hexdigest()
