"""``python -m dosimetry.batch._forkserver``: a warm process that forks one fresh child per case.

The server imports the scientific stack once (numpy, SciPy, SimpleITK, numba, matplotlib, highdicom and the
package: the ~2-3 s of CPU a fresh interpreter spends before a case can start) and then, for each job line
on stdin (JSON: ``argv``, ``stderr``), forks a child that runs ``dosimetry.cli.main(argv)``, i.e. exactly
``dosimetry run``, and exits with its exit code. The server itself never runs a case, so every child starts
from the same pristine state: no case sees another's state, and a child that crashes, runs out of memory or
is killed at its timeout takes only itself down.

Protocol (one JSON object per line on stdout): ``{"pid": N}`` when the child is forked, then
``{"exit": CODE}`` when it has ended (``-SIGNAL`` when killed). The server ends at EOF on stdin, and dies with
the process that started it (``PR_SET_PDEATHSIG``), as each child dies with the server: a batch killed with
``kill -9`` leaves nothing running.

Numba and the BLAS read their thread counts (``NUMBA_NUM_THREADS``, ``OMP_NUM_THREADS``, ...) from the
environment the server was started with; the server starts no thread pool itself (no numba parallel call),
so forking it is safe.
"""

import importlib
import json
import os
import signal
import sys

WARM_MODULES = (
    "numpy",
    "scipy.ndimage",
    "SimpleITK",
    "numba",
    "nibabel",
    "pydicom",
    "highdicom",
    "matplotlib",
    "dosimetry.cli",
    "dosimetry.pipeline",
    "dosimetry.export.results",
    "dosimetry.stats.clinical",
    "dosimetry.dicom",
    "dosimetry.dicom.study",
    "dosimetry.export.study",
    "dosimetry.report",
    "dosimetry.io.roi_files",
    "dosimetry.dose.kernels",
    "dosimetry.dose",
)
"""Imported once by the server; a module missing (moved by a later version) is simply imported by the case."""


def die_with_parent(expected_parent: str | None) -> None:
    """Ask Linux to SIGKILL this process when its parent dies; exit now if the parent is gone already."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if expected_parent and os.getppid() != int(expected_parent):
        os._exit(137)


def _child(argv: list[str], stderr_path: str) -> None:
    """In the forked child: own session, own stdout/stderr, run the command line, exit with its code."""
    code = 1
    try:
        os.setsid()
        die_with_parent(None)
        devnull = os.open(os.devnull, os.O_WRONLY)
        err = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(devnull, 1)
        os.dup2(err, 2)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        from dosimetry.cli import main

        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - a bug: print it where the batch reads the error line
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve() -> None:
    die_with_parent(os.environ.get("Y90_BATCH_PARENT_PID"))
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(job["argv"], job["stderr"])
        out.write(json.dumps({"pid": pid}) + "\n")
        out.flush()
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        out.write(json.dumps({"exit": code}) + "\n")
        out.flush()


if __name__ == "__main__":
    from dosimetry.allocator import keep_freed_memory

    keep_freed_memory()  # inherited by every forked case process (see allocator.py)
    serve()
