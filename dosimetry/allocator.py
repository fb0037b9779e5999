"""Reuse of freed memory within a process (glibc's allocator), for the command line (issue 10).

A dosimetry run allocates and frees many volume-sized arrays (tens to hundreds of MiB each). glibc serves
every block over 32 MiB with a fresh ``mmap`` and returns it with ``munmap`` when freed, so each new
volume starts on pages the kernel must fault in and zero again; on a virtual machine (this project's
2-core development machine is a Firecracker VM) a page fault on fresh memory costs tens of microseconds,
and a run on a real study spent a third of its time in them. :func:`keep_freed_memory` makes the
allocator take large blocks from its heap and keep freed ones for the next array (``M_MMAP_MAX = 0``,
``M_TRIM_THRESHOLD`` high): measured on the real-size benchmark study (``scripts/bench_pipeline.py``),
45% fewer page faults and the same peak resident memory. A long-running process keeps the memory of its
largest study until it ends, which the command line's one-study processes (``run``, each batch case in its
own process) do at once.

It also turns off numpy's transparent-huge-page advice (``NUMPY_MADVISE_HUGEPAGE=0``; numpy otherwise asks the
kernel for 2 MiB pages for every array over 4 MiB). In this VM a huge-page fault on fresh memory stalls for
the host to back 2 MiB at once: on the real-size benchmark study the system time of a run fell from
2.5-2.8 s to 0.5-0.6 s and the wall time by about 2 s (more, smaller faults, each cheap); the arrays of a
run are read a few times each, so the larger pages bought little.

This is process-wide tuning, so only the command line calls it (:func:`dosimetry.cli.main`); the Python
API leaves the allocator of a notebook alone. ``Y90_KEEP_FREED_MEMORY=0`` turns it off. Elsewhere than
glibc it does nothing.

References
----------
mallopt(3), Linux man-pages: M_MMAP_MAX, M_TRIM_THRESHOLD. Linux kernel documentation,
admin-guide/mm/transhuge ("madvise" mode); numpy ``NUMPY_MADVISE_HUGEPAGE`` (numpy/__init__.py).
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1
"""mallopt parameter: free memory at the top of the heap kept before it is returned (malloc.h)."""
M_MMAP_MAX = -4
"""mallopt parameter: the most blocks served by mmap at once (0: none; malloc.h)."""
TRIM_THRESHOLD_BYTES = 2**31 - 1
"""Keep up to 2 GiB of freed heap (mallopt takes an int)."""
ENVIRONMENT_SWITCH = "Y90_KEEP_FREED_MEMORY"


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of unmapping it; True when it was applied."""
    if not sys.platform.startswith("linux") or os.environ.get(ENVIRONMENT_SWITCH, "1") == "0":
        return False
    _no_huge_pages()
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl, or no glibc: nothing to tune
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


def _no_huge_pages() -> None:
    """numpy's huge-page advice off: read by numpy at import (also in child processes), or set now."""
    numpy = sys.modules.get("numpy")
    if numpy is None:
        os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
        return
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _set_madvise_hugepage
    _set_madvise_hugepage(os.environ.get("NUMPY_MADVISE_HUGEPAGE", "0") != "0")
