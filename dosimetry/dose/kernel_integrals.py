"""Compiled (numba) integrals of the voxel S values: the density of the distance between two points drawn
uniformly in two voxels (:func:`dosimetry.dose.kernels.voxel_s_values` explains the method).

A module of its own so that importing :mod:`dosimetry.dose.kernels` (and running the kernel method with S
values from the cache) does not import numba (~0.17 s); it is imported when a table is computed.
"""

from __future__ import annotations

import math

import numba
import numpy as np


# --- geometry: distance density between two voxels ---------------------------------------------------------
@numba.njit(cache=True)
def _tri(u, c, h):
    a = 1.0 - abs(u - c) / h
    return a / h if a > 0.0 else 0.0


@numba.njit(cache=True)
def _insert_sorted(buf, n, value):
    buf[n] = value
    i = n
    while i > 0 and buf[i - 1] > buf[i]:
        buf[i - 1], buf[i] = buf[i], buf[i - 1]
        i -= 1
    return n + 1


@numba.njit(cache=True)
def _sphere_density(c0, c1, c2, h0, h1, h2, radius, gx, gw, xs, ts):
    """dF/dr at ``radius`` for U with density prod_i tri(u_i; c_i, h_i); xs, ts are scratch buffers."""
    nq = gx.shape[0]
    n = 0
    n = _insert_sorted(xs, n, -radius)
    n = _insert_sorted(xs, n, radius)
    for k in (c0 - h0, c0, c0 + h0):
        if -radius < k < radius:
            n = _insert_sorted(xs, n, k)
    total = 0.0
    for px in range(n - 1):
        lo = max(xs[px], c0 - h0)
        hi = min(xs[px + 1], c0 + h0)
        if hi <= lo:
            continue
        mid = 0.5 * (lo + hi)
        half = 0.5 * (hi - lo)
        for qx in range(nq):
            ux = mid + half * gx[qx]
            wx = half * gw[qx] * _tri(ux, c0, h0)
            a2 = radius * radius - ux * ux
            if wx <= 0.0 or a2 <= 0.0:
                continue
            ay = math.sqrt(a2)
            m = 0
            m = _insert_sorted(ts, m, -0.5 * math.pi)
            m = _insert_sorted(ts, m, 0.5 * math.pi)
            for k in (c1 - h1, c1, c1 + h1):
                if -ay < k < ay:
                    m = _insert_sorted(ts, m, math.asin(k / ay))
            for k in (c2 - h2, c2, c2 + h2):
                kk = abs(k)
                if 0.0 < kk < ay:
                    t = math.acos(kk / ay)
                    m = _insert_sorted(ts, m, t)
                    m = _insert_sorted(ts, m, -t)
            inner = 0.0
            for pt in range(m - 1):
                tlo = ts[pt]
                thi = ts[pt + 1]
                if thi <= tlo:
                    continue
                tm = 0.5 * (tlo + thi)
                th = 0.5 * (thi - tlo)
                for qt in range(nq):
                    t = tm + th * gx[qt]
                    wy = _tri(ay * math.sin(t), c1, h1)
                    if wy <= 0.0:
                        continue
                    az = ay * math.cos(t)
                    inner += th * gw[qt] * wy * (_tri(az, c2, h2) + _tri(-az, c2, h2))
            total += wx * inner * radius
    return total


@numba.njit(cache=True, parallel=True)
def _distance_density_table(offsets, spacing, j0, width, dr, gx, gw):
    """g_d(r_j) for every octant offset d (rows) on its radial support j0[d] .. j0[d] + width - 1."""
    n = offsets.shape[0]
    table = np.zeros((n, width))
    h0, h1, h2 = spacing[0], spacing[1], spacing[2]
    inv_volume = 1.0 / (h0 * h1 * h2)
    for o in numba.prange(n):
        xs = np.empty(8)
        ts = np.empty(16)
        c0 = offsets[o, 0] * h0
        c1 = offsets[o, 1] * h1
        c2 = offsets[o, 2] * h2
        for b in range(width):
            r = (j0[o] + b) * dr
            if r <= 0.0:
                # only the source voxel itself has a density at u = 0
                table[o, b] = inv_volume if (offsets[o, 0] == 0 and offsets[o, 1] == 0 and offsets[o, 2] == 0) else 0.0
            else:
                table[o, b] = _sphere_density(c0, c1, c2, h0, h1, h2, r, gx, gw, xs, ts) / (4.0 * math.pi * r * r)
    return table
