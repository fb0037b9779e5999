"""The compiled (numba, parallel) ray tracing of the range-scaled kernel method
(:func:`dosimetry.dose.kernel_methods.kernel_range_dose`, whose module docstring describes the method): each
source's energy along the rays to its targets, with the mean density on the way and the sub-voxel correction.

A module of its own so that the other dose methods do not import numba (~0.17 s).
"""

from __future__ import annotations

import math

import numba
import numpy as np


def _node_bins(nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Lookup aids for :func:`_energy_at`: uniform bins over [nodes[0], nodes[-1]] (half the smallest node
    gap wide) -> index of the node at or below the bin start (so no logarithm is needed per lookup), and the
    inverse node gaps."""
    width = 0.5 * float(np.min(np.diff(nodes)))
    n_bins = int(math.ceil((nodes[-1] - nodes[0]) / width)) + 2
    starts = nodes[0] + np.arange(n_bins) * width
    bins = np.clip(np.searchsorted(nodes, starts, side="right") - 1, 0, len(nodes) - 2).astype(np.int64)
    return bins, 1.0 / np.diff(nodes), 1.0 / width


@numba.njit(cache=True, inline="always")
def _energy_at(table, row, nodes, bins, inv_gap, inv_bin, rho):
    """``rho S_rho`` of one table row (energy per unit volume), linear in rho between the density nodes.

    ``rho`` must lie in [nodes[0], nodes[-1]]. Returns (value, True when both node values are zero)."""
    nk = nodes.shape[0]
    b = int((rho - nodes[0]) * inv_bin)
    if b < 0:
        b = 0
    elif b >= bins.shape[0]:
        b = bins.shape[0] - 1
    k = bins[b]
    if k < nk - 2 and rho >= nodes[k + 1]:
        k += 1
    w = (rho - nodes[k]) * inv_gap[k]
    if w < 0.0:
        w = 0.0
    elif w > 1.0:
        w = 1.0
    e0 = table[row, k]
    e1 = table[row, k + 1]
    return (1.0 - w) * e0 + w * e1, (e0 == 0.0 and e1 == 0.0)


_GAUSS_LO = 0.5 - 0.5 / math.sqrt(3.0)
_GAUSS_HI = 0.5 + 0.5 / math.sqrt(3.0)
SUBVOXEL_TOLERANCE = 0.01
"""A source-target pair gets the sub-voxel correction when ``|rho_s - rho_bar| + |rho_t - rho_bar|`` exceeds
this fraction of the path-mean density ``rho_bar`` (module documentation, step 3)."""


@numba.njit(cache=True, inline="always")
def _clamp(x, lo, hi):
    return lo if x < lo else (hi if x > hi else x)


@numba.njit(cache=True, inline="always")
def _subvoxel_correction(
    table, r, nodes, bins, inv_gap, inv_bin, rho, i0, j0, k0, d0, d1, d2, h0, h1, h2, rs, rt, rho_bar
):
    """Sub-voxel correction of the voxel S value of one source-target pair (see kernel_range_dose, Notes)."""
    # the layering axis: the one along which the density changes from each end towards the other
    lo = nodes[0]
    hi = nodes[nodes.shape[0] - 1]
    best = -1.0
    axis = 0
    if d0 != 0:
        best = abs(_clamp(rho[i0 + d0, j0, k0], lo, hi) - rs) + abs(_clamp(rho[i0, j0 + d1, k0 + d2], lo, hi) - rt)
    if d1 != 0:
        c = abs(_clamp(rho[i0, j0 + d1, k0], lo, hi) - rs) + abs(_clamp(rho[i0 + d0, j0, k0 + d2], lo, hi) - rt)
        if c > best:
            best = c
            axis = 1
    if d2 != 0:
        c = abs(_clamp(rho[i0, j0, k0 + d2], lo, hi) - rs) + abs(_clamp(rho[i0 + d0, j0 + d1, k0], lo, hi) - rt)
        if c > best:
            best = c
            axis = 2
    if best <= 0.0:  # the ends differ from the path but not across a layer: the dominant (Chebyshev) axis
        axis = 0
        big = abs(d0)
        if abs(d1) > big:
            axis = 1
            big = abs(d1)
        if abs(d2) > big:
            axis = 2
    x0 = d0 * h0
    x1 = d1 * h1
    x2 = d2 * h2
    if axis == 0:
        dn = abs(d0)
        hn = h0
        lat2 = x1 * x1 + x2 * x2
    elif axis == 1:
        dn = abs(d1)
        hn = h1
        lat2 = x0 * x0 + x2 * x2
    else:
        dn = abs(d2)
        hn = h2
        lat2 = x0 * x0 + x1 * x1
    inv_rc2 = 1.0 / (lat2 + dn * dn * hn * hn)
    middle = rho_bar * dn - 0.5 * (rs + rt)  # density summed over the layers strictly between the ends
    if middle < 0.0:
        middle = 0.0
    corr = 0.0
    # 2 x 2 Gauss points (ta, tb): the sub-point distances from the faces of the two voxels that face each
    # other, in voxels; the separation u = dn - 1 + ta + tb takes 3 values (the two mixed points share one)
    for q in range(3):
        u = dn - 1.0 + (2.0 * _GAUSS_LO if q == 0 else (1.0 if q == 1 else 2.0 * _GAUSS_HI))
        r2 = (u * u * hn * hn + lat2) * inv_rc2  # (sub-point distance / centre distance)^2
        ratio = math.sqrt(r2)
        # the homogeneous medium of density rho_bar: S at rho_bar r_q / r_c, times (r_c / r_q)^2
        rho2 = _clamp(rho_bar * ratio, lo, hi)
        e2, _ = _energy_at(table, r, nodes, bins, inv_gap, inv_bin, rho2)
        hom = e2 / rho2
        if q == 1:
            hom *= 2.0
        # the same with the pair's own path-mean density rho_q: S at rho_q r_q / r_c, times (r_c / r_q)^2
        het = 0.0
        for end in range(2 if q == 1 else 1):
            ta = _GAUSS_LO if (q == 0 or (q == 1 and end == 0)) else _GAUSS_HI
            tb = u - (dn - 1.0) - ta
            rho1 = _clamp((rs * ta + middle + rt * tb) / u * ratio, lo, hi)
            e1, _ = _energy_at(table, r, nodes, bins, inv_gap, inv_bin, rho1)
            het += e1 / rho1
        corr += (het - hom) / r2
    return 0.25 * corr


@numba.njit(cache=True, parallel=True)
def _range_scatter(
    source_decays,
    rho,
    sources,
    offsets,
    parents,
    weights,
    path_weights,
    row,
    shell_start,
    table,
    nodes,
    bins,
    inv_gap,
    inv_bin,
    spacing,
    out,
    i_offset,
    s_start,
    s_stop,
):
    """Ray-trace sources ``s_start <= si < s_stop`` (flat indices ``sources``, decays x 1e-9
    ``source_decays``) into ``out``: one accumulator per thread, each a slab of planes ``i_offset ..
    i_offset + out.shape[1] - 1`` of the grid along axis 0 that must hold every target of these sources.
    Source ``si`` always goes to accumulator ``si % n_chunks`` and each accumulator takes its sources in
    increasing order, so the sums do not depend on how the sources are split into calls. ``rho`` is the
    density as given (any float dtype), clamped to [nodes[0], nodes[-1]] where it is read."""
    n0, n1, n2 = rho.shape
    n_chunks = out.shape[0]
    n_off = offsets.shape[0]
    n_shell = shell_start.shape[0] - 1
    h0, h1, h2 = spacing[0], spacing[1], spacing[2]
    lo = nodes[0]
    hi = nodes[nodes.shape[0] - 1]
    for chunk in numba.prange(n_chunks):
        dens_sum = np.empty(n_off)  # density summed over the unit steps from the source; < 0: ray ended
        rho_here = np.empty(n_off)
        acc = out[chunk]
        first = chunk
        if s_start > chunk:  # the first source index >= s_start that belongs to this accumulator
            first = chunk + ((s_start - chunk + n_chunks - 1) // n_chunks) * n_chunks
        for si in range(first, s_stop, n_chunks):
            flat = sources[si]
            i0 = flat // (n1 * n2)
            j0 = (flat // n2) % n1
            k0 = flat % n2
            a = source_decays[si]
            rs = _clamp(rho[i0, j0, k0], lo, hi)
            dens_sum[0] = 0.0
            rho_here[0] = rs
            e, _ = _energy_at(table, row[0], nodes, bins, inv_gap, inv_bin, rs)
            acc[i0 - i_offset, j0, k0] += a * e / rs
            for m in range(1, n_shell):
                alive = False
                inv_m = 1.0 / m
                for o in range(shell_start[m], shell_start[m + 1]):
                    d0 = offsets[o, 0]
                    d1 = offsets[o, 1]
                    d2 = offsets[o, 2]
                    i = i0 + d0
                    j = j0 + d1
                    k = k0 + d2
                    if i < 0 or i >= n0 or j < 0 or j >= n1 or k < 0 or k >= n2:
                        dens_sum[o] = -1.0
                        continue
                    wsum = 0.0
                    psum = 0.0
                    prev_sum = 0.0
                    prev_rho = 0.0
                    for q in range(4):
                        w = weights[o, q]
                        if w == 0.0:
                            break
                        p = parents[o, q]
                        if dens_sum[p] >= 0.0:
                            wp = path_weights[o, q]
                            wsum += w
                            psum += wp
                            prev_sum += wp * dens_sum[p]
                            prev_rho += w * rho_here[p]
                    if wsum == 0.0:
                        dens_sum[o] = -1.0
                        continue
                    rt = _clamp(rho[i, j, k], lo, hi)
                    if wsum != 1.0:
                        prev_sum /= psum
                        prev_rho /= wsum
                    total = prev_sum + 0.5 * (prev_rho + rt)
                    rho_bar = _clamp(total * inv_m, lo, hi)
                    e, dead = _energy_at(table, row[o], nodes, bins, inv_gap, inv_bin, rho_bar)
                    s = e / rho_bar
                    if abs(rs - rho_bar) + abs(rt - rho_bar) > SUBVOXEL_TOLERANCE * rho_bar:
                        s += _subvoxel_correction(
                            table,
                            row[o],
                            nodes,
                            bins,
                            inv_gap,
                            inv_bin,
                            rho,
                            i0,
                            j0,
                            k0,
                            d0,
                            d1,
                            d2,
                            h0,
                            h1,
                            h2,
                            rs,
                            rt,
                            rho_bar,
                        )
                        if s < 0.0:
                            s = 0.0
                        dead = dead and s == 0.0
                    if dead:
                        dens_sum[o] = -1.0
                        continue
                    dens_sum[o] = total
                    rho_here[o] = rt
                    alive = True
                    acc[i - i_offset, j, k] += a * s
                if not alive:
                    break
