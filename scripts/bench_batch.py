"""Benchmark of ``dosimetry batch``: 8 cases with 1 and 2 workers side by side, and the rerun of a finished batch.

The 8 cases are copies of the sample DICOM study with new UIDs (``tests/batch_studies.py``). Each batch runs
as the user would run it (``python -m dosimetry batch``), in a fresh OUT. Also measured: the start-up of one
case's process (``python -m dosimetry.batch._child --version``), the per-case overhead of the
process-per-case design.

    python scripts/bench_batch.py [--cases 8] [--workers 1 2] [--keep DIR]

Prints the wall time of each batch, the speed-up over 1 worker and the rerun time. Timings depend on what
else runs on the machine: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from batch_studies import copy_study  # noqa: E402

RUN_OPTIONS = ["--residual-fraction", "0.03", "--lung-shunt", "0.05"]


def cpu_s() -> float:
    """CPU seconds (user + system) of the finished child processes and their descendants."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def batch(root: Path, out: Path, workers: int) -> tuple[float, int, float]:
    cmd = [
        sys.executable,
        "-m",
        "dosimetry",
        "batch",
        str(root),
        "--out",
        str(out),
        "--workers",
        str(workers),
        "-q",
        *RUN_OPTIONS,
    ]
    cpu, start = cpu_s(), time.perf_counter()
    code = subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode
    return time.perf_counter() - start, code, cpu_s() - cpu


IN_PROCESS = """
import sys, time
from pathlib import Path
from dosimetry.cli import main
root, out, options = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
start = time.perf_counter()
for case in sorted(p for p in root.iterdir() if p.is_dir()):
    assert main(["run", str(case), *options, "--out", str(out / case.name), "-q"]) == 0
print(time.perf_counter() - start)
"""


def in_process(root: Path, out: Path) -> tuple[float, float]:
    """The same cases one after the other in ONE process (what a pool worker would do): no start-up per case."""
    cmd = [sys.executable, "-c", IN_PROCESS, str(root), str(out), *RUN_OPTIONS]
    cpu, start = cpu_s(), time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start, cpu_s() - cpu


def startup_s(repeats: int = 3) -> float:
    cmd = [sys.executable, "-m", "dosimetry.batch._child", "--version"]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--keep", type=Path, help="keep the studies and outputs in this folder")
    parser.add_argument(
        "--no-in-process",
        action="store_true",
        help="skip the comparison with the cases run one after the other in one process",
    )
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="bench_batch_"))
    root = base / "root"
    try:
        if not root.exists():
            for n in range(args.cases):
                copy_study(root / f"case{n:02d}", f"bench-{n}")
        print(
            f"{args.cases} cases (sample DICOM study, new UIDs), {os.cpu_count()} cores, load average "
            f"{os.getloadavg()[0]:.2f}"
        )
        print(f"case process start-up (interpreter + imports of the command line): {startup_s():.2f} s")
        results, cpus = {}, {}
        for workers in args.workers:
            out = base / f"out_w{workers}"
            shutil.rmtree(out, ignore_errors=True)
            seconds, code, cpu = batch(root, out, workers)
            results[workers], cpus[workers] = seconds, cpu
            print(f"workers {workers}: {seconds:7.1f} s wall, {cpu:6.1f} s CPU  (exit {code})")
        if not args.no_in_process:
            out = base / "out_in_process"
            shutil.rmtree(out, ignore_errors=True)
            seconds, cpu = in_process(root, out)
            print(
                f"in one process, one case after the other (no per-case start-up): {seconds:7.1f} s wall, "
                f"{cpu:6.1f} s CPU"
            )
            if 1 in results:
                print(
                    f"overhead of a process per case (1 worker vs one process): "
                    f"{(results[1] - seconds) / args.cases:+.2f} s wall, {(cpus[1] - cpu) / args.cases:+.2f} s CPU "
                    f"per case"
                )
        first = args.workers[0]
        for workers in args.workers[1:]:
            print(f"speed-up {workers} vs {first} worker(s): {results[first] / results[workers]:.2f}x")
        rerun, code, _ = batch(root, base / f"out_w{args.workers[-1]}", args.workers[-1])
        print(f"rerun of the finished batch ({args.cases} cases, all skipped): {rerun:.1f} s  (exit {code})")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
