"""Benchmark: our convolution against scipy.signal.fftconvolve and scipy.ndimage.convolve, and kernel-range.

Run from a checkout: ``python scripts/bench_convolution.py [--quick] [--ndimage-256]``.

All timings are in one process, on the same float32 volume and Y-90 soft-tissue kernel (2 mm and 4 mm
voxels), best of ``--repeat`` runs (more for fast cases, up to 1 s of runs) after one warm-up run (which
builds the kernel spectrum cache and compiles numba). ``scipy.signal.fftconvolve`` runs with ``scipy.fft.set_workers(all cores)``.

Peak memory is measured as resident memory, not with tracemalloc (which misses scipy.fft's internal C++
buffers): every case runs in a fresh subprocess (``--memory-child``) that imports everything, warms up on a
small volume (numba compilation, FFT plans), allocates and touches its inputs, resets the kernel's
high-water mark (``/proc/self/clear_refs`` = 5; without it the baseline is ``ru_maxrss`` so far), and
reports ``VmHWM - VmRSS`` before the call (the memory the call needs on top of its inputs, the output
and, for ours, the cached kernel spectrum included), as a multiple of the float32 volume (4 n^3 bytes).

Goals (issue 4): time ratio to fftconvolve <= 0.7, >= 10x faster than ndimage.convolve, kernel-range on
128^3 under 10 s on 2 cores, peak extra memory <= 4x the float32 volume.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time

import numba
import numpy as np
import scipy.fft
import scipy.ndimage
import scipy.signal

from dosimetry.dose.convolution import choose_path, convolve
from dosimetry.dose.kernel_methods import kernel_range_dose
from dosimetry.image import Image
from dosimetry.dose.kernels import density_kernel_table, voxel_s_values


def best_time(function, repeat: int) -> float:
    """Best of ``repeat`` runs after a warm-up run (caches, numba compilation); fast cases are repeated
    until they have run for about a second (at most 50 times), so that timer noise does not dominate."""
    start = time.perf_counter()
    function()  # warm-up: caches, numba compilation
    first = time.perf_counter() - start
    times = []
    for _ in range(max(repeat, min(50, int(1.0 / max(first, 1e-3))))):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's resident high-water mark of this process (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _memory_child(spec: dict) -> dict:
    """Run one case in this (fresh) process; the peak resident memory the call adds to its inputs."""
    n, spacing, which, cores = spec["n"], spec["spacing"], spec["which"], spec["cores"]
    kernel = voxel_s_values(spacing, 1.03)
    kernel32 = kernel.astype(np.float32)
    if which == "ours":

        def run(v):
            return convolve(v, kernel)
    else:

        def run(v):
            with scipy.fft.set_workers(cores):
                return scipy.signal.fftconvolve(v, kernel32, mode="same")

    run(np.ones((24, 24, 24), dtype=np.float32))  # numba compilation and FFT plans, not measured
    volume = np.random.default_rng(0).random((n, n, n), dtype=np.float32)  # touched: resident
    gc.collect()
    exact = _reset_peak()
    base_kb = _status_kb("VmRSS") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run(volume)
    peak_kb = _status_kb("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del result
    return {
        "extra_over_volume": (peak_kb - base_kb) * 1024.0 / volume.nbytes,
        "exact": exact,
        "path": choose_path(volume.shape, kernel) if which == "ours" else "fft",
    }


def peak_memory_multiple(n: int, spacing: float, which: str, cores: int) -> dict:
    """Peak extra resident memory of one call, in a fresh subprocess, as a multiple of the float32 volume."""
    spec = json.dumps({"n": n, "spacing": spacing, "which": which, "cores": cores})
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--memory-child", spec], check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def phantom(shape, spacing_mm):
    """Body (1.03) with a liver (1.06, active, two hot spheres) under a lung (0.26); air outside."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    pos = (idx - (np.array(shape) - 1) / 2) * np.asarray(spacing_mm)  # mm from the centre
    x, y, z = pos[..., 0], pos[..., 1], pos[..., 2]
    extent = np.array(shape) * np.asarray(spacing_mm) / 2
    body = (x / (0.9 * extent[0])) ** 2 + (y / (0.7 * extent[1])) ** 2 <= 1
    liver = ((x - 0.15 * extent[0]) / (0.45 * extent[0])) ** 2 + (y / (0.4 * extent[1])) ** 2 + (
        (z + 0.2 * extent[2]) / (0.35 * extent[2])
    ) ** 2 <= 1
    lung = body & ~liver & (z > 0.05 * extent[2]) & (np.abs(x) > 0.1 * extent[0])
    density = np.where(body, 1.03, 0.0012)
    density[lung] = 0.26
    density[liver] = 1.06
    activity = np.where(liver, 1e5, 0.0)
    for centre in ((0.2, 0.1, -0.25), (0.0, -0.15, -0.1)):
        hot = np.sum((pos - np.array(centre) * extent) ** 2, axis=-1) <= (0.08 * extent[0]) ** 2
        activity[hot & liver] = 1e6
    return activity, density


def main(args=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="128^3 only")
    parser.add_argument("--ndimage-256", action="store_true", help="also time ndimage.convolve at 256^3 (slow)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    options = parser.parse_args(args)
    if options.memory_child:
        print(json.dumps(_memory_child(json.loads(options.memory_child))))
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cores {cores}, numba threads {numba.get_num_threads()}, scipy {scipy.__version__}")
    rng = np.random.default_rng(0)
    header = (
        f"{'volume':>8} {'voxel':>6} {'kernel':>7} {'path':>6} {'ours s':>8} {'fftconv s':>9} "
        f"{'ratio':>6} {'ndimage s':>9} {'speedup':>8} {'mem ours':>8} {'mem fftc':>8}"
    )
    print(header)
    sizes = (128,) if options.quick else (128, 256)
    exact = True
    for n in sizes:
        volume = rng.random((n, n, n), dtype=np.float32)
        for spacing in (2.0, 4.0):
            kernel = voxel_s_values(spacing, 1.03)
            kernel32 = kernel.astype(np.float32)
            ours = best_time(lambda: convolve(volume, kernel), options.repeat)
            with scipy.fft.set_workers(cores):
                ref = best_time(lambda: scipy.signal.fftconvolve(volume, kernel32, mode="same"), options.repeat)
            if n <= 128 or options.ndimage_256:
                nd = best_time(lambda: scipy.ndimage.convolve(volume, kernel32, mode="constant"), 1)
                nd_text, speedup = f"{nd:9.3f}", f"{nd / ours:7.1f}x"
            else:
                nd_text, speedup = f"{'-':>9}", f"{'-':>8}"
            mem_ours = peak_memory_multiple(n, spacing, "ours", cores)
            mem_ref = peak_memory_multiple(n, spacing, "fftconvolve", cores)
            exact = exact and mem_ours["exact"] and mem_ref["exact"]
            print(
                f"{n:>5}^3 {spacing:5.1f}mm {str(kernel.shape[0]) + '^3':>7} {choose_path(volume.shape, kernel):>6} "
                f"{ours:8.3f} {ref:9.3f} {ours / ref:6.2f} {nd_text} {speedup} "
                f"{mem_ours['extra_over_volume']:7.2f}x {mem_ref['extra_over_volume']:7.2f}x"
            )
    print(
        "mem: peak resident memory added by one call (fresh process), / float32 volume"
        + ("" if exact else " (ru_maxrss fallback: /proc/self/clear_refs not writable, may under-read)")
    )
    print()
    print("kernel-range on a 128^3 body/liver/lung phantom (activity in the liver)")
    for spacing in (4.0, 2.0):
        activity, density = phantom((128, 128, 128), (spacing,) * 3)
        a = Image(activity, spacing_mm=spacing)
        rho = Image(density, spacing_mm=spacing)
        start = time.perf_counter()
        density_kernel_table(spacing, 0.2)
        table_s = time.perf_counter() - start
        kernel_range_dose(a, rho)  # warm-up (numba compile, ray tables)
        start = time.perf_counter()
        kernel_range_dose(a, rho)
        run_s = time.perf_counter() - start
        print(
            f"  {spacing:.0f} mm voxels: {run_s:6.2f} s (density table build or load {table_s:.2f} s; "
            f"{np.count_nonzero(activity)} active voxels)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
