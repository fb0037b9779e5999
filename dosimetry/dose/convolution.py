"""3-D convolution of a volume with a small odd-sized kernel: FFT or direct, chosen automatically.

Both paths compute the same linear ("same"-size, zero-padded) convolution
``out[t] = sum_d kernel[c + d] * volume[t - d]`` (``c`` the kernel centre): nothing wraps around, the
kernel centre is exactly the voxel itself, and voxels outside the volume contribute nothing.

* :func:`fft_convolve`: real FFTs (``scipy.fft``, float32/complex64, all cores), transform sizes from
  ``scipy.fft.next_fast_len`` of ``n + c`` per axis (the "same" output only needs padding by the kernel
  half-width ``c``, with the kernel stored wrapped around index 0). The transforms are done one axis at a
  time in one padded complex64 buffer: axes 2 and 1 in blocks of planes, axis 0 in place, the inverse
  cropped block by block into the output. Peak resident memory on top of the input: 3.0x the float32
  volume at 256^3 (including the output and the cached kernel spectrum; scipy.signal.fftconvolve 5.9x),
  measured in a fresh process by scripts/bench_convolution.py. The kernel transform is cached per
  (kernel, transform size); for a kernel symmetric in every axis (all voxel S value kernels) it is real
  and stored as float32.
* :func:`direct_convolve`: a numba loop over the non-zero kernel entries, parallel over the first axis,
  accumulating in float64; exact, and faster than the FFT for small kernels. It works in slabs of output
  planes (:data:`DIRECT_TERMS_PER_CHUNK` multiply-adds each, about 0.15 s on 2 cores) and returns to
  Python between them, so Ctrl-C takes effect within a fraction of a second and the progress display
  advances (stage ``direct convolution`` when there is more than one slab); every output plane is
  computed by one call, so the result does not depend on the slabs.
* :func:`convolve`: picks the cheaper path from an operation count (see :func:`choose_path`).

The two paths agree to 1e-5 of the maximum of the result (float32 FFT rounding).
"""

from __future__ import annotations

import functools
import hashlib
import math
import os

import numpy as np
import scipy.fft

from dosimetry import progress
from dosimetry.errors import OptionsError

_DIRECT_COST_PER_TERM = 1.0
"""Relative cost of one multiply-add of the direct path (vectorised inner loop)."""
_FFT_COST_PER_POINT_LOG = 6.0
"""Relative cost of one transform point x log2(size) of the FFT path (forward + inverse, complex64).
Calibrated on a 2-core machine with scripts/bench_convolution.py: the paths cost the same for a 128^3
volume at about 150 non-zero kernel entries."""


def _default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def _validate(volume, kernel) -> tuple[np.ndarray, np.ndarray]:
    volume = np.asarray(volume)
    kernel = np.asarray(kernel)
    if volume.ndim != 3 or kernel.ndim != 3:
        raise OptionsError(f"volume and kernel must be 3-D, got shapes {volume.shape} and {kernel.shape}")
    if any(n % 2 == 0 for n in kernel.shape):
        raise OptionsError(f"the kernel must have an odd size on every axis (centre voxel), got {kernel.shape}")
    for name, arr in (("volume", volume), ("kernel", kernel)):
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise OptionsError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if not np.all(np.isfinite(kernel)):
        raise OptionsError("the kernel contains NaN or infinite values")
    return volume, kernel


# --- FFT path ------------------------------------------------------------------------------------------
class _KernelKey:
    """Hashable handle on a kernel (by content digest) so its transform can sit in an lru_cache."""

    __slots__ = ("kernel", "digest")

    def __init__(self, kernel: np.ndarray):
        self.kernel = np.ascontiguousarray(kernel, dtype=np.float32)
        self.digest = hashlib.sha1(self.kernel.tobytes() + str(self.kernel.shape).encode()).hexdigest()

    def __hash__(self) -> int:
        return hash(self.digest)

    def __eq__(self, other) -> bool:
        return isinstance(other, _KernelKey) and other.digest == self.digest


def _wrap_pad(arr: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Zero-pad ``arr`` to ``size`` along ``axis`` with its centre moved to index 0 (negative offsets at the end)."""
    n = arr.shape[axis]
    c = n // 2
    shape = list(arr.shape)
    shape[axis] = size
    out = np.zeros(shape, dtype=arr.dtype)
    src_pos = [slice(None)] * arr.ndim
    dst_pos = [slice(None)] * arr.ndim
    src_pos[axis], dst_pos[axis] = slice(c, n), slice(0, n - c)
    out[tuple(dst_pos)] = arr[tuple(src_pos)]
    if c:
        src_pos[axis], dst_pos[axis] = slice(0, c), slice(size - c, size)
        out[tuple(dst_pos)] = arr[tuple(src_pos)]
    return out


def _is_symmetric(kernel: np.ndarray) -> bool:
    return all(np.array_equal(kernel, np.flip(kernel, axis=a)) for a in range(3))


@functools.lru_cache(maxsize=2)
def _kernel_spectrum(key: _KernelKey, fft_shape: tuple[int, int, int], workers: int) -> np.ndarray:
    """rfftn of the wrapped, padded kernel; real float32 for a symmetric kernel. Read-only, cached."""
    k = key.kernel
    a = scipy.fft.rfft(_wrap_pad(k, 2, fft_shape[2]), axis=2, workers=workers)
    a = scipy.fft.fft(_wrap_pad(a, 1, fft_shape[1]), axis=1, workers=workers)
    a = _wrap_pad(a, 0, fft_shape[0])
    symmetric = _is_symmetric(k)
    out = np.empty(a.shape, dtype=np.float32 if symmetric else np.complex64)
    step = max(1, a.shape[2] // 8)
    for lo in range(0, a.shape[2], step):  # the last axis in slabs: no full-size complex temporary
        spec = scipy.fft.fft(a[:, :, lo : lo + step], axis=0, workers=workers)
        out[:, :, lo : lo + step] = spec.real if symmetric else spec
    out.flags.writeable = False
    return out


def fft_shape_for(volume_shape, kernel_shape) -> tuple[int, int, int]:
    """Transform size per axis: the next fast length of ``n + c`` (``c`` the kernel half-width)."""
    return tuple(scipy.fft.next_fast_len(int(n) + int(k) // 2, real=True) for n, k in zip(volume_shape, kernel_shape))  # type: ignore[return-value]


_CHUNK_BYTES = 8 << 20
"""Planes along the first axis are transformed (and written out) this many bytes of complex64 at a time:
cache-sized blocks, no full-size temporaries (the axis-0 transforms work in place on one buffer)."""


def fft_convolve(volume, kernel, *, workers: int | None = None, overwrite_input: bool = False) -> np.ndarray:
    """Linear 3-D convolution by real FFTs in single precision ("same" size, zero padding, exact centring).

    Parameters
    ----------
    volume : (n0, n1, n2) array_like
        Values to convolve (cast to float32).
    kernel : (k0, k1, k2) array_like
        Odd-sized kernel, centre voxel at ``k // 2``.
    workers : int, optional
        Threads for ``scipy.fft`` (default: all cores available to the process).
    overwrite_input : bool
        The result may be written into ``volume`` when it is a C-contiguous float32 array (it is read only
        by the forward transforms): one volume less of memory. The caller must own it.

    Returns
    -------
    ndarray of float32, shape (n0, n1, n2), C-contiguous

    Notes
    -----
    One complex64 buffer of the padded half spectrum ``(s0, s1, s2 // 2 + 1)`` (about 1.2x the float32
    volume) holds every stage: the real FFT along axis 2 and the FFT along axis 1 are done in blocks of
    planes along axis 0 and written into it, the FFT along axis 0, the product with the kernel spectrum
    and the inverse along axis 0 are done in place, and the inverse along axes 1 and 2 is again done in
    blocks, each block cropped and written into the output. Peak resident memory on top of the input is
    that buffer, the output, the cached kernel spectrum (0.6x, real for symmetric kernels) and one block
    (measured with scripts/bench_convolution.py).
    """
    volume, kernel = _validate(volume, kernel)
    workers = workers or _default_workers()
    n0, n1, n2 = volume.shape
    s0, s1, s2 = fft_shape_for(volume.shape, kernel.shape)
    spectrum = _kernel_spectrum(_KernelKey(kernel), (s0, s1, s2), workers)
    x = volume.astype(np.float32, copy=False)
    # the exact result is >= 0 for non-negative inputs: negatives are then float32 round-off (about 1e-7
    # of the maximum), and they would show as spurious negative doses far from any activity
    clip = x.min(initial=0.0) >= 0 and kernel.min(initial=0.0) >= 0
    half = s2 // 2 + 1
    step = max(1, min(n0, _CHUNK_BYTES // (s1 * half * 8)))
    buf = np.empty((s0, s1, half), dtype=np.complex64)
    for lo in range(0, n0, step):
        hi = min(n0, lo + step)
        buf[lo:hi, :n1] = scipy.fft.rfft(x[lo:hi], n=s2, axis=2, workers=workers)
        buf[lo:hi, n1:] = 0
        _in_place(scipy.fft.fft(buf[lo:hi], axis=1, workers=workers, overwrite_x=True), buf[lo:hi])
    buf[n0:] = 0
    _in_place(scipy.fft.fft(buf, axis=0, workers=workers, overwrite_x=True), buf)
    buf *= spectrum
    _in_place(scipy.fft.ifft(buf, axis=0, workers=workers, overwrite_x=True), buf)
    reuse = overwrite_input and x.flags.c_contiguous and x.flags.writeable and x.dtype == np.float32
    out = x if reuse else np.empty((n0, n1, n2), dtype=np.float32)
    del x
    for lo in range(0, n0, step):
        hi = min(n0, lo + step)
        block = scipy.fft.ifft(buf[lo:hi], axis=1, workers=workers, overwrite_x=True)
        part = scipy.fft.irfft(block[:, :n1], n=s2, axis=2, workers=workers)[:, :, :n2]
        if clip:
            np.maximum(part, 0.0, out=out[lo:hi])
        else:
            out[lo:hi] = part
    return out


def _in_place(result: np.ndarray, target: np.ndarray) -> None:
    """``overwrite_x`` lets scipy.fft transform in place; copy back if this scipy returned a new array."""
    if not np.may_share_memory(result, target):
        target[...] = result


# --- direct path ---------------------------------------------------------------------------------------
DIRECT_TERMS_PER_CHUNK = 1 << 27
"""Multiply-adds of one call of the direct path's compiled loop (about 0.15 s on 2 cores): the loop returns
to Python between slabs of output planes, where Ctrl-C takes effect and progress is reported."""


def direct_convolve(volume, kernel, *, terms_per_chunk: int = DIRECT_TERMS_PER_CHUNK) -> np.ndarray:
    """Linear 3-D convolution by direct summation (numba, parallel), same result as :func:`fft_convolve`.

    Cost is ``volume.size x (non-zero kernel entries)`` multiply-adds; use it for small kernels. The work
    is done in slabs of output planes of about ``terms_per_chunk`` multiply-adds, with a return to Python
    (Ctrl-C, :func:`dosimetry.progress.advance`) between them; the result is the same for any slab size.
    Returns float32 of the volume's shape.
    """
    from dosimetry.dose.direct_loop import _direct_kernel  # numba: only for this path

    volume, kernel = _validate(volume, kernel)
    out = np.empty(volume.shape, dtype=np.float32)
    x = np.ascontiguousarray(volume, dtype=np.float32)
    k = np.ascontiguousarray(kernel, dtype=np.float64)
    n0 = volume.shape[0]
    terms_per_plane = max(1, volume.shape[1] * volume.shape[2] * int(np.count_nonzero(k)))
    step = max(1, min(n0, int(terms_per_chunk) // terms_per_plane))
    if step >= n0:
        _direct_kernel(x, k, out, 0, n0)
        return out
    with progress.stage("direct convolution", total=-(-n0 // step)):
        for lo in range(0, n0, step):
            _direct_kernel(x, k, out, lo, min(n0, lo + step))
            progress.advance()
    return out


# --- automatic choice ----------------------------------------------------------------------------------
def choose_path(volume_shape, kernel: np.ndarray) -> str:
    """``"direct"`` or ``"fft"``: whichever has the smaller estimated operation count.

    Direct: ``N x nnz(kernel)``; FFT: ``6 x P x log2(P)`` with ``P`` the padded transform size (the factor
    calibrated so that the paths break even at about 150 non-zero kernel entries for 128^3).
    """
    n_vox = float(np.prod(volume_shape))
    nnz = float(np.count_nonzero(kernel))
    padded = float(np.prod(fft_shape_for(volume_shape, np.shape(kernel))))
    direct = _DIRECT_COST_PER_TERM * n_vox * nnz
    fft = _FFT_COST_PER_POINT_LOG * padded * math.log2(max(padded, 2.0))
    return "direct" if direct <= fft else "fft"


def convolve(
    volume, kernel, *, method: str = "auto", workers: int | None = None, overwrite_input: bool = False
) -> np.ndarray:
    """Linear "same"-size 3-D convolution with an odd-sized kernel, float32 result.

    Parameters
    ----------
    volume, kernel : array_like
        3-D arrays; the kernel has odd sizes and its centre at ``k // 2``.
    method : {"auto", "fft", "direct"}
        ``auto`` uses :func:`choose_path`.
    workers : int, optional
        Threads for the FFT path.
    overwrite_input : bool
        The FFT path may write the result into ``volume`` (see :func:`fft_convolve`).
    """
    if method not in ("auto", "fft", "direct"):
        raise OptionsError(f"unknown convolution method {method!r}; choose auto, fft or direct")
    volume, kernel = _validate(volume, kernel)
    if method == "auto":
        method = choose_path(volume.shape, kernel)
    if method == "direct":
        return direct_convolve(volume, kernel)
    return fft_convolve(volume, kernel, workers=workers, overwrite_input=overwrite_input)


__all__ = ["choose_path", "convolve", "direct_convolve", "fft_convolve", "fft_shape_for"]
