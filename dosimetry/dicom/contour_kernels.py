"""Compiled (numba) loops of :mod:`dosimetry.dicom.rtstruct`: the self-crossing test of a contour and the
even-odd fill of contour planes. A module of their own so that reading a study without an RTSTRUCT does not
import numba (about 0.25 s)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _self_crossing(u, v, tol):  # pragma: no cover - compiled
    n = u.size
    for i in range(n):
        ax, ay, bx, by = u[i], v[i], u[(i + 1) % n], v[(i + 1) % n]
        len_ab = np.hypot(bx - ax, by - ay)
        if len_ab == 0.0:
            continue
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # the closing edge is adjacent to the first
            cx, cy, dx, dy = u[j], v[j], u[(j + 1) % n], v[(j + 1) % n]
            len_cd = np.hypot(dx - cx, dy - cy)
            if len_cd == 0.0:
                continue
            d1 = ((bx - ax) * (cy - ay) - (by - ay) * (cx - ax)) / len_ab
            d2 = ((bx - ax) * (dy - ay) - (by - ay) * (dx - ax)) / len_ab
            d3 = ((dx - cx) * (ay - cy) - (dy - cy) * (ax - cx)) / len_cd
            d4 = ((dx - cx) * (by - cy) - (dy - cy) * (bx - cx)) / len_cd
            if ((d1 > tol and d2 < -tol) or (d1 < -tol and d2 > tol)) and (
                (d3 > tol and d4 < -tol) or (d3 < -tol and d4 > tol)
            ):
                return True
    return False


@numba.njit(cache=True)
def _even_odd(px, py, plane, offsets, x1, y1, x2, y2, out):  # pragma: no cover - compiled
    for n in range(px.size):
        p = plane[n]
        inside = False
        if p >= 0:
            x = px[n]
            y = py[n]
            for e in range(offsets[p], offsets[p + 1]):
                ya = y1[e]
                yb = y2[e]
                if (ya > y) != (yb > y):
                    xint = x1[e] + (y - ya) * (x2[e] - x1[e]) / (yb - ya)
                    if x < xint:
                        inside = not inside
        out[n] = inside
