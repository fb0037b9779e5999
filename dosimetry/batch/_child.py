"""``python -m dosimetry.batch._child run ...``: ``dosimetry run`` for one case of a batch.

Exactly :func:`dosimetry.cli.main` with the given arguments, in a process that dies with the batch (or Dask
worker) that started it: on Linux the kernel sends it SIGKILL when its parent dies (``PR_SET_PDEATHSIG``),
so a batch killed with ``kill -9`` leaves no case running on.
"""

import os
import signal
import sys


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    expected = os.environ.get("Y90_BATCH_PARENT_PID")
    if expected and os.getppid() != int(expected):  # the parent died before prctl took effect
        os._exit(137)


if __name__ == "__main__":
    _die_with_parent()
    from dosimetry.allocator import keep_freed_memory
    from dosimetry.cli import main

    keep_freed_memory()  # one case per process, as `dosimetry run` (see allocator.py)

    sys.exit(main(sys.argv[1:]))
