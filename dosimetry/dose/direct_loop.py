"""The compiled (numba, parallel) loop of :func:`dosimetry.dose.convolution.direct_convolve`.

A module of its own so that the FFT path (the usual one) does not import numba (~0.17 s).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, parallel=True)
def _direct_kernel(volume, kernel, out, i_start, i_stop):
    """Output planes ``i_start <= i < i_stop`` of the direct convolution (each plane independent)."""
    n0, n1, n2 = volume.shape
    k0, k1, k2 = kernel.shape
    c0, c1, c2 = k0 // 2, k1 // 2, k2 // 2
    for i in numba.prange(i_start, i_stop):
        acc = np.zeros((n1, n2))
        for a in range(k0):
            ii = i + c0 - a
            if ii < 0 or ii >= n0:
                continue
            for b in range(k1):
                jlo = max(0, b - c1)
                jhi = min(n1, n1 + b - c1)
                for c in range(k2):
                    w = kernel[a, b, c]
                    if w == 0.0:
                        continue
                    klo = max(0, c - c2)
                    khi = min(n2, n2 + c - c2)
                    for j in range(jlo, jhi):
                        jj = j + c1 - b
                        for k in range(klo, khi):
                            acc[j, k] += w * volume[ii, jj, k + c2 - c]
        for j in range(n1):
            for k in range(n2):
                out[i, j, k] = acc[j, k]
