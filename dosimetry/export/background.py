"""The DICOM exports of one command-line run, in a second process started with the run (issue 10).

The DICOM exports (:func:`dosimetry.export.study.write_dicom_outputs`) are mostly Python in highdicom and
pydicom: importing highdicom and its tables of the standard, reading the source headers again, building the
SEG's per-frame functional groups and the SR's content tree, writing them. On the real-size benchmark study
they were a quarter of the run's wall time, with the second core idle. An :class:`ExportProcess` is a
spawned process that imports all that while the run loads and computes; ``write_results`` hands it the
result and writes the NIfTI, the tables and the report meanwhile, then waits for it. The files are the same
as when written in the run's own process, into the same temporary output folder.

Only the command line uses it (``dosimetry run`` on a DICOM study, where the process is the run's own); the
Python API, batch cases and the nightly job write their exports in their own process, since they run
studies side by side already. ``Y90_EXPORT_PROCESS=0`` turns it off.

Robustness:

* the child ignores SIGINT (blocked while it starts, so it never prints a traceback) and dies at SIGTERM;
  the run's process handles Ctrl-C and terminates it (:meth:`ExportProcess.close`), so nothing outlives
  the run;
* an exception of the exports (for example :class:`~dosimetry.errors.OutputError`) is raised again in the
  run's process, as if the exports ran there;
* the child's log records (warnings of the exports) are sent back and logged by the run's process;
* if the child cannot start or dies (killed, out of memory), the exports are written in the run's process
  instead, and a DEBUG record says why: never a lost export.

The run's process writes the RT Dose itself (from the dose it holds, in memory its allocator has kept); the
export process gets the ROI occupancies (over their boxes), the statistics, the DICOM file lists and the
grid, and writes the SEG and the SR: no volume is sent.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

log = logging.getLogger("dosimetry")

ENVIRONMENT_SWITCH = "Y90_EXPORT_PROCESS"
"""``Y90_EXPORT_PROCESS=0``: write the DICOM exports in the run's own process."""

_POLL_S = 0.1
"""How often the run's process checks that the export process is alive while it waits (s)."""

_BLOCKED = (signal.SIGINT, signal.SIGTERM)

PARTS = ("seg", "sr")
"""The exports the export process writes (``write_dicom_outputs(parts=...)``); the run's process writes the
RT Dose."""


def _geometry(image) -> tuple:
    """What a grid is without its voxels (see :func:`_grid`)."""
    return (tuple(image.shape), image.origin_mm, image.spacing_mm, image.direction)


def _grid(geometry: tuple):
    """An :class:`~dosimetry.image.Image` of that grid whose voxels are one broadcast zero (no memory)."""
    import numpy as np

    from dosimetry.image import Image

    shape, origin_mm, spacing_mm, direction = geometry
    return Image(np.broadcast_to(np.zeros((), np.float32), shape), origin_mm, spacing_mm, direction)


def _peak_mib() -> float:
    """This process's peak resident memory (MiB; Linux reports kB), or NaN where unknown."""
    try:
        import resource
    except ImportError:  # not a POSIX system
        return float("nan")
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def enabled() -> bool:
    """True unless ``Y90_EXPORT_PROCESS=0``, the current process may not have children (a daemon), or the
    system cannot block signals while the child starts (no ``pthread_sigmask``: Windows)."""
    import multiprocessing

    if os.environ.get(ENVIRONMENT_SWITCH, "1") == "0" or not hasattr(signal, "pthread_sigmask"):
        return False
    return not multiprocessing.current_process().daemon


class ExportProcess:
    """A spawned process that prepares the DICOM exports at once and writes them when asked.

    Use as a context manager around the run (the process is terminated on the way out whatever happens), or
    call :meth:`close`. :meth:`submit` sends the result; :meth:`wait` returns the
    :class:`~dosimetry.export.study.DicomExports`.
    """

    def __init__(self) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(target=_serve, args=(child_conn,), name="y90-dicom-exports", daemon=True)
        self._pending: tuple | None = None
        self.worker_seconds: float | None = None
        """Seconds the export process spent writing the exports (None until :meth:`wait` returned)."""
        self.worker_peak_mib: float | None = None
        """Peak resident memory of the export process (MiB; None until :meth:`wait` returned)."""
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCKED)  # inherited by the child until it ignores them
        try:
            self._process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        child_conn.close()

    @property
    def pid(self) -> int | None:
        """The export process's id."""
        return self._process.pid

    @property
    def exitcode(self) -> int | None:
        """The export process's exit code once it ended (negative: the signal that ended it), else None."""
        return self._process.exitcode

    def __enter__(self) -> ExportProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def prepare(self, sources: dict, grid, weights: dict, roles: dict[str, str]) -> None:
        """Start building the SEG of the added ROIs now (the arguments of
        :func:`dosimetry.export.study.prepare_segmentation`; ``grid``'s voxels are not sent). :meth:`submit`
        uses it when the result's occupancies are these, else builds it again. Pass this method as
        ``run_dicom_study(..., rois_resampled=...)``."""
        if not weights:
            return
        try:
            self._conn.send(("prepare", sources, _geometry(grid), weights, roles))
        except (OSError, EOFError, ValueError) as err:  # the child is gone: wait() writes the exports here
            log.debug("DICOM export process unavailable (%s)", err)

    def submit(self, result, folder: str | os.PathLike, *, strict: bool = False) -> None:
        """Start writing the SEG and SR of ``result`` into ``folder`` (see :meth:`wait`); the run's process
        writes the RT Dose (``write_dicom_outputs(..., parts=("rtdose",))``), from memory it has already, so the
        dose volume is not sent: its grid is."""
        slim = replace(result, dose_gy=None, activity_bq=None, density_g_ml=None, ct_hu=None, dvh_volume_percent={})
        self._pending = (result, Path(folder), strict)
        try:
            self._conn.send(("write", slim, _geometry(result.dose_gy), str(folder), strict))
        except (OSError, EOFError, ValueError) as err:  # the child is gone: wait() writes them here
            log.debug("DICOM export process unavailable (%s); writing the exports in this process", err)

    def wait(self):
        """The :class:`~dosimetry.export.study.DicomExports` of :meth:`submit`: waits for the export process.

        Raises what the exports raise (:class:`~dosimetry.errors.OutputError`, ...). When the export process is
        gone, the exports are written here instead.
        """
        if self._pending is None:
            raise RuntimeError("wait() before submit()")
        result, folder, strict = self._pending
        reply = self._receive()
        if reply is None:
            from dosimetry.export.study import write_dicom_outputs

            self.close()
            return write_dicom_outputs(result, folder, strict=strict, parts=PARTS)
        kind, payload, records, seconds, peak_mib = reply
        self.worker_seconds, self.worker_peak_mib = seconds, peak_mib
        for record in records:  # as if logged here: the run's levels and handlers decide
            logger = logging.getLogger(record.name)
            if logger.isEnabledFor(record.levelno):
                logger.handle(record)
        if kind == "error":
            raise payload
        return payload

    def _receive(self):
        """The child's reply, or None when it died (or cannot be reached) before replying."""
        while True:
            try:
                if self._conn.poll(_POLL_S):
                    return self._conn.recv()
            except (OSError, EOFError) as err:
                log.debug("DICOM export process lost (%s); writing the exports in this process", err)
                return None
            if not self._process.is_alive():
                log.debug(
                    "DICOM export process ended (exit code %s); writing the exports in this process",
                    self._process.exitcode,
                )
                return None

    def close(self) -> None:
        """End the export process (at once if it is still working) and release the pipe."""
        try:
            self._conn.close()
        except OSError:
            pass
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()


def start() -> ExportProcess | None:
    """An :class:`ExportProcess`, or None when it is turned off (:func:`enabled`) or cannot start."""
    if not enabled():
        return None
    try:
        return ExportProcess()
    except Exception as err:  # noqa: BLE001 - no second process: the exports are written in this one, as ever
        log.debug("no DICOM export process (%s); the exports are written in this process", err)
        return None


# --- the child ------------------------------------------------------------------------------------------------
class _Collect(logging.Handler):
    """Keeps the child's log records, made picklable, for the run's process to log."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.exc_info:  # a traceback (logged at DEBUG for an unexpected error) goes back as text
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = message, None
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        self.records.append(record)


def _serve(conn) -> None:
    """The export process: prepare, then serve the run's requests until the pipe closes: ``prepare`` (build
    the SEG early) and ``write`` (write the exports, reply with them or the exception, and the log records)."""
    # Ctrl-C (the terminal's SIGINT reaches the whole process group) is the run's process's to handle: it
    # terminates this one (SIGTERM, whose default action ends it at once)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _BLOCKED)
    # (glibc's default allocator here, not keep_freed_memory: the SEG's and RT Dose's transient arrays are
    # returned when freed, so that this process adds little to the run's peak; numpy's huge-page advice is off,
    # inherited from the run's environment)
    _prepare()
    _return_freed_memory()  # (the JSON text of highdicom's tables)
    collect = _Collect()
    root = logging.getLogger()
    root.addHandler(collect)
    root.setLevel(logging.DEBUG)
    prepared = None
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request[0] == "prepare":
            prepared = _prepare_segmentation(*request[1:])
            _return_freed_memory()  # the SEG's working arrays: before the run's own peak (the dose)
            continue
        _kind, slim, geometry, folder, strict = request
        started = time.perf_counter()
        try:
            from dosimetry.export.study import write_dicom_outputs

            result = replace(slim, dose_gy=_grid(geometry))
            exports = write_dicom_outputs(result, folder, strict=strict, prepared=prepared, parts=PARTS)
            reply = ("ok", exports)
        except BaseException as err:  # noqa: BLE001 - every failure goes back to the run's process
            reply = ("error", _picklable(err))
        seconds = time.perf_counter() - started
        peak_mib = _peak_mib()
        records, collect.records = collect.records, []
        try:
            conn.send((*reply, records, seconds, peak_mib))
        except (OSError, EOFError):
            return


def _return_freed_memory() -> None:
    """Give the heap's free pages back to the system (glibc ``malloc_trim``; nothing elsewhere)."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _prepare_segmentation(sources, geometry, weights, roles):
    """The SEG built ahead (:func:`~dosimetry.export.study.prepare_segmentation`), or None when that failed:
    the write then builds it again, and reports (or, strict, raises) what goes wrong the way it always does."""
    from dosimetry.export.study import prepare_segmentation

    try:
        prepared = prepare_segmentation(sources, _grid(geometry), weights, roles)
    except Exception as err:  # noqa: BLE001
        log.debug("SEG not prepared ahead (%s: %s); it is built when written", type(err).__name__, err)
        return None
    return prepared if prepared.dataset is not None else None


def _prepare() -> None:
    """Import the export modules and load highdicom's tables of the standard (read once per process)."""
    import dosimetry.export.study  # noqa: F401  (highdicom, pydicom, the package's export modules)

    try:  # highdicom reads these JSON tables at its first SEG or SR; best effort, nothing depends on it
        from highdicom import _standard_utils as tables

        for name in ("get_sop_class_iod_map", "get_iod_module_map", "get_module_attribute_map"):
            getattr(tables, name)()
    except Exception:  # noqa: BLE001
        pass


def _picklable(err: BaseException) -> BaseException:
    import pickle

    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:  # noqa: BLE001 - an exception type that does not pickle: its text goes back
        return RuntimeError(f"{type(err).__name__}: {err}")


__all__ = ["ENVIRONMENT_SWITCH", "ExportProcess", "enabled", "start"]
