"""Benchmark: ``kernel-range`` against ``kernel`` on the sample phantom at clinical resolution (issue 13).

Run from a checkout: ``python scripts/bench_kernel_range.py [--spacing-mm 2] [--method kernel-range ...]``.

The case: the committed sample phantom (``data/samples/phantom``: 4 mm PET, 2 x 2 x 3 mm CT, 5% lung
shunt, so every lung voxel holds activity) put on an isotropic grid of ``--spacing-mm`` (2 mm: 172 x 132
x 112 voxels). The activity concentration is sampled at the new voxel centres (nearest 4 mm voxel, so the
total activity is that of the sample up to the voxel volume), the density is the CT averaged over each
voxel (``density.density_on_grid``, as a run does). Every method runs in a fresh process (``--child``):
the table of voxel S values is built or loaded and numba compiled first (not timed, as a warm cache
would), then the dose call is timed; peak memory is the child's peak resident set during the call above
its resident set just before (``/proc/self/clear_refs``), given in MiB and as a multiple of the float32
volume. The stages of the call (``dosimetry.progress``) are timed too, and the CPU time of the process (all
threads; on a loaded machine the wall time grows, the CPU time much less), and ``gap s``: the longest
interval between two progress events of the call, an upper bound of how long Ctrl-C waits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

FINE = "kernel-range-fine"
ARRAYS_NEEDED = 3
"""Float32 volumes a dose method truly needs: the activity, the density and the dose (issue 13: peak memory
<= 4 x this x the float32 volume)."""
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "samples" / "phantom"


def build_case(spacing_mm: float):
    """(activity Bq per voxel, density g/mL) of the sample phantom on an isotropic ``spacing_mm`` grid."""
    import numpy as np

    from dosimetry.quantify.density import density_on_grid
    from dosimetry.image import Image
    from dosimetry.io.images import read_image

    pet = read_image(SAMPLE / "activity_bqml.nii.gz")
    ct = read_image(SAMPLE / "ct_hu.nii.gz")
    lo = np.asarray(pet.origin_mm) - 0.5 * np.asarray(pet.spacing_mm)
    extent = np.asarray(pet.shape) * np.asarray(pet.spacing_mm)
    shape = tuple(int(round(e / spacing_mm)) for e in extent)
    origin = lo + 0.5 * spacing_mm
    centres = [origin[a] + spacing_mm * np.arange(shape[a]) for a in range(3)]
    index = [
        np.clip(np.floor((c - lo[a]) / pet.spacing_mm[a]).astype(int), 0, pet.shape[a] - 1)
        for a, c in enumerate(centres)
    ]
    conc_bq_ml = np.asarray(pet.array, dtype=np.float64)[np.ix_(*index)]
    activity_bq = Image(conc_bq_ml * spacing_mm**3 / 1000.0, origin, (spacing_mm,) * 3)
    density = density_on_grid(ct, activity_bq).density_g_ml
    return activity_bq, density


def warm_up_case(activity, density):
    """A small crop of the case (24 voxels a side) around a lung source next to liver, whose lowest density is
    that of the case: the compute_dose call on it compiles (or loads) every numba function the full call uses,
    on both grids of kernel-range, and builds the same kernel tables, as a warm cache would."""
    import numpy as np
    from scipy.ndimage import binary_dilation

    from dosimetry.image import Image

    a, rho = np.asarray(activity.array), np.asarray(density.array)
    lung_sources = (a > 0) & (rho < 0.5)
    liver = (a > 0) & (rho > 0.9)
    near = lung_sources & binary_dilation(liver, iterations=3)
    centre = np.argwhere(near)[0] if np.any(near) else np.array(a.shape) // 2
    crop = tuple(slice(max(0, c - 12), max(0, c - 12) + 24) for c in centre)
    warm_a, warm_rho = np.array(a[crop]), np.array(rho[crop])
    warm_rho.flat[0] = rho.min()  # the kernel table depends on the lowest density
    return Image(warm_a, spacing_mm=activity.spacing_mm), Image(warm_rho, spacing_mm=density.spacing_mm)


class _Stages:
    """Stage times, and the longest interval between two progress events (where Ctrl-C can act)."""

    def __init__(self):
        self.seconds, self.last, self.longest_gap_s = {}, None, 0.0

    def _event(self):
        now = time.perf_counter()
        if self.last is not None:
            self.longest_gap_s = max(self.longest_gap_s, now - self.last)
        self.last = now

    def start(self, name, total):
        self._event()

    def advance(self, name, steps):
        self._event()

    def finish(self, name, seconds):
        self._event()
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


def child(spec: dict) -> dict:
    import numpy as np

    from dosimetry import progress
    from dosimetry.dose import compute_dose
    from dosimetry.dose.kernel_methods import kernel_range_dose

    if spec["method"] == FINE:  # every source ray-traced on the image grid (kernel-range before issue 13)

        def compute_dose(activity, density, method):  # noqa: F811 - the same call, one option changed
            return kernel_range_dose(activity, density, coarse_long_range=False)

    activity, density = build_case(spec["spacing_mm"])
    method = spec["method"]
    compute_dose(*warm_up_case(activity, density), method=method)  # numba, kernel tables (not timed)
    if spec.get("cold_tables"):  # the tables of the voxel size are loaded (disk cache) and ordered in the call
        from dosimetry.dose import kernel_methods, kernels

        kernel_methods._ray_order.cache_clear()
        for cached in vars(kernels).values():
            if hasattr(cached, "cache_clear"):
                cached.cache_clear()
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    base_kb = _status_kb("VmRSS")
    stages = _Stages()
    start, cpu_start = time.perf_counter(), time.process_time()
    with progress.reporting(stages):
        dose = compute_dose(activity, density, method=method)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak_kb = _status_kb("VmHWM")
    if spec.get("save"):
        np.save(spec["save"], np.asarray(dose.array))
    volume_mib = 4.0 * np.prod(activity.shape) / 2**20
    return {
        "method": method,
        "shape": list(activity.shape),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_extra_mib": (peak_kb - base_kb) / 1024.0,
        "peak_extra_volumes": (peak_kb - base_kb) / 1024.0 / volume_mib,
        "volume_mib": volume_mib,
        "stages_s": stages.seconds,
        "longest_gap_s": stages.longest_gap_s,
        "active_voxels": int(np.count_nonzero(activity.array)),
    }


def run_child(spec: dict) -> dict:
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(args=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spacing-mm", type=float, nargs="+", default=[2.0])
    parser.add_argument(
        "--method",
        nargs="+",
        default=["kernel", "kernel-range"],
        help=f"dose methods; {FINE}: kernel-range with every source on the image grid (as before issue 13)",
    )
    parser.add_argument("--save", help="folder: save each dose as <method>_<spacing>mm.npy")
    parser.add_argument(
        "--cold-tables",
        action="store_true",
        help="load the kernel tables of the voxel size (disk cache) inside the timed call, as a fresh process does",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args(args)
    if options.child:
        print(json.dumps(child(json.loads(options.child))))
        return 0
    import numba

    print(f"cores {len(os.sched_getaffinity(0))}, numba threads {numba.get_num_threads()}")
    print(
        f"memory bound: {ARRAYS_NEEDED} float32 volumes needed (activity, density, dose) x 4 = "
        f"{4 * ARRAYS_NEEDED} volumes; peak = resident set above the one before the call (inputs already held)"
        + (", kernel tables loaded in the call" if options.cold_tables else ", kernel tables warm")
    )
    print(
        f"{'voxel':>6} {'grid':>13} {'method':>13} {'wall s':>8} {'cpu s':>8} {'x kernel':>9} {'peak MiB':>9} "
        f"{'x vol':>6} {'bound MiB':>9} {'gap s':>6}  stages"
    )
    for spacing in options.spacing_mm:
        base = None
        for method in options.method:
            spec = {"spacing_mm": spacing, "method": method, "cold_tables": options.cold_tables}
            if options.save:
                spec["save"] = str(Path(options.save) / f"{method}_{spacing:g}mm.npy")
            r = run_child(spec)
            base = r["seconds"] if method == "kernel" else base
            ratio = f"{r['seconds'] / base:8.1f}x" if base else f"{'-':>9}"
            stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stages_s"].items())
            grid = "x".join(str(n) for n in r["shape"])
            bound_mib = 4 * ARRAYS_NEEDED * r["volume_mib"]
            verdict = "ok" if r["peak_extra_mib"] <= bound_mib else "OVER"
            print(
                f"{spacing:5.1f}mm {grid:>13} {method:>13} {r['seconds']:8.2f} {r['cpu_seconds']:8.2f} {ratio} "
                f"{r['peak_extra_mib']:9.0f} {r['peak_extra_volumes']:6.1f} {bound_mib:6.0f} {verdict:>2} "
                f"{r['longest_gap_s']:6.2f}  {stages}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
