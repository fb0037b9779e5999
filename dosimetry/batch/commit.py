"""Moving a finished case from its work folder into ``OUT/<case_id>``, recorded so a kill at any moment is safe.

Only the submitting process calls these. The work folders live in ``OUT/.batch-work/`` (on the same
filesystem as OUT, so every move is a rename). Order of a commit, each step one rename::

    ledger: committing          (the output in WORK/out is complete)
    OUT/<id> -> WORK/previous   (only when an earlier result is replaced)
    WORK/out -> OUT/<id>
    ledger: done; WORK removed

:func:`finish_commit` redoes whatever part is missing, so a commit interrupted anywhere is completed at the
next start without running the case again.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from dosimetry.errors import OutputError
from dosimetry.export.output_guard import MARKER_NAME, is_our_output

WORK_DIR_NAME = ".batch-work"


def work_root(out_dir: Path) -> Path:
    return out_dir / WORK_DIR_NAME


def new_work_dir(out_dir: Path, case_id: str) -> Path:
    return work_root(out_dir) / f"{case_id}.{uuid.uuid4().hex[:12]}"


def check_case_folder(out_dir: Path, case_id: str) -> None:
    """An existing ``OUT/<case_id>`` may be replaced only if this software wrote it.

    Raises
    ------
    OutputError
        ``OUT/<case_id>`` is a file, a link or a folder without the marker file.
    """
    target = out_dir / case_id
    if os.path.lexists(target) and not is_our_output(target):
        raise OutputError(
            f"{target} exists and was not written by y90-dosimetry (no {MARKER_NAME}); it is "
            "not replaced: move it away or choose another OUT"
        )


def finish_commit(out_dir: Path, case_id: str, work: Path) -> None:
    """Complete the move of ``work/out`` to ``OUT/<case_id>`` (idempotent), then remove ``work``."""
    target = out_dir / case_id
    new = work / "out"
    if new.is_dir():
        if os.path.lexists(target):
            check_case_folder(out_dir, case_id)
            os.replace(target, work / "previous")
        os.replace(new, target)
    shutil.rmtree(work, ignore_errors=True)


def remove_work(work: str | os.PathLike | None) -> None:
    if work:
        shutil.rmtree(work, ignore_errors=True)


def remove_stale_work(out_dir: Path, keep: set[str]) -> None:
    """Remove work folders no ledger entry refers to (left by a killed batch or a cancelled Dask task)."""
    root = work_root(out_dir)
    if not root.is_dir():
        return
    for child in root.iterdir():
        if str(child) not in keep:
            shutil.rmtree(child, ignore_errors=True)
