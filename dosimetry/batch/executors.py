"""Where cases run: N worker slots on this machine, or tasks on a running Dask distributed cluster.

Both executors call the same function, :func:`.execute.run_case`, with the same :class:`.execute.CaseJob`;
only the submitting process reads the outcomes and writes the ledger. An executor offers ``slots`` (cases
submitted at once), ``submit(job) -> future`` (with ``add_done_callback`` and ``result``), ``cancel()``
(Ctrl-C: stop every case) and ``close()``.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from dosimetry.errors import OptionsError
from dosimetry.batch.execute import CaseJob, kill_running, run_case, stop_servers


class LocalExecutor:
    """``workers`` cases at once on this machine, each in its own process (a thread waits for each; each
    thread has its warm server, :mod:`._forkserver`)."""

    def __init__(self, workers: int):
        self.slots = workers
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="y90-case")
        self.futures = []

    def submit(self, job: CaseJob):
        future = self.pool.submit(run_case, job)
        self.futures.append(future)
        return future

    def cancel(self) -> None:
        """Kill every running case (again while any is still starting) and wait for their threads."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        while not all(f.done() for f in self.futures):
            kill_running()
            time.sleep(0.05)
        self.pool.shutdown(wait=True)
        stop_servers()

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        stop_servers()


class DaskExecutor:
    """Each case a task on the Dask distributed cluster at ``address`` (``tcp://HOST:PORT``).

    Inputs and OUT must be on a filesystem the workers share, at the same paths; the package must be
    installed on the workers. Tasks are submitted all at once (the scheduler queues them); a worker runs
    as many at once as it has threads, each case with cores / threads numba threads.
    """

    def __init__(self, address: str, *, timeout_s: float = 30):
        try:
            from distributed import Client
        except ImportError as err:
            raise OptionsError("--dask-scheduler needs Dask distributed: pip install 'y90-dosimetry[dask]'") from err
        try:
            self.client = Client(address, timeout=timeout_s, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as err:
            raise OptionsError(
                f"--dask-scheduler {address}: cannot connect ({err}); start a scheduler with "
                "'dask scheduler' and workers with 'dask worker ADDRESS', or check the address"
            ) from None
        self.slots = 1 << 30
        self.futures = []

    def submit(self, job: CaseJob):
        future = self.client.submit(run_case, job, pure=False, key=f"y90-case-{job.case_id}-{job.work_dir[-12:]}")
        self.futures.append(future)
        return future

    def cancel(self) -> None:
        """Cancel the queued tasks and kill the cases running on the workers (Ctrl-C of the batch)."""
        try:
            self.client.cancel(self.futures, force=True)
            self.client.run(kill_running, on_error="ignore")
        except Exception:  # noqa: BLE001 - the cluster may be gone: the next start removes stale work folders
            pass
        finally:
            self.close()

    def close(self) -> None:
        self.client.close()
