"""Running one case: :func:`run_case`, the one function that both the local executor and a Dask task call.

Design: a fresh process per case, forked from a warm server, not the case in-process in a pool worker
------------------------------------------------------------------------------------------------------
Each case is ``dosimetry.cli.main(["run", <inputs>, <options>, "--out", <work>/out, "-q"])``, exactly the
command line ``dosimetry run`` gets, in a process of its own (own session, so its whole group can be
killed). On Linux that process is forked from a per-slot warm server (:mod:`._forkserver`) that has imported
the scientific stack once and never runs a case itself; elsewhere it is a new interpreter
(:mod:`._child`).

=====================  ============================================  =============================================
                       in-process (a pool worker calls the API)      a fresh process per case (chosen)
=====================  ============================================  =============================================
segfault, OOM kill     kills the pool worker: a ProcessPool breaks,   only that case's process dies (exit -9): the
                       a thread pool takes the whole batch down       case is failed, the batch goes on
timeout                a running Python call cannot be stopped:       SIGKILL of the case's process group at
                       the worker must be killed and replaced         ``--case-timeout-s``; nothing of it survives
numba/BLAS threads     fixed at the worker's first import; caches,    from the environment of the server
                       thread pools and state carry over to the       (NUMBA_NUM_THREADS, OMP_NUM_THREADS, ...);
                       next case                                      every case starts from the same state
Ctrl-C / kill -9       SIGINT reaches every worker mid-case; a        the batch kills the groups it started; the
                       killed batch may leave workers writing         server and each case die with their parent
                                                                      (PR_SET_PDEATHSIG): nothing writes on
identical outputs      same code, but one case's state may leak       the command line is the contract: the same
                       into the next                                  argv gives the same files on any machine,
                                                                      Dask workers included (tested bit for bit)
overhead per case      none                                           a fork (warm server): +0.4 to +0.9 s CPU per
                                                                      case against one process running the 8
                                                                      sample cases in a row (about 3.3 s CPU each);
                                                                      a new interpreter per case instead: +3.3 s
                                                                      CPU, the imports
=====================  ============================================  =============================================

The case depends only on the stable command line (``dosimetry run``'s arguments, files and exit codes), not on
internals of the pipeline, which is being reorganised. ``scripts/bench_batch.py`` measures the overhead.

The case writes into a work folder (``OUT/.batch-work/<case_id>.<token>/out``, itself written atomically by
``dosimetry run``); the submitting process renames it into ``OUT/<case_id>`` (:mod:`.commit`), so the
ledger has one writer and a case is never half-written.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from dosimetry.errors import INTERRUPTED_EXIT_CODE

THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Environment variables that set each case's threads (workers x threads = cores)."""

TIMEOUT_EXIT_CODE = -int(signal.SIGKILL)
"""Exit code recorded for a case killed at its timeout (as for any case killed by SIGKILL)."""


@dataclass(frozen=True)
class CaseJob:
    """Everything a worker needs to run one case (picklable; paths as strings)."""

    case_id: str
    run_argv: tuple[str, ...]
    work_dir: str
    timeout_s: float | None = None
    threads: int | None = None


@dataclass(frozen=True)
class CaseOutcome:
    """What became of one case: ``ok`` with its output in ``work_dir/out``, or not, with a one-line error."""

    case_id: str
    ok: bool
    exit_code: int | None
    error: str
    seconds: float
    output: str | None


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _slots_here() -> int:
    """Cases run at once by this process: the Dask worker's threads inside a Dask task, else 1."""
    if "distributed" in sys.modules:
        try:
            from distributed import get_worker

            return max(1, int(get_worker().state.nthreads))
        except (ValueError, AttributeError, ImportError):
            pass
    return 1


def threads_per_case(requested: int | None) -> int:
    return max(1, int(requested)) if requested else max(1, cores() // _slots_here())


_live: dict[int, subprocess.Popen] = {}
_live_lock = threading.Lock()


_live_pids: set[int] = set()


def kill_running() -> None:
    """Kill the process group of every case this process is running (Ctrl-C of the batch)."""
    with _live_lock:
        processes = list(_live.values())
        pids = list(_live_pids)
    for process in processes:
        _kill_group(process)
    for pid in pids:
        _kill_pid_group(pid)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _error_line(stderr: str, exit_code: int) -> str:
    """The run's one-line ``error:`` message, else the last line of a traceback, else what killed it."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("error: "):
            return line[len("error: ") :]
    if exit_code < 0:
        name = signal.Signals(-exit_code).name if -exit_code in signal.valid_signals() else str(-exit_code)
        hint = " (out of memory?)" if -exit_code == signal.SIGKILL else ""
        return f"the case's process was killed by {name}{hint}"
    if exit_code == 1 and lines:
        return f"internal error: {lines[-1]}"
    return f"dosimetry run exited with code {exit_code}"


class _Server:
    """A warm :mod:`._forkserver` process of one calling thread (one slot), for one thread count."""

    def __init__(self, threads: str):
        self.threads = threads
        env = dict(os.environ, **{name: threads for name in THREAD_VARIABLES})
        env["Y90_BATCH_PARENT_PID"] = str(os.getpid())
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dosimetry.batch._forkserver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            text=True,
            bufsize=1,
        )
        with _live_lock:
            _servers.add(self)

    def alive(self) -> bool:
        return self.process.poll() is None

    def request(self, argv: list[str], stderr_path: str) -> int:
        """Send a job; returns the forked child's pid (raises EOFError when the server is gone)."""
        self.process.stdin.write(json.dumps({"argv": argv, "stderr": stderr_path}) + "\n")
        self.process.stdin.flush()
        return int(self._read(None)["pid"])

    def _read(self, timeout_s: float | None) -> dict:
        if timeout_s is not None:
            ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, timeout_s))
            if not ready:
                raise TimeoutError
        line = self.process.stdout.readline()
        if not line:
            raise EOFError("the batch's worker process ended")
        return json.loads(line)

    def wait_exit(self, timeout_s: float | None) -> int:
        return int(self._read(timeout_s)["exit"])

    def stop(self) -> None:
        with _live_lock:
            _servers.discard(self)
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_servers: set = set()
_local = threading.local()


def _server(threads: str) -> _Server:
    server = getattr(_local, "server", None)
    if server is None or not server.alive() or server.threads != threads:
        if server is not None:
            server.stop()
        server = _local.server = _Server(threads)
    return server


def stop_servers() -> None:
    """End the warm servers of this process (the batch is finished or interrupted)."""
    with _live_lock:
        servers = list(_servers)
    for server in servers:
        server.stop()


def _kill_pid_group(pid: int) -> None:
    for kill in (os.killpg, os.kill):  # the child may not have called setsid() yet
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _timed_out(job: CaseJob, start: float) -> CaseOutcome:
    """The outcome of a case killed at its ``--case-timeout-s``."""
    return CaseOutcome(
        job.case_id,
        False,
        TIMEOUT_EXIT_CODE,
        f"timed out after {job.timeout_s:g} s (--case-timeout-s); the case was killed",
        time.monotonic() - start,
        None,
    )


def run_case(job: CaseJob) -> CaseOutcome:
    """Run one case as ``dosimetry run`` in a fresh process; its output goes to ``job.work_dir/out``.

    The one function that the local executor and the Dask task both call. On Linux the process is forked
    from this thread's warm server (:mod:`._forkserver`), elsewhere it is a new interpreter
    (``python -m dosimetry.batch._child``). Never raises for a fault of the case (bad input, crash, out of
    memory, timeout): the outcome says what happened. The work folder is created here; the submitting
    process commits or removes it.
    """
    if not sys.platform.startswith("linux"):
        return _run_case_subprocess(job)
    start = time.monotonic()
    work = Path(job.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    out, stderr_path = work / "out", work / "stderr.txt"
    argv = ["run", *job.run_argv, "--out", str(out), "-q"]
    server = _server(str(threads_per_case(job.threads)))
    try:
        pid = server.request(argv, str(stderr_path))
    except (EOFError, OSError, ValueError):  # the server died (e.g. chosen by the OOM killer): a new one
        server.stop()
        server = _server(server.threads)
        pid = server.request(argv, str(stderr_path))
    with _live_lock:
        _live_pids.add(pid)
    try:
        try:
            code = server.wait_exit(job.timeout_s)
        except TimeoutError:
            _kill_pid_group(pid)
            server.wait_exit(None)
            return _timed_out(job, start)
        except EOFError:
            _kill_pid_group(pid)
            return CaseOutcome(
                job.case_id,
                False,
                None,
                "the batch's worker process ended during the case",
                time.monotonic() - start,
                None,
            )
    except BaseException:
        _kill_pid_group(pid)
        raise
    finally:
        with _live_lock:
            _live_pids.discard(pid)
    return _outcome(job, code, _read_text(stderr_path), time.monotonic() - start, out)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _outcome(job: CaseJob, code: int, stderr: str, seconds: float, out: Path) -> CaseOutcome:
    if code == 0 and out.is_dir():
        return CaseOutcome(job.case_id, True, 0, "", seconds, str(out))
    if code == INTERRUPTED_EXIT_CODE:
        return CaseOutcome(job.case_id, False, code, "interrupted", seconds, None)
    return CaseOutcome(job.case_id, False, code, _error_line(stderr, code), seconds, None)


def _run_case_subprocess(job: CaseJob) -> CaseOutcome:
    """:func:`run_case` without a warm server: ``python -m dosimetry.batch._child run ...`` per case."""

    start = time.monotonic()
    work = Path(job.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    out = work / "out"
    threads = str(threads_per_case(job.threads))
    env = dict(os.environ, **{name: threads for name in THREAD_VARIABLES})
    env["Y90_BATCH_PARENT_PID"] = str(os.getpid())
    cmd = [sys.executable, "-m", "dosimetry.batch._child", "run", *job.run_argv, "--out", str(out), "-q"]
    process = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        start_new_session=True,
        text=True,
        errors="replace",
    )
    with _live_lock:
        _live[process.pid] = process
    try:
        try:
            _, stderr = process.communicate(timeout=job.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            process.communicate()
            return _timed_out(job, start)
    except BaseException:
        _kill_group(process)
        process.wait()
        raise
    finally:
        with _live_lock:
            _live.pop(process.pid, None)
    return _outcome(job, process.returncode, stderr or "", time.monotonic() - start, out)
