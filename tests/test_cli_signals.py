"""Ctrl-C (SIGINT) and SIGTERM inside the compiled dose loops: one line, exit 130 / 143, nothing left behind.

The child runs ``kernel-range`` on a small, noisy liver/lung volume whose ray tracing takes tens of
seconds, with ``-v`` so that the test sees (on stderr, not a terminal) when the ray tracing has started;
the signal is sent then. No timing is asserted: the ray-tracing stage must be reported as stopped after
some but not all of its sources (the signal took effect inside the loop, between two batches; one call
over all sources would stop at 0), and the latency is printed (``pytest -s``).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dosimetry.image import Image
from dosimetry.io.images import write_nifti

CHILD = "import sys; from dosimetry.cli import main; sys.exit(main())"


def _slow_kernel_range_case(folder, n=36, spacing_mm=2.0):
    """Activity, CT and liver mask whose kernel-range ray tracing lasts long (every voxel a source,
    lung beside liver, CT noise: every source is ray-traced and most pairs get the sub-voxel correction)."""
    rng = np.random.default_rng(0)
    shape = (n, n, n)
    ct = np.where(np.arange(n)[None, None, :] < n // 2, 50.0, -780.0) + rng.normal(0.0, 60.0, shape)
    activity = 2e4 * (1.0 + rng.random(shape))
    liver = np.zeros(shape, np.uint8)
    liver[4:-4, 4:-4, 4 : n // 2] = 1
    paths = {}
    for name, array in (("ct", ct.astype(np.float32)), ("activity", activity.astype(np.float32)), ("liver", liver)):
        paths[name] = folder / f"{name}.nii.gz"
        write_nifti(Image(array, spacing_mm=(spacing_mm,) * 3, origin_mm=(0.0, 0.0, 0.0)), paths[name])
    return paths


def _run_argv(paths, out):
    return [
        "run",
        "--activity",
        str(paths["activity"]),
        "--ct",
        str(paths["ct"]),
        "--roi",
        f"liver={paths['liver']}",
        "--scan-delay-h",
        "0",
        "--activity-units",
        "Bq/mL",
        "--method",
        "kernel-range",
        "--out",
        str(out),
    ]


@pytest.fixture(scope="module")
def compiled_loops(tmp_path_factory):
    """The compiled dose loops in numba's on-disk cache before the child starts: on a fresh checkout the
    first call compiles them (many seconds), and the signal must land inside the loop, not the compiler."""
    from dosimetry.cli import main

    folder = tmp_path_factory.mktemp("warm")
    assert main([*_run_argv(_slow_kernel_range_case(folder, n=10), folder / "out"), "-q"]) == 0


@pytest.mark.parametrize(
    "signum,code,message",
    [
        (signal.SIGINT, 130, "error: interrupted; no output was written"),
        (signal.SIGTERM, 143, "error: terminated (SIGTERM); no output was written"),
    ],
)
def test_signal_inside_the_ray_tracing_loop(tmp_path, compiled_loops, signum, code, message):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    paths = _slow_kernel_range_case(inputs)
    out = tmp_path / "out"
    argv = [sys.executable, "-c", CHILD, *_run_argv(paths, out), "-v"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    seen = []
    for line in proc.stderr:  # wait until the compiled loop runs
        seen.append(line.rstrip("\n"))
        if re.fullmatch(r"dosimetry: +ray tracing \.\.\.", line.strip()):  # indented inside the 'dose' stage
            break
    else:
        proc.wait()
        pytest.fail("the run ended before its ray tracing started:\n" + "\n".join(seen))
    # well inside the loop (it lasts tens of seconds): past loading the compiled function from numba's cache,
    # which can take a second on a busy machine, and its first batch (one source per thread)
    time.sleep(3.0)
    sent = time.monotonic()
    proc.send_signal(signum)
    rest = proc.stderr.read()  # to the end: the child closes stderr when it exits
    proc.wait(timeout=120)
    proc.stdout.close()
    proc.stderr.close()
    print(f"exit {proc.returncode} {time.monotonic() - sent:.2f} s after signal {signum}")
    lines = rest.strip().splitlines()
    assert proc.returncode == code, rest
    assert "Traceback" not in rest
    stopped = [re.match(r"dosimetry: +ray tracing stopped after [\d.]+ s at (\d+) of (\d+)$", line) for line in lines]
    stopped = [m for m in stopped if m]
    assert len(stopped) == 1, rest
    done, total = map(int, stopped[0].groups())
    assert 0 < done < total, rest  # ended between two batches: a single call would have reported 0
    errors = [line for line in lines if not line.startswith(("dosimetry: ", "INFO: "))]
    assert errors == [message], rest
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"], "partial output left behind"
    assert sorted(p.name for p in inputs.iterdir()) == ["activity.nii.gz", "ct.nii.gz", "liver.nii.gz"]
