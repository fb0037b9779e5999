"""``run_batch``: the batch as a Python call (the ``dosimetry batch`` command is a thin layer over it)."""

from __future__ import annotations

import fcntl
import math
import os
import queue
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from dosimetry._version import __version__
from dosimetry.errors import CASES_FAILED_EXIT_CODE, InputFileError, OptionsError, OutputError
from dosimetry.export.output_guard import SOFTWARE_NAME, check_output_location, is_our_output
from dosimetry.batch import commit, runopts, tables
from dosimetry.batch.cases import Case, discover_cases, read_cases_csv
from dosimetry.batch.execute import CaseJob, CaseOutcome, cores
from dosimetry.batch.ledger import Key, Ledger, input_hash, options_hash

LOCK_NAME = ".batch-lock"
INTERRUPTED_ERROR = "not finished: the batch was interrupted; run the same command again to resume"


@dataclass
class BatchResult:
    """What a batch did: ``summary`` (one record per case) and ``cohort`` (one per case and ROI).

    ``summary_frame()`` and ``cohort_frame()`` give them as pandas DataFrames (pandas must be installed).
    """

    out: Path
    summary: list[dict]
    cohort: list[dict]
    exit_code: int
    counts: dict = field(default_factory=dict)

    def summary_frame(self):
        import pandas as pd

        return pd.DataFrame(self.summary, columns=list(tables.SUMMARY_COLUMNS))

    def cohort_frame(self):
        import pandas as pd

        return pd.DataFrame(self.cohort, columns=tables.cohort_columns(self.cohort) if self.cohort else None)


class Progress:
    """What the batch tells its caller while it runs (the command draws a progress bar); does nothing here."""

    def start(self, total: int, to_compute: int) -> None: ...

    def case_finished(self, case_id: str, status: str, error: str) -> None: ...

    def close(self) -> None: ...


def _tokens(run_options) -> list[str]:
    """Run options as tokens, from tokens or from a mapping of CSV-style names to values."""
    if isinstance(run_options, Mapping):
        tokens: list[str] = []
        columns = runopts.column_actions()
        for name, value in run_options.items():
            if value is None:
                continue
            column = name.lstrip("-").replace("-", "_")
            if column not in columns:
                raise OptionsError(f"run option {name!r} is not an option of 'dosimetry run'")
            values = value if isinstance(value, (list, tuple)) else [value]
            if isinstance(value, bool):
                tokens += [f"--{column.replace('_', '-')}"] if value else []
                continue
            for v in values:
                tokens += [f"--{column.replace('_', '-')}", str(v)]
        return tokens
    return [str(t) for t in run_options]


def _check_numbers(workers: int, case_timeout_s: float | None) -> None:
    if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= 1024:
        raise OptionsError(f"--workers: got {workers!r}, expected a whole number from 1 to 1024")
    if case_timeout_s is not None and not (math.isfinite(case_timeout_s) and case_timeout_s > 0):
        raise OptionsError(f"--case-timeout-s: got {case_timeout_s!r}, expected a number of seconds > 0")


def _lock(out: Path):
    handle = open(out / LOCK_NAME, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise OutputError(
            f"another batch is writing {out} (it holds {out / LOCK_NAME}); wait for it to finish "
            "or choose another --out"
        ) from None
    return handle


def _recover(ledger: Ledger, out: Path) -> None:
    """Roll every case left between states by a killed batch forward (commit) or back (pending)."""
    for entry in ledger.entries():
        if entry.state == "committing":
            commit.finish_commit(out, entry.case_id, Path(entry.work))
            ledger.mark_done(entry.case_id)
        elif entry.state == "running":
            ledger.mark_pending(entry.case_id)
    commit.remove_stale_work(out, keep=set())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _summary_row(case_id, status, exit_code, error, seconds) -> dict:
    return {
        "case_id": case_id,
        "status": status,
        "exit_code": exit_code,
        "error": error or "",
        "seconds": None if seconds is None else round(float(seconds), 2),
    }


def run_batch(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    cases: str | os.PathLike | None = None,
    run_options: Sequence[str] | Mapping = (),
    workers: int = 1,
    dask_scheduler: str | None = None,
    retry_failed: bool = False,
    case_timeout_s: float | None = None,
    progress: Progress | None = None,
) -> BatchResult:
    """Run ``dosimetry run`` on every case of a cohort, resumably, each case isolated; write the tables.

    Parameters
    ----------
    root : path
        Folder of DICOM studies (each StudyInstanceUID a case), or the data the ``cases`` CSV points into.
    out : path
        Output folder: ``OUT/<case_id>/`` per case, ``summary.csv``, ``cohort.csv``, ``batch.json`` and the
        ledger ``ledger.sqlite``. Must not be, contain or lie inside ``root`` or any input.
    cases : path, optional
        A cases CSV (see :func:`dosimetry.batch.cases.read_cases_csv`) instead of discovery under ``root``.
    run_options : sequence of str or mapping
        Options of ``dosimetry run`` for every case, as tokens (``["--method", "kernel"]``) or as a mapping
        of CSV-style names (``{"method": "kernel", "residual_fraction": 0.03}``).
    workers : int
        Cases at once on this machine, each with cores / workers numba threads.
    dask_scheduler : str, optional
        ``tcp://HOST:PORT`` of a running Dask distributed scheduler: each case is a task there.
    retry_failed : bool
        Run again cases that failed before with unchanged inputs and options.
    case_timeout_s : float, optional
        Kill a case running longer than this (it is recorded as failed).

    Returns
    -------
    BatchResult
        ``exit_code`` 0 when every case is ok or skipped, 11 when some failed.

    Raises
    ------
    OptionsError
        Bad batch or run options, or a faulty cases CSV (exit 7; 3 for missing files only).
    InputFileError
        ``root`` is no folder or holds no DICOM study.
    OutputError
        ``out`` overlaps ``root`` or an input, is not a folder, or another batch is writing it.
    KeyboardInterrupt
        After the running cases were stopped and the tables written; the next call resumes.
    """
    started = _now()
    progress = progress or Progress()
    root, out = Path(root), Path(out)
    _check_numbers(workers, case_timeout_s)
    if not root.is_dir():
        raise InputFileError(f"{root}: not a folder; give the folder that holds the studies")
    check_output_location(out, [root])
    tokens = _tokens(run_options)
    groups = runopts.group_tokens(tokens)
    runopts.validate(["_", *runopts.flatten(groups)])
    case_list = read_cases_csv(cases, groups) if cases is not None else discover_cases(root, groups)
    if cases is not None:
        check_output_location(out, [cases])
    for case in case_list:
        check_output_location(out, case.input_paths)
    if os.path.lexists(out) and not out.is_dir():
        raise OutputError(f"--out {out} is not a folder; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create --out {out}: {err.strerror or err}") from None
    lock = _lock(out)
    try:
        with Ledger(out) as ledger:
            _recover(ledger, out)
            summary, interrupted = _run_cases(
                ledger,
                out,
                case_list,
                workers=workers,
                dask_scheduler=dask_scheduler,
                retry_failed=retry_failed,
                case_timeout_s=case_timeout_s,
                progress=progress,
            )
        try:
            commit.work_root(out).rmdir()  # only when empty: a cancelled Dask task may still write there
        except OSError:
            pass
        cohort = []
        for row in summary:
            if row["status"] in ("ok", "skipped") and not row["error"]:  # not a case left unfinished by Ctrl-C
                cohort += tables.case_rows(out / row["case_id"], row["case_id"])
        counts = {status: sum(r["status"] == status for r in summary) for status in ("ok", "skipped", "failed")}
        counts["cases"] = len(summary)
        exit_code = CASES_FAILED_EXIT_CODE if counts["failed"] else 0
        tables.write_summary(out, summary)
        tables.write_cohort(out, cohort)
        tables.write_batch_json(
            out,
            {
                "software": SOFTWARE_NAME,
                "version": __version__,
                "started_utc": started,
                "ended_utc": _now(),
                "root": str(root),
                "out": str(out),
                "cases_csv": None if cases is None else str(cases),
                "options": {
                    "workers": workers,
                    "dask_scheduler": dask_scheduler,
                    "retry_failed": retry_failed,
                    "case_timeout_s": case_timeout_s,
                    "run_options": tokens,
                },
                "counts": counts,
                "interrupted": interrupted,
                "exit_code": None if interrupted else exit_code,
            },
        )
    finally:
        lock.close()
    if interrupted:
        raise KeyboardInterrupt
    return BatchResult(out, summary, cohort, exit_code, counts)


def _key(ledger: Ledger, case: Case) -> Key:
    return Key(input_hash(ledger, case.input_files, case.identity), options_hash(case.options), __version__)


def _run_cases(
    ledger: Ledger,
    out: Path,
    case_list: list[Case],
    *,
    workers,
    dask_scheduler,
    retry_failed,
    case_timeout_s,
    progress: Progress,
) -> tuple[list[dict], bool]:
    rows: dict[str, dict] = {}
    todo: list[tuple[Case, Key]] = []
    for case in case_list:
        key = _key(ledger, case)
        entry = ledger.get(case.case_id)
        if entry is not None and entry.key == key and entry.state == "done" and is_our_output(out / case.case_id):
            rows[case.case_id] = _summary_row(case.case_id, "skipped", 0, "", entry.seconds)
        elif entry is not None and entry.key == key and entry.state == "failed" and not retry_failed:
            rows[case.case_id] = _summary_row(case.case_id, "failed", entry.exit_code, entry.error, entry.seconds)
        else:
            try:
                commit.check_case_folder(out, case.case_id)
            except OutputError as err:
                rows[case.case_id] = _summary_row(case.case_id, "failed", OutputError.exit_code, str(err), 0)
                continue
            todo.append((case, key))
    progress.start(len(case_list), len(todo))
    interrupted = False
    if todo:
        threads = None if dask_scheduler else max(1, cores() // workers)
        executor = make_executor(workers, dask_scheduler)
        try:
            interrupted = _drive(executor, ledger, out, todo, rows, threads, case_timeout_s, progress)
        finally:
            progress.close()
    else:
        progress.close()
    for case in case_list:
        rows.setdefault(case.case_id, _summary_row(case.case_id, "skipped", None, INTERRUPTED_ERROR, None))
    return [rows[case.case_id] for case in case_list], interrupted


def make_executor(workers: int, dask_scheduler: str | None):
    from dosimetry.batch.executors import DaskExecutor, LocalExecutor

    return DaskExecutor(dask_scheduler) if dask_scheduler else LocalExecutor(workers)


def _drive(executor, ledger: Ledger, out: Path, todo, rows: dict, threads, case_timeout_s, progress: Progress) -> bool:
    """Submit the cases (at most ``executor.slots`` at once), commit each as it finishes; True if interrupted."""
    done: queue.Queue = queue.Queue()
    pending = list(reversed(todo))
    in_flight: dict[str, CaseJob] = {}
    try:
        while pending or in_flight:
            while pending and len(in_flight) < executor.slots:
                case, key = pending.pop()
                work = commit.new_work_dir(out, case.case_id)
                job = CaseJob(case.case_id, tuple(case.run_argv), str(work), case_timeout_s, threads)
                ledger.mark_running(case.case_id, key, str(work))
                in_flight[case.case_id] = job
                executor.submit(job).add_done_callback(lambda f, job=job: done.put((job, f)))
            try:
                job, future = done.get(timeout=0.2)
            except queue.Empty:
                continue
            in_flight.pop(job.case_id)
            _finish(ledger, out, job, _outcome(job, future), rows, progress)
    except KeyboardInterrupt:
        executor.cancel()
        for job in in_flight.values():
            ledger.mark_pending(job.case_id)
            commit.remove_work(job.work_dir)
        return True
    executor.close()
    return False


def _outcome(job: CaseJob, future) -> CaseOutcome:
    try:
        return future.result()
    except Exception as err:  # noqa: BLE001 - a task lost on the cluster (worker died, cancelled): the case failed
        return CaseOutcome(
            job.case_id, False, None, f"the task failed on the executor: {type(err).__name__}: {err}", 0.0, None
        )


def _finish(ledger: Ledger, out: Path, job: CaseJob, outcome: CaseOutcome, rows: dict, progress: Progress) -> None:
    case_id = job.case_id
    if outcome.ok:
        ledger.mark_committing(case_id, outcome.seconds)
        try:
            commit.finish_commit(out, case_id, Path(job.work_dir))
        except OutputError as err:
            commit.remove_work(job.work_dir)
            ledger.mark_failed(case_id, OutputError.exit_code, str(err), outcome.seconds)
            rows[case_id] = _summary_row(case_id, "failed", OutputError.exit_code, str(err), outcome.seconds)
        else:
            ledger.mark_done(case_id)
            rows[case_id] = _summary_row(case_id, "ok", 0, "", outcome.seconds)
    else:
        commit.remove_work(job.work_dir)
        ledger.mark_failed(case_id, outcome.exit_code, outcome.error, outcome.seconds)
        rows[case_id] = _summary_row(case_id, "failed", outcome.exit_code, outcome.error, outcome.seconds)
    row = rows[case_id]
    progress.case_finished(case_id, row["status"], row["error"])
